"""The architecture's import rules (``[tool.importlinter]`` in pyproject.toml) hold, and a
change that breaks one is caught: a test that could not fail would prove nothing."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")
PACKAGES = {"pipelines": "pipelines", "ray_jobs": "ray_jobs", "conveyor": "conveyor"}
PACKAGES["conveyor_provider"] = "plugins/conveyor_provider"


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=root, env=env, capture_output=True, text=True
    )


def test_the_import_contracts_hold():
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


def test_the_logic_importing_airflow_is_caught(tmp_path):
    for name, source in PACKAGES.items():
        shutil.copytree(
            ROOT / source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    lake = tmp_path / "pipelines" / "data" / "lake.py"
    lake.write_text(lake.read_text() + "\nimport airflow.sdk  # noqa: E402\n")
    done = _lint(tmp_path)
    assert done.returncode != 0, done.stdout[-3000:]
    assert "the logic and the Ray entrypoints know no orchestrator BROKEN" in done.stdout
    assert "pipelines.data.lake -> airflow" in done.stdout, done.stdout[-3000:]
