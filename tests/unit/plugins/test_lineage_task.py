"""A TaskFlow task reports its datasets through ``lineage_task``; a plain ``@task`` cannot,
and says so instead of silently emitting events without lineage."""

import airflow.sdk
import pytest
from airflow.sdk import DAG, task

from conveyor_provider.lineage import lineage_task, report_lineage
from pipelines.lineage import DatasetRef, Lineage


def _operator(decorator):
    def ingest():
        return None

    with DAG("lineage_unit", schedule=None):
        return decorator(ingest)().operator


def test_a_lineage_task_hands_what_it_reported_to_openlineage(monkeypatch):
    op = _operator(lineage_task)
    monkeypatch.setattr(airflow.sdk, "get_current_context", lambda: {"task": op})
    report_lineage(Lineage(outputs=(DatasetRef("file", "/lake/t/date=2026-11-01"),)))
    facets = op.get_openlineage_facets_on_complete(task_instance=None)
    assert [(d.namespace, d.name) for d in facets.outputs] == [("file", "/lake/t/date=2026-11-01")]
    assert facets.inputs == []


def test_a_plain_task_cannot_report_lineage(monkeypatch):
    op = _operator(task)
    monkeypatch.setattr(airflow.sdk, "get_current_context", lambda: {"task": op})
    with pytest.raises(TypeError, match="cannot report lineage: build it with lineage_task"):
        report_lineage(Lineage())
