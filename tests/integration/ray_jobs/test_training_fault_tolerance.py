"""Training survives failures on a real Ray cluster: a killed worker, a stopped job retried by
Airflow, and workers spread over two nodes. Nothing is mocked; the nodes are `ray start`
processes on this machine sharing its filesystem as the "shared storage"."""

import json
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest

from conveyor.processes import RAY_GRACE_S, spawn, stop, wait_until
from conveyor_provider.hooks.ray_jobs import RayJobsHook
from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig
from pipelines.usecases.predictive_maintenance.ingest import ingest_days

pytestmark = pytest.mark.integration

DAYS = "2026-11-01,2026-11-02"
EPOCHS = 8
CHAOS_EPOCHS = 14
"""The killed-worker run is longer: the kill must land while epochs remain (with 8, a busy
machine once let the run finish before the kill)."""
SPREAD_EPOCHS = 2
"""Where the workers run is the point of the two-node run, not how long it trains."""
RESUMED_LOSS_RATIO = 0.85
"""A resumed epoch's loss is below this share of epoch 0's: fresh weights would start at
about epoch 0's loss (the same seed), a restored checkpoint well below it."""
# Enough rows and small batches for epochs of about a second on two cores: slow enough to
# kill a worker, or stop the job, between checkpoints.
MACHINES, BATCH = 32, 64


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory):
    import datetime as dt

    root = tmp_path_factory.mktemp("ft-lake")
    days = [dt.date(2026, 11, 1), dt.date(2026, 11, 2)]
    ingest_days(days, str(root), generator=GeneratorConfig(machines=MACHINES, minutes=1440))
    return str(root)


def _train_job(hook, name, lake, storage, results, *extra, epochs=EPOCHS):
    sid = f"{name}-{time.time_ns()}"
    entrypoint = (
        f"python -m ray_jobs.train --use-case predictive_maintenance --lake {lake}"
        f" --dates {DAYS} --storage-path {storage}"
        f" --name {name} --epochs {epochs} --num-workers 2 --use-gpu false --batch-size {BATCH}"
        f" --max-failures 2 {' '.join(extra)}"
    )
    from conveyor_provider.operators.ray_job import DEFAULT_EXCLUDES, PROJECT_ROOT

    env = {"CONVEYOR_RESULT_PATH": str(results / f"{sid}.json")}
    runtime_env = {"working_dir": str(PROJECT_ROOT), "excludes": DEFAULT_EXCLUDES, "env_vars": env}
    hook.submit(sid, entrypoint, runtime_env=runtime_env)
    return sid


def _wait(hook, sid, timeout=600):
    wait_until(lambda: hook.job_status(sid) in ("SUCCEEDED", "FAILED", "STOPPED"), sid, timeout)
    return hook.job_status(sid)


def _registered_epoch(storage: Path, name: str) -> int:
    """The epoch of the newest checkpoint Ray Train's controller has registered (-1: none).

    A checkpoint directory on disk is not yet one a restart resumes from: the controller
    registers a worker's report when it next polls the workers, and a worker killed before
    that poll takes the report with it (CI saw such a run restart from scratch). The
    controller's snapshot file is what a restarted worker group is given."""
    try:
        snapshot = json.loads((storage / name / "checkpoint_manager_snapshot.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):  # not written yet, or mid-write
        return -1
    latest = snapshot.get("latest_checkpoint_result") or {}
    return int(latest.get("metrics", {}).get("epoch", -1))


def _result(results: Path, sid: str) -> dict:
    return json.loads((results / f"{sid}.json").read_text())


def _training_workers(since: float) -> list[psutil.Process]:
    """The Ray Train worker processes (title ``ray::RayTrainWorker...``) started after
    ``since``, busiest first.

    Read from the process table, which is instant: the job log (a REST call, and worker lines
    forwarded with a delay) and the state API could both take long enough on a loaded
    two-core machine for the run to finish before the kill landed. Only processes started
    after the job was submitted, and busiest first, because a CI run once killed a process
    with that title that was not training (the job finished untouched): one left from the
    earlier run, or one not yet busy. A training worker has used seconds of CPU."""
    found = []
    for proc in psutil.process_iter(["cmdline", "create_time", "cpu_times"]):
        cmdline = proc.info["cmdline"] or []
        if cmdline and cmdline[0].startswith("ray::RayTrainWorker"):
            if proc.info["create_time"] >= since and proc.info["cpu_times"] is not None:
                found.append(proc)
    return sorted(found, key=lambda p: -sum(p.info["cpu_times"][:2]))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_worker_resumes_from_the_last_checkpoint(ray_head, small_lake, tmp_path):
    """SIGKILL one Ray Train worker mid-run: Ray Train restarts the worker group from the last
    registered checkpoint, every epoch runs once, and the resumed epochs start from the
    checkpoint's weights, not fresh ones."""
    hook = RayJobsHook(address=ray_head.ray_jobs_address)
    storage, results = tmp_path / "runs", tmp_path / "results"
    results.mkdir()
    submitted = time.time() - 1  # create_time has a resolution of 10 ms
    sid = _train_job(hook, "chaos", small_lake, storage, results, epochs=CHAOS_EPOCHS)
    wait_until(lambda: _registered_epoch(storage, "chaos") >= 0, "a registered checkpoint", 300)
    wait_until(lambda: len(_training_workers(submitted)) >= 2, "both training workers", 60)
    victim = _training_workers(submitted)[0].pid
    assert _alive(victim)
    os.kill(victim, signal.SIGKILL)  # one worker dies mid-run
    assert _wait(hook, sid) == "SUCCEEDED", hook.logs(sid)[-3000:]

    logs = hook.logs(sid)
    assert f"pid={victim})" in logs, f"the killed process {victim} was not a training worker"
    chaos = _result(results, sid)
    history = chaos["history"]
    assert [h["epoch"] for h in history] == list(range(CHAOS_EPOCHS))
    # Read from the result, where every epoch says which epoch its attempt started at (a
    # worker's log line reaches the job log only through Ray's log forwarding). A checkpoint
    # was registered before the kill, so the restart resumes from it or a newer one, never
    # from scratch.
    starts = [h["resumed_from_epoch"] for h in history]
    assert starts[0] == 0 and max(starts) >= 1, starts
    # The weights came back too, not only the epoch counter: the first resumed epoch's loss
    # is well below epoch 0's, which fresh weights (the same seed) would start again from.
    resumed = next(h for h in history if h["resumed_from_epoch"] >= 1)
    assert resumed["train_loss"] < RESUMED_LOSS_RATIO * history[0]["train_loss"], history
    assert chaos["metrics"]["pr_auc"] > chaos["baseline"]["pr_auc"], chaos["metrics"]


class _TaskInstance:
    """What ``RayJobOperator.execute`` reads of its task instance: the try number (which a run
    key must not depend on) and somewhere to push the job link."""

    def __init__(self, try_number: int):
        self.try_number = try_number
        self.pushed: dict = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def test_a_retried_train_task_resumes_instead_of_restarting(ray_head, small_lake, tmp_path):
    """Airflow's retry of the training task, through the operator itself: try 1 is killed
    (``on_kill``, what a worker's death or a user's clear leads to) after a checkpoint; try 2
    of the same DAG run and task submits a new attempt, which must continue from the
    checkpoint of the same run, not from epoch 0 (the run name is the operator's run key,
    stable across try numbers)."""
    from airflow.exceptions import AirflowException
    from airflow.sdk import DAG

    from conveyor_provider.operators.ray_job import RayJobOperator

    storage, results = tmp_path / "runs", tmp_path / "results"
    entrypoint = (
        f"python -m ray_jobs.train --use-case predictive_maintenance --lake {small_lake}"
        f" --dates {DAYS} --storage-path {storage} --epochs {EPOCHS} --num-workers 2"
        f" --use-gpu false --batch-size {BATCH} --max-failures 2"
    )

    dag_id = f"ft_retry_{time.time_ns()}"  # the Ray cluster is shared with other tests

    def attempt(try_number: int) -> tuple[RayJobOperator, dict]:
        with DAG(dag_id, schedule=None):
            op = RayJobOperator(
                task_id="train",
                entrypoint=entrypoint,
                results_dir=str(results),
                deferrable=False,
                poll_interval=0.5,
            )
        op.hook = RayJobsHook(address=ray_head.ray_jobs_address)  # no Airflow connection here
        return op, {"run_id": "scheduled__2026-11-03", "ti": _TaskInstance(try_number)}

    first, context = attempt(1)
    run_key = first._run_key(context)
    outcome: dict = {}
    worker = threading.Thread(target=lambda: outcome.update(first=_outcome(first, context)))
    worker.start()
    wait_until(lambda: _registered_epoch(storage, run_key) >= 0, "a registered checkpoint", 300)
    first.on_kill()
    worker.join(120)
    assert isinstance(outcome.get("first"), AirflowException), outcome
    assert "STOPPED" in str(outcome["first"])

    second, context = attempt(2)
    result = second.execute(context)
    assert second.submission_id == f"{first.submission_id}-r1"
    history = result["history"]
    assert [h["epoch"] for h in history] == list(range(EPOCHS))
    # Epochs already done are not repeated (at most the one in flight): the second attempt's
    # epochs say they started from a checkpoint, the first attempt's from scratch.
    starts = [h["resumed_from_epoch"] for h in history]
    assert starts[0] == 0 and starts[-1] >= 1, starts


def _outcome(op, context):
    try:
        return op.execute(context)
    except Exception as exc:  # the test asserts which
        return exc


def test_training_workers_on_two_nodes(ray_head, small_lake, tmp_path):
    """A second node joins the head (`ray start --address`); STRICT_SPREAD puts one training
    worker on each node; the run succeeds with shared storage."""
    from conveyor.processes import free_port
    from conveyor.stack import _bin, ray_auth_env

    node_dir = tmp_path / "node2"
    # Its own temp dir, as a second machine has: by default a joining node uses the head's
    # session dir, and on one machine that is the same directory, so the second node's
    # runtime-env agent replaced the job's unpacked working_dir under the running driver
    # (CI saw "getcwd() failed" and torch failing to load). Short: Ray's socket paths are
    # length-limited.
    node_temp = tempfile.mkdtemp(prefix="cvray2-")
    argv = [
        _bin("ray"),
        "start",
        f"--address={ray_head.host}:{ray_head.ray_gcs_port}",
        "--block",
        "--num-cpus=2",
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        "--disable-usage-stats",
        f"--temp-dir={node_temp}",
    ]
    # A joining node does not turn token auth on by itself, as a head does: it gets the
    # head's mode (and finds the same token), as every node of a cluster must.
    log_path, env = node_dir / "node.log", {**os.environ, **ray_auth_env(dict(os.environ))}
    proc, record = spawn("ray-node2", argv, log_path, env, "", cwd=tmp_path, grace_s=RAY_GRACE_S)
    try:

        def two_nodes():
            alive = _state_list(ray_head, "NODES", [("state", "=", "ALIVE")])
            return len(alive) >= 2

        wait_until(two_nodes, "second Ray node", 120, proc, node_dir / "node.log")
        hook = RayJobsHook(address=ray_head.ray_jobs_address)
        storage, results = tmp_path / "runs", tmp_path / "results"
        results.mkdir()
        sid = _train_job(
            hook,
            "spread",
            small_lake,
            storage,
            results,
            "--placement-strategy STRICT_SPREAD",
            epochs=SPREAD_EPOCHS,
        )
        assert _wait(hook, sid) == "SUCCEEDED", hook.logs(sid)[-3000:]
        workers = _state_list(
            ray_head, "ACTORS", [("class_name", "=", "RayTrainWorker")], detail=True
        )
        job_id = hook.client.get_job_info(sid).job_id
        nodes = {a.node_id for a in workers if a.job_id == job_id}
        assert len(nodes) == 2, workers
        assert _result(results, sid)["history"][-1]["epoch"] == SPREAD_EPOCHS - 1
    finally:
        stop(record)
        shutil.rmtree(node_temp, ignore_errors=True)


def _state_list(settings, resource: str, filters: list, detail: bool = False) -> list:
    """Ray's state API with the cluster's auth token (the SDK's own helpers send it only when
    this process runs in token mode, which a client need not)."""
    from ray.util.state.api import StateApiClient
    from ray.util.state.common import ListApiOptions, StateResource

    from pipelines.ray_auth import auth_headers, find_ray_token

    headers = {"Content-Type": "application/json", **auth_headers(find_ray_token())}
    client = StateApiClient(address=settings.ray_jobs_address, headers=headers)
    options = ListApiOptions(filters=filters, detail=detail)
    return client.list(StateResource[resource], options, raise_on_missing_output=False)
