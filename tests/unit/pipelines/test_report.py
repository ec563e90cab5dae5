"""The run report: its first line says what the run served or why not, the page shows data,
validation, training, the gate's decision beside the champion's metrics, figures and links,
and the reports index lists every run newest first."""

import datetime as dt
import json

from pipelines.report import read_summaries, write_run_report
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
    assert "registered pm v3" in markdown and "serving: version 3" in markdown
    html = page.read_text()
    assert '<p class="verdict served" id="verdict">serving version 3</p>' in html
    assert 'alt="training loss" src="data:image/png;base64,' in html
    assert '<meta name="viewport"' in html  # readable on a phone
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
    assert markdown.splitlines()[2] == "**failed at validate: nothing new served**"
    assert "validate: **failed**" in markdown
    assert "not committed" in markdown and "Training did not run." in markdown
    assert "data:image/png" not in page.read_text()
    assert read_summaries(tmp_path / "reports")[0]["state"] == "failed"


def test_a_failed_smoke_test_says_the_endpoint_was_rolled_back():
    from pipelines.report import verdict

    tasks = {"deploy": "success", "smoke_test": "failed", "promote": "success"}
    outcome = verdict(tasks, {"promoted": True, "reason": "v4 is the new champion"}, "4")
    assert (outcome.kind, outcome.text) == (
        "failed",
        "failed at smoke_test: rolled back (see its log)",
    )


def test_a_rolled_back_deploy_says_in_the_verdict_what_failed_and_what_still_serves(tmp_path):
    error = "deploy rolled back: smoke test failed: NaN score; still serving version 3"
    page = _report(
        tmp_path,
        tasks={"train": "success", "promote": "success", "deploy": "failed"},
        train=None,
        registered=None,
        served_version="4",
        rollout=None,
        serving_error=error,
    )
    summary = read_summaries(tmp_path / "reports")[0]
    assert summary["verdict"] == f"failed at deploy: {error}"
    assert error in page.read_text()


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
    assert '<img alt="misclassified" src="data:image/png;base64,' in page.read_text()


def test_a_model_held_by_the_gate_says_why_first_beside_the_champion(tmp_path):
    """A green run that served nothing new says so in its first line, with the gate's reason;
    the challenger's and the champion's metrics on the same holdout are side by side."""
    decision = {
        "challenger": "4",
        "champion_before": "3",
        "champion_after": "3",
        "promoted": False,
        "reason": "v4 stays challenger: holdout F1 0.720 < bar 0.800; champion v3 unchanged",
        "challenger_metrics": {"f1": 0.72},
        "champion_metrics": {"f1": 0.86, "pr_auc": 0.9},
    }
    links = {"MLflow model pm v4": "http://mlflow/#/models/pm/versions/4"}
    page = _report(
        tmp_path, decision=decision, links=links, registered={"name": "pm", "version": "4"}
    )
    markdown = (page.parent / "report.md").read_text()
    first = "not promoted: v4 stays challenger: holdout F1 0.720 < bar 0.800; champion v3"
    assert markdown.splitlines()[2].startswith(f"**{first}")
    html = page.read_text()
    assert '<p class="verdict held" id="verdict">not promoted: v4 stays' in html
    assert "<th>champion (v3)</th>" in html and "<th>this model (v4)</th>" in html
    assert '<a href="http://mlflow/#/models/pm/versions/4">MLflow model pm v4</a>' in html


def test_the_index_lists_every_run_newest_first_and_escapes_what_it_shows(tmp_path):
    _report(tmp_path, run_id="first")
    _report(tmp_path, run_id="second<script>", served_version=None, rollout=None)
    runs = read_summaries(tmp_path / "reports")
    assert [r["run_id"] for r in runs] == ["second<script>", "first"]
    index = (tmp_path / "reports" / "index.html").read_text()
    assert index.index("second") < index.index("first")
    assert "second&lt;script&gt;" in index and "<script>" not in index
    assert 'href="predictive_maintenance/second_script_/index.html"' in index
