"""Predictor slots: which long-lived slot application holds which model version, and where a
rollout loads the versions it needs (``plan_slots``) without reloading one that serves
traffic. Pure functions of the live configs, tested without Serve.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.serving.routing import slot_app_name
from pipelines.serving.target import ServeTarget


def slot_versions(configs: dict[str, dict], target: ServeTarget) -> dict[int, str]:
    """Slot number -> the version its ``user_config`` names, for our predictor slots."""
    out = {}
    for name, config in configs.items():
        slot = target.slot_of(name)
        if slot is None:
            continue
        for deployment in config.get("deployments") or []:
            version = (deployment.get("user_config") or {}).get("model_version")
            if version:
                out[slot] = str(version)
    return out


@dataclass(frozen=True)
class SlotPlan:
    slots: dict[int, str]
    """Slot -> version after the rollout (kept slots included)."""
    assigned: dict[str, int]
    """Each routed version -> the slot that serves it."""
    removed: list[int]


def plan_slots(
    loaded: dict[int, str], live: set[int], wanted: list[str], warm: str | None, keep: int
) -> SlotPlan:
    """Which slot serves each ``wanted`` version, never reloading a ``live`` slot (one the
    router sends traffic to now).

    A version some slot already holds is served from there (a rollback to a warm previous
    version loads nothing). Any other version loads into a free slot, one not holding
    ``warm`` if it can; a slot is created only when none is free. Unassigned slots are kept
    up to ``keep`` slots in all (the one holding ``warm`` first), the rest removed; on a
    first deploy a standby slot is added holding the stable version, so that the next
    rollout has a free slot.
    """
    assigned: dict[str, int] = {}
    for version in wanted:
        holders = [s for s, v in loaded.items() if v == version and s not in assigned.values()]
        if holders:
            assigned[version] = min(holders, key=lambda s: (s not in live, s))
    free = sorted(
        (s for s in loaded if s not in live and s not in assigned.values()),
        key=lambda s: (loaded[s] == warm, s),
    )
    unused = (n for n in range(len(loaded) + len(wanted) + keep) if n not in loaded)
    for version in wanted:
        if version not in assigned:
            assigned[version] = free.pop(0) if free else next(unused)
    slots = {s: v for v, s in assigned.items()}
    for s in sorted(set(loaded) - set(slots), key=lambda s: (loaded[s] != warm, s)):
        if len(slots) < keep:
            slots[s] = loaded[s]
    while len(slots) < keep and wanted:
        slots[next(unused)] = wanted[0]
    return SlotPlan(slots=slots, assigned=assigned, removed=sorted(set(loaded) - set(slots)))


def slot_map(target: ServeTarget, slots: dict[int, str], assigned: dict[str, int]) -> dict:
    """Routing.slots: every loaded version -> one slot application holding it."""
    out = {v: slot_app_name(target.app_name, s) for s, v in sorted(slots.items())}
    out.update({v: slot_app_name(target.app_name, s) for v, s in assigned.items()})
    return dict(sorted(out.items()))
