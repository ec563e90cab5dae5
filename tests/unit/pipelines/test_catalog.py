"""Finding use cases (``pipelines.catalog``): the repository's folders, and packages outside
the tree registered through the ``conveyor.use_cases`` entry-point group, with no edit to
Conveyor."""

from pathlib import Path

import pytest

from pipelines.catalog import discover_use_cases, get_use_case, import_object
from pipelines.usecase import UseCaseError

OUTSIDE = Path(__file__).resolve().parents[2] / "fixtures" / "outside_use_case"


def test_the_repository_s_use_cases_are_found():
    assert "predictive_maintenance" in discover_use_cases()


def test_a_use_case_installed_outside_the_tree_is_found_by_its_entry_point(monkeypatch):
    assert "energy_demand" not in discover_use_cases()
    monkeypatch.syspath_prepend(str(OUTSIDE))  # as `pip install` of its package would
    use_cases = discover_use_cases()
    assert {"predictive_maintenance", "energy_demand"} <= set(use_cases)
    energy = get_use_case("energy_demand")
    assert energy.table.name == "meter_readings" and not energy.gate.higher_is_better


def test_two_use_cases_with_one_name_is_an_error_naming_both(monkeypatch, tmp_path):
    dist = tmp_path / "pm_again-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: pm-again\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[conveyor.use_cases]\npm = pipelines.usecases.predictive_maintenance:USE_CASE\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UseCaseError, match="'predictive_maintenance' is registered twice"):
        discover_use_cases()


def test_an_entry_point_that_does_not_load_or_is_not_a_use_case_is_named(monkeypatch, tmp_path):
    dist = tmp_path / "broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[conveyor.use_cases]\nbroken = no_such_module:X\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UseCaseError, match="entry point broken = no_such_module:X does not load"):
        discover_use_cases()
    (dist / "entry_points.txt").write_text("[conveyor.use_cases]\nbroken = json:dumps\n")
    with pytest.raises(UseCaseError, match="is a function, not a UseCase"):
        discover_use_cases()


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(UseCaseError, match="no use case named 'nope'.*predictive_maintenance"):
        get_use_case("nope")


def test_hooks_are_named_by_import_path():
    assert import_object("json:dumps")([1]) == "[1]"
    with pytest.raises(UseCaseError, match="cannot import 'json:nope'"):
        import_object("json:nope")
