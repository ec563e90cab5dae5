import json

from conveyor_provider.hooks.ray_jobs import RayJobsHook, submission_id_for
from pipelines.ray_jobs_client import RayConnectionConfig, RayJobsClient


def test_submission_id_is_deterministic_per_dag_run_and_task():
    a = submission_id_for("pm", "manual__2026-11-01T00:00:00+00:00", "train")
    assert a == submission_id_for("pm", "manual__2026-11-01T00:00:00+00:00", "train")
    assert a != submission_id_for("pm", "manual__2026-11-02T00:00:00+00:00", "train")
    assert a != submission_id_for("pm", "manual__2026-11-01T00:00:00+00:00", "deploy")
    assert submission_id_for("pm", "r", "train", attempt=2).endswith("-r2")
    assert all(c.isalnum() or c in "-_" for c in a)


class FakeJobs(RayJobsClient):
    """The reattach decision (the client's, which the hook, the CLI and the tests share) on
    recorded job states; the real API is in the integration tests."""

    def __init__(self, states):
        super().__init__(RayConnectionConfig(address="http://unused"))
        self.states = dict(states)

    def job_status(self, submission_id):
        return self.states.get(submission_id)


def test_first_attempt_is_a_new_job_with_the_base_id():
    assert FakeJobs({}).plan_attempt("job") == ("job", False)


def test_running_or_succeeded_job_is_reattached_not_resubmitted():
    for state in ("PENDING", "RUNNING", "SUCCEEDED"):
        assert FakeJobs({"job": state}).plan_attempt("job") == ("job", True)
    assert FakeJobs({"job": "FAILED", "job-r1": "RUNNING"}).plan_attempt("job") == ("job-r1", True)


def test_failed_or_stopped_job_gets_a_new_suffixed_attempt():
    assert FakeJobs({"job": "FAILED"}).plan_attempt("job") == ("job-r1", False)
    assert FakeJobs({"job": "FAILED", "job-r1": "STOPPED"}).plan_attempt("job") == ("job-r2", False)


def test_constructing_the_hook_touches_no_network(monkeypatch):
    """The hook is built when the DAG file is parsed: it must not look up its Connection or
    open a client until a task uses it."""
    looked_up = []
    monkeypatch.setattr(RayJobsHook, "get_connection", lambda self, cid: looked_up.append(cid))
    hook = RayJobsHook(ray_conn_id="does_not_exist")
    assert looked_up == []
    assert "config" not in vars(hook) and "jobs" not in vars(hook)  # nothing resolved yet


def test_the_hook_follows_its_connection_with_the_shared_client(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_RAY_X", json.dumps({"conn_type": "ray", "host": "h"}))
    hook = RayJobsHook(ray_conn_id="ray_x")
    assert isinstance(hook.jobs, RayJobsClient) and hook.jobs.config is hook.config
    assert hook.job_url("s") == "http://h/#/jobs/s"


def test_connection_gives_address_headers_and_tls_verify(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_RAY_PROD",
        json.dumps(
            {
                "conn_type": "ray",
                "host": "ray-head.internal",
                "port": 8443,
                "schema": "https",
                "password": "pw",
                "extra": {"headers": {"Authorization": "Bearer t"}, "verify": "/etc/ca.pem"},
            }
        ),
    )
    cfg = RayJobsHook(ray_conn_id="ray_prod").config
    assert cfg.address == "https://ray-head.internal:8443"
    assert cfg.headers == {"Authorization": "Bearer t"}
    assert cfg.request_headers == {"Authorization": "Bearer t"}  # the extra header wins
    assert cfg.verify == "/etc/ca.pem"
    assert cfg.job_url("j1") == "https://ray-head.internal:8443/#/jobs/j1"


def test_without_a_connection_the_embedded_stack_settings_apply(monkeypatch):
    monkeypatch.setenv("CONVEYOR_RAY_DASHBOARD_PORT", "18265")
    assert RayJobsHook(ray_conn_id="no_such_conn").config.address.endswith(":18265")


def test_the_connection_password_is_the_ray_token_and_never_in_a_repr(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token to fall back on
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_RAY_AUTH",
        json.dumps(
            {
                "conn_type": "ray",
                "host": "ray-head",
                "port": 8265,
                "password": "s3cret-token",
                "extra": {"headers": {"X-Proxy": "p"}},
            }
        ),
    )
    cfg = RayJobsHook(ray_conn_id="ray_auth").config
    assert cfg.request_headers == {"X-Proxy": "p", "Authorization": "Bearer s3cret-token"}
    assert "s3cret-token" not in repr(cfg) and "s3cret-token" not in str(cfg)


def test_without_a_password_the_token_is_found_as_ray_finds_it(monkeypatch, tmp_path):
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("file-token")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_RAY_NOPW", json.dumps({"conn_type": "ray", "host": "h"}))
    hook = RayJobsHook(ray_conn_id="ray_nopw")
    assert hook.config.request_headers == {"Authorization": "Bearer file-token"}
    assert RayJobsHook(ray_conn_id="no_such_conn").config.token == "file-token"
    assert RayJobsHook(address="http://x").config.token == "file-token"
