"""The generator's trigger-form fields (``USE_CASE.source_params``) as ingest arguments."""

from __future__ import annotations

from collections.abc import Mapping

from pipelines.usecases.predictive_maintenance.generator import (
    FaultConfig,
    GeneratedDays,
    GeneratorConfig,
)


def source_config(params: Mapping) -> dict:
    """``pipelines.data.ingest.ingest_day`` keyword arguments from a run's Params: the
    generator with its machines and injected faults."""
    config = GeneratorConfig(machines=params["machines"])
    return {"generate": GeneratedDays(config, FaultConfig(**params["faults"]))}
