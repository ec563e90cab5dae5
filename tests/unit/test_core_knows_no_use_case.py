"""The core is the conveyor, not what runs on it: no module outside a use case's folder names
a use case's table, columns, labels, features or prediction field. (The import contracts in
pyproject.toml forbid importing a use case; this catches a name copied in as a string.)"""

import re
from pathlib import Path

import pytest

from pipelines.catalog import IN_REPO_PACKAGE, discover_use_cases, learner_of

ROOT = Path(__file__).resolve().parents[2]
CORE = ["pipelines", "ray_jobs", "conveyor", "dags", "plugins"]


def _core_files() -> list[Path]:
    use_cases = ROOT / Path(*IN_REPO_PACKAGE.split("."))
    files = [p for d in CORE for p in (ROOT / d).rglob("*.py")]
    return [p for p in files if use_cases not in p.parents]


GENERIC = {"line", "label", "image", "width", "height", "channels", "sha256", "lot"}
"""Column names that are plain words the core uses in its own sense (a line of a file, an
image's bytes, a content hash), not a use case's vocabulary."""


def _names(use_case) -> set[str]:
    table = use_case.table
    names = {table.name, *table.schema, *table.labels} - {table.time_column} - GENERIC
    if use_case.learner:
        learner = learner_of(use_case)
        names |= {*learner.feature_names, learner.score_field}
    return names


def _violations(files: list[Path], names: set[str]) -> set[str]:
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(names))) + r")\b")
    return {
        f"{path.name}:{number}: {match.group(1)}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if (match := pattern.search(line))
    }


@pytest.mark.parametrize("use_case", discover_use_cases().values(), ids=lambda u: u.name)
def test_no_core_module_names_a_use_case_s_columns(use_case):
    found = _violations(_core_files(), _names(use_case))
    assert not found, "\n".join(sorted(found))


def test_the_check_sees_a_name_copied_into_a_module(tmp_path):
    pm = discover_use_cases()["predictive_maintenance"]
    module = tmp_path / "train.py"
    module.write_text('speed = frame["rotational_speed_rpm"]\nok = "torque"\n')
    assert _violations([module], _names(pm)) == {"train.py:1: rotational_speed_rpm"}
    assert any(p.name == "train.py" for p in _core_files())  # the driver is scanned
