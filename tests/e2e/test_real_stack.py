"""Airflow as on a server, for real: a PostgreSQL metadata DB, LocalExecutor, and the
api-server, scheduler, dag-processor and triggerer as separate processes, next to the test
Ray head and MLflow. The pipeline is triggered through the REST API (JWT from
``POST /auth/token``), the scheduler and then the triggerer are SIGKILLed while training runs
and restarted, and the run must still succeed with no task attempted twice and one Ray job;
the UI's mark-failed and clear stop the deferred training's Ray job.

Needs PostgreSQL (``tests.services``: the machine's trust-auth server on 127.0.0.1:5432
unless ``CONVEYOR_TEST_PG_URI`` says otherwise); the module creates its own database and
drops it afterwards.
"""

import datetime as dt
import json
import os
import re
import secrets
import signal
import time
import uuid
from urllib.parse import urljoin

import httpx
import pytest

from conveyor.airflow_api import AirflowAPI
from conveyor.processes import wait_until
from conveyor.stack import AIRFLOW_USER
from pipelines.data import lake
from pipelines.ray_auth import find_ray_token
from pipelines.ray_jobs_client import TERMINAL, submission_id_for
from pipelines.usecases.predictive_maintenance.learner import SAMPLE_RECORDS
from tests.airflow_server import airflow_server
from tests.services import unavailable

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DAG_ID = "predictive_maintenance"
CANARY = f"canary-{secrets.token_hex(12)}"


@pytest.fixture(scope="module")
def server_airflow(local_stack, tmp_path_factory):
    """The four Airflow components as separate processes, shared by this module's tests.
    That Ray password and a canary secret header are sent on every Ray call and must never
    show up where a user or an operator could read it."""
    home = tmp_path_factory.mktemp("real-stack") / "home"
    headers = {"X-Conveyor-Canary": CANARY}
    with airflow_server(local_stack, home, "pm-real-stack", ray_headers=headers) as server:
        yield server


def _states(api: AirflowAPI, run_id: str) -> dict[str, dict]:
    return {ti["task_id"]: ti for ti in api.task_instances(DAG_ID, run_id)}


def test_rest_triggered_run_survives_a_killed_scheduler(server_airflow):
    settings, env, password = server_airflow.settings, server_airflow.env, server_airflow.password
    url = settings.airflow_base_url

    # No token, no API.
    assert httpx.get(f"{url}/api/v2/dags", timeout=30).status_code == 401
    api = AirflowAPI(url, AIRFLOW_USER, password)
    wait_until(lambda: api.dag(DAG_ID)["is_paused"] is False, "DAG parsed and unpaused", 180)

    run_id = f"rest-{uuid.uuid4().hex[:8]}"
    conf = {
        "days": 1,
        "machines": 10,
        "epochs": 8,  # long enough for both kills to land while the job runs
        "num_workers": 1,
        "min_f1": 0.0,
    }
    now = dt.datetime.now(dt.UTC).isoformat()
    created = api.trigger(DAG_ID, now, conf, run_id=run_id)
    assert created["dag_run_id"] == run_id and created["conf"] == conf
    # The same dag_run_id again: refused with 409, and still one run.
    again = httpx.post(
        f"{url}/api/v2/dags/{DAG_ID}/dagRuns",
        json={"dag_run_id": run_id, "logical_date": None, "conf": conf},
        headers={"Authorization": f"Bearer {api.token()}"},
        timeout=30,
    )
    assert again.status_code == 409, again.text
    assert [r["dag_run_id"] for r in api.runs(DAG_ID)].count(run_id) == 1

    # While training runs on Ray, the scheduler dies hard.
    jobs = server_airflow.ray_jobs()
    train_job = submission_id_for(DAG_ID, run_id, "train")
    wait_until(lambda: jobs.job_status(train_job) == "RUNNING", "training running on Ray", 300)
    scheduler = server_airflow.records["scheduler"].pid
    os.kill(scheduler, signal.SIGKILL)  # the scheduler only: its LocalExecutor workers go on
    server_airflow.killed.append(scheduler)  # what it left is killed at the end
    assert jobs.job_status(train_job) == "RUNNING", "the kill landed after training ended"
    time.sleep(3)
    server_airflow.restart("scheduler")

    # Then, with the training deferred to the triggerer, the triggerer dies hard too: a new
    # one takes over the trigger (no task is retried for it) and still waits for the same job.
    wait_until(lambda: _states(api, run_id)["train"]["state"] == "deferred", "train deferred", 300)
    server_airflow.kill("triggerer")
    assert jobs.job_status(train_job) == "RUNNING", "the triggerer kill landed after training"
    server_airflow.restart("triggerer")

    wait_until(
        lambda: api.run(DAG_ID, run_id)["state"] in ("success", "failed"), "run finished", 600
    )
    states = _states(api, run_id)
    assert api.run(DAG_ID, run_id)["state"] == "success", {t: s["state"] for t, s in states.items()}
    assert {t: s["state"] for t, s in states.items()} == {
        "ingest": "success",
        "validate": "success",
        "plan": "success",
        "train": "success",
        "register": "success",
        "promote": "success",
        "deploy": "success",
        "smoke_test": "success",
        "report": "success",
    }
    # No task was attempted twice: the killed scheduler's work was not rerun beside itself,
    # and the training it was watching ran as one Ray job.
    assert {t: s["try_number"] for t, s in states.items() if s["state"] == "success"} == {
        t: 1 for t, s in states.items() if s["state"] == "success"
    }
    attempts = [j.submission_id for j in jobs.client.list_jobs()]
    assert [j for j in attempts if (j or "").startswith(train_job)] == [train_job]
    _assert_canary_never_leaked(settings, api, run_id, states)
    # The outcome is the run's note (the grid shows it), written by the report task.
    # Its version is the champion, or, when another test of this module trained the model
    # first (random order), the note says why it is not: either way, this run's version.
    from mlflow.tracking import MlflowClient

    versions = MlflowClient(settings.tracking_uri).search_model_versions(
        f"name = '{settings.model_name}'"
    )
    mine = [v for v in versions if v.tags.get("dag_run_id") == run_id]
    assert len(mine) == 1, [v.version for v in mine]
    v = mine[0].version
    note = api.run(DAG_ID, run_id)["note"]
    assert note.startswith(
        (f"serving version {v}: v{v} is the new champion", f"not promoted: v{v} stays challenger")
    ), note

    # The task buttons point where the tasks said: the Data Docs page, the Ray job, the report.
    def links(task_id: str) -> dict:
        path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/links"
        return api._call("GET", path).json()["extra_links"]

    assert "/#/jobs/" in links("train")["Ray job"]
    for task_id, name in (("validate", "Data Docs"), ("report", "Run report")):
        page = httpx.get(
            urljoin(f"{url}/", links(task_id)[name]),
            headers={"Authorization": f"Bearer {api.token()}"},
            timeout=30,
        )
        assert page.status_code == 200 and run_id in page.text, (name, page.status_code)
    _assert_pages_need_read_access(url, env, api, links("report")["Run report"], run_id)
    api.close()


def _token_of_a_user_who_may_read_nothing(jwt_secret: str) -> str:
    """A JWT the api-server accepts (signed with its secret, its audience) for a user with no
    role: authenticated, but the auth manager grants no DAG to it."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import BaseAuthManager
    from airflow.api_fastapi.auth.tokens import JWTGenerator

    signer = JWTGenerator(
        secret_key=jwt_secret, valid_for=600, audience=BaseAuthManager._get_jwt_audience()
    )
    return signer.generate({"sub": "outsider", "role": None})


def _assert_pages_need_read_access(url: str, env: dict, api, report: str, run_id: str) -> None:
    """The plugin's pages (a run report, the reports index) are behind Airflow's login: no
    credentials 401, a user who may read no DAG 403 (and an index without the run), the admin
    200 with the run listed."""
    report_url = urljoin(f"{url}/", report)
    index_url = f"{url}/conveyor/reports/"
    assert httpx.get(report_url, timeout=30).status_code == 401
    assert httpx.get(index_url, timeout=30).status_code == 401
    outsider = {
        "Authorization": "Bearer "
        + _token_of_a_user_who_may_read_nothing(env["AIRFLOW__API_AUTH__JWT_SECRET"])
    }
    refused = httpx.get(report_url, headers=outsider, timeout=30)
    assert refused.status_code == 403, refused.text
    assert run_id not in httpx.get(index_url, headers=outsider, timeout=30).text
    admin = {"Authorization": f"Bearer {api.token()}"}
    index = httpx.get(index_url, headers=admin, timeout=30)
    assert index.status_code == 200 and run_id in index.text


def _assert_canary_never_leaked(settings, api: AirflowAPI, run_id: str, states: dict) -> None:
    """Task logs, component logs, XComs, MLflow params and tags, and serving answers hold
    neither the canary header nor the Ray auth token."""
    from mlflow.tracking import MlflowClient

    token = find_ray_token()
    assert token, "the session's Ray head runs with token authentication"
    for path in settings.home_dir.rglob("*.log"):
        text = path.read_text(errors="replace")
        assert CANARY not in text, f"canary in {path}"
        assert token not in text, f"the Ray auth token in {path}"
    for task_id in states:
        entries = api._call(
            "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries"
        ).json()["xcom_entries"]
        for entry in entries:
            value = api.xcom(DAG_ID, run_id, task_id, entry["key"])
            text = json.dumps(value, default=str)
            assert CANARY not in text and token not in text, f"a secret in {task_id} XCom"
    client = MlflowClient(settings.tracking_uri)
    for version in client.search_model_versions(f"name = '{settings.model_name}'"):
        run = client.get_run(version.run_id)
        assert CANARY not in json.dumps([run.data.params, run.data.tags, dict(version.tags)])
    endpoint = settings.serve_endpoint
    for answer in (
        httpx.post(f"{endpoint}/predict", json={"records": SAMPLE_RECORDS}, timeout=30),
        httpx.get(f"{endpoint}/metadata", timeout=30),
        httpx.get(f"{endpoint}/healthz", timeout=30),
    ):
        assert answer.status_code == 200 and CANARY not in answer.text


STOP_WITHIN_S = 10.0
"""How soon a user's action on a deferred training task must stop its Ray job."""


def test_failing_clearing_or_failing_the_run_stops_the_deferred_training_job(server_airflow):
    """What the UI's buttons do to a training task deferred to the triggerer, through the REST
    API they call: the triggerer cancels the trigger as a user action and its on_kill stops the
    Ray job, within STOP_WITHIN_S each time. Mark failed, then clear (the task runs again as a
    new attempt, which is not the stopped job reattached), then mark the whole run failed."""
    api, jobs = server_airflow.api(), server_airflow.ray_jobs()
    wait_until(lambda: api.dag(DAG_ID)["is_paused"] is False, "DAG parsed and unpaused", 180)
    run_id = f"cancel-{uuid.uuid4().hex[:8]}"
    base = submission_id_for(DAG_ID, run_id, "train")
    conf = {"days": 1, "machines": 10, "epochs": 200, "num_workers": 1, "min_f1": 0.0}
    api.trigger(DAG_ID, dt.datetime.now(dt.UTC).isoformat(), conf, run_id=run_id)

    def deferred_on(job: str) -> None:
        wait_until(
            lambda: (
                jobs.job_status(job) == "RUNNING"
                and _states(api, run_id)["train"]["state"] == "deferred"
            ),
            f"train deferred on Ray job {job}",
            300,
        )

    def ours() -> list:
        return [j for j in jobs.client.list_jobs() if (j.submission_id or "").startswith(base)]

    def seconds_to_stop(job: str, action) -> float:
        started = time.monotonic()
        action()
        wait_until(lambda: jobs.job_status(job) in TERMINAL, f"Ray job {job} ended", 60)
        assert jobs.job_status(job) == "STOPPED", jobs.job_status(job)
        return time.monotonic() - started

    try:
        deferred_on(base)
        marked = seconds_to_stop(
            base, lambda: api.set_task_state(DAG_ID, run_id, "train", "failed")
        )
        api.clear_task(DAG_ID, run_id, "train")  # run it again: a new attempt, not the stopped one
        deferred_on(f"{base}-r1")
        cleared = seconds_to_stop(f"{base}-r1", lambda: api.clear_task(DAG_ID, run_id, "train"))
        deferred_on(f"{base}-r2")
        run_failed = seconds_to_stop(
            f"{base}-r2", lambda: api.set_run_state(DAG_ID, run_id, "failed")
        )
        print(
            f"stopped after: mark failed {marked:.1f}s, clear {cleared:.1f}s, run failed"
            f" {run_failed:.1f}s"
        )
        assert max(marked, cleared, run_failed) <= STOP_WITHIN_S, (marked, cleared, run_failed)
        assert sorted(j.submission_id for j in ours()) == [base, f"{base}-r1", f"{base}-r2"]
    finally:
        for job in ours():
            if job.status.value not in TERMINAL:
                jobs.client.stop_job(job.submission_id)
        api.close()


def test_a_run_triggered_from_the_ui_form_succeeds(server_airflow):
    """Headless Chromium (the OS package, driven by Playwright) logs in, opens the DAG, fills
    the trigger form's typed fields, triggers, and sees the run succeed in the UI."""
    import shutil

    from playwright.sync_api import expect, sync_playwright

    settings, password = server_airflow.settings, server_airflow.password
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        unavailable("no system Chromium: run `make system-deps` (apt-get install chromium)")
    url = settings.airflow_base_url
    api = AirflowAPI(url, AIRFLOW_USER, password)
    wait_until(lambda: api.dag(DAG_ID)["is_paused"] is False, "DAG parsed and unpaused", 180)

    def run_ids() -> set[str]:
        return {r["dag_run_id"] for r in api.runs(DAG_ID)}

    before = run_ids()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.get_by_label("Username").fill(AIRFLOW_USER)
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            # Logged in once the app has left the login page (its own URL matches url/**).
            page.wait_for_url(lambda address: "/auth/login" not in address, timeout=60_000)
            page.goto(f"{url}/dags/{DAG_ID}")
            trigger = page.get_by_role("button", name="Trigger").first
            expect(trigger).to_be_visible(timeout=60_000)
            trigger.click()
            form = page.get_by_role("dialog")
            form.get_by_label("Machines").fill("10")
            form.get_by_label("Epochs").fill("1")
            form.get_by_label("Ray Train workers").fill("1")
            form.get_by_label("Quality bar (holdout F1)").fill("0")
            _shoot(page, "trigger-form")
            form.get_by_role("button", name="Trigger").click()
            # The run appears (the confirmation toast is transient, so the API is the check).
            wait_until(lambda: len(run_ids() - before) == 1, "the UI-triggered run", 60)
            (run_id,) = run_ids() - before

            run = api.run(DAG_ID, run_id)  # the form's values arrived as typed conf
            assert run["conf"]["epochs"] == 1 and run["conf"]["machines"] == 10
            wait_until(
                lambda: api.run(DAG_ID, run_id)["state"] in ("success", "failed"),
                "UI-triggered run finished",
                600,
            )
            page.goto(f"{url}/dags/{DAG_ID}/runs/{run_id}")
            expect(page.get_by_text(run_id).first).to_be_visible()
            expect(page.get_by_text("success", exact=False).first).to_be_visible()
            _shoot(page, "grid")

            # The reports index, then this run's report, in the same logged-in browser (the
            # plugin takes the UI's session cookie).
            page.goto(f"{url}/conveyor/reports/")
            page.get_by_role("link", name=run_id).click()
            # Whether this run's model beat the first test's champion is up to the data; the
            # report says which, first, and the gate row says why.
            expect(page.locator("#verdict")).to_contain_text(
                re.compile("serving version|not promoted")
            )
            expect(page.locator("#summary")).to_contain_text(re.compile("champion"))
            assert page.locator("figure img").count() >= 3  # loss, PR and ROC curves, matrix
            expect(page.get_by_role("link", name="Data Docs (validation)")).to_be_visible()
            expect(page.get_by_role("link", name="MLflow run")).to_be_visible()
            expect(page.get_by_role("link", name="Endpoint (OpenAPI)")).to_be_visible()
            _shoot(page, "report")
            page.goto(f"{url}/conveyor/reports/")
            _shoot(page, "reports-index")
        finally:
            browser.close()
    assert api.run(DAG_ID, run_id)["state"] == "success"
    api.close()


def _shoot(page, name: str) -> None:
    """A full-page screenshot into ``CONVEYOR_SCREENSHOTS`` when set (the README's
    docs/screenshots/ are made this way); nothing otherwise."""
    folder = os.environ.get("CONVEYOR_SCREENSHOTS")
    if folder:
        page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)


WEEK = [f"2026-11-0{d}" for d in range(2, 9)]  # Monday 2 to Sunday 8 November: ISO week 45


def test_a_backfilled_week_makes_seven_partitions_and_one_training(server_airflow):
    """Data-aware scheduling for real: a 7-day backfill of telemetry_daily gives 7 validated
    partitions, and model_training (scheduled on the validated-data asset, rolled up by week)
    runs exactly once, on those 7 days. Triggering that week again reuses the trained version
    instead of training twice."""
    settings, password = server_airflow.settings, server_airflow.password
    api = AirflowAPI(settings.airflow_base_url, AIRFLOW_USER, password)
    for dag_id in ("telemetry_daily", "model_training"):
        wait_until(lambda d=dag_id: _parsed(api, d), f"{dag_id} parsed", 180)
        api.unpause(dag_id)

    api.backfill(
        "telemetry_daily",
        f"{WEEK[0]}T00:00:00Z",
        f"{WEEK[-1]}T00:00:00Z",
        {"machines": 8},
        max_active_runs=2,
    )

    def daily_runs() -> list[dict]:
        runs = api.runs("telemetry_daily")
        return [r for r in runs if r["run_type"] == "backfill"]

    wait_until(
        lambda: (
            len(daily_runs()) == 7
            and all(r["state"] in ("success", "failed") for r in daily_runs())
        ),
        "the 7 backfilled days",
        600,
    )
    daily = daily_runs()
    assert sorted(r["partition_key"][:10] for r in daily) == WEEK
    assert {r["state"] for r in daily} == {"success"}, [
        (r["partition_key"], r["state"]) for r in daily
    ]
    committed = {d.isoformat() for d in lake.committed_dates(settings.lake, table="telemetry")}
    assert set(WEEK) <= committed

    def training_runs() -> list[dict]:
        return api.runs("model_training")

    wait_until(
        lambda: training_runs() and training_runs()[0]["state"] in ("success", "failed"),
        "the week's training run",
        900,
    )
    (training,) = training_runs()  # the asset policy: one training per complete week
    states = api.task_states("model_training", training["dag_run_id"])
    assert training["state"] == "success", states
    assert training["partition_key"].startswith("2026-11-02")
    assert api.xcom("model_training", training["dag_run_id"], "partitions") == WEEK
    assert states["train"] == "success"
    trained = api.xcom("model_training", training["dag_run_id"], "register")

    # The same week again, by hand: same partitions, same hyperparameters, no second training.
    again = api.trigger(
        "model_training",
        None,
        {},
        run_id=f"again-{uuid.uuid4().hex[:6]}",
        partition_key=training["partition_key"],
    )
    wait_until(
        lambda: api.run("model_training", again["dag_run_id"])["state"] in ("success", "failed"),
        "the repeated week",
        600,
    )
    states = api.task_states("model_training", again["dag_run_id"])
    assert api.run("model_training", again["dag_run_id"])["state"] == "success", states
    assert states["plan"] == "success" and states["train"] == "skipped", states
    reused = api.xcom("model_training", again["dag_run_id"], "register")
    assert reused["version"] == trained["version"]
    assert len(training_runs()) == 2
    api.close()


def _parsed(api: AirflowAPI, dag_id: str) -> bool:
    try:
        api.dag(dag_id)
    except httpx.HTTPStatusError:
        return False
    return True
