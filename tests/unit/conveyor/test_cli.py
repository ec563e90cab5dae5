"""The CLI contract: JSON summary and exit 0 on success; one line on stderr and non-zero on
bad input, with the lake left as it was; ``validate`` exits 1 and quarantines on failure."""

import datetime as dt
import json

from typer.testing import CliRunner

from conveyor.cli import app
from pipelines.data import lake

runner = CliRunner()
DATE = "2026-11-01"


def _generate(tmp_path, *extra):
    result = runner.invoke(
        app,
        [
            "generate",
            "--date",
            DATE,
            "--out",
            str(tmp_path / "landing"),
            "--param",
            "machines=2",
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["path"]


def _ingest(tmp_path, source):
    return runner.invoke(
        app,
        [
            "ingest",
            "--date",
            DATE,
            "--source",
            source,
            "--lake",
            str(tmp_path / "lake"),
            "--landing-root",
            str(tmp_path / "landing"),
        ],
    )


def test_generate_then_ingest_prints_json_summaries(tmp_path):
    path = _generate(tmp_path, "--format", "jsonl.gz")
    result = _ingest(tmp_path, path)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 2 * 1440
    assert summary["partition"].endswith("date=2026-11-01")
    assert summary["manifest"]["sources"][0]["path"] == path


def test_bad_source_is_one_line_on_stderr_and_nonzero_and_the_lake_is_unchanged(tmp_path):
    assert _ingest(tmp_path, "generator").exit_code == 0
    before = lake.read_manifest(tmp_path / "lake", dt.date(2026, 11, 1), table="telemetry")
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "telemetry-2026-11-01.csv").write_text("machine_id;timestamp\n")
    result = _ingest(tmp_path, "telemetry-2026-11-01.csv")
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "telemetry-2026-11-01.csv: header has no comma-separated columns" in lines[0]
    after = lake.read_manifest(tmp_path / "lake", dt.date(2026, 11, 1), table="telemetry")
    assert after.sha256 == before.sha256


def test_missing_source_names_the_path(tmp_path):
    result = _ingest(tmp_path, "missing.csv")
    assert result.exit_code == 1
    assert "missing.csv: source path does not exist" in result.stderr


def test_bad_date_is_rejected(tmp_path):
    result = runner.invoke(app, ["ingest", "--date", "yesterday", "--lake", str(tmp_path)])
    assert result.exit_code != 0
    assert "YYYY-MM-DD" in result.output


def test_validate_exits_0_on_pass_and_1_with_a_summary_and_quarantine_on_failure(tmp_path):
    good = _generate(tmp_path)
    assert _ingest(tmp_path, good).exit_code == 0
    validate = ["validate", "--date", DATE, "--lake", str(tmp_path / "lake")]
    passed = runner.invoke(app, validate)
    assert passed.exit_code == 0, passed.output
    assert json.loads(passed.stdout)["success"] is True

    bad = _generate(tmp_path, "--param", 'faults={"out_of_range_ratio": 0.02}')
    assert _ingest(tmp_path, bad).exit_code == 0
    failed = runner.invoke(app, validate)
    assert failed.exit_code == 1
    summary = json.loads(failed.stdout)
    assert [f["column"] for f in summary["critical_failures"]] == ["torque_nm"]
    assert summary["quarantined_at"]
    assert "failed 1 critical expectation" in failed.stderr
    assert lake.committed_dates(tmp_path / "lake", table="telemetry") == []


def test_demo_runs_the_named_use_case_with_the_demos_fields_and_the_given_ones(monkeypatch):
    """`make demo USE_CASE=...`: the form's defaults (which train above the use case's bar),
    overridden by what the command line gives."""
    import conveyor.demo

    calls = []

    def fake_run_demo(settings, *, params, timeout, use_case):
        calls.append((use_case, params))
        return 0

    monkeypatch.setattr(conveyor.demo, "run_demo", fake_run_demo)
    assert runner.invoke(app, ["demo"]).exit_code == 0
    argv = ["demo", "--use-case", "visual_quality_control", "--epochs", "3", "--param", "images=90"]
    assert runner.invoke(app, argv).exit_code == 0
    assert calls == [
        ("predictive_maintenance", {}),
        ("visual_quality_control", {"images": 90, "epochs": 3}),
    ]


def test_feedback_labels_are_appended_and_a_bad_file_is_one_line(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("_request_id,_row,label\nreq-1,0,true\nreq-1,1,false\n")
    lake_root = str(tmp_path / "lake")
    args = ["feedback", str(labels), "--lake", lake_root, "--use-case", "predictive_maintenance"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["labels"] == 2
    from pipelines.monitoring.feedback import read_feedback

    read = read_feedback(
        lake_root, "predictive_maintenance", dt.date.today() - dt.timedelta(days=1)
    )
    assert sorted(read["label"]) == [False, True]

    labels.write_text("_request_id,label\nreq-2,perhaps\n")
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "conveyor feedback: feedback: label 'perhaps' is not a yes/no answer" in result.output
