"""One page per pipeline run: what was ingested, how validation went, how training went, what
was registered and what is served. Written even when the run failed (what ran is shown, what
did not is marked), so the page is where an operator starts.

``write_run_report`` takes the run's task results as plain values and writes
``<reports>/<dag_id>/<run_id>/index.html`` (rendered from ``templates/run_report.html.j2``,
self-contained: the figures are embedded, readable on a phone), ``report.md`` (for the CLI and
logs) and ``summary.json`` (what the reports index lists), each atomically. Its first line is
the run's outcome (``verdict``): what is served, or why nothing new is.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

METRICS = ("pr_auc", "f1", "precision", "recall", "brier", "ece", "threshold")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in name)


def report_dir(reports_root: str | Path, dag_id: str, run_id: str) -> Path:
    return Path(reports_root) / _safe(dag_id) / _safe(run_id)


def _data_rows(
    lake_root: str, table: str, validation_dir: str | Path, dates: list[str]
) -> list[dict]:
    from pipelines.data import lake

    rows = []
    for day in dates:
        entry = {"date": day, "rows": None, "source": "", "validation": None}
        try:
            manifest = lake.read_manifest(lake_root, dt.date.fromisoformat(day), table)
            entry.update(rows=manifest.rows, source=manifest.source)
        except FileNotFoundError:
            entry["source"] = "not committed (quarantined or not ingested)"
        latest = Path(validation_dir) / f"date={day}" / "latest.json"
        if latest.exists():
            summary = json.loads(latest.read_text())
            entry["validation"] = {
                "success": summary["success"],
                "evaluated": summary["evaluated"],
                "critical": len(summary["critical_failures"]),
                "warnings": len(summary["warnings"]),
                "run": summary["run"],
            }
        rows.append(entry)
    return rows


def _loss_curve_png(history: list[dict]) -> str | None:
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    figure, axis = plt.subplots(figsize=(6, 3))
    axis.plot(epochs, [h["train_loss"] for h in history], marker="o")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    axis.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    axis.set_xlabel("epoch")
    axis.set_ylabel("training loss")
    axis.grid(alpha=0.3)
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` so readers see the old file or the new one, never half of one."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")  # writers never share one
    partial.write_text(text)
    os.replace(partial, path)


@dataclass(frozen=True)
class Verdict:
    """The run's outcome in one line, the report's first: ``served`` (a version serves what
    this run trained, or kept), ``held`` (nothing new served, and why) or ``failed``."""

    kind: str
    text: str


def verdict(
    tasks: dict[str, str],
    decision: dict | None,
    served_version: str | None,
    serving_error: str | None = None,
) -> Verdict:
    """The run's outcome in one line. ``serving_error`` is the failed rollout's own account
    (what failed, that it rolled back, which version still serves); it is quoted as is."""
    failed = [task for task, state in tasks.items() if state == "failed"]
    if failed:
        # Before deploy nothing changed at the endpoint; a failed deploy or smoke test rolls
        # back to what served before, which the rollout's error (or its log) names.
        if failed[0] in SERVING_TASKS:
            after = serving_error or "rolled back (see its log)"
        else:
            after = "nothing new served"
        return Verdict("failed", f"failed at {failed[0]}: {after}")
    if decision and not decision.get("promoted"):
        return Verdict("held", f"not promoted: {decision['reason']}")
    if decision and served_version:
        return Verdict("served", f"serving version {served_version}: {decision['reason']}")
    if served_version:
        return Verdict("served", f"serving version {served_version}")
    skipped = [t for t in ("train", "deploy") if tasks.get(t) == "skipped"]
    why = f" ({', '.join(skipped)} skipped)" if skipped else ""
    return Verdict("held", f"nothing served by this run{why}")


def write_run_report(
    reports_root: str | Path,
    *,
    dag_id: str,
    run_id: str,
    lake_root: str,
    table: str,
    validation_dir: str | Path,
    tasks: dict[str, str],
    dates: list[str] | None,
    train: dict | None,
    registered: dict | None,
    served_version: str | None,
    rollout: dict | None,
    decision: dict | None = None,
    links: dict[str, str] | None = None,
    serving_error: str | None = None,
) -> Path:
    """Write the run's page (``index.html``, ``report.md``, ``summary.json``) and refresh the
    reports index; ``tasks`` maps task id to its state, ``decision`` is the promotion gate's
    (``PromotionDecision.as_dict()``), ``links`` are labelled URLs (MLflow, Data Docs, Ray
    job, endpoint), ``serving_error`` the failed rollout's own error (see ``verdict``)."""
    out = report_dir(reports_root, dag_id, run_id)
    out.mkdir(parents=True, exist_ok=True)
    data = _data_rows(lake_root, table, validation_dir, dates or [])
    train = train or {}
    metrics = train.get("metrics", {})
    outcome = verdict(tasks, decision, served_version, serving_error)
    summary = _summary(data, train, registered, decision, served_version, rollout)

    text_md = _markdown(dag_id, run_id, outcome, summary, tasks, data, train, links or {})
    atomic_write(out / "report.md", text_md)
    page = template("run_report.html.j2").render(
        dag_id=dag_id,
        run_id=run_id,
        index_href="../../",
        verdict=outcome,
        summary=summary,
        links=links or {},
        tasks=tasks,
        state_class=_state_class,
        data=[{**row, **_validation_cell(row["validation"])} for row in data],
        metrics=metrics,
        metric_keys=_metric_keys(metrics),
        baseline=train.get("baseline") or {},
        champion_metrics=(decision or {}).get("champion_metrics"),
        champion_version=(decision or {}).get("champion_before"),
        challenger_version=(registered or {}).get("version"),
        per_class=metrics.get("per_class") or {},
        epochs=_epochs(len(train.get("history", []))),
        run_name=train.get("run_name"),
        fmt=_fmt,
        figures=_figures(train),
    )
    atomic_write(out / "index.html", page)
    state = "failed" if any(s in FAILED for s in tasks.values()) else "success"
    record = {
        "dag_id": dag_id,
        "run_id": run_id,
        "written_at": dt.datetime.now(dt.UTC).isoformat(),
        "state": state,
        "verdict": outcome.text,
        "served_version": served_version,
        "href": f"{_safe(dag_id)}/{_safe(run_id)}/index.html",
    }
    atomic_write(out / SUMMARY_FILE, json.dumps(record, indent=2))
    write_reports_index(reports_root)
    log.info("report written path=%s: %s", out / "index.html", outcome.text)
    return out / "index.html"


FAILED = ("failed", "upstream_failed")
SERVING_TASKS = ("deploy", "smoke_test")
SUMMARY_FILE = "summary.json"


def read_summaries(reports_root: str | Path) -> list[dict]:
    """Every run report's summary under ``reports_root``, newest first; an unreadable one
    (a report being written, a stray file) is skipped."""
    found = []
    for path in Path(reports_root).glob(f"*/*/{SUMMARY_FILE}"):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda r: r.get("written_at", ""), reverse=True)


def render_index(summaries: list[dict]) -> str:
    """The reports index page for ``summaries`` (``read_summaries``, perhaps filtered to the
    DAGs a user may read)."""
    return template("reports_index.html.j2").render(runs=summaries)


def write_reports_index(reports_root: str | Path) -> Path:
    """``<reports_root>/index.html``: every run report, newest first (for reading the folder
    without the Airflow plugin, which renders the index per user)."""
    path = Path(reports_root) / "index.html"
    atomic_write(path, render_index(read_summaries(reports_root)))
    return path


def template(name: str):
    """A page template of ``pipelines/templates`` (autoescaped)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("pipelines", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        keep_trailing_newline=True,
    )
    return env.get_template(name)


def _state_class(state: str) -> str:
    return {"success": "pass", "failed": "fail", "upstream_failed": "fail"}.get(state, "")


def _validation_cell(v: dict | None) -> dict:
    if not v:
        return {"validation_text": "not validated", "validation_class": ""}
    text = (
        f"{'passed' if v['success'] else 'FAILED'} ({v['evaluated']} checks, "
        f"{v['critical']} critical, {v['warnings']} warnings)"
    )
    kind = "fail" if not v["success"] else ("warn" if v["warnings"] else "pass")
    return {"validation_text": text, "validation_class": kind}


def _summary(data, train, registered, decision, served_version, rollout) -> dict:
    rows = sum(r["rows"] or 0 for r in data)
    validated = [r["validation"] for r in data if r["validation"]]
    failed = sum(not v["success"] for v in validated)
    warned = sum(v["success"] and v["warnings"] > 0 for v in validated)
    history = train.get("history", [])
    serving = f"version {served_version}" if served_version else "unchanged / none"
    routing = (rollout or {}).get("routing")
    if routing:
        serving += f"; {_routing_text(routing)}"
    return {
        "data": f"{len(data)} partition(s), {rows:,} rows" if data else "no partition",
        "validation": (
            f"{len(validated) - failed - warned} passed, {warned} with warnings, {failed} failed"
            f" of {len(data)}"
            if data
            else "—"
        ),
        "training": (
            f"{_epochs(len(history))}, final loss {history[-1]['train_loss']:.4f}"
            + (f"; registered {registered['name']} v{registered['version']}" if registered else "")
            if history
            else "did not run"
        ),
        "gate": (decision or {}).get("reason") or "not reached",
        "serving": serving,
    }


def _epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def _routing_text(routing: dict) -> str:
    """``stable v3, canary v4 (10%), shadow v5``: who gets the endpoint's traffic."""
    parts = [f"stable v{routing.get('stable')}"]
    if routing.get("canary"):
        parts.append(f"canary v{routing['canary']} ({routing.get('canary_fraction', 0):.0%})")
    if routing.get("shadow"):
        parts.append(f"shadow v{routing['shadow']}")
    return ", ".join(parts)


def _markdown(dag_id, run_id, outcome, summary, tasks, data, train, links) -> str:
    md = [f"# {dag_id} · {run_id}", "", f"**{outcome.text}**", "", "## Summary", ""]
    md += [f"- {key}: {value}" for key, value in summary.items()]
    if links:
        md += ["", "## Links", ""] + [f"- {label}: {url}" for label, url in links.items()]
    md += ["", "## Tasks", ""] + [f"- {task}: **{state}**" for task, state in tasks.items()]
    md += ["", "## Data", "", "| date | rows | source | validation |", "|---|---|---|---|"]
    for row in data:
        cell = _validation_cell(row["validation"])["validation_text"]
        md.append(f"| {row['date']} | {row['rows'] or '—'} | {row['source']} | {cell} |")
    md += ["", "## Training and evaluation (holdout)", ""]
    metrics = train.get("metrics", {})
    if train:
        baseline = train.get("baseline") or {}
        md += ["| metric | model | baseline |", "|---|---|---|"]
        for key in _metric_keys(metrics):
            md.append(f"| {key} | {_fmt(metrics[key])} | {_fmt(baseline.get(key))} |")
        md += ["", f"{_epochs(len(train.get('history', [])))}; run {train.get('run_name')}"]
        per_class = metrics.get("per_class") or {}
        if per_class:
            md += ["", "| class | precision | recall | F1 | images |", "|---|---|---|---|---|"]
            for label, m in per_class.items():
                md.append(
                    f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f}"
                    f" | {m['support']} |"
                )
    else:
        md.append("Training did not run.")
    return "\n".join(md) + "\n"


def _figures(train: dict) -> dict[str, str]:
    """The training loss per epoch, then the learner's holdout figures, base64 PNG by name."""
    curve = _loss_curve_png(train.get("history", []))
    figures = {"training loss": curve} if curve else {}
    for name, data in _evaluation_figures(train.get("model_dir")).items():
        figures[name.replace("_", " ")] = data
    return figures


def _metric_keys(metrics: dict) -> list[str]:
    """The scalar metrics of a use case's holdout, the usual classification ones first."""
    scalar = [
        k for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    return [k for k in METRICS if k in scalar] + [k for k in scalar if k not in METRICS]


def _fmt(value) -> str:
    """A metric for a table: counts (rows, positives) as integers, the rest to 4 decimals."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    if isinstance(value, int) or (value.is_integer() and abs(value) >= 2):
        return f"{value:,.0f}"
    return f"{value:.4f}"


def _evaluation_figures(model_dir: str | None) -> dict[str, str]:
    """The learner's holdout figures (``Learner.figures``: PR curve, confusion matrix,
    misclassified images...), base64 PNG by name; none when the model is not reachable."""
    folder = Path(model_dir) / "evaluation" if model_dir else None
    if folder is None or not folder.is_dir():
        return {}
    return {p.stem: base64.b64encode(p.read_bytes()).decode() for p in sorted(folder.glob("*.png"))}
