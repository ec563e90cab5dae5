"""Defaults every Conveyor DAG shares."""

from datetime import timedelta

import pendulum

RETRIES = {"retries": 2, "retry_delay": timedelta(seconds=10), "retry_exponential_backoff": True}
"""Tasks are idempotent, so a transient failure (a busy cluster, a dropped connection) is
retried with backoff."""

START_DATE = pendulum.datetime(2026, 11, 1, tz="UTC")
