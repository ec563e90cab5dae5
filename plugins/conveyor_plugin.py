"""Airflow plugin: serves validation pages (GX Data Docs) and run reports from the api-server,
behind Airflow's own login.

Mounted at ``/conveyor/data-docs`` (Conveyor's validation directory) and ``/conveyor/reports``
(``CONVEYOR_HOME/reports``); the validate task's "Data Docs" button and the report task's
"Run report" button point here, and ``/conveyor/reports/`` lists the runs. A plugin app
inherits none of the core API's authentication, so each request is checked here with the
auth manager Airflow runs (its session cookie or a ``Bearer`` JWT, as the REST API takes):
none or an invalid one is 401/403, and a page of a DAG the user may not read is 403. A
report belongs to its DAG (``<dag_id>/<run_id>/``); a use case's validation pages to its run
DAG (``<use case>/...``). The index lists only the runs of DAGs the user may read.
"""

from pathlib import Path

from airflow.plugins_manager import AirflowPlugin

from conveyor_provider.links.data_docs import DATA_DOCS_PREFIX, DataDocsLink
from conveyor_provider.links.ray_job import RayJobLink
from conveyor_provider.links.report import REPORTS_PREFIX, RunReportLink


async def _user(request):
    """The request's Airflow user (JWT from the ``Authorization`` header, else the UI's
    session cookie), as the core API's ``get_user`` dependency finds it; 401/403 otherwise."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    return await get_user(request, None, await bearer_scheme(request))


def _may_read(user, dag_id: str) -> bool:
    """The auth manager's verdict on reading DAG ``dag_id``, as ``requires_access_dag`` asks."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.models.dag import DagModel

    details = DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id))
    return get_auth_manager().is_authorized_dag(method="GET", details=details, user=user)


def _file(directory: Path, path: str) -> Path | None:
    """``path`` under ``directory`` (a folder means its ``index.html``), or None when it is not
    a file there; never a path outside ``directory``."""
    root = directory.resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root):
        return None
    if target.is_dir():
        target = target / "index.html"
    return target if target.is_file() else None


def files_app(title: str, directory, dag_of, index=None):
    """A FastAPI app serving ``directory``'s files to users who may read the DAG that
    ``dag_of(first path segment)`` names (None: no such page, 404); ``index(user)`` renders
    the top-level page when given."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import FileResponse, HTMLResponse
    from starlette.concurrency import run_in_threadpool

    # No ``from __future__ import annotations`` in this module: FastAPI reads the route's
    # annotations (``Request``, imported here) at definition time.
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    folder = Path(directory)

    @app.get("/{path:path}")
    async def page(path: str, request: Request):
        user = await _user(request)
        head = path.strip("/").split("/", 1)[0]
        if not head:
            if index is None:
                raise HTTPException(status_code=404, detail="no page here")
            return HTMLResponse(await run_in_threadpool(index, user))
        dag_id = dag_of(head)
        found = _file(folder, path) if dag_id else None
        if found is None:
            raise HTTPException(status_code=404, detail=f"no page {path}")
        if not await run_in_threadpool(_may_read, user, dag_id):
            raise HTTPException(status_code=403, detail=f"no read access to DAG {dag_id}")
        return FileResponse(found)

    return app


def _reports_index(user) -> str:
    from pipelines.report import read_summaries, render_index

    runs = read_summaries(_settings().reports_dir)
    readable = {dag_id for dag_id in {r["dag_id"] for r in runs} if _may_read(user, dag_id)}
    return render_index([r for r in runs if r["dag_id"] in readable])


def _report_dag(segment: str) -> str:
    """A report's folder is named after its DAG (``pipelines.report.report_dir``)."""
    return segment


def _use_case_dag(segment: str) -> str | None:
    """A use case's validation pages belong to its run DAG."""
    from pipelines.catalog import get_use_case

    try:
        return get_use_case(segment).run_dag_id
    except ValueError:  # UseCaseError: no such use case
        return None


def _settings():
    from pipelines.settings import get_settings

    return get_settings()


class ConveyorPlugin(AirflowPlugin):
    name = "conveyor"
    fastapi_apps = [
        {
            "app": files_app("Conveyor data docs", _settings().validation_dir, _use_case_dag),
            "url_prefix": DATA_DOCS_PREFIX,
            "name": "Conveyor data docs",
        },
        {
            "app": files_app(
                "Conveyor run reports", _settings().reports_dir, _report_dag, _reports_index
            ),
            "url_prefix": REPORTS_PREFIX,
            "name": "Conveyor run reports",
        },
    ]
    operator_extra_links = [RayJobLink(), DataDocsLink(), RunReportLink()]
