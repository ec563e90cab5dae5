"""Writing Serve's config (``pipelines.serving.admin``) without a cluster: Serve's PUT replaces
every application, so a rollout must put ours into what is live at that moment, and never put
back another use case's applications as an earlier read saw them."""

import copy
import json
import threading
import time

import httpx
import pytest

from pipelines.serving.admin import ServeAdmin, merge_ours


def _owns(name: str) -> bool:
    return name == "pm" or name.startswith("pm--")


def _app(name: str, version: str) -> dict:
    return {"name": name, "args": {}, "deployments": [{"name": "P", "user_config": version}]}


class FakeServe:
    """The dashboard's ``/api/serve/applications/`` as far as rollouts use it: GET reports the
    config of every application, PUT replaces them all. ``read_delay`` widens the window
    between a writer's read and its put, where another writer could slip in."""

    def __init__(self, apps: dict[str, dict], read_delay: float = 0.0):
        self.apps, self.read_delay = apps, read_delay
        self.log: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        who = threading.current_thread().name
        if request.method == "GET":
            with self._lock:
                self.log.append(("GET", who))
                apps = copy.deepcopy(self.apps)
            time.sleep(self.read_delay)
            entries = {n: {"status": "RUNNING", "deployed_app_config": c} for n, c in apps.items()}
            return httpx.Response(200, json={"applications": entries})
        with self._lock:
            self.log.append(("PUT", who))
            self.apps = {a["name"]: a for a in json.loads(request.content)["applications"]}
        return httpx.Response(200)

    def admin(self) -> ServeAdmin:
        return ServeAdmin(
            "http://ray:8265", client=httpx.Client(transport=httpx.MockTransport(self))
        )


def test_ours_come_from_the_new_config_and_every_other_application_as_live():
    live = {"pm": _app("pm", "1"), "pm--slot0": _app("pm--slot0", "1"), "cr": _app("cr", "7")}
    ours = {"pm": _app("pm", "2"), "pm--slot1": _app("pm--slot1", "2")}
    merged = {a["name"]: a for a in merge_ours(live, ours, _owns)}
    # cr exactly as live; pm replaced; pm--slot0, live but not in ours, left out so Serve
    # removes it; pm--slot1 added.
    assert merged == {"cr": live["cr"], "pm": ours["pm"], "pm--slot1": ours["pm--slot1"]}


def test_a_name_that_only_starts_like_ours_is_someone_elses():
    live = {"pm": _app("pm", "1"), "pm-eu": _app("pm-eu", "4")}
    assert merge_ours(live, {}, _owns) == [live["pm-eu"]]  # putting nothing removes only ours


def test_putting_another_use_cases_application_is_refused():
    with pytest.raises(ValueError, match="not our applications.*cr"):
        merge_ours({}, {"cr": _app("cr", "1")}, _owns)


def test_a_write_keeps_what_another_rollout_put_after_our_first_read():
    serve = FakeServe({"pm": _app("pm", "1"), "cr": _app("cr", "1")})
    admin = serve.admin()
    before = admin.configs()  # a rollout's first read, at its start
    serve.apps["cr"] = _app("cr", "2")  # another use case's rollout finishes meanwhile
    ours = {n: c for n, c in before.items() if _owns(n)}  # e.g. a restore to our before-state
    admin.replace(ours, _owns, "127.0.0.1", 8000)
    assert serve.apps == {"pm": _app("pm", "1"), "cr": _app("cr", "2")}


def test_two_rollouts_in_one_process_never_interleave_their_read_and_put():
    serve = FakeServe({"pm": _app("pm", "1"), "cr": _app("cr", "1")}, read_delay=0.2)
    start = threading.Barrier(2)

    def write(name: str, owns) -> None:
        start.wait()
        serve.admin().replace({name: _app(name, "2")}, owns, "127.0.0.1", 8000)

    threads = [
        threading.Thread(target=write, args=("pm", _owns), name="pm"),
        threading.Thread(target=write, args=("cr", lambda n: n == "cr"), name="cr"),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert serve.apps == {"pm": _app("pm", "2"), "cr": _app("cr", "2")}
    # Each read is followed by its own put before the other writer reads.
    pairs = [serve.log[i : i + 2] for i in range(0, len(serve.log), 2)]
    assert all(p[0] == ("GET", p[1][1]) and p[1][0] == "PUT" for p in pairs), serve.log
