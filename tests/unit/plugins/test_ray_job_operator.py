"""RayJobOperator's control flow with a recorded hook (real Ray is in integration)."""

import json

import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from conveyor_provider.operators.ray_job import RayJobOperator
from conveyor_provider.triggers.ray_job import RayJobTrigger


class RecordedHook:
    def __init__(self, plan, status):
        self.plan, self.status = plan, status
        self.submitted, self.stopped = [], []

    def plan_attempt(self, base_id):
        return self.plan

    def submit(self, submission_id, entrypoint, **kwargs):
        self.submitted.append((submission_id, kwargs))
        return submission_id

    def job_status(self, submission_id):
        return self.status

    def job_url(self, submission_id):
        return f"http://ray:8265/#/jobs/{submission_id}"

    def logs(self, submission_id):
        return "hello\n"

    def message(self, submission_id):
        return "exit code 1"

    def stop(self, submission_id):
        self.stopped.append(submission_id)


class TI:
    def __init__(self):
        self.xcom = {}

    def xcom_push(self, key, value):
        self.xcom[key] = value


class StateStore(dict):
    def set(self, key, value):
        self[key] = value


def _operator(tmp_path, hook, **kwargs):
    op = RayJobOperator(
        task_id="train",
        entrypoint="python -m ray_jobs.train",
        results_dir=str(tmp_path),
        poll_interval=0.0,
        **kwargs,
    )
    op.hook = hook  # replaces the cached_property
    return op


def _context():
    return {"run_id": "manual__1", "ti": TI(), "task_state_store": StateStore()}


def test_execute_submits_then_defers_to_the_trigger(tmp_path):
    hook = RecordedHook(("job-a", False), "RUNNING")
    op, context = _operator(tmp_path, hook), _context()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, RayJobTrigger) and trigger.submission_id == "job-a"
    ((sid, kwargs),) = hook.submitted
    env = kwargs["runtime_env"]["env_vars"]
    assert env["CONVEYOR_RESULT_PATH"] == str(tmp_path / "job-a.json")
    assert context["task_state_store"] == {"ray_submission_id": "job-a"}
    assert context["ti"].xcom["ray_job_url"].endswith("/#/jobs/job-a")


def test_reattaching_to_a_succeeded_job_reuses_its_result_without_submitting(tmp_path):
    (tmp_path / "job-a.json").write_text(json.dumps({"f1": 0.9}))
    hook = RecordedHook(("job-a", True), "SUCCEEDED")
    assert _operator(tmp_path, hook).execute(_context()) == {"f1": 0.9}
    assert hook.submitted == []


def test_trigger_error_event_fails_the_task_with_the_jobs_message(tmp_path):
    op = _operator(tmp_path, RecordedHook(("job-a", False), "FAILED"))
    event = {
        "status": "error",
        "submission_id": "job-a",
        "job_status": "FAILED",
        "message": "RuntimeError: disk on fire",
    }
    with pytest.raises(AirflowException, match="job-a FAILED: RuntimeError: disk on fire"):
        op.execute_complete(_context(), event)


def test_a_failed_job_s_own_error_leads_the_task_error_and_is_kept_for_the_report(tmp_path):
    """The rollout job writes what failed and what still serves before it fails: the task
    error starts with it, and XCom ``job_error`` keeps it for the run report."""
    error = "deploy rolled back: smoke answered NaN; still serving version 3"
    (tmp_path / "job-a.json").write_text(json.dumps({"action": "deploy", "error": error}))
    op = _operator(tmp_path, RecordedHook(("job-a", False), "FAILED"))
    context = _context()
    event = {"status": "error", "submission_id": "job-a", "job_status": "FAILED", "message": "x"}
    with pytest.raises(AirflowException) as failed:
        op.execute_complete(context, event)
    assert str(failed.value) == f"{error} (Ray job job-a FAILED)"
    assert context["ti"].xcom["job_error"] == error


def test_a_failed_job_without_an_error_keeps_ray_s_message_and_pushes_nothing(tmp_path):
    (tmp_path / "job-a.json").write_text("{not json")  # a torn write must not hide the failure
    op = _operator(tmp_path, RecordedHook(("job-a", False), "FAILED"), deferrable=False)
    context = _context()
    with pytest.raises(AirflowException, match="job-a FAILED: exit code 1"):
        op.execute(context)
    assert "job_error" not in context["ti"].xcom


def test_success_event_returns_the_typed_result(tmp_path):
    (tmp_path / "job-a.json").write_text(json.dumps({"model_version": "3"}))
    op = _operator(tmp_path, RecordedHook(("job-a", False), "SUCCEEDED"))
    event = {
        "status": "success",
        "submission_id": "job-a",
        "job_status": "SUCCEEDED",
        "message": "",
    }
    assert op.execute_complete(_context(), event) == {"model_version": "3"}


def test_a_job_that_wrote_no_result_is_an_error_not_an_empty_xcom(tmp_path):
    op = _operator(tmp_path, RecordedHook(("job-a", False), "SUCCEEDED"), deferrable=False)
    with pytest.raises(AirflowException, match="wrote no result"):
        op.execute(_context())


def test_on_kill_stops_the_job(tmp_path):
    hook = RecordedHook(("job-a", False), "RUNNING")
    op = _operator(tmp_path, hook)
    with pytest.raises(TaskDeferred):
        op.execute(_context())
    op.on_kill()
    assert hook.stopped == ["job-a"]


def test_the_jobs_lineage_becomes_the_tasks_openlineage_datasets(tmp_path):
    lineage = {"inputs": [["file", "/lake/t/date=2026-11-01"]], "outputs": [["file", "/m"]]}
    (tmp_path / "job-a.json").write_text(json.dumps({"lineage": lineage}))
    op = _operator(tmp_path, RecordedHook(("job-a", True), "SUCCEEDED"))
    op.execute(_context())
    facets = op.get_openlineage_facets_on_complete(task_instance=None)
    assert [(d.namespace, d.name) for d in facets.inputs] == [("file", "/lake/t/date=2026-11-01")]
    assert [(d.namespace, d.name) for d in facets.outputs] == [("file", "/m")]
