"""DataValidationOperator and the Data Docs pages it links to, on real lake partitions."""

import datetime as dt

import pytest
from airflow.sdk.exceptions import AirflowFailException
from fastapi.testclient import TestClient

from conveyor_provider.operators.validation import DataValidationOperator
from pipelines.data import lake
from pipelines.settings import get_settings
from pipelines.usecases.predictive_maintenance.generator import FaultConfig, GeneratorConfig
from pipelines.usecases.predictive_maintenance.ingest import ingest_day

SMALL = GeneratorConfig(machines=3, minutes=120)
GOOD, BAD = dt.date(2026, 11, 1), dt.date(2026, 11, 2)


class TI:
    def __init__(self):
        self.xcom = {}

    def xcom_push(self, key, value):
        self.xcom[key] = value


def _run(tmp_path, dates):
    op = DataValidationOperator(
        task_id="validate",
        dates=dates,
        use_case="predictive_maintenance",
        lake_root=str(tmp_path / "lake"),
        validation_dir=str(tmp_path / "validation"),
    )
    context = {"run_id": "scheduled__2026-11-02", "ti": TI()}
    return op, context


def test_passing_dates_are_returned_and_the_link_points_at_the_run_page(tmp_path):
    ingest_day(GOOD, str(tmp_path / "lake"), generator=SMALL)
    op, context = _run(tmp_path, [GOOD.isoformat()])
    assert op.execute(context) == ["2026-11-01"]
    url = context["ti"].xcom["data_docs_url"]
    assert url.endswith(
        "/conveyor/data-docs/predictive_maintenance/runs/scheduled__2026-11-02.html"
    )
    runs = tmp_path / "validation" / "predictive_maintenance" / "runs"
    assert (runs / "scheduled__2026-11-02.html").exists()


def test_a_critical_failure_fails_the_task_naming_the_day_rule_and_quarantine(tmp_path):
    ingest_day(GOOD, str(tmp_path / "lake"), generator=SMALL)
    ingest_day(BAD, str(tmp_path / "lake"), generator=SMALL, faults=FaultConfig(null_ratio=0.2))
    op, context = _run(tmp_path, [GOOD.isoformat(), BAD.isoformat()])
    with pytest.raises(
        AirflowFailException,
        match=r"2026-11-02: \d+ critical failure\(s\) "
        r"\(completeness\), quarantined at .*_quarantine",
    ):
        op.execute(context)
    assert lake.committed_dates(tmp_path / "lake", table="telemetry") == [GOOD]
    assert "data_docs_url" in context["ti"].xcom  # the link is there for the failed run too


def _docs_client(monkeypatch) -> TestClient:
    """The plugin's Data Docs app, for a user who may read every DAG (who may read what is
    tests/unit/plugins/test_conveyor_plugin_pages.py's)."""
    import conveyor_plugin

    async def admin(request):
        return "admin"

    monkeypatch.setattr(conveyor_plugin, "_user", admin)
    monkeypatch.setattr(conveyor_plugin, "_may_read", lambda user, dag_id: True)
    validation = get_settings().validation_dir
    return TestClient(conveyor_plugin.files_app("docs", validation, conveyor_plugin._use_case_dag))


def test_the_plugin_serves_the_data_docs_pages(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path))
    ingest_day(GOOD, str(tmp_path / "lake"), generator=SMALL)
    op, context = _run(tmp_path, [GOOD.isoformat()])
    op.execute(context)

    client = _docs_client(monkeypatch)
    page = client.get("/predictive_maintenance/runs/scheduled__2026-11-02.html")
    assert page.status_code == 200 and "2026-11-01" in page.text
    docs = client.get("/predictive_maintenance/date=2026-11-01/scheduled__2026-11-02/index.html")
    assert docs.status_code == 200 and "telemetry" in docs.text
    assert client.get("/../../etc/passwd").status_code == 404


def test_a_use_case_s_results_live_in_its_own_folder_and_the_link_and_report_follow(
    tmp_path, monkeypatch
):
    """Scheduled run ids repeat across DAGs: two use cases must never share result folders.
    The link and the run report follow the folder the validate task used."""
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path))
    ingest_day(GOOD, str(tmp_path / "lake"), generator=SMALL)
    op = DataValidationOperator(
        task_id="validate",
        dates=[GOOD.isoformat()],
        use_case="predictive_maintenance",
        lake_root=str(tmp_path / "lake"),
    )
    context = {"run_id": "scheduled__2026-11-02", "ti": TI()}
    assert op.execute(context) == ["2026-11-01"]
    own = tmp_path / "validation" / "predictive_maintenance"
    assert context["ti"].xcom["validation_dir"] == str(own)
    assert (own / "runs" / "scheduled__2026-11-02.html").exists()
    assert (own / "date=2026-11-01" / "latest.json").exists()
    assert not (tmp_path / "validation" / "runs").exists()
    url = context["ti"].xcom["data_docs_url"]
    assert url.endswith(
        "/conveyor/data-docs/predictive_maintenance/runs/scheduled__2026-11-02.html"
    )

    client = _docs_client(monkeypatch)
    assert client.get("/predictive_maintenance/runs/scheduled__2026-11-02.html").status_code == 200
