"""The training half of a use case's pipeline, shared by every DAG that trains: plan → train →
register → promote → deploy → smoke_test → report.

The one-shot run chains it after its own ingest and validation; the training DAG runs it when
a week of validated partitions is complete. Both get the same Params (``training_params``),
tasks and behaviour, so a fix here fixes both, for every use case.

``plan`` makes training idempotent across runs: a model version already trained on the same
partitions (same content hashes) with the same hyperparameters is reused instead of trained
again, unless the run says **Force retrain**. Its dates come from an upstream task's XCom
(``dates``), which keeps this module free of any data source. Task bodies find their use
case by name (``pipelines.catalog``) and take its settings (``for_use_case``): the model,
Serve application and route names are the use case's.
"""

from __future__ import annotations

import functools
import logging

from airflow.sdk import Param, task

from conveyor_provider.lineage import lineage_task, report_lineage
from conveyor_provider.operators.ray_job import RayJobOperator
from conveyor_provider.operators.report import DECISION_KEY, RunReportOperator
from pipelines.catalog import runtime_env_for
from pipelines.usecase import UseCase

log = logging.getLogger(__name__)


def use_case_settings(use_case_name: str):
    """Conveyor's deployment settings for one use case, read when called (on the worker)."""
    from pipelines.catalog import get_use_case
    from pipelines.settings import get_settings

    return get_settings().for_use_case(get_use_case(use_case_name))


def settings_macro(use_case: UseCase):
    """The ``settings()`` template macro of a use case's DAGs."""
    return functools.partial(use_case_settings, use_case.name)


def gate_param_name(use_case: UseCase) -> str:
    """``min_f1`` for a higher-is-better F1 gate, ``max_mae`` for a lower-is-better MAE."""
    gate = use_case.gate
    return f"{'min' if gate.higher_is_better else 'max'}_{gate.metric}"


def training_params(use_case: UseCase) -> dict[str, Param]:
    """The training Params of a use case's DAGs; the gate's defaults are the use case's."""
    gate = use_case.gate
    metric = gate.metric.upper() if len(gate.metric) <= 3 else gate.metric
    better = "below" if gate.higher_is_better else "above"
    return {
        **{key: with_default(use_case, key, param) for key, param in TRAINING_PARAMS.items()},
        gate_param_name(use_case): Param(
            gate.bar,
            type="number",
            title=f"Quality bar (holdout {metric})",
            description=f"A new model {better} it never becomes champion and is not deployed.",
        ),
        "promotion_margin": Param(
            gate.margin,
            type="number",
            minimum=0,
            title=f"Promotion margin ({metric})",
            description="How much the new model must beat the champion by, on the same holdout.",
        ),
        **{
            f"min_{name}": Param(
                floor,
                type="number",
                title=f"Floor (holdout {name})",
                description=f"A new model below it never becomes champion, whatever its {metric}.",
            )
            for name, floor in gate.floors.items()
        },
        **DEPLOY_PARAMS,
    }


def with_default(use_case: UseCase, key: str, param: Param) -> Param:
    """``param`` with the use case's own default (``UseCase.defaults``) when it has one."""
    if key not in use_case.defaults:
        return param
    return Param(use_case.defaults[key], **param.schema)


TRAINING_PARAMS = {
    "force_retrain": Param(
        False,
        type="boolean",
        title="Force retrain",
        description=(
            "Train even when a model version was already trained on exactly these partitions"
            " with these hyperparameters (otherwise that version is reused)."
        ),
    ),
    "epochs": Param(5, type="integer", minimum=1, maximum=200, title="Epochs"),
    "num_workers": Param(2, type="integer", minimum=1, maximum=64, title="Ray Train workers"),
    "batch_size": Param(512, type="integer", minimum=8, maximum=65536, title="Batch size"),
    "lr": Param(3e-3, type="number", exclusiveMinimum=0, maximum=1, title="Learning rate"),
    "use_gpu": Param(
        "auto",
        enum=["auto", "true", "false"],
        title="Use GPU",
        description="'auto' uses GPUs when the Ray cluster has them.",
    ),
}
"""Params every use case's training shares (the gate's two come from its spec)."""

DEPLOY_PARAMS = {
    "deploy_mode": Param(
        "full",
        enum=["full", "canary", "shadow", "none"],
        title="Deploy mode",
        description=(
            "full: all traffic to the new champion; canary: a share of traffic (see"
            " canary_fraction), promoted or rolled back by the use case's rollout DAG; shadow:"
            " a copy of live traffic, answers only logged; none: do not deploy."
        ),
    ),
    "canary_fraction": Param(
        0.1,
        type="number",
        minimum=0.01,
        maximum=1,
        title="Canary traffic share",
        description="Share of requests the canary answers (deploy_mode canary).",
    ),
}


def smoke_test(use_case: UseCase):
    """The smoke_test task of a use case's DAGs."""

    @task
    def smoke_test(rollout: dict) -> dict:
        """From the Airflow side: the endpoint answers with a version the rollout's routing
        names (``rollout`` is a deploy job's result)."""
        from pipelines.catalog import learner_of
        from pipelines.serving.client import smoke_test_routing

        settings, learner = use_case_settings(name), learner_of(name)
        return smoke_test_routing(
            settings.serve_endpoint,
            rollout["routing"],
            records=learner.sample_records,
            score_field=learner.score_field,
            score_range=learner.score_range,
            token=settings.serve_token.get_secret_value(),
        )

    name = use_case.name
    return smoke_test


def train_register_serve(use_case: UseCase, dates, *, dates_task: str) -> None:
    """Add the training tasks to the DAG being defined, after ``dates`` (an XComArg of
    YYYY-MM-DD strings produced by task ``dates_task``)."""
    name = use_case.name
    gate_param = gate_param_name(use_case)

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def plan(dates: list[str], params=None, ti=None) -> dict | bool:
        """The partitions to train on and the inputs' fingerprint (XCom ``fingerprint``).
        Returns False, which skips ``train`` (``register`` then reuses the version), when a
        version was already trained on exactly these inputs and the run does not force a
        retrain."""
        from pipelines.ml.registry import find_trained_version, training_fingerprint

        settings = use_case_settings(name)
        table = use_case.table.name
        fingerprint = training_fingerprint(settings.lake, table, dates, _hyperparameters(params))
        ti.xcom_push(key="fingerprint", value=fingerprint)
        if not params["force_retrain"]:
            found = find_trained_version(settings.tracking_uri, settings.model_name, fingerprint)
            if found is not None:
                log.info("reusing version %s: already trained on these inputs", found.version)
                return False
        return {"dates": sorted(dates)}

    train = RayJobOperator(
        task_id="train",
        runtime_env=runtime_env_for(use_case),
        entrypoint=(
            f"python -m ray_jobs.train --use-case {name} --lake {{{{ settings().lake }}}}"
            " --dates {{ ti.xcom_pull(task_ids='plan')['dates'] | join(',') }}"
            " --storage-path {{ settings().runs_dir }}"
            " --epochs {{ params.epochs }} --num-workers {{ params.num_workers }}"
            " --use-gpu {{ params.use_gpu }}"
            " --batch-size {{ params.batch_size }} --lr {{ params.lr }}"
        ),
    )

    @lineage_task(trigger_rule="none_failed")
    def register(ti=None, run_id=None) -> dict:
        """Register the new training run as ``challenger`` (once per run), or, when ``plan``
        skipped training, return the version trained on the same inputs. Lineage: the
        training's model directory → the model version."""
        from pipelines.lineage import Lineage, location, model_version
        from pipelines.ml.registry import find_trained_version, register_training

        settings = use_case_settings(name)
        fingerprint = ti.xcom_pull(task_ids="plan", key="fingerprint")
        train_result = ti.xcom_pull(task_ids="train")
        if train_result is None:
            found = find_trained_version(settings.tracking_uri, settings.model_name, fingerprint)
            if found is None:
                raise RuntimeError(f"register: no trained version for fingerprint {fingerprint}")
            registered, inputs = found, ()
        else:
            registered = register_training(
                settings.tracking_uri,
                settings.model_name,
                train_result,
                train_result["run_name"],
                dag_run_id=run_id,
                fingerprint=fingerprint,
            )
            inputs = (location(train_result["model_dir"]),)
        version = model_version(settings.tracking_uri, registered.name, registered.version)
        report_lineage(Lineage(inputs=inputs, outputs=(version,)))
        return registered.as_dict()

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def promote(version: dict, params=None, ti=None) -> str | None:
        """The version to serve: the challenger if it passes the quality bar and beats the
        champion on the same holdout, else the champion (re-deploying it is a no-op, and it
        restores the endpoint on a fresh cluster). With no champion at all, deploy and
        smoke_test are skipped, as they are with deploy_mode none. The decision (XCom
        ``decision``) goes to the run report; its reason is the last line of this task's log."""
        from pipelines.catalog import get_use_case
        from pipelines.ml.promotion import promote as decide

        settings = use_case_settings(name)
        spec = get_use_case(name)
        lock = settings.lock(f"promote-{version['name']}")
        log.info("one promotion at a time for %s: %s", version["name"], lock.scope)
        decision = decide(
            settings.tracking_uri,
            version["name"],
            version["version"],
            settings.lake,
            use_case=spec,
            gate=spec.gate.with_bar(
                params[gate_param],
                params["promotion_margin"],
                floors={metric: params[f"min_{metric}"] for metric in spec.gate.floors},
            ),
            lock=lock,
        )
        ti.xcom_push(key=DECISION_KEY, value=decision.as_dict())
        log.info("%s: %s", "promoted" if decision.promoted else "not promoted", decision.reason)
        return None if params["deploy_mode"] == "none" else decision.champion_after

    deploy = RayJobOperator(
        task_id="deploy",
        entrypoint=(
            "python -m ray_jobs.deploy"
            " --action {{ 'deploy' if params.deploy_mode == 'full' else params.deploy_mode }}"
            " --model-version {{ ti.xcom_pull(task_ids='promote') }}"
            " --fraction {{ params.canary_fraction }}"
            " {{ settings().rollout_args() }}"
        ),
    )

    plan(dates) >> train >> (registered := register())
    promote(registered) >> deploy
    smoke_test(use_case)(deploy.output) >> RunReportOperator(
        task_id="report", ingest_task=dates_task, use_case=name
    )


def _hyperparameters(params) -> dict:
    """The Params that change what a training run learns (not where or how fast it runs)."""
    return {key: params[key] for key in ("epochs", "batch_size", "lr")}
