"""What visual quality control learns and serves: a compact CNN on grayscale product images,
the defect class as target, a holdout split by lot, augmentation in training, and an endpoint
that takes image files.

The training driver, promotion gate and Serve app are the core's (``pipelines.ml.learner``
``Classifier``); this module is only what differs from its defaults. The network's input is
the image's pixels as one row of ``IMAGE_SIZE``² features (scaled per pixel by the core's
scaler, as every learner's features are), reshaped into an image by the network's first layer.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipelines.ml.learner import Classifier, RequestError
from pipelines.usecases.visual_quality_control.images import (
    ImageError,
    decode,
    encode_png,
    open_image,
    pixel_measures,
    sha256,
    to_pixels,
)
from pipelines.usecases.visual_quality_control.schema import CLASSES, IMAGE_SIZE

FEATURE_NAMES: tuple[str, ...] = tuple(f"px_{i:04d}" for i in range(IMAGE_SIZE * IMAGE_SIZE))
JSON_FIELD = "image_base64"
RAW_TYPES = ("image/png", "image/jpeg", "application/octet-stream")
MAX_FILES = 64
"""Images in one request."""
MAX_REQUEST_IMAGE_BYTES = 1_000_000
MAX_REQUEST_PIXELS = 2048 * 2048


class ImageRecord(BaseModel):
    """One image, base64-encoded (the JSON way to send it; multipart and raw bodies too)."""

    model_config = ConfigDict(strict=True)

    image_base64: str = Field(min_length=1, description="A PNG or JPEG file, base64-encoded")


def _sample_records() -> list[dict]:
    from pipelines.usecases.visual_quality_control.generator import sample_image

    return [
        {JSON_FIELD: base64.b64encode(encode_png(sample_image(label))).decode()}
        for label in ("ok", "scratch")
    ]


def network(classes: int, width: int):
    """Four 3x3 convolutions, each halving the image, then global max pooling: a defect is
    small and anywhere, and max pooling keeps the strongest response wherever it is."""
    from torch import nn

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        nn.Unflatten(1, (1, IMAGE_SIZE, IMAGE_SIZE)),
        *block(1, width),
        nn.MaxPool2d(2),
        *block(width, 2 * width),
        nn.MaxPool2d(2),
        *block(2 * width, 2 * width),
        nn.MaxPool2d(2),
        *block(2 * width, 4 * width),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * width, classes),
    )


class DefectLearner(Classifier):
    inputs = ("image",)
    feature_names = FEATURE_NAMES
    target = "label"
    classes = CLASSES
    normal_class = "ok"
    alarm_name = "defect"
    max_false_alarm = 0.05
    score_field = "defect_probability"
    decision_field = "defect"
    split_group = "lot"
    hidden = 16
    """Channels of the first convolution."""
    max_pos_weight = 4.0
    request_model = ImageRecord
    parses_requests = True
    request_media_types = ("multipart/form-data", "image/png", "image/jpeg", "application/json")
    sample_records = _sample_records()

    # What the model reads --------------------------------------------------------------
    def features(self, columns: Mapping[str, Sequence]) -> np.ndarray:
        """Pixels scaled to 0..1, one row per image: decoded from the lake's ``image`` bytes,
        or already decoded (``pixels``, from a request)."""
        if "pixels" in columns:
            images = list(columns["pixels"])
        else:
            images = [decode(bytes(data), "lake image") for data in columns["image"]]
        if not images:
            return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)
        return np.stack(images).reshape(len(images), -1).astype(np.float32) / 255.0

    def record_columns(self, records: list[dict]) -> dict[str, list]:
        pixels = []
        for i, record in enumerate(records):
            if "pixels" in record:
                pixels.append(record["pixels"])
            else:
                data = base64.b64decode(record[JSON_FIELD], validate=True)
                pixels.append(decode(data, f"records[{i}]"))
        return {"pixels": pixels}

    # The model -------------------------------------------------------------------------
    def build_model(self, n_features: int, hidden: int | None = None):
        return network(len(self.classes), int(hidden or self.hidden))

    def augment(self, features, generator):
        """Random flips, a small rotation (up to 10°), brightness and contrast jitter, per
        image; the label stays true under each."""
        import torch
        import torch.nn.functional as F

        n, device = features.shape[0], features.device

        def uniform(*shape):  # drawn on the CPU generator: the same draws on any device
            return torch.rand(*shape, generator=generator).to(device)

        images = features.reshape(n, 1, IMAGE_SIZE, IMAGE_SIZE)
        flip_x, flip_y = uniform(n) < 0.5, uniform(n) < 0.5
        images = torch.where(flip_x[:, None, None, None], images.flip(3), images)
        images = torch.where(flip_y[:, None, None, None], images.flip(2), images)
        angle = (uniform(n) - 0.5) * (2 * np.pi * 10 / 180)
        cos, sin = torch.cos(angle), torch.sin(angle)
        zero = torch.zeros(n, device=device)
        theta = torch.stack(
            [torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1
        )
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        images = F.grid_sample(images, grid, padding_mode="reflection", align_corners=False)
        gain = 1.0 + (uniform(n, 1, 1, 1) - 0.5) * 0.3
        shift = (uniform(n, 1, 1, 1) - 0.5) * 0.6
        return (images * gain + shift).reshape(n, -1)

    # How it is judged ------------------------------------------------------------------
    def figures(self, scores, targets, threshold, out_dir, rows=None):
        """The confusion matrix, and a grid of misclassified holdout images with their true
        and predicted labels."""
        paths = super().figures(scores, targets, threshold, out_dir)
        if rows is not None and len(rows):
            paths.append(misclassified_grid(self, scores, targets, threshold, rows, out_dir))
        return paths

    # How it is served ------------------------------------------------------------------
    def parse_request(self, content_type: str, body: bytes) -> list[dict]:
        from pipelines.serving.payloads import request_payloads

        payloads = request_payloads(
            content_type, body, raw_types=RAW_TYPES, json_field=JSON_FIELD, max_files=MAX_FILES
        )
        records = []
        for payload in payloads:
            try:
                image = open_image(
                    payload.data,
                    payload.name,
                    max_bytes=MAX_REQUEST_IMAGE_BYTES,
                    max_pixels=MAX_REQUEST_PIXELS,
                )
                pixels = to_pixels(image)
            except ImageError as exc:
                too_large = "exceeds the limit" in str(exc) or "too many pixels" in str(exc)
                status = 413 if too_large else 422
                raise RequestError(str(exc), status) from None
            records.append(
                {
                    "pixels": pixels,
                    "width": image.size[0],
                    "height": image.size[1],
                    "channels": len(image.getbands()),
                    "sha256": sha256(payload.data),
                }
            )
        return records

    drift_features = ("width", "height", "brightness", "contrast", "focus")

    capture_image_rate: float = 0.1
    """Share of captured requests whose image is kept too (as the model saw it: a grayscale
    PNG of its pixels), chosen by the image's hash so the same image is always kept or not."""

    def capture_fields(self, record: dict) -> dict:
        """What the suite checks of a served image (size and channels as received; brightness,
        contrast and focus of the model's pixels; its hash) and, for a share of them, the
        image itself."""
        fields = {k: record[k] for k in ("width", "height", "channels", "sha256") if k in record}
        fields.update(pixel_measures(record["pixels"]))
        digest = fields.get("sha256", "")
        if digest and int(digest[:8], 16) / 16**8 < self.capture_image_rate:
            fields["image"] = encode_png(record["pixels"])
        return fields


def misclassified_grid(learner, scores, targets, threshold, rows, out_dir, limit: int = 24):
    """Up to ``limit`` misclassified holdout images, titled ``true → predicted``, as a PNG."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    predicted = learner.predicted_labels(np.asarray(scores), threshold)
    wrong = np.flatnonzero(predicted != np.asarray(targets).astype(np.int64))[:limit]
    columns = 6
    lines = max(1, -(-len(wrong) // columns))
    fig, axes = plt.subplots(lines, columns, figsize=(columns * 1.6, lines * 1.8), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    images = rows["image"].to_numpy()
    for ax, i in zip(axes.ravel(), wrong, strict=False):
        ax.imshow(decode(bytes(images[i])), cmap="gray", vmin=0, vmax=255)
        truth, guess = learner.classes[int(targets[i])], learner.classes[int(predicted[i])]
        ax.set_title(f"{truth} → {guess}", fontsize=8)
    if not len(wrong):
        axes[0, 0].text(0, 0.5, "no misclassified holdout image", fontsize=9)
    fig.suptitle("Misclassified holdout images (true → predicted)", fontsize=10)
    fig.tight_layout()
    out = Path(out_dir) / "misclassified.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


LEARNER = DefectLearner()
