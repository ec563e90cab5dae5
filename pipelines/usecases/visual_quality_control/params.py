"""The generator's trigger-form fields (``USE_CASE.source_params``) as ingest arguments."""

from __future__ import annotations

from collections.abc import Mapping

from pipelines.usecases.visual_quality_control.generator import GeneratedDays, GeneratorConfig


def source_config(params: Mapping) -> dict:
    """``pipelines.data.ingest.ingest_day`` keyword arguments from a run's Params."""
    config = GeneratorConfig(images=params["images"], defect_rate=params["defect_rate"])
    return {"generate": GeneratedDays(config)}
