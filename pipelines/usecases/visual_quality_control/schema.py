"""The product-image table's contract: one row per image, its bytes and the metadata computed
once, at ingest, so validation reads metadata only."""

from __future__ import annotations

CLASSES: tuple[str, ...] = ("ok", "scratch", "spot", "crack", "stain")
"""The labels, ``ok`` first: the model's outputs are in this order."""
DEFECTS: tuple[str, ...] = CLASSES[1:]

LABEL_ALIASES: dict[str, str] = {"good": "ok"}
"""Folder names of inspection datasets as shipped (MVTec AD calls ``ok`` ``good``)."""

IMAGE_SIZE = 64
"""Width and height of the images the model reads, in pixels."""
CHANNELS = 1
"""Grayscale: surface inspection cameras are monochrome."""

SCHEMA: dict[str, str] = {
    "image_id": "string",
    "captured_at": "datetime64[us, UTC]",
    "line": "string",
    "camera": "string",
    "lot": "string",
    "product_type": "string",
    "label": "string",
    "defect": "int64",
    "width": "int64",
    "height": "int64",
    "channels": "int64",
    "brightness": "float64",
    "contrast": "float64",
    "focus": "float64",
    "lot_images": "int64",
    "sha256": "string",
    "image": "binary",
}
"""pandas dtypes of every column, in the lake's column order; ``image`` holds the file's bytes
(PNG or JPEG) as it was received."""

KEY_COLUMNS: tuple[str, ...] = ("captured_at", "image_id")
LABEL_COLUMNS: tuple[str, ...] = ("label", "defect")
