"""Ray Jobs entrypoint: deploy a registered model version as the Serve application.

It runs on the cluster, next to Serve, so the Airflow worker only submits and waits. The
deployment goes through Serve's declarative REST API (other applications are left alone) and
waits for RUNNING; the result (endpoint, version, status) is written via ``ray_jobs.contract``.
"""

from __future__ import annotations

import argparse
import logging

from pipelines.serving import deploy_model
from ray_jobs.contract import write_result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dashboard", required=True, help="Ray dashboard URL (Serve REST API)")
    parser.add_argument("--app-name", required=True)
    parser.add_argument("--route-prefix", required=True)
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--model-version", required=True)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--http-host", required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=300.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    deployment = deploy_model(
        args.dashboard,
        app_name=args.app_name,
        route_prefix=args.route_prefix,
        model_name=args.model_name,
        model_version=args.model_version,
        tracking_uri=args.tracking_uri,
        http_host=args.http_host,
        http_port=args.http_port,
        timeout=args.timeout,
    ).as_dict()
    write_result(deployment)
    return deployment


if __name__ == "__main__":
    main()
