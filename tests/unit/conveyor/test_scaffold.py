"""``conveyor new``: a scaffolded use case is found by the catalog, its learner loads, and its
own tests pass; nothing is ever overwritten. (Its DAG runs end to end in
tests/e2e/test_scaffold_end_to_end.py.)"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.cli import app
from conveyor.scaffold import new_use_case
from pipelines.catalog import get_use_case, learner_of

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A scaffolded use case as a package of its own, importable as if pip-installed."""
    result = CliRunner().invoke(app, ["new", "pump_faults", "--path", str(tmp_path)])
    assert result.exit_code == 0, result.output
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("CONVEYOR_USE_CASES", "pump_faults:USE_CASE")
    return tmp_path / "pump_faults", json.loads(result.stdout)["files"]


def test_a_scaffolded_package_is_a_registered_use_case_whose_own_tests_pass(package):
    folder, files = package
    assert sorted(Path(f).name for f in files) == [
        "__init__.py",
        "generator.py",
        "learner.py",
        "pump_faults.json",
        "test_pump_faults.py",
    ]
    spec = get_use_case("pump_faults")
    assert spec.table.name == "pump_faults" and spec.gate.metric == "f1"
    assert spec.serve_route_prefix == "/pump-faults"
    assert learner_of(spec).feature_names[-1] == "load_x_vibration"
    env = {**os.environ, "PYTHONPATH": f"{folder.parent}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "2 passed" in done.stdout


def test_nothing_is_overwritten_and_a_bad_or_taken_name_is_one_line(package, tmp_path):
    folder, _ = package
    before = (folder / "learner.py").read_text()
    (folder / "generator.py").unlink()  # one file gone, the others still there
    with pytest.raises(ValueError, match="already registered"):
        new_use_case("pump_faults", path=tmp_path)
    with pytest.raises(ValueError, match="already registered"):
        new_use_case("predictive_maintenance", path=tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="not snake_case"):
        new_use_case("Pump-Faults", path=tmp_path)
    assert (folder / "learner.py").read_text() == before
    assert not (tmp_path / "elsewhere").exists()
    result = CliRunner().invoke(app, ["new", "x"])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "not snake_case" in result.stderr


def test_an_existing_file_stops_the_scaffold_before_anything_is_written(tmp_path):
    (tmp_path / "valve_faults" / "data_checks").mkdir(parents=True)
    (tmp_path / "valve_faults" / "data_checks" / "valve_faults.json").write_text("{}")
    with pytest.raises(ValueError, match="valve_faults.json already exists"):
        new_use_case("valve_faults", path=tmp_path)
    assert not (tmp_path / "valve_faults" / "__init__.py").exists()
