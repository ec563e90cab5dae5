"""One page per pipeline run: what was ingested, how validation went, how training went, what
was registered and what is served. Written even when the run failed (what ran is shown, what
did not is marked), so the page is where an operator starts.

``write_run_report`` takes the run's task results as plain values and writes
``<reports>/<dag_id>/<run_id>/index.html`` (self-contained: the training curve is embedded)
and ``report.md`` next to it, each atomically.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import logging
import os
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

    figure, axis = plt.subplots(figsize=(6, 3))
    axis.plot([h["epoch"] for h in history], [h["train_loss"] for h in history], marker="o")
    axis.set_xlabel("epoch")
    axis.set_ylabel("training loss")
    axis.grid(alpha=0.3)
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _atomic_write(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


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
) -> Path:
    """Write the run's page; ``tasks`` maps task id to its state."""
    out = report_dir(reports_root, dag_id, run_id)
    out.mkdir(parents=True, exist_ok=True)
    data = _data_rows(lake_root, table, validation_dir, dates or [])
    metrics = (train or {}).get("metrics", {})
    baseline = (train or {}).get("baseline", {})
    curve = _loss_curve_png((train or {}).get("history", []))
    routing = (rollout or {}).get("routing")
    endpoint = (rollout or {}).get("endpoint")

    md = [f"# {dag_id} · {run_id}", "", "## Tasks", ""]
    md += [f"- {task}: **{state}**" for task, state in tasks.items()]
    md += ["", "## Data", "", "| date | rows | source | validation |", "|---|---|---|---|"]
    for row in data:
        v = row["validation"]
        verdict = (
            f"{'passed' if v['success'] else 'FAILED'} ({v['evaluated']} checks, "
            f"{v['critical']} critical, {v['warnings']} warnings)"
            if v
            else "not validated"
        )
        md.append(f"| {row['date']} | {row['rows'] or '—'} | {row['source']} | {verdict} |")
    md += ["", "## Training and evaluation (holdout)", ""]
    if train:
        md += ["| metric | model | baseline |", "|---|---|---|"]
        for key in _metric_keys(metrics):
            md.append(f"| {key} | {metrics[key]:.4f} | {_fmt(baseline.get(key))} |")
        md += ["", f"Epochs: {len((train or {}).get('history', []))}; run {train.get('run_name')}"]
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
    md += ["", "## Registry and serving", ""]
    if registered:
        md.append(f"- registered: {registered['name']} version {registered['version']}")
    md.append(f"- served version: {served_version or 'unchanged / none'}")
    if routing:
        md.append(f"- routing: {json.dumps(routing)}")
        md.append(f"- endpoint: {endpoint}/predict")
    text_md = "\n".join(md) + "\n"
    _atomic_write(out / "report.md", text_md)
    figures = _evaluation_figures((train or {}).get("model_dir"))
    _atomic_write(out / "index.html", _html(dag_id, run_id, text_md, curve, figures))
    log.info("report written path=%s", out / "index.html")
    return out / "index.html"


def _metric_keys(metrics: dict) -> list[str]:
    """The scalar metrics of a use case's holdout, the usual classification ones first."""
    scalar = [
        k for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    return [k for k in METRICS if k in scalar] + [k for k in scalar if k not in METRICS]


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "—"


def _evaluation_figures(model_dir: str | None) -> dict[str, str]:
    """The learner's holdout figures (``Learner.figures``: PR curve, confusion matrix,
    misclassified images...), base64 PNG by name; none when the model is not reachable."""
    folder = Path(model_dir) / "evaluation" if model_dir else None
    if folder is None or not folder.is_dir():
        return {}
    return {p.stem: base64.b64encode(p.read_bytes()).decode() for p in sorted(folder.glob("*.png"))}


def _html(
    dag_id: str, run_id: str, markdown: str, curve: str | None, figures: dict | None = None
) -> str:
    """The Markdown as a simple page (pre-formatted, escaped) plus the embedded curve and the
    learner's holdout figures."""
    image = ""
    if curve:
        source = f"data:image/png;base64,{curve}"
        image = f'<h2>Training loss</h2><img alt="training loss per epoch" src="{source}">'
    for name, data in (figures or {}).items():
        title = html.escape(name.replace("_", " "))
        image += f'<h2>{title}</h2><img alt="{title}" src="data:image/png;base64,{data}">'
    title = html.escape(f"{dag_id} · {run_id}")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto}"
        "pre{white-space:pre-wrap}</style></head><body>"
        f"<pre>{html.escape(markdown)}</pre>{image}</body></html>"
    )
