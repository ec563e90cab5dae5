"""How rollouts pick predictor slots (``plan_slots``), without a cluster: the rules that
make a warm rollout start no process and a rollback to the previous version load nothing."""

import pytest

from pipelines.serving.slots import plan_slots, slot_map
from pipelines.serving.target import ServeTarget


def test_a_first_deploy_adds_a_standby_slot_holding_the_same_version():
    plan = plan_slots({}, set(), ["1"], warm=None, keep=2)
    assert plan.slots == {0: "1", 1: "1"} and plan.assigned == {"1": 0} and plan.removed == []


def test_a_new_version_loads_into_the_idle_slot_and_the_old_one_stays_warm():
    plan = plan_slots({0: "1", 1: "1"}, live={0}, wanted=["2"], warm="1", keep=2)
    assert plan.assigned == {"2": 1} and plan.slots == {0: "1", 1: "2"}
    # The next one reloads the slot of the version before the previous one.
    plan = plan_slots({0: "1", 1: "2"}, live={1}, wanted=["3"], warm="2", keep=2)
    assert plan.assigned == {"3": 0} and plan.slots == {0: "3", 1: "2"}


def test_a_rollback_to_the_warm_previous_version_loads_nothing():
    loaded = {0: "1", 1: "2"}
    plan = plan_slots(loaded, live={1}, wanted=["1"], warm=None, keep=2)
    assert plan.assigned == {"1": 0} and plan.slots == loaded and plan.removed == []


def test_a_slot_is_created_only_when_every_slot_is_live():
    plan = plan_slots({0: "3", 1: "2"}, live={0, 1}, wanted=["2", "3", "4"], warm="1", keep=2)
    assert plan.assigned == {"2": 1, "3": 0, "4": 2}
    # After promotion, the slot nothing routes to and beyond the two kept goes.
    plan = plan_slots({0: "3", 1: "2", 2: "4"}, live={0, 1, 2}, wanted=["3"], warm="2", keep=2)
    assert plan.slots == {0: "3", 1: "2"} and plan.removed == [2]


def test_one_slot_keeps_no_standby():
    plan = plan_slots({}, set(), ["1"], warm=None, keep=1)
    assert plan.slots == {0: "1"}
    plan = plan_slots({0: "1"}, live={0}, wanted=["2"], warm="1", keep=1)
    assert plan.assigned == {"2": 1} and plan.removed == [0]


@pytest.mark.parametrize(
    ("loaded", "live", "wanted", "warm"),
    [
        ({0: "1", 1: "2"}, {0, 1}, ["5"], "1"),
        ({0: "1", 1: "2", 2: "3"}, {2}, ["4", "1"], "3"),
        ({0: "1", 1: "1"}, {1}, ["2", "3"], "1"),
        ({3: "7"}, {3}, ["7", "8"], None),
    ],
)
def test_a_live_slot_is_never_reloaded_and_every_wanted_version_has_a_slot(
    loaded, live, wanted, warm
):
    plan = plan_slots(loaded, live, wanted, warm, keep=2)
    assert all(plan.slots.get(s, loaded[s]) == loaded[s] for s in live)
    assert all(plan.slots[plan.assigned[v]] == v for v in wanted)
    assert len(set(plan.assigned.values())) == len(wanted)


def test_the_router_map_lists_every_loaded_version_once_preferring_the_assigned_slot():
    target = ServeTarget("http://d", "pm", "pm", "/pm", "127.0.0.1", 8000, "m", "http://t")
    slots = slot_map(target, {0: "1", 1: "1", 2: "2"}, {"1": 1})
    assert slots == {"1": "pm--slot1", "2": "pm--slot2"}
    assert target.slot_of("pm--slot12") == 12
    assert target.slot_of("pm") is None and target.slot_of("pm-x--slot1") is None
