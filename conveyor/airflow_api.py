"""A small client for Airflow 3's REST API, as a user's script would call it."""

from __future__ import annotations

import httpx


class AirflowAPI:
    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._token: str | None = None

    def token(self) -> str:
        """``POST /auth/token`` exchanges the user's credentials for a JWT."""
        if self._token is None:
            response = self._http.post("/auth/token", json=self._credentials)
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token()}"}
        response = self._http.request(method, f"/api/v2{path}", headers=headers, **kwargs)
        response.raise_for_status()
        return response

    def dag(self, dag_id: str) -> dict:
        return self._call("GET", f"/dags/{dag_id}").json()

    def unpause(self, dag_id: str) -> None:
        self._call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(
        self,
        dag_id: str,
        logical_date: str | None,
        conf: dict,
        run_id: str | None = None,
        partition_key: str | None = None,
    ) -> dict:
        body = {"logical_date": logical_date, "conf": conf}
        if run_id:
            body["dag_run_id"] = run_id
        if partition_key:
            body["partition_key"] = partition_key
        return self._call("POST", f"/dags/{dag_id}/dagRuns", json=body).json()

    def backfill(self, dag_id: str, from_date: str, to_date: str, conf: dict, **options) -> dict:
        """``POST /backfills``: one run per schedule tick (per partition) in the range."""
        body = {"dag_id": dag_id, "from_date": from_date, "to_date": to_date}
        body.update(dag_run_conf=conf, **options)
        return self._call("POST", "/backfills", json=body).json()

    def runs(self, dag_id: str) -> list[dict]:
        return self._call("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100}).json()[
            "dag_runs"
        ]

    def run(self, dag_id: str, run_id: str) -> dict:
        return self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}").json()

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        return self._call("GET", path).json()["task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """Each task of the run and its state (None before it is scheduled)."""
        return {ti["task_id"]: ti["state"] for ti in self.task_instances(dag_id, run_id)}

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str) -> None:
        """The UI's "Mark as failed / success / skipped" on one task instance."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        self._call("PATCH", path, json={"new_state": state})

    def clear_task(self, dag_id: str, run_id: str, task_id: str) -> None:
        """The UI's "Clear" on one task instance, whatever its state: it runs again."""
        body = {"dry_run": False, "dag_run_id": run_id, "task_ids": [task_id], "only_failed": False}
        self._call("POST", f"/dags/{dag_id}/clearTaskInstances", json=body)

    def set_run_state(self, dag_id: str, run_id: str, state: str) -> None:
        """The UI's "Mark run as failed / success / queued"."""
        self._call("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}", json={"state": state})

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value"):
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self._call("GET", path, params={"deserialize": True}).json()["value"]

    def close(self) -> None:
        self._http.close()
