import json

from typer.testing import CliRunner

from conveyor.cli import app

runner = CliRunner()


def test_generate_then_ingest_prints_json_summaries(tmp_path):
    gen = runner.invoke(
        app, ["generate", "--date", "2026-11-01", "--out", str(tmp_path / "in"), "--machines", "2"]
    )
    assert gen.exit_code == 0, gen.output
    path = json.loads(gen.stdout)["path"]
    result = runner.invoke(
        app, ["ingest", "--date", "2026-11-01", "--source", path, "--lake", str(tmp_path / "lake")]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 2 * 1440
    assert summary["partition"].endswith("date=2026-11-01")


def test_bad_source_is_one_line_on_stderr_and_nonzero(tmp_path):
    result = runner.invoke(
        app,
        [
            "ingest",
            "--date",
            "2026-11-01",
            "--source",
            str(tmp_path / "missing.csv"),
            "--lake",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing.csv: source path does not exist" in lines[0]


def test_bad_date_is_rejected(tmp_path):
    result = runner.invoke(app, ["ingest", "--date", "yesterday", "--lake", str(tmp_path)])
    assert result.exit_code != 0
    assert "YYYY-MM-DD" in result.output
