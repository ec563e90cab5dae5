"""Ray Jobs entrypoint: a rollout action on the Serve application (deploy, canary, shadow,
promote, rollback), with automatic rollback when the new version fails.

It runs on the cluster, next to Serve, so the Airflow worker only submits and waits, and the
smoke requests come from where Serve is. The bearer token, when auth is on, is read from the
node's ``CONVEYOR_SERVE_TOKEN`` (the variable the router itself reads), never from the command
line; so is Ray's auth token for the Serve REST API, found on the node the way Ray finds it
(``pipelines.ray_auth``). The result (routing, versions loaded into slots, slots removed,
smoke answers) is written via ``ray_jobs.contract``; when the action fails (and was rolled
back), the result is ``{"error": ...}`` with the rollout's own words (what failed, which version
still serves), so the submitting task and the run report can say it without reading the log.
"""

from __future__ import annotations

import argparse
import json
import logging
import os

from pipelines.lineage import Lineage, endpoint, model_version
from pipelines.ray_auth import find_ray_token
from pipelines.serving.client import DeployError
from pipelines.serving.rollout import ACTIONS, run_action
from pipelines.serving.routing import TOKEN_ENV
from pipelines.serving.target import ServeTarget
from ray_jobs.contract import write_result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--action", choices=ACTIONS, default="deploy")
    parser.add_argument("--model-version", help="needed by deploy, canary and shadow")
    parser.add_argument("--fraction", type=float, default=0.1, help="canary share of traffic")
    parser.add_argument(
        "--target",
        required=True,
        help="the ServeTarget as JSON (ConveyorSettings.rollout_args writes it): use case, "
        "application, route, model, registry, HTTP address, slots, predictor/router arguments",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    described = json.loads(args.target)
    target = ServeTarget.from_json(
        args.target,
        token=os.environ.get(TOKEN_ENV, "") if described.get("require_auth") else "",
        ray_token=find_ray_token(),
    )
    try:
        result = run_action(target, args.action, args.model_version, args.fraction)
    except DeployError as exc:
        write_result({"action": args.action, "error": str(exc)})
        raise
    result["lineage"] = rollout_lineage(target, result["routing"]).as_dict()
    write_result(result)
    return result


def rollout_lineage(target: ServeTarget, routing: dict) -> Lineage:
    """The versions the endpoint routes to after the action (stable, canary, shadow) → it."""
    routed = dict.fromkeys(routing.get(k) for k in ("stable", "canary", "shadow"))
    return Lineage(
        inputs=tuple(model_version(target.tracking_uri, target.model_name, v) for v in routed if v),
        outputs=(endpoint(target.endpoint),),
    )


if __name__ == "__main__":
    main()
