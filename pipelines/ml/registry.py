"""MLflow tracking and registry: one run and one model version per training run, exactly once.

A training run is identified by its run key (stable for a DAG run). Registering the same key
again returns the version already registered, so a retried task never adds a duplicate.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from pipelines.ml.result import TrainingResult, flatten_metrics

log = logging.getLogger(__name__)

RUN_KEY_TAG = "conveyor.run_key"
FINGERPRINT_TAG = "conveyor.fingerprint"
EXPERIMENT = "predictive_maintenance"
CHALLENGER = "challenger"
CHAMPION = "champion"


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    created: bool

    def as_dict(self) -> dict:
        return asdict(self)


def _client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _experiment_id(client, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else client.create_experiment(name)


def _ensure_registered_model(client, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_registered_model(name)


def code_version() -> str:
    """The git commit of the code that ran: ``CONVEYOR_GIT_COMMIT`` (set in images), else the
    checkout's HEAD, else "unknown"."""
    import os
    import subprocess

    if os.environ.get("CONVEYOR_GIT_COMMIT"):
        return os.environ["CONVEYOR_GIT_COMMIT"]
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def register_training(
    tracking_uri: str,
    model_name: str,
    train_result: TrainingResult | dict,
    run_key: str,
    *,
    dag_run_id: str | None = None,
    fingerprint: str | None = None,
) -> RegisteredVersion:
    """Log params, per-epoch and holdout metrics, the evaluation report and the model directory
    of ``train_result``; register a version tagged with its lineage (and the inputs'
    ``fingerprint``, see ``training_fingerprint``) and alias it ``challenger``."""
    result = TrainingResult.parse(train_result)
    client = _client(tracking_uri)
    experiment_id = _experiment_id(client, EXPERIMENT)
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'", max_results=1
    )
    for run in runs:
        versions = client.search_model_versions(f"run_id = '{run.info.run_id}'")
        if versions:
            version = versions[0]
            log.info(
                "already registered name=%s version=%s run_key=%s",
                model_name,
                version.version,
                run_key,
            )
            return RegisteredVersion(model_name, str(version.version), run.info.run_id, False)

    run = (
        runs[0]
        if runs
        else client.create_run(experiment_id, tags={RUN_KEY_TAG: run_key}, run_name=run_key)
    )
    run_id = run.info.run_id
    for key, value in result.params.items():
        client.log_param(run_id, key, value)
    metrics = {**result.scalar_metrics(), **flatten_metrics(result.baseline, "baseline_")}
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    for epoch in result.history:
        client.log_metric(
            run_id, "train_loss", float(epoch["train_loss"]), step=int(epoch["epoch"])
        )
    client.log_artifacts(run_id, result.model_dir, artifact_path="model")
    client.set_terminated(run_id)

    _ensure_registered_model(client, model_name)
    tags = {
        RUN_KEY_TAG: run_key,
        "train_dates": ",".join(result.train_dates),
        "git_commit": code_version(),
        "dag_run_id": dag_run_id or "",
        "holdout_from": result.split.get("holdout_from", ""),
    }
    if fingerprint:
        tags[FINGERPRINT_TAG] = fingerprint
    tags.update({f"manifest.{d}": sha for d, sha in result.manifests.items()})
    version = client.create_model_version(
        model_name, source=f"{run.info.artifact_uri}/model", run_id=run_id, tags=tags
    )
    client.set_registered_model_alias(model_name, CHALLENGER, version.version)
    log.info(
        "registered name=%s version=%s run_id=%s alias=%s",
        model_name,
        version.version,
        run_id,
        CHALLENGER,
    )
    return RegisteredVersion(model_name, str(version.version), run_id, True)


def training_fingerprint(
    lake_root: str, table: str, dates: list[str], hyperparameters: dict
) -> str:
    """What a training run learns from, as one hash: each partition's content hash (from its
    manifest, so a re-ingest with different rows changes it) and the hyperparameters."""
    import datetime as dt
    import hashlib
    import json

    from pipelines.data import lake

    manifests = {
        d: lake.read_manifest(lake_root, dt.date.fromisoformat(d), table).sha256
        for d in sorted(dates)
    }
    payload = json.dumps(
        {"partitions": manifests, "hyperparameters": hyperparameters}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def find_trained_version(
    tracking_uri: str, model_name: str, fingerprint: str
) -> RegisteredVersion | None:
    """The newest version registered with ``fingerprint``, if any."""
    client = _client(tracking_uri)
    found = client.search_model_versions(
        f"name = '{model_name}' and tags.`{FINGERPRINT_TAG}` = '{fingerprint}'"
    )
    if not found:
        return None
    newest = max(found, key=lambda v: int(v.version))
    return RegisteredVersion(model_name, str(newest.version), newest.run_id, False)


def download_version(tracking_uri: str, model_name: str, version: str, dst: str) -> str:
    """Fetch a registered version's model directory; returns the local path."""
    import mlflow.artifacts

    source = _client(tracking_uri).get_model_version_download_uri(model_name, version)
    return mlflow.artifacts.download_artifacts(
        artifact_uri=source, dst_path=dst, tracking_uri=tracking_uri
    )


def resolve_version(tracking_uri: str, model_name: str, version_or_alias: str) -> str:
    """A version number stays as is; an alias (``champion``) becomes the version it points at."""
    if str(version_or_alias).isdigit():
        return str(version_or_alias)
    client = _client(tracking_uri)
    return str(client.get_model_version_by_alias(model_name, version_or_alias).version)


def champion_training(tracking_uri: str, model_name: str) -> tuple[str | None, list[str]]:
    """The champion's version and the partitions it was trained on (its ``train_dates``
    tag); ``(None, [])`` while the model has no champion."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        version = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None, []
    dates = [d for d in dict(version.tags).get("train_dates", "").split(",") if d]
    return str(version.version), dates


REFERENCE_SCORES = "evaluation/reference_scores.json"
"""Where in a model directory training keeps a sample of its holdout scores as the endpoint
answers them (``pipelines.ml.evaluation.reference_scores``): the reference of prediction drift."""


def version_reference_scores(tracking_uri: str, model_name: str, version: str) -> list[float]:
    """The reference scores a version was trained with; ``[]`` for a version trained before
    they were kept (its prediction drift is then not measured), or whose artifacts are gone."""
    import json
    import tempfile

    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    source = _client(tracking_uri).get_model_version_download_uri(model_name, version)
    with tempfile.TemporaryDirectory(prefix="scores-") as scratch:
        try:
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{source.rstrip('/')}/{REFERENCE_SCORES}",
                dst_path=scratch,
                tracking_uri=tracking_uri,
            )
        except (MlflowException, OSError) as exc:
            log.info("no reference scores for %s v%s: %s", model_name, version, exc)
            return []
        return [float(s) for s in json.loads(Path(path).read_text())["scores"]]


def describe_version(tracking_uri: str, model_name: str, version: str) -> dict:
    found = _client(tracking_uri).get_model_version(model_name, version)
    return {"run_id": found.run_id, "tags": dict(found.tags)}


def version_tags(tracking_uri: str, model_name: str, version: str) -> dict[str, str]:
    return dict(_client(tracking_uri).get_model_version(model_name, version).tags)


def ui_links(tracking_uri: str, registered: dict) -> dict[str, str]:
    """The MLflow UI pages of a registered version (``RegisteredVersion.as_dict()``): the model
    version and the run that trained it; none when the tracking URI is not a server's."""
    from urllib.parse import quote

    if not tracking_uri.startswith(("http://", "https://")):
        return {}
    base, name, version = tracking_uri.rstrip("/"), registered["name"], registered["version"]
    links = {f"MLflow model {name} v{version}": f"{base}/#/models/{quote(name)}/versions/{version}"}
    run_id = registered.get("run_id")
    if run_id:
        try:
            experiment = _client(tracking_uri).get_run(run_id).info.experiment_id
            links["MLflow run"] = f"{base}/#/experiments/{experiment}/runs/{run_id}"
        except Exception as exc:  # a link is a convenience: the report is written regardless
            log.warning("no MLflow run link for %s: %s", run_id, exc)
    return links
