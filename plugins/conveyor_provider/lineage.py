"""OpenLineage for Conveyor's tasks: what each one read and wrote, as run events.

Airflow's OpenLineage provider (``apache-airflow-providers-openlineage``) listens to every
task and asks the operator for its datasets through ``get_openlineage_facets_on_complete``
(and ``..._on_failure``). Conveyor's operators learn their datasets while they run (the days
ingested, the partitions a Ray job read, the version deployed), so they keep a
``pipelines.lineage.Lineage`` on the task object and these methods hand it over. A TaskFlow
task gets the same through ``lineage_task`` (``@task`` plus the methods) and
``report_lineage`` inside its body.

Nothing is sent unless a transport is configured (``[openlineage] transport``, or
``AIRFLOW__OPENLINEAGE__TRANSPORT``): the provider turns itself off without one, so the
embedded demo pays nothing for it. The ``openlineage`` imports are inside the methods: the
listener calls them only when it is on.
"""

from __future__ import annotations

from airflow.providers.standard.decorators.python import _PythonDecoratedOperator
from airflow.sdk.bases.decorator import task_decorator_factory

from pipelines.lineage import Lineage


class ReportsLineage:
    """Mixin for an operator that sets ``self.lineage`` while it executes."""

    lineage: Lineage | None = None

    def get_openlineage_facets_on_complete(self, task_instance):
        return _operator_lineage(self.lineage)

    def get_openlineage_facets_on_failure(self, task_instance):
        """What it read before it failed (a failed validation names its partitions)."""
        return _operator_lineage(self.lineage)


class _LineageDecoratedOperator(ReportsLineage, _PythonDecoratedOperator):
    custom_operator_name = "@task"


def lineage_task(python_callable=None, **kwargs):
    """``@task`` whose body may call ``report_lineage``."""
    return task_decorator_factory(
        python_callable=python_callable,
        decorated_operator_class=_LineageDecoratedOperator,
        **kwargs,
    )


def report_lineage(lineage: Lineage) -> None:
    """Record what the running task read and wrote; its OpenLineage events will name them.
    A task that cannot report (a plain ``@task``) is a programming error, said at once."""
    from airflow.sdk import get_current_context

    task = get_current_context()["task"]
    if not isinstance(task, ReportsLineage):
        raise TypeError(f"task {task.task_id!r} cannot report lineage: build it with lineage_task")
    task.lineage = lineage


def _operator_lineage(lineage: Lineage | None):
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import Dataset

    lineage = lineage or Lineage()
    return OperatorLineage(
        inputs=[Dataset(namespace=d.namespace, name=d.name) for d in lineage.inputs],
        outputs=[Dataset(namespace=d.namespace, name=d.name) for d in lineage.outputs],
    )
