"""The use-case contract (``pipelines.usecase``): every deployed name derives from the use
case's name, a bad spec is a one-line error naming it, and the gate works both ways."""

import pytest

from pipelines.catalog import get_use_case
from pipelines.usecase import DagIds, Gate, TableSpec, UseCase, UseCaseError

TABLE = TableSpec(
    name="meters",
    schema={"site": "string", "timestamp": "datetime64[us, UTC]", "kwh": "float64"},
    key=("site", "timestamp"),
    time_column="timestamp",
    labels=("kwh",),
)


def test_every_deployed_name_derives_from_the_use_case_name():
    uc = UseCase(name="energy_demand", title="Energy demand", table=TABLE)
    assert (uc.run_dag_id, uc.daily_dag_id, uc.training_dag_id, uc.rollout_dag_id) == (
        "energy_demand",
        "energy_demand_daily",
        "energy_demand_training",
        "energy_demand_rollout",
    )
    assert uc.validated_asset_name == "validated_meters"
    assert uc.validated_asset_uri == "conveyor://lake/meters/validated"
    assert uc.model_name == uc.serve_app_name == "energy_demand"
    assert uc.serve_route_prefix == "/energy-demand"
    assert uc.suite_files == ("meters.json",)
    assert uc.dag_tags == ["conveyor"]


def test_predictive_maintenance_keeps_its_names():
    pm = get_use_case("predictive_maintenance")
    assert (pm.run_dag_id, pm.daily_dag_id, pm.training_dag_id, pm.rollout_dag_id) == (
        "predictive_maintenance",
        "telemetry_daily",
        "model_training",
        "serving_rollout",
    )
    assert pm.validated_asset_name == "validated_telemetry"
    assert pm.validated_asset_uri == "conveyor://lake/telemetry/validated"
    assert pm.model_name == "predictive_maintenance"
    assert pm.serve_route_prefix == "/predictive-maintenance"
    assert pm.gate == Gate(metric="f1", higher_is_better=True, bar=0.8, margin=0.01)


@pytest.mark.parametrize(
    ("kwargs", "cause"),
    [
        ({"name": "Energy Demand"}, "'Energy Demand' is not snake_case"),
        ({"generator": "energy.generate"}, "is not an import path 'module:function'"),
        (
            {"table": TableSpec("m", {"a": "string"}, key=("a", "b"), time_column="a")},
            "use case energy_demand: table 'm' names column(s) not in its schema: b",
        ),
    ],
)
def test_a_bad_spec_is_a_one_line_error_naming_the_use_case(kwargs, cause):
    spec = {"name": "energy_demand", "title": "Energy demand", "table": TABLE, **kwargs}
    with pytest.raises(UseCaseError) as err:
        UseCase(**spec)
    assert cause in str(err.value) and "\n" not in str(err.value)


def test_the_gate_goes_both_ways():
    f1 = Gate(metric="f1", higher_is_better=True, bar=0.8, margin=0.01)
    assert f1.passes(0.8) and not f1.passes(0.79)
    assert f1.beats(0.86, 0.85) and not f1.beats(0.855, 0.85)
    assert f1.explain(0.72) == "holdout F1 0.720 < bar 0.800"
    mae = Gate(metric="mae", higher_is_better=False, bar=12.0, margin=0.5)
    assert mae.passes(11.0) and not mae.passes(12.5)
    assert mae.beats(10.0, 10.5) and not mae.beats(10.2, 10.5)
    assert mae.explain(11.0) == "holdout MAE 11.000 <= bar 12.000"


def test_the_gates_floors_hold_other_metrics_to_a_minimum():
    gate = Gate(metric="defect_recall", bar=0.95, margin=0.005, floors={"macro_f1": 0.9})
    assert gate.below_floors({"defect_recall": 0.99, "macro_f1": 0.91}) == []
    assert gate.below_floors({"defect_recall": 0.99, "macro_f1": 0.85}) == [
        "macro_f1 0.850 < floor 0.900"
    ]
    assert gate.below_floors({"defect_recall": 0.99}) == ["macro_f1 nan < floor 0.900"]
    # A run's Params move the floors like the bar; without them the spec's stay.
    assert gate.with_bar(0.9).floors == {"macro_f1": 0.9}
    assert gate.with_bar(floors={"macro_f1": 0.5}).below_floors({"macro_f1": 0.6}) == []
    assert gate.explain_floors({"macro_f1": 0.996}) == ", macro_f1 0.996 >= floor 0.900"


def test_dag_ids_can_be_kept_from_before_the_contract():
    uc = UseCase(name="energy_demand", title="E", table=TABLE, dag_ids=DagIds(daily="meters"))
    assert uc.daily_dag_id == "meters" and uc.training_dag_id == "energy_demand_training"
