"""Visual quality control on product images: surface defects (scratch, spot, crack, stain) on
machined, cast and textile parts, classified by a CNN trained on Ray and served as an
endpoint that takes image files.

The second use case, built from the use-case contract only: the image bytes and the metadata
measured at ingest in the lake, a suite on the metadata, a ``Classifier`` learner gated on
defect recall at a fixed false-alarm rate.
"""

from pipelines.usecase import Gate, TableSpec, UseCase
from pipelines.usecases.visual_quality_control.schema import KEY_COLUMNS, LABEL_COLUMNS, SCHEMA

USE_CASE = UseCase(
    name="visual_quality_control",
    title="Visual quality control",
    description="Surface defects classified from product images.",
    tags=("visual-quality-control", "images"),
    table=TableSpec(
        name="product_images",
        schema=SCHEMA,
        key=KEY_COLUMNS,
        time_column="captured_at",
        labels=LABEL_COLUMNS,
    ),
    generator="pipelines.usecases.visual_quality_control.generator:generate_day",
    source_params={
        "images": {
            "default": 600,
            "type": "integer",
            "minimum": 1,
            "maximum": 1_000_000,
            "title": "Images per day",
            "description": "Generator only: images per day, over all production lines.",
        },
        "defect_rate": {
            "default": 0.25,
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "title": "Defect rate",
            "description": "Generator only: share of images with a defect.",
        },
    },
    source_config="pipelines.usecases.visual_quality_control.params:source_config",
    landing_reader="pipelines.usecases.visual_quality_control.landing:read_landing",
    learner="pipelines.usecases.visual_quality_control.learner:LEARNER",
    gate=Gate(
        metric="defect_recall",
        higher_is_better=True,
        bar=0.95,
        margin=0.005,
        floors={"macro_f1": 0.9},
    ),
    defaults={"days": 3, "epochs": 12, "batch_size": 64, "lr": 3e-3},
)
