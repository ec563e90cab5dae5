"""``conveyor new`` gives a use case whose DAG runs green out of the box: scaffolded into this
repository (where the catalog and the Ray cluster find it, as a team's own folder would be),
its one-shot DAG runs with its default Params under ``dag.test()`` against the real local
stack (ingest, validation with its suite, training on Ray, registry, promotion gate, Serve,
smoke test, report), and its endpoint answers. Everything scaffolded is removed afterwards."""

import importlib
import os
import shutil
from pathlib import Path

import httpx
import pytest

from conveyor.scaffold import new_use_case
from pipelines.ray_auth import find_ray_token
from pipelines.serving.admin import ServeAdmin

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def scaffolded(local_stack):
    name = f"scaffolded_{os.getpid()}"
    written = new_use_case(name, root=ROOT)
    importlib.invalidate_caches()  # the catalog lists the new folder in this process too
    folders = {p.parent for p in written}
    try:
        yield name
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        admin = ServeAdmin(local_stack.ray_jobs_address, ray_token=find_ray_token())
        keep = [c for n, c in admin.configs().items() if not n.startswith(name)]
        admin.put(keep, local_stack.host, local_stack.serve_http_port)


def test_a_scaffolded_use_case_runs_its_whole_dag_green_with_its_defaults(
    scaffolded, local_stack, airflow_home
):
    result, stdout, _ = airflow_home.run_dag(
        ROOT / "dags" / "use_cases.py", scaffolded, "2026-11-05T00:00:00+00:00", {}
    )
    assert result["state"] == "success", f"{result}\n{stdout[-6000:]}"
    assert set(result["tasks"].values()) == {"success"}, result

    from pipelines.catalog import learner_of

    learner = learner_of(scaffolded)
    route = "/" + scaffolded.replace("_", "-")
    response = httpx.post(
        f"{local_stack.serve_base_url}{route}/predict",
        json={"records": learner.sample_records},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    normal, risky = (p["fault_probability"] for p in response.json()["predictions"])
    assert response.json()["model_name"] == scaffolded
    assert risky > normal
