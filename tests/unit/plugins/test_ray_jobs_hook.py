from conveyor_provider.hooks.ray_jobs import RayJobsHook, submission_id_for


def test_submission_id_is_deterministic_per_dag_run_and_task():
    a = submission_id_for("pm", "manual__2026-11-01T00:00:00+00:00", "train")
    assert a == submission_id_for("pm", "manual__2026-11-01T00:00:00+00:00", "train")
    assert a != submission_id_for("pm", "manual__2026-11-02T00:00:00+00:00", "train")
    assert a != submission_id_for("pm", "manual__2026-11-01T00:00:00+00:00", "deploy")
    assert submission_id_for("pm", "r", "train", attempt=2).endswith("-r2")
    assert all(c.isalnum() or c in "-_" for c in a)


class FakeJobs(RayJobsHook):
    """The hook's reattach decision on recorded job states (the real API is in integration)."""

    def __init__(self, states):
        super().__init__(address="http://unused")
        self.states = dict(states)
        self.submitted = []

    def job_status(self, submission_id):
        return self.states.get(submission_id)

    def submit(self, submission_id, entrypoint, **kwargs):
        self.submitted.append(submission_id)
        return submission_id


def test_first_attempt_submits_the_base_id():
    hook = FakeJobs({})
    assert hook.submit_or_reattach("job", "python x.py") == ("job", "submitted")


def test_running_or_succeeded_job_is_reattached_not_resubmitted():
    for state in ("PENDING", "RUNNING", "SUCCEEDED"):
        hook = FakeJobs({"job": state})
        assert hook.submit_or_reattach("job", "python x.py") == ("job", "reattached")
        assert hook.submitted == []


def test_failed_job_gets_a_new_suffixed_attempt():
    hook = FakeJobs({"job": "FAILED", "job-r1": "STOPPED"})
    assert hook.submit_or_reattach("job", "python x.py") == ("job-r2", "submitted")


def test_constructing_the_hook_touches_no_network():
    RayJobsHook(ray_conn_id="does_not_exist")  # no client is created until used
