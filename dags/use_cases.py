"""Every registered use case's Airflow DAGs, built by one factory (``conveyor_dag_factory``).

A use case is a folder under ``pipelines/usecases/`` or a package registered under the
``conveyor.use_cases`` entry-point group (``pipelines.catalog``); adding one adds its DAGs
here, with no edit to this file. See docs/use-cases.md.
"""

from __future__ import annotations

from conveyor_dag_factory import build_dags
from pipelines.catalog import discover_use_cases
from pipelines.settings import get_settings

_catchup = get_settings().daily_catchup  # the one deployment setting read at parse time
for _use_case in discover_use_cases().values():
    globals().update(build_dags(_use_case, daily_catchup=_catchup))
