"""Great Expectations validation of one lake partition: severities, kept results, quarantine.

The suite is declarative JSON in ``data_checks/``; it is loaded and built here, inside the task,
never at DAG parse time. On top of its static expectations each run adds:

* **freshness**: every timestamp inside the partition's day, and none in the future;
* **volume** and **drift** against a reference profile built from the latest partitions that
  passed validation before this day (skipped, and said so, until there is such history).

Each expectation has a ``severity``: ``critical`` failures fail the partition, which is then
moved to the lake's quarantine area with its result; ``warning`` failures are logged and let it
through. Every run's result is kept under ``<validation_dir>/date=D/<run>/`` as the GX JSON, a
short summary, and a GX Data Docs HTML page (``index.html``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

SUITES_DIR = Path(__file__).resolve().parents[2] / "data_checks"


def suite_path_for(use_case) -> Path:
    """A use case's (first) suite: ``data_checks/<name>/<file>``; a missing one is an error
    naming it."""
    folder = Path(use_case.suites_dir) if use_case.suites_dir else SUITES_DIR / use_case.name
    path = folder / use_case.suite_files[0]
    if not path.is_file():
        raise FileNotFoundError(f"use case {use_case.name}: no suite at {path}")
    return path


SEVERITIES = ("critical", "warning")
LATEST = "latest.json"


class ValidationFailed(RuntimeError):
    """A partition failed at least one critical expectation."""

    def __init__(self, report: ValidationReport):
        self.report = report
        names = ", ".join(
            f"{f['expectation']}({f['column'] or 'table'})" for f in report.critical_failures
        )
        super().__init__(
            f"validation of {report.date} failed {len(report.critical_failures)} critical "
            f"expectation(s): {names}; quarantined at {report.quarantined_at}; "
            f"report {report.docs_path}"
        )


@dataclass
class ValidationReport:
    date: str
    run: str
    success: bool
    evaluated: int
    critical_failures: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    result_path: str = ""
    docs_path: str = ""
    quarantined_at: str | None = None
    data_sha256: str | None = None
    """SHA-256 of the lake data file that was validated (the manifest's), when it came from one."""

    def as_dict(self) -> dict:
        return asdict(self)


def load_suite_spec(path: Path) -> dict:
    spec = json.loads(Path(path).read_text())
    for item in spec["expectations"]:
        if item.get("severity") not in SEVERITIES:
            raise ValueError(f"{path}: expectation {item['type']} needs severity critical|warning")
    return spec


def freshness_expectation(
    day: dt.date, now: dt.datetime, severity: str, column: str = "timestamp"
) -> dict:
    """Timestamps (``column``, the suite's ``freshness.column``) inside the partition's day
    and never after ``now``."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    end = min(start + dt.timedelta(days=1) - dt.timedelta(microseconds=1), now)
    return {
        "rule": "freshness",
        "type": "expect_column_values_to_be_between",
        "severity": severity,
        "kwargs": {
            "column": column,
            "min_value": start.isoformat(),
            "max_value": end.isoformat(),
        },
    }


def build_profile(frames: list[pd.DataFrame], columns: list[str], dates: list[str]) -> dict:
    """A reference profile: rows per day, and each column's mean and standard deviation."""
    pooled = pd.concat(frames, ignore_index=True)
    return {
        "dates": dates,
        "rows_per_day": float(sum(len(f) for f in frames) / len(frames)),
        "columns": {
            c: {"mean": float(pooled[c].mean()), "std": float(pooled[c].std())} for c in columns
        },
    }


def reference_expectations(profile: dict, spec: dict) -> list[dict]:
    """Volume and drift expectations derived from a reference profile."""
    volume, drift = spec["volume"], spec["drift"]
    rows = profile["rows_per_day"]
    out = [
        {
            "rule": "volume",
            "type": "expect_table_row_count_to_be_between",
            "severity": volume["severity"],
            "kwargs": {
                "min_value": max(1, int(rows * volume["min_ratio"])),
                "max_value": int(rows * volume["max_ratio"]) + 1,
            },
        }
    ]
    low, high = drift["std_ratio"]
    for column in drift["columns"]:
        ref = profile["columns"][column]
        shift = drift["mean_shift_in_std"] * ref["std"]
        out.append(
            {
                "rule": "drift",
                "type": "expect_column_mean_to_be_between",
                "severity": drift["severity"],
                "kwargs": {
                    "column": column,
                    "min_value": ref["mean"] - shift,
                    "max_value": ref["mean"] + shift,
                },
            }
        )
        out.append(
            {
                "rule": "drift",
                "type": "expect_column_stdev_to_be_between",
                "severity": drift["severity"],
                "kwargs": {
                    "column": column,
                    "min_value": ref["std"] * low,
                    "max_value": ref["std"] * high,
                },
            }
        )
    return out


def describe_result(result) -> dict:
    """One GX expectation result as plain JSON: rule, expectation, column, expected, observed,
    severity."""
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    observed = result.result.get("observed_value")
    if observed is None and "unexpected_count" in result.result:
        observed = {
            "unexpected_count": result.result.get("unexpected_count"),
            "unexpected_percent": result.result.get("unexpected_percent"),
            "sample": result.result.get("partial_unexpected_list", [])[:5],
        }
    if result.exception_info and result.exception_info.get("raised_exception"):
        observed = {"exception": result.exception_info.get("exception_message")}
    described = {
        "rule": config.meta.get("rule", ""),
        "expectation": config.type,
        "column": kwargs.get("column") or kwargs.get("column_list"),
        "expected": kwargs,
        "observed": observed,
        "severity": config.meta.get("severity", "critical"),
    }
    return json.loads(json.dumps(described, default=str))  # plain JSON: it travels via XCom


def _skip_decimal_scan_of_numeric_arrays() -> None:
    """GX 1.x checks every element of a column for ``decimal.Decimal`` in a Python loop before
    each mean/sum/stdev (great_expectations.util.does_ndarray_contain_decimal_dtype), a cost
    that grows with rows times expectations. Only an ``object`` array can hold a Decimal, so
    for any other dtype the answer is known without looking; the result is identical."""
    import great_expectations.util as gx_util

    original = gx_util.does_ndarray_contain_decimal_dtype
    if getattr(original, "conveyor_fast_path", False):
        return

    def does_ndarray_contain_decimal_dtype(data):
        if getattr(data, "dtype", None) is not None and data.dtype.kind != "O":
            return False
        return original(data)

    does_ndarray_contain_decimal_dtype.conveyor_fast_path = True
    gx_util.does_ndarray_contain_decimal_dtype = does_ndarray_contain_decimal_dtype


def _skip_dataframe_fingerprint() -> None:
    """GX hashes every row of a pandas batch (``hash_pandas_object``, then MD5) for its
    ``pandas_data_fingerprint`` batch marker, a pass over every row that the checks do not
    need.
    A lake partition is already identified by the SHA-256 of its data file, which
    ``validate_partition`` records in the report and in the result's batch markers
    (``lake_sha256``), so GX's hash is skipped, as GX itself skips it above 1 GB."""
    from great_expectations.execution_engine import pandas_execution_engine

    pandas_execution_engine.HASH_THRESHOLD = 0


def _domain(item: dict) -> tuple:
    kwargs = item["kwargs"]
    return item["type"], str(kwargs.get("column") or kwargs.get("column_list") or "table")


def run_suite(frame: pd.DataFrame, name: str, expectations: list[dict], batch: str):
    """Run ``expectations`` on ``frame`` in an ephemeral GX context, as one suite; the GX
    result's ``success`` counts critical expectations only.

    The same check may appear at two severities (e.g. "no nulls" as a warning, "under 1 %
    nulls" as critical); twice at one severity is a suite error.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    _skip_decimal_scan_of_numeric_arrays()
    _skip_dataframe_fingerprint()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("lake")
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe(batch)
    )
    seen, domain_objects = set(), []
    for item in expectations:
        key = (*_domain(item), item["severity"])
        if key in seen:
            raise ValueError(f"suite {name}: duplicate {item['severity']} expectation {key[:2]}")
        seen.add(key)
        meta = {"severity": item["severity"], "rule": item.get("rule", "")}
        config = ExpectationConfiguration(type=item["type"], kwargs=item["kwargs"], meta=meta)
        domain_objects.append(config.to_domain_obj())
    suite = gx.ExpectationSuite(name=name, expectations=domain_objects)
    gx_batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = gx_batch.validate(suite, result_format="BASIC")
    result.success = not any(
        not r.success and r.expectation_config.meta.get("severity") == "critical"
        for r in result.results
    )
    return result


def render_data_docs(result) -> str:
    """The GX Data Docs page of one validation result, as standalone HTML."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    for item in result.results:  # GX's renderer formats Python numbers only, not numpy's
        observed = item.result.get("observed_value")
        if hasattr(observed, "item"):
            item.result["observed_value"] = observed.item()
    return DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(result))


def run_label(run_id: str | None, now: dt.datetime) -> str:
    raw = run_id or now.strftime("manual-%Y%m%dT%H%M%SZ")
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", raw)


def validate_frame(
    frame: pd.DataFrame,
    day: dt.date,
    result_dir: str | Path,
    suite_path: Path,
    *,
    reference: dict | None = None,
    run_id: str | None = None,
    now: dt.datetime | None = None,
    data_sha256: str | None = None,
) -> ValidationReport:
    """Run the suite on ``frame`` (plus freshness, volume and drift); persist and report.
    ``data_sha256`` names the data file ``frame`` was read from, kept with the result."""
    now = now or dt.datetime.now(dt.UTC)
    spec = load_suite_spec(suite_path)
    expectations = [
        *spec["expectations"],
        freshness_expectation(
            day,
            now,
            spec.get("freshness", {}).get("severity", "critical"),
            spec.get("freshness", {}).get("column", "timestamp"),
        ),
    ]
    notes = []
    if reference is not None and "reference" in spec:
        derived = reference_expectations(reference, spec["reference"])
        replaced = {(_domain(e), e["severity"]) for e in derived}  # e.g. the static row count
        expectations = [e for e in expectations if (_domain(e), e["severity"]) not in replaced]
        expectations += derived
        notes.append(f"volume and drift checked against {', '.join(reference['dates'])}")
    elif "reference" in spec:
        notes.append("no validated history yet: volume and drift checks skipped")
    result = run_suite(frame, spec["name"], expectations, day.isoformat())
    if data_sha256:
        result.meta.setdefault("batch_markers", {})["lake_sha256"] = data_sha256

    out = Path(result_dir) / f"date={day.isoformat()}" / run_label(run_id, now)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result.to_json_dict(), indent=2, default=str))
    (out / "index.html").write_text(render_data_docs(result))
    if reference is not None:
        (out / "reference_profile.json").write_text(json.dumps(reference, indent=2))

    failures = [describe_result(r) for r in result.results if not r.success]
    report = ValidationReport(
        date=day.isoformat(),
        run=out.name,
        success=not any(f["severity"] == "critical" for f in failures),
        evaluated=len(result.results),
        critical_failures=[f for f in failures if f["severity"] == "critical"],
        warnings=[f for f in failures if f["severity"] == "warning"],
        notes=notes,
        result_path=str(out / "result.json"),
        docs_path=str(out / "index.html"),
        data_sha256=data_sha256,
    )
    _log_report(report)
    return report


def _log_report(report: ValidationReport) -> None:
    for note in report.notes:
        log.info("%s", note)
    for failure in report.critical_failures + report.warnings:
        log.warning(
            "expectation failed severity=%s rule=%s %s column=%s observed=%s expected=%s",
            failure["severity"],
            failure["rule"],
            failure["expectation"],
            failure["column"],
            failure["observed"],
            failure["expected"],
        )
    log.info(
        "validated date=%s success=%s evaluated=%d critical=%d warnings=%d docs=%s",
        report.date,
        report.success,
        report.evaluated,
        len(report.critical_failures),
        len(report.warnings),
        report.docs_path,
    )


def _write_summary(result_dir: Path, report: ValidationReport) -> None:
    day_dir = Path(result_dir) / f"date={report.date}"
    payload = json.dumps(report.as_dict(), indent=2)
    (day_dir / report.run / "summary.json").write_text(payload)
    (day_dir / LATEST).write_text(payload)


def passed_dates(result_dir: str | Path) -> list[dt.date]:
    """Dates whose latest validation passed, oldest first."""
    found = []
    for latest in Path(result_dir).glob(f"date=*/{LATEST}"):
        if json.loads(latest.read_text()).get("success"):
            found.append(dt.date.fromisoformat(latest.parent.name.removeprefix("date=")))
    return sorted(found)


def latest_validated_days(lake_root: str, table: str, result_dir: str | Path, days: int):
    """The latest ``days`` partitions of ``table`` that are committed and whose latest
    validation passed (YYYY-MM-DD, oldest first): what a retraining trains on. None at all is
    a one-line error."""
    from pipelines.data.lake import committed_dates

    usable = sorted(set(committed_dates(lake_root, table)) & set(passed_dates(result_dir)))
    if not usable:
        raise ValueError(f"table {table}: no committed partition has passed validation yet")
    return [d.isoformat() for d in usable[-days:]]


def reference_profile(lake_root: str, day: dt.date, result_dir: str | Path, spec: dict, table: str):
    """The profile of the latest ``window`` validated, committed partitions before ``day``."""
    from pipelines.data import lake

    if "reference" not in spec:
        return None
    committed = set(lake.committed_dates(lake_root, table))
    history = [d for d in passed_dates(result_dir) if d < day and d in committed]
    history = history[-spec["reference"]["window"] :]
    if not history:
        return None
    frames = [lake.read_partition(lake_root, d, table, skip_binary=True) for d in history]
    columns = spec["reference"]["drift"]["columns"]
    return build_profile(frames, columns, [d.isoformat() for d in history])


def validate_partition(
    lake_root: str,
    day: dt.date,
    result_dir: str | Path,
    suite_path: Path,
    *,
    table: str,
    run_id: str | None = None,
    now: dt.datetime | None = None,
) -> ValidationReport:
    """Validate the committed partition of ``day`` of lake table ``table``.

    On a critical failure the partition is moved to quarantine together with its validation
    result and ``ValidationFailed`` is raised; nothing is deleted.
    """
    from pipelines.data import lake

    spec = load_suite_spec(suite_path)
    reference = reference_profile(lake_root, day, result_dir, spec, table)
    rows, manifest = lake.read_committed(lake_root, day, table, skip_binary=True)
    report = validate_frame(
        rows.to_pandas(),
        day,
        result_dir,
        suite_path,
        reference=reference,
        run_id=run_id,
        now=now,
        data_sha256=manifest.sha256,
    )
    if not report.success:
        attachments = {
            "validation_result.json": Path(report.result_path).read_bytes(),
            "validation_report.html": Path(report.docs_path).read_bytes(),
            "validation_summary.json": json.dumps(report.as_dict(), indent=2).encode(),
        }
        report.quarantined_at = lake.quarantine_partition(
            lake_root, day, attachments, run_id, table
        )
        log.error("quarantined date=%s at %s", day, report.quarantined_at)
    _write_summary(Path(result_dir), report)
    if not report.success:
        raise ValidationFailed(report)
    return report


def validate_days(
    lake_root: str,
    days: list[dt.date],
    result_dir: str | Path,
    *,
    suite_path: Path,
    table: str,
    run_id: str | None = None,
) -> list[ValidationReport]:
    """Validate each day (quarantining failures) and write the run's index page; never raises
    for a failed partition, so every day of a run is checked and reported."""
    reports = []
    for day in days:
        try:
            report = validate_partition(
                lake_root, day, result_dir, suite_path, run_id=run_id, table=table
            )
            reports.append(report)
        except ValidationFailed as exc:
            reports.append(exc.report)
    write_run_index(result_dir, run_label(run_id, dt.datetime.now(dt.UTC)), reports)
    return reports


def write_run_index(result_dir: str | Path, label: str, reports: list[ValidationReport]) -> Path:
    """One page per run linking each date's Data Docs page: what the Airflow link opens."""
    from html import escape

    rows = "".join(
        f"<tr><td><a href='../date={r.date}/{escape(r.run)}/index.html'>{r.date}</a></td>"
        f"<td>{'passed' if r.success else 'FAILED'}</td><td>{len(r.critical_failures)}</td>"
        f"<td>{len(r.warnings)}</td><td>{escape(r.quarantined_at or '')}</td></tr>"
        for r in reports
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Validation {escape(label)}"
        f"</title></head><body><h1>Validation run {escape(label)}</h1><table border='1'>"
        "<tr><th>date</th><th>result</th><th>critical</th><th>warnings</th><th>quarantined at"
        f"</th></tr>{rows}</table></body></html>"
    )
    path = Path(result_dir) / "runs" / f"{label}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path
