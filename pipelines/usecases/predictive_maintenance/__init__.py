"""Predictive maintenance on machine telemetry (AI4I 2020 style): per-minute sensor readings
of a fleet of machines, a failure label per reading; the model predicts failures.

The first use case, and the worked example of docs/use-cases.md. Its DAG ids predate the
use-case contract and are kept (``DagIds``); every other name derives from ``name``.
"""

from pipelines.usecase import DagIds, Gate, TableSpec, UseCase
from pipelines.usecases.predictive_maintenance.schema import (
    KEY_COLUMNS,
    LABEL_COLUMNS,
    PHYSICAL_RANGES,
    SCHEMA,
)

USE_CASE = UseCase(
    name="predictive_maintenance",
    title="Predictive maintenance",
    description="Machine failures predicted from per-minute telemetry.",
    tags=("predictive-maintenance",),
    table=TableSpec(
        name="telemetry",
        schema=SCHEMA,
        key=KEY_COLUMNS,
        time_column="timestamp",
        labels=LABEL_COLUMNS,
        ranges=PHYSICAL_RANGES,
    ),
    generator="pipelines.usecases.predictive_maintenance.generator:generate_day",
    source_params={
        "faults": {
            "default": {
                "null_ratio": 0.0,
                "out_of_range_ratio": 0.0,
                "duplicate_ratio": 0.0,
                "schema_drift": "none",
            },
            "type": "object",
            "title": "Injected faults",
            "description": (
                "Generator only, to demonstrate validation: null_ratio, out_of_range_ratio,"
                " duplicate_ratio (0..1) and schema_drift (none, extra_column, missing_column)."
            ),
        },
        "machines": {
            "default": 50,
            "type": "integer",
            "minimum": 1,
            "maximum": 1000,
            "title": "Machines",
            "description": "Generator only: machines per day.",
        },
    },
    source_config="pipelines.usecases.predictive_maintenance.params:source_config",
    learner="pipelines.usecases.predictive_maintenance.learner:LEARNER",
    gate=Gate(metric="f1", higher_is_better=True, bar=0.8, margin=0.01),
    # A week of the default fleet trains above the bar; one day (the core's default) did not,
    # and a run that trains and serves nothing is not what the form is for.
    defaults={"days": 7},
    dag_ids=DagIds(daily="telemetry_daily", training="model_training", rollout="serving_rollout"),
)
