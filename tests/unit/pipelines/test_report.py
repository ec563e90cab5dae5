import datetime as dt
import json

from pipelines.report import write_run_report
from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig
from pipelines.usecases.predictive_maintenance.ingest import ingest_day

DAY = dt.date(2026, 11, 1)


def _report(tmp_path, **overrides):
    values = {
        "dag_id": "predictive_maintenance",
        "run_id": "manual__2026-11-02T00:00:00+00:00",
        "lake_root": str(tmp_path / "lake"),
        "table": "telemetry",
        "validation_dir": tmp_path / "validation",
        "tasks": {"ingest": "success", "validate": "success", "train": "success"},
        "dates": [DAY.isoformat()],
        "train": {
            "run_name": "run-1",
            "history": [{"epoch": 0, "train_loss": 0.9}, {"epoch": 1, "train_loss": 0.5}],
            "metrics": {"f1": 0.86, "pr_auc": 0.91, "threshold": 0.7},
            "baseline": {"f1": 0.41},
        },
        "registered": {"name": "pm", "version": "3"},
        "served_version": "3",
        "rollout": {"routing": {"stable": "3"}, "endpoint": "http://h:8000/pm"},
    }
    return write_run_report(tmp_path / "reports", **{**values, **overrides})


def test_the_report_says_what_ran_and_what_came_out(tmp_path):
    ingest_day(DAY, str(tmp_path / "lake"), generator=GeneratorConfig(machines=3, minutes=60))
    latest = tmp_path / "validation" / f"date={DAY}" / "latest.json"
    latest.parent.mkdir(parents=True)
    summary = {"success": True, "evaluated": 35, "critical_failures": [], "warnings": [{}]}
    latest.write_text(json.dumps({**summary, "run": "r1"}))

    page = _report(tmp_path)
    assert page.name == "index.html" and page.parent.name.startswith("manual__2026-11-02")
    markdown = (page.parent / "report.md").read_text()
    assert (
        "| 2026-11-01 | 180 | generator | passed (35 checks, 0 critical, 1 warnings) |" in markdown
    )
    assert "| f1 | 0.8600 | 0.4100 |" in markdown
    assert "pm version 3" in markdown and "http://h:8000/pm/predict" in markdown
    html = page.read_text()
    assert "data:image/png;base64," in html  # the training curve
    assert not list(page.parent.glob(".*partial"))


def test_a_failed_run_still_gets_a_page(tmp_path):
    page = _report(
        tmp_path,
        tasks={"ingest": "success", "validate": "failed", "train": "upstream_failed"},
        train=None,
        registered=None,
        served_version=None,
        rollout=None,
    )
    markdown = (page.parent / "report.md").read_text()
    assert "validate: **failed**" in markdown
    assert "not committed" in markdown and "Training did not run." in markdown
    assert "data:image/png" not in page.read_text()


def test_a_classifier_s_report_shows_its_classes_and_its_figures(tmp_path):
    """Per-class metrics in the page, and the learner's holdout figures (a confusion matrix,
    misclassified images) embedded from the model's evaluation folder."""
    evaluation = tmp_path / "model" / "evaluation"
    evaluation.mkdir(parents=True)
    (evaluation / "misclassified.png").write_bytes(b"\x89PNG fake")
    per_class = {"ok": {"precision": 0.99, "recall": 0.95, "f1": 0.97, "support": 300}}
    train = {
        "run_name": "run-1",
        "history": [{"epoch": 0, "train_loss": 0.9}],
        "metrics": {"macro_f1": 0.93, "per_class": per_class},
        "baseline": {},
        "model_dir": str(tmp_path / "model"),
    }
    page = _report(tmp_path, train=train, dates=[])
    assert "| ok | 0.990 | 0.950 | 0.970 | 300 |" in (page.parent / "report.md").read_text()
    assert '<h2>misclassified</h2><img alt="misclassified"' in page.read_text()
