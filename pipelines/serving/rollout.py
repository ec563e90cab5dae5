"""Rollouts on Ray Serve: full deploy, canary, shadow, promotion and rollback, with automatic
rollback when a new version fails to load or fails its smoke requests.

Model versions live in predictor *slots*: long-lived applications (``<app>--slot<K>``, not
exposed over HTTP) whose ``user_config`` names the version they hold. Every action is one
call to ``apply_routing`` with a target ``Routing`` (which versions get traffic). It goes
through Serve's declarative REST API, touching only our applications:

1. load every version the target needs and no slot holds into a slot nothing routes to
   (``plan_slots``): Serve reloads it in place, in the running replica, with no new process
   and no build task; only when no slot is free is one created. Wait until it is RUNNING;
2. tell the live router about the new slots and smoke-test each new version through it,
   pinned by header, before it gets traffic; a new stable version is also named
   ``Routing.incoming``, and the router copies it into its own process ahead of the switch
   (``wait_for_copy``), so the switch itself only swaps that copy in;
3. switch the routing (the ``user_config`` of the router application's ``RoutingTable``,
   applied in place and followed by the router, whose replicas Serve does not touch) and
   check, over HTTP, that the router routes as asked; smoke-test again, unpinned;
4. only then remove the slots beyond what is kept warm: ``slots`` of them (default 2), so the
   previous version stays loaded for an instant rollback and the next rollout has a free slot.

If 1-3 fail, our applications are put back as they were before the call, so the old version
never stopped serving. Actions are idempotent: applying the routing already live only smoke-tests.

Serve's PUT replaces every application on the cluster, and another use case's rollout may run
at the same time. So each write re-reads the live configs and replaces only our applications
in them (``ServeAdmin.replace``), never a snapshot taken earlier, which would undo what the
other rollout did meanwhile; that holds for the restore and the cleanup too.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import asdict, dataclass

import httpx

from pipelines.serving.admin import ServeAdmin, config_matches, live_routing
from pipelines.serving.client import DeployError, smoke_test
from pipelines.serving.routing import (
    Routing,
    slot_app_name,
)
from pipelines.serving.slots import plan_slots, slot_map, slot_versions
from pipelines.serving.target import ServeTarget

log = logging.getLogger(__name__)


@dataclass
class RolloutResult:
    action: str
    endpoint: str
    routing: dict
    before: dict | None
    loaded: dict[str, str]
    """Slot application -> the version this rollout loaded into it."""
    removed: list[str]
    smoke: dict

    def as_dict(self) -> dict:
        return asdict(self)


def apply_routing(target: ServeTarget, desired: Routing, action: str) -> RolloutResult:
    """Make ``desired`` the live routing, or leave the previous one serving and raise. Only our
    applications (``target.owns``) change; every other one stays as it is live at each write."""
    with contextlib.closing(ServeAdmin(target.dashboard, ray_token=target.ray_token)) as admin:
        return _apply(admin, target, desired, action)


def _apply(admin: ServeAdmin, target: ServeTarget, desired: Routing, action: str):
    from pipelines.catalog import learner_of

    learner = learner_of(target.use_case)

    def smoke(expected, pinned: bool = False) -> dict:
        """The use case's sample records through the live endpoint."""
        return smoke_test(
            target.endpoint,
            expected,
            records=learner.sample_records,
            score_field=learner.score_field,
            score_range=learner.score_range,
            token=target.token,
            pinned=pinned,
        )

    before = admin.configs()
    current = live_routing(before, target.app_name)
    ours = {n: c for n, c in before.items() if target.owns(n)}
    loaded = slot_versions(ours, target)
    serving = {  # live version -> its slot; these slots are never reloaded
        v: target.slot_of(current.slots.get(v, "")) for v in (current.versions() if current else [])
    }
    serving = {v: s for v, s in serving.items() if s is not None}
    plan = plan_slots(
        loaded, set(serving.values()), desired.versions(), desired.previous, target.slots
    )
    slots = {
        slot_app_name(target.app_name, s): target.slot_config(s, v) for s, v in plan.slots.items()
    }
    changed = {n: c for n, c in slots.items() if not config_matches(ours.get(n), c)}
    slotted = slot_map(target, plan.slots, plan.assigned)
    desired = desired.model_copy(update={"slots": slotted, "incoming": None})
    incoming = desired.stable if current and desired.stable != current.stable else None
    log.info("%s: routing %s -> %s, loading %s", action, current, desired, list(changed))

    def put(apps: dict[str, dict]) -> None:
        admin.replace(apps, target.owns, target.http_host, target.http_port)

    def restore(reason: str) -> DeployError:
        put(ours)
        if current:
            wait_for_routing(target, current)
        still = f"version {current.stable}" if current else "nothing (first deploy)"
        log.error("%s rolled back: %s; serving %s", action, reason, still)
        return DeployError(f"{action} rolled back: {reason}; still serving {still}")

    loading = {n: plan.slots[target.slot_of(n)] for n in changed}
    try:
        staged = {**ours, **changed}
        if changed:  # 1. load into idle slots, or new ones: no traffic yet
            put(staged)
            admin.wait_running(changed, target.timeout)
        if current and (changed or incoming):
            # 2. through the live router, pinned, before any user sees it; the router copies
            # the incoming stable version meanwhile, so the switch only swaps it in
            known = current.model_copy(
                update={
                    "slots": slot_map(target, {**loaded, **plan.slots}, serving),
                    "incoming": incoming,
                }
            )
            staged[target.app_name] = target.router_config(known)
            put(staged)
            admin.wait_running({target.app_name: staged[target.app_name]}, target.timeout)
            wait_for_routing(target, known)
            for version in sorted(set(loading.values())):
                smoke(version, pinned=True)
            if incoming:
                wait_for_copy(target, incoming)
        # 3. switch traffic: the slots it leaves keep running until the router has moved
        router = target.router_config(desired)
        switched = {**staged, target.app_name: router}
        put(switched)
        admin.wait_running({target.app_name: router}, target.timeout)
        wait_for_routing(target, desired)
        smoked = {v: smoke(v, pinned=True) for v in desired.versions()}
        smoked["routed"] = smoke((desired.stable, desired.canary))
    except (DeployError, httpx.HTTPError) as exc:
        raise restore(str(exc)) from exc

    # 4. slots beyond those kept warm, and anything else of ours nothing routes to
    final = {target.app_name: router, **slots}
    removed = sorted(set(switched) - set(final))
    if removed:
        put(final)
    log.info("%s done: routing=%s removed=%s", action, desired.model_dump(), removed)
    return RolloutResult(
        action=action,
        endpoint=target.endpoint,
        routing=desired.model_dump(),
        before=current.model_dump() if current else None,
        loaded=loading,
        removed=removed,
        smoke=smoked,
    )


def wait_for_routing(target: ServeTarget, desired: Routing, timeout: float = 60.0) -> None:
    """Until the router answers ``/healthz`` with the desired routing several times in a row
    (so every router replica has applied it, not only the one that answered first)."""
    deadline, streak, last = time.monotonic() + timeout, 0, None
    with httpx.Client(timeout=10.0) as client:
        while time.monotonic() < deadline:
            try:
                last = client.get(f"{target.endpoint}/healthz").json().get("routing")
            except (httpx.HTTPError, ValueError):
                last = None
            streak = streak + 1 if last == desired.model_dump() else 0
            if streak >= 3:
                return
            time.sleep(0.2)
    raise DeployError(f"router did not apply routing {desired.model_dump()} (answers {last})")


def wait_for_copy(
    target: ServeTarget, version: str, timeout: float = 15.0, scoring: bool = False
) -> bool:
    """Until the router holds its copy of ``version`` (``/healthz``: ``staged`` or
    ``in_process``), or with ``scoring``, until it scores that copy (``in_process``). Not an
    error if it does not: the version's slot serves it until then."""
    if not target.router.get("mirror_stable", True):
        return False
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=10.0) as client:
        while time.monotonic() < deadline:
            try:
                health = client.get(f"{target.endpoint}/healthz").json()
            except (httpx.HTTPError, ValueError):
                health = {}
            held = () if scoring else health.get("staged", ())
            if version in (health.get("in_process"), *held):
                return True
            time.sleep(0.1)
    log.warning("the router holds no copy of version %s yet: its slot serves it", version)
    return False


def current_routing(target: ServeTarget) -> Routing | None:
    with contextlib.closing(ServeAdmin(target.dashboard, ray_token=target.ray_token)) as admin:
        return live_routing(admin.configs(), target.app_name)


def _require(target: ServeTarget) -> Routing:
    current = current_routing(target)
    if current is None:
        raise DeployError(f"{target.app_name} is not deployed: run a full deploy first")
    return current


def deploy(target: ServeTarget, version: str) -> RolloutResult:
    """All traffic to ``version``; any canary or shadow ends."""
    current = current_routing(target)
    version = str(version)
    previous = current.stable if current and current.stable != version else None
    if current and current.stable == version:
        previous = current.previous
    return apply_routing(target, Routing(stable=version, previous=previous), "deploy")


def start_canary(target: ServeTarget, version: str, fraction: float) -> RolloutResult:
    """``fraction`` of requests go to ``version``; the rest stay on the stable one."""
    current = _require(target)
    if str(version) == current.stable:
        raise DeployError(f"version {version} is already stable; a canary must be another one")
    desired = current.model_copy(update={"canary": str(version), "canary_fraction": fraction})
    return apply_routing(target, Routing.model_validate(desired.model_dump()), "canary")


def promote_canary(target: ServeTarget) -> RolloutResult:
    """The canary takes all traffic; the old stable version is kept as ``previous``."""
    current = _require(target)
    if not current.canary:
        raise DeployError(f"{target.app_name} has no canary to promote")
    shadow = current.shadow if current.shadow != current.canary else None
    desired = Routing(stable=current.canary, previous=current.stable, shadow=shadow)
    return apply_routing(target, desired, "promote")


def start_shadow(target: ServeTarget, version: str) -> RolloutResult:
    """``version`` gets a copy of live requests; its answers are logged, never returned."""
    current = _require(target)
    desired = current.model_copy(update={"shadow": str(version)})
    return apply_routing(target, Routing.model_validate(desired.model_dump()), "shadow")


def rollback(target: ServeTarget) -> RolloutResult:
    """Undo the last step: end the canary, else end the shadow, else back to ``previous``."""
    current = _require(target)
    if current.canary:
        desired = current.model_copy(update={"canary": None, "canary_fraction": 0.0})
    elif current.shadow:
        desired = current.model_copy(update={"shadow": None})
    elif current.previous:
        desired = Routing(stable=current.previous)
    else:
        raise DeployError(f"{target.app_name} has nothing to roll back to")
    return apply_routing(target, Routing.model_validate(desired.model_dump()), "rollback")


ACTIONS = ("deploy", "canary", "promote", "shadow", "rollback")


def run_action(target: ServeTarget, action: str, version: str | None, fraction: float) -> dict:
    """One entry point for the DAG, the rollout DAG and the CLI."""
    if action in ("deploy", "canary", "shadow") and not version:
        raise DeployError(f"{action} needs a model version")
    if action == "deploy":
        return deploy(target, version).as_dict()
    if action in ("canary", "shadow"):
        current = current_routing(target)
        if current is None or current.stable == str(version):
            # Nothing live to compare against, or the gate kept the champion: serve it.
            log.info("%s of version %s: it is (or becomes) the stable version", action, version)
            return deploy(target, version).as_dict()
        if action == "canary":
            return start_canary(target, version, fraction).as_dict()
        return start_shadow(target, version).as_dict()
    if action == "promote":
        return promote_canary(target).as_dict()
    if action == "rollback":
        return rollback(target).as_dict()
    raise DeployError(f"unknown rollout action {action!r}; expected one of {', '.join(ACTIONS)}")
