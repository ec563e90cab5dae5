"""Great Expectations validation of one lake partition, with severities and a kept result.

The suite is declarative JSON in ``data_checks/``; it is loaded and built here, inside the task,
never at DAG parse time. Each expectation carries a ``severity``: ``critical`` failures fail the
partition, ``warning`` failures are reported and let it through. The full GX result is written
as JSON per date, so a rejected partition can be explained later.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

SUITES_DIR = Path(__file__).resolve().parent.parent / "data_checks"
DEFAULT_SUITE = SUITES_DIR / "telemetry_suite.json"


class ValidationFailed(RuntimeError):
    """A partition failed at least one critical expectation."""

    def __init__(self, report: ValidationReport):
        self.report = report
        names = ", ".join(f["expectation"] for f in report.critical_failures)
        super().__init__(
            f"validation of {report.date} failed {len(report.critical_failures)} critical "
            f"expectation(s): {names}; result at {report.result_path}"
        )


@dataclass
class ValidationReport:
    date: str
    success: bool
    evaluated: int
    critical_failures: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    result_path: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def load_suite_spec(path: Path = DEFAULT_SUITE) -> dict:
    spec = json.loads(Path(path).read_text())
    for item in spec["expectations"]:
        if item.get("severity") not in ("critical", "warning"):
            raise ValueError(f"{path}: expectation {item['type']} needs severity critical|warning")
    return spec


def _freshness(day: dt.date) -> dict:
    """Timestamps must lie inside the partition's day (so also never in the future)."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
    return {
        "type": "expect_column_values_to_be_between",
        "severity": "critical",
        "kwargs": {
            "column": "timestamp",
            "min_value": start.isoformat(),
            "max_value": end.isoformat(),
        },
    }


def _describe(result) -> dict:
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
    return {
        "expectation": config.type,
        "column": kwargs.get("column") or kwargs.get("column_list"),
        "expected": kwargs,
        "observed": observed,
        "severity": config.meta.get("severity", "critical"),
    }


def validate_frame(
    frame: pd.DataFrame, day: dt.date, result_dir: str | Path, suite_path: Path = DEFAULT_SUITE
) -> ValidationReport:
    """Run the suite (plus the day's freshness check) on ``frame``; persist the GX result."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    spec = load_suite_spec(suite_path)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("lake")
        .add_dataframe_asset(spec["name"])
        .add_batch_definition_whole_dataframe(day.isoformat())
    )
    suite = gx.ExpectationSuite(name=spec["name"], meta={"version": spec.get("version")})
    for item in [*spec["expectations"], _freshness(day)]:
        suite.add_expectation_configuration(
            ExpectationConfiguration(
                type=item["type"], kwargs=item["kwargs"], meta={"severity": item["severity"]}
            )
        )
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format="SUMMARY")

    out = Path(result_dir) / f"date={day.isoformat()}"
    out.mkdir(parents=True, exist_ok=True)
    result_path = out / "result.json"
    result_path.write_text(json.dumps(result.to_json_dict(), indent=2, default=str))

    failures = [_describe(r) for r in result.results if not r.success]
    report = ValidationReport(
        date=day.isoformat(),
        success=not any(f["severity"] == "critical" for f in failures),
        evaluated=len(result.results),
        critical_failures=[f for f in failures if f["severity"] == "critical"],
        warnings=[f for f in failures if f["severity"] == "warning"],
        result_path=str(result_path),
    )
    for failure in failures:
        log.warning(
            "expectation failed severity=%s %s column=%s observed=%s expected=%s",
            failure["severity"],
            failure["expectation"],
            failure["column"],
            failure["observed"],
            failure["expected"],
        )
    log.info(
        "validated date=%s success=%s evaluated=%d critical=%d warnings=%d",
        report.date,
        report.success,
        report.evaluated,
        len(report.critical_failures),
        len(report.warnings),
    )
    return report


def validate_partition(
    lake_root: str, day: dt.date, result_dir: str | Path, suite_path: Path = DEFAULT_SUITE
) -> ValidationReport:
    """Validate the committed partition of ``day``; raise ValidationFailed on critical failure."""
    from pipelines import lake

    report = validate_frame(lake.read_partition(lake_root, day), day, result_dir, suite_path)
    if not report.success:
        raise ValidationFailed(report)
    return report
