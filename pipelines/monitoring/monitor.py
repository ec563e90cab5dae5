"""One monitoring pass over a window of served traffic: the use case's suite on what the
endpoint saw, drift of each feature against the champion's training data, and whether to ask
for a retraining. Plain Python; the monitoring DAG calls ``check_served`` and
``write_drift_report``.

Why the suite runs on served traffic: a sensor that breaks shows up in serving before it
reaches a training run. Only the column checks whose column the endpoint captures apply
(``serving_expectations``): served requests carry no label, no key and no fixed volume.
A suite failure is reported, never a reason to retrain (a model trained on broken readings
is not the fix); drift is.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from pipelines.monitoring.capture import read_captured
from pipelines.monitoring.drift import compare
from pipelines.monitoring.feedback import live_quality, read_feedback

TABLE_LEVEL = ("column_set", "column_list", "column_A", "column_B")
STORAGE_TYPE_CHECKS = (
    "expect_column_values_to_be_in_type_list",
    "expect_column_values_to_be_of_type",
)


@dataclass(frozen=True)
class ServedCheck:
    """What one monitoring pass found (JSON-able: it is the task's XCom and the page's data)."""

    use_case: str
    start: str
    end: str
    rows: int
    model_version: str | None
    reference_dates: list[str]
    verdict: str
    retrain: bool = False
    drifted: list[str] = field(default_factory=list)
    drift: dict | None = None
    suite: dict | None = None
    live: dict | None = None
    """Quality on the window's answers that have a feedback label (``feedback.live_quality``)."""

    def as_dict(self) -> dict:
        return asdict(self)


def serving_expectations(expectations: list[dict], columns: set[str]) -> list[dict]:
    """The suite's checks that apply to served traffic: those on one column the endpoint
    captures. Left out: table-level ones (row counts, the exact column set, pairs) and storage
    types (a request's numbers are typed by the endpoint's record model, not the lake's)."""
    kept = []
    for item in expectations:
        kwargs = item.get("kwargs", {})
        if any(key in kwargs for key in TABLE_LEVEL) or kwargs.get("column") not in columns:
            continue
        if item["type"] in STORAGE_TYPE_CHECKS:
            continue
        kept.append(item)
    return kept


def _suite_on_served(use_case, frame: pd.DataFrame, batch: str) -> dict:
    from pipelines.data.validation import (
        describe_result,
        load_suite_spec,
        run_suite,
        suite_path_for,
    )

    spec = load_suite_spec(suite_path_for(use_case))
    expectations = serving_expectations(spec["expectations"], set(frame.columns))
    if not expectations:
        return {"success": True, "evaluated": 0, "critical_failures": [], "warnings": []}
    result = run_suite(frame, f"{spec['name']}_served", expectations, batch)
    failures = [describe_result(r) for r in result.results if not r.success]
    return {
        "success": bool(result.success),
        "evaluated": len(result.results),
        "critical_failures": [f for f in failures if f.get("severity") == "critical"],
        "warnings": [f for f in failures if f.get("severity") != "critical"],
    }


def reference_rows(
    lake_root: str, table: str, dates: list[str], columns: list[str], limit: int
) -> pd.DataFrame:
    """Up to ``limit`` rows of ``columns`` from the training partitions ``dates``, the same
    share from each day (a fixed seed: the same reference on every pass)."""
    from pipelines.data import lake

    per_day = max(1, limit // max(1, len(dates)))
    frames = []
    for day in dates:
        frame = lake.read_partition(lake_root, dt.date.fromisoformat(day), table, skip_binary=True)
        frame = frame[columns]
        frames.append(frame.sample(min(per_day, len(frame)), random_state=0))
    if not frames:
        raise ValueError("drift: the champion names no training partition to compare with")
    return pd.concat(frames, ignore_index=True)


def check_served(
    lake_root: str,
    use_case,
    learner,
    start: dt.datetime,
    end: dt.datetime,
    reference_dates: list[str],
    model_version: str | None = None,
    reference_scores: Sequence[float] = (),
) -> ServedCheck:
    """The suite and drift verdict on the traffic ``use_case``'s endpoint served in
    ``[start, end)`` against ``reference_dates`` (the champion's training partitions).

    ``reference_scores`` (the champion's holdout scores as the endpoint answers them,
    ``registry.version_reference_scores``) adds prediction drift, measured on the window's
    answers from ``model_version`` alone (a canary's answers are another model's); none given,
    or too few such answers, and it is left out."""
    policy = use_case.drift
    served = read_captured(lake_root, use_case.name, start, end).to_pandas()
    base = {
        "use_case": use_case.name,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "rows": len(served),
        "model_version": model_version,
        "reference_dates": list(reference_dates),
    }
    if len(served) < policy.min_rows:
        verdict = (
            f"no verdict: {len(served)} served rows in the window, fewer than {policy.min_rows}"
        )
        return ServedCheck(**base, verdict=verdict)

    inputs = served[[c for c in served.columns if not c.startswith("_")]]
    suite = _suite_on_served(use_case, inputs, f"served {start:%Y-%m-%dT%H}")
    features = list(learner.drift_features or learner.inputs)
    reference = reference_rows(
        lake_root, use_case.table.name, reference_dates, features, policy.reference_rows
    )
    numeric = [f for f in features if pd.api.types.is_numeric_dtype(reference[f])]
    categorical = [f for f in features if f not in numeric]
    report = compare(
        reference,
        served,
        numeric=numeric,
        categorical=categorical,
        scores=_prediction_sides(served, model_version, reference_scores, policy.min_rows),
        psi_threshold=policy.psi_threshold,
        alpha=policy.alpha,
    )
    drifted = report.drifted
    retrain = bool(drifted) and policy.retrain
    if drifted:
        verdict = f"drift in {', '.join(drifted)}: " + (
            "retraining requested" if retrain else "retraining is off for this use case"
        )
    else:
        also = " or the prediction" if len(report.features) > len(features) else ""
        verdict = f"no drift in {len(features)} features{also} over {len(served)} served rows"
    if not suite["success"]:
        failed = sorted({f.get("column") or f["expectation"] for f in suite["critical_failures"]})
        verdict += f"; served traffic fails the suite on {', '.join(map(str, failed))}"
    live = live_quality(served, read_feedback(lake_root, use_case.name, start.date()), learner)
    return ServedCheck(
        **base,
        verdict=verdict + _live_words(live),
        retrain=retrain,
        drifted=drifted,
        drift=report.as_dict(),
        suite=suite,
        live=live,
    )


def _live_words(live: dict | None) -> str:
    if not live:
        return ""
    shown = [
        f"{name} {live[name]:.2f}"
        for name in ("precision", "recall", "mae")
        if live.get(name) is not None
    ]
    return f"; live {', '.join(shown) or 'quality'} on {live['labelled']} labelled answers"


def _prediction_sides(
    served: pd.DataFrame, model_version: str | None, reference: Sequence[float], min_rows: int
) -> tuple[list[float], list[float]] | None:
    if not reference or model_version is None or "_score" not in served.columns:
        return None
    mine = served.loc[served["_model_version"].astype(str) == str(model_version), "_score"]
    current = mine.dropna().astype(float).tolist()
    return (list(reference), current) if len(current) >= min_rows else None


SUMMARY_FILE = "summary.json"


def _psi_history_png(history: list[dict]) -> str | None:
    """PSI per feature over this DAG's monitoring runs, as a base64 PNG."""
    points = [h for h in history if h.get("psi")]
    if len(points) < 2:
        return None
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    points.sort(key=lambda h: h["window_end"])
    times = [dt.datetime.fromisoformat(h["window_end"]) for h in points]
    figure, axis = plt.subplots(figsize=(7, 3))
    for feature in sorted({f for h in points for f in h["psi"]}):
        axis.plot(times, [h["psi"].get(feature) for h in points], marker="o", label=feature)
    axis.axhline(points[-1]["psi_threshold"], color="#b3261e", linestyle="--", label="threshold")
    axis.set_ylabel("PSI")
    axis.legend(fontsize=7, ncol=3)
    axis.grid(alpha=0.3)
    figure.autofmt_xdate()
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def write_drift_report(reports_root: str | Path, dag_id: str, run_id: str, check: ServedCheck):
    """``<reports>/<dag_id>/<run_id>/index.html`` (the run reports' style, PSI over time from
    this DAG's earlier passes) and its ``summary.json``, which lists it in the reports index."""
    from pipelines.report import atomic_write, report_dir, template, write_reports_index

    out = report_dir(reports_root, dag_id, run_id)
    out.mkdir(parents=True, exist_ok=True)
    psi = {f["feature"]: f["psi"] for f in (check.drift or {}).get("features", [])}
    summary = {
        "dag_id": dag_id,
        "run_id": run_id,
        "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "state": "success",
        "verdict": check.verdict,
        "served_version": check.model_version,
        "href": f"{out.parent.name}/{out.name}/index.html",
        "window_end": check.end,
        "psi": psi,
        "psi_threshold": (check.drift or {}).get("psi_threshold"),
    }
    history = []
    for path in out.parent.glob(f"*/{SUMMARY_FILE}"):
        if path.parent != out:
            try:
                history.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
    page = template("drift_report.html.j2").render(
        dag_id=dag_id,
        run_id=run_id,
        check=check.as_dict(),
        plot=_psi_history_png([*history, summary]),
    )
    atomic_write(out / "index.html", page)
    (out / "check.json").write_text(json.dumps(check.as_dict(), indent=2, default=str))
    atomic_write(out / SUMMARY_FILE, json.dumps(summary, indent=2))
    write_reports_index(reports_root)
    return out / "index.html"
