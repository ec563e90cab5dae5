"""Airflow plugin: serves validation pages (GX Data Docs) from the api-server.

Mounted at ``/conveyor/data-docs``; the validate task's "Data Docs" link points here. The
directory is Conveyor's validation directory (``CONVEYOR_HOME/validation``). Like other plugin
apps it is not behind Airflow's login: put the api-server behind your proxy's auth if the
result samples are sensitive.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from conveyor_provider.links.data_docs import DATA_DOCS_PREFIX, DataDocsLink
from conveyor_provider.links.ray_job import RayJobLink


def data_docs_app():
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles

    from pipelines.settings import get_settings

    app = FastAPI(title="Conveyor data docs")
    directory = get_settings().validation_dir
    app.mount("/", StaticFiles(directory=directory, html=True, check_dir=False), name="docs")
    return app


class ConveyorPlugin(AirflowPlugin):
    name = "conveyor"
    fastapi_apps = [
        {
            "app": data_docs_app(),
            "url_prefix": DATA_DOCS_PREFIX,
            "name": "Conveyor data docs",
        }
    ]
    operator_extra_links = [RayJobLink(), DataDocsLink()]
