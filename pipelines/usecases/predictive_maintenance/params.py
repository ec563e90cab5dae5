"""The generator's trigger-form fields (``USE_CASE.source_params``) as ingest arguments."""

from __future__ import annotations

from collections.abc import Mapping

from pipelines.usecases.predictive_maintenance.generator import FaultConfig, GeneratorConfig


def source_config(params: Mapping) -> dict:
    """``ingest_days`` keyword arguments from a run's Params (machines, injected faults)."""
    return {
        "generator": GeneratorConfig(machines=params["machines"]),
        "faults": FaultConfig(**params["faults"]),
    }
