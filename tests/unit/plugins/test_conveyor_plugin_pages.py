"""The plugin's pages answer only users who may read the DAG a page belongs to, never serve a
file outside their folder, and list only readable runs in the reports index.

Airflow's auth manager is replaced here by two stand-ins (who the request is, what a user
may read): it needs a running api-server. ``tests/e2e/test_real_stack.py`` checks the same
pages against the real one (no token 401, a user without access 403, the admin 200)."""

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from pipelines.report import write_run_report

READABLE = {"predictive_maintenance"}


@pytest.fixture
def reports(tmp_path, monkeypatch):
    import airflow.settings  # noqa: F401  (it puts the plugins folder on sys.path)
    import conveyor_plugin

    async def user(request):
        if request.headers.get("authorization") != "Bearer good":
            raise HTTPException(status_code=401, detail="Not authenticated")
        return "alice"

    monkeypatch.setattr(conveyor_plugin, "_user", user)
    monkeypatch.setattr(conveyor_plugin, "_may_read", lambda user, dag_id: dag_id in READABLE)
    root = tmp_path / "reports"
    for dag_id in ("predictive_maintenance", "secret_dag"):
        write_run_report(
            root,
            dag_id=dag_id,
            run_id="manual__1",
            lake_root=str(tmp_path / "lake"),
            table="telemetry",
            validation_dir=tmp_path / "validation",
            tasks={"ingest": "success"},
            dates=[],
            train=None,
            registered=None,
            served_version=None,
            rollout=None,
        )
    (tmp_path / "outside.html").write_text("not a report")
    monkeypatch.setattr(conveyor_plugin, "_settings", lambda: type("S", (), {"reports_dir": root}))
    app = conveyor_plugin.files_app(
        "reports", root, conveyor_plugin._report_dag, conveyor_plugin._reports_index
    )
    return TestClient(app)


GOOD = {"Authorization": "Bearer good"}


def test_no_credentials_is_401_and_another_dags_report_is_403(reports):
    assert reports.get("/predictive_maintenance/manual__1/index.html").status_code == 401
    assert reports.get("/", headers={"Authorization": "Bearer bad"}).status_code == 401
    page = reports.get("/predictive_maintenance/manual__1/index.html", headers=GOOD)
    assert page.status_code == 200 and "manual__1" in page.text
    assert reports.get("/predictive_maintenance/manual__1/", headers=GOOD).status_code == 200
    refused = reports.get("/secret_dag/manual__1/index.html", headers=GOOD)
    assert refused.status_code == 403 and "secret_dag" in refused.json()["detail"]


def test_the_index_lists_only_readable_runs(reports):
    index = reports.get("/", headers=GOOD)
    assert index.status_code == 200
    assert "predictive_maintenance/manual__1/index.html" in index.text
    assert "secret_dag" not in index.text


def test_nothing_outside_the_folder_and_nothing_missing_is_served(reports):
    for path in ("/predictive_maintenance/../../outside.html", "/predictive_maintenance/x.html"):
        assert reports.get(path, headers=GOOD).status_code == 404, path
    assert reports.get("/%2e%2e/outside.html", headers=GOOD).status_code == 404
