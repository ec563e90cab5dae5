"""The Ray head's settings: two local clusters must not share HAProxy's files or ports
(Serve's defaults are fixed /tmp paths and fixed ports); token authentication is on unless
opted out; a start that fails says why and leaves nothing running."""

import json
import os
import sys
import time

import psutil
import pytest

from conveyor.processes import StackError, free_port, port_is_free, start_service
from conveyor.stack import ray_auth_env, ray_dashboard_ready, serve_ingress_env
from pipelines.settings import ConveyorSettings


def test_haproxy_files_and_ports_are_the_clusters_own(tmp_path):
    settings = ConveyorSettings(
        serve_haproxy_stats_port=18404,
        serve_haproxy_metrics_port=19101,
        serve_fallback_proxy_http_port=18500,
        serve_fallback_proxy_grpc_port=19500,
        serve_replica_http_port_min=31000,
    )
    env = serve_ingress_env(settings, tmp_path)
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
    paths = [v for k, v in env.items() if k.endswith(("_LOC", "_PATH", "_BASE", "_FILE"))]
    assert len(paths) == 5
    assert all(p.startswith(str(tmp_path / "haproxy")) for p in paths)
    ports = {
        k: int(v)
        for k, v in env.items()
        if k.endswith("_PORT") and not k.startswith("RAY_SERVE_DI")
    }
    assert sorted(ports.values()) == [18404, 18500, 19101, 19500]
    assert env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] == "31000"
    assert env["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"] == "31999"
    assert env["RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT"] == "41000"


def test_the_python_proxy_needs_no_extra_environment(tmp_path):
    assert serve_ingress_env(ConveyorSettings(serve_ingress="proxy"), tmp_path) == {}
    assert not (tmp_path / "haproxy").exists()


def test_the_local_head_gets_token_auth_and_a_private_token_file(tmp_path):
    env = {"HOME": str(tmp_path)}
    assert ray_auth_env(env) == {"RAY_AUTH_MODE": "token"}
    token_file = tmp_path / ".ray" / "auth_token"
    assert len(token_file.read_text()) == 64
    assert token_file.stat().st_mode & 0o777 == 0o600
    before = token_file.read_text()
    assert ray_auth_env(env) == {"RAY_AUTH_MODE": "token"}
    assert token_file.read_text() == before  # an existing token is kept, never replaced


def test_ray_auth_mode_disabled_opts_out_and_writes_nothing(tmp_path):
    assert ray_auth_env({"HOME": str(tmp_path), "RAY_AUTH_MODE": "disabled"}) == {}
    assert not (tmp_path / ".ray").exists()


REFUSING_DASHBOARD = """
import http.server, sys
class Refuse(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(401); self.end_headers(); self.wfile.write(b"Unauthorized")
    def log_message(self, *args): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Refuse).serve_forever()
"""


def test_a_dashboard_answering_401_fails_the_start_at_once_and_leaves_no_process(tmp_path):
    """What a Ray head with token auth answers a client without the token; the start names
    the cause instead of waiting out its timeout, and stops what it spawned (by PID)."""
    port = free_port()
    address = f"http://127.0.0.1:{port}"
    seen = []
    started = time.monotonic()
    with pytest.raises(StackError) as err:
        start_service(
            "fake-ray",
            [sys.executable, "-c", REFUSING_DASHBOARD, str(port)],
            tmp_path / "fake.log",
            dict(os.environ),
            address,
            ray_dashboard_ready(address, token=None),
            timeout=60,
            started=seen.append,
        )
    assert time.monotonic() - started < 30, "a refused token must not wait out the timeout"
    message = str(err.value)
    assert "HTTP 401" in message and "token authentication is on" in message, message
    assert "\n" not in message
    (record,) = seen  # handed over before the wait, so `conveyor down` could find it
    assert not psutil.pid_exists(record.pid) or not record.alive()
    assert port_is_free("127.0.0.1", port)


def test_conveyor_up_records_a_service_before_waiting_and_a_failed_start_leaves_nothing(
    tmp_path, monkeypatch
):
    """``stack.json`` names the process while it starts (so ``conveyor down`` can stop it if
    ``up`` itself dies), and a start that fails stops it and forgets it."""
    from conveyor import stack

    ports = (
        "ray_gcs_port ray_dashboard_port serve_http_port serve_haproxy_stats_port"
        " serve_haproxy_metrics_port serve_fallback_proxy_http_port"
        " serve_fallback_proxy_grpc_port mlflow_port"
    ).split()
    settings = ConveyorSettings(home=tmp_path, **{name: free_port() for name in ports})
    state_file = tmp_path / "stack.json"
    while_starting = []

    def never_ready_ray(s, started=None):
        def ready() -> bool:
            while_starting.append(json.loads(state_file.read_text()))
            return False

        argv = [sys.executable, "-c", "import time; time.sleep(120)"]
        return start_service(
            "ray", argv, tmp_path / "ray.log", {}, "http://x", ready, 1.5, started=started
        )

    monkeypatch.setattr(stack, "start_ray", never_ready_ray)
    with pytest.raises(StackError, match="not ready after"):
        stack.Stack(settings).up(airflow=False)
    assert while_starting and [r["name"] for r in while_starting[0]] == ["ray"]
    pid = while_starting[0][0]["pid"]
    assert not psutil.pid_exists(pid), f"the failed start left pid {pid} running"
    assert stack.Stack(settings).records() == []
    assert stack.Stack(settings).down() == []


def test_the_passwords_file_keeps_the_admins_and_adds_the_notes_user(tmp_path):
    """The report task signs in as the notes user (role User) to write the run's note: its
    password exists before Airflow starts, and an existing admin password is kept."""
    import stat

    from conveyor.stack import AIRFLOW_USER, NOTES_USER, airflow_passwords

    path = tmp_path / "passwords.json"
    path.write_text(json.dumps({AIRFLOW_USER: "kept"}))
    first = airflow_passwords(path)
    assert first[AIRFLOW_USER] == "kept" and len(first[NOTES_USER]) >= 16
    assert airflow_passwords(path) == first  # idempotent: the same passwords next start
    assert airflow_passwords(path, admin="given")[AIRFLOW_USER] == "given"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
