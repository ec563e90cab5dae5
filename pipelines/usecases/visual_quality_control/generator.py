"""Deterministic product images for surface inspection: offline, seeded, no downloads.

Three product types, one per production line, each with its own surface: ``machined`` (fine
turning marks at a random angle), ``casting`` (sand-cast grain) and ``textile`` (a weave).
Every image gets its own lighting (a gradient and an offset) and sensor noise. A share of
them (``defect_rate``) carries one defect, drawn at a random position, size, angle and
contrast:

* ``scratch``: a thin bright line (scratches catch the light);
* ``spot``: a small dark dent;
* ``crack``: a thin dark jagged line;
* ``stain``: a large, soft, low-contrast dark blot.

Metadata per image: line, camera, lot (a line's 4-hour production block) and capture time,
spread over the day. The same ``(seed, date, images, defect_rate)`` always gives the same
bytes, so re-ingesting a day gives the same partition; each image has its own random stream,
so any number of images per day is generated in the same time per image.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from pipelines.usecases.visual_quality_control.images import encode_png, sha256
from pipelines.usecases.visual_quality_control.schema import DEFECTS, IMAGE_SIZE, SCHEMA

PRODUCTS = ("machined", "casting", "textile")
LOT_HOURS = 4

_Y, _X = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)


@dataclass(frozen=True)
class GeneratorConfig:
    images: int = 600
    """Images per day, over all lines."""
    defect_rate: float = 0.25
    """Share of images with a defect, spread evenly over the defect classes."""
    lines: int = 3
    seed: int = 42
    lighting: float = 1.0
    """Drift switch: the line's lighting as a gain on every pixel (1.0 as trained; 1.3 a
    brighter lamp). Labels and defects are unchanged; only what the camera sees moves."""

    def __post_init__(self):
        if self.images < 1:
            raise ValueError(f"generator: images must be >= 1, got {self.images}")
        if not 0.0 <= self.defect_rate <= 1.0:
            raise ValueError(f"generator: defect_rate must be in [0, 1], got {self.defect_rate}")
        if self.lighting <= 0:
            raise ValueError(f"generator: lighting must be > 0, got {self.lighting}")
        if not 1 <= self.lines <= 26:
            raise ValueError(f"generator: lines must be in [1, 26], got {self.lines}")


def _surface(rng: np.random.Generator, product: str) -> np.ndarray:
    if product == "machined":
        angle, period = rng.uniform(0, np.pi), rng.uniform(3.0, 6.0)
        u = _X * np.cos(angle) + _Y * np.sin(angle)
        base = 0.55 + 0.035 * np.sin(2 * np.pi * u / period)
    elif product == "casting":
        coarse = rng.normal(0.0, 1.0, (9, 9)).astype(np.float32)
        grain = np.kron(coarse, np.ones((8, 8), np.float32))[:IMAGE_SIZE, :IMAGE_SIZE]
        base = 0.5 + 0.03 * _blur(grain)
    else:
        period = rng.uniform(4.0, 7.0)
        base = 0.5 + 0.04 * np.sin(2 * np.pi * _X / period) * np.sin(2 * np.pi * _Y / period)
    gx, gy, offset = rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1), rng.uniform(-0.07, 0.07)
    return base + gx * (_X / IMAGE_SIZE - 0.5) + gy * (_Y / IMAGE_SIZE - 0.5) + offset


def _blur(values: np.ndarray) -> np.ndarray:
    """A 5x5 box blur (edges wrap), to soften blocky noise."""
    out = np.zeros_like(values)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            out += np.roll(values, (dy, dx), axis=(0, 1))
    return out / 25.0


def _segment(x0, y0, x1, y1, width: float) -> np.ndarray:
    """Coverage (0..1) of a line segment of ``width`` pixels, anti-aliased."""
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((_X - x0) * dx + (_Y - y0) * dy) / max(dx * dx + dy * dy, 1e-6), 0.0, 1.0)
    distance = np.hypot(_X - (x0 + t * dx), _Y - (y0 + t * dy))
    return np.clip(width / 2 + 0.5 - distance, 0.0, 1.0)


def _center(rng: np.random.Generator, margin: float = 12.0) -> tuple[float, float]:
    return rng.uniform(margin, IMAGE_SIZE - margin), rng.uniform(margin, IMAGE_SIZE - margin)


def draw_defect(surface: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``surface`` with one defect of ``kind`` drawn at a random place, size and contrast."""
    cx, cy = _center(rng)
    if kind == "scratch":
        angle, length = rng.uniform(0, np.pi), rng.uniform(18.0, 40.0)
        dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
        mask = _segment(cx - dx, cy - dy, cx + dx, cy + dy, rng.uniform(1.0, 1.8))
        return surface + rng.uniform(0.2, 0.35) * mask
    if kind == "spot":
        radius = rng.uniform(2.5, 5.0)
        mask = np.clip(radius + 0.5 - np.hypot(_X - cx, _Y - cy), 0.0, 1.0)
        return surface - rng.uniform(0.2, 0.35) * mask
    if kind == "crack":
        mask, x, y, angle = np.zeros_like(surface), cx, cy, rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(6, 11))):
            angle += rng.normal(0.0, 0.7)
            step = rng.uniform(3.0, 5.0)
            nx, ny = x + np.cos(angle) * step, y + np.sin(angle) * step
            mask = np.maximum(mask, _segment(x, y, nx, ny, 1.0))
            x, y = nx, ny
        return surface - rng.uniform(0.25, 0.4) * mask
    if kind == "stain":
        sx, sy = rng.uniform(5.0, 9.0), rng.uniform(5.0, 9.0)
        blob = np.exp(-(((_X - cx) / sx) ** 2 + ((_Y - cy) / sy) ** 2) / 2)
        return surface - rng.uniform(0.12, 0.2) * blob
    raise ValueError(f"generator: unknown defect {kind!r} ({', '.join(DEFECTS)})")


def render(rng: np.random.Generator, product: str, label: str) -> np.ndarray:
    """One image (uint8, grayscale) of ``product`` with the defect ``label`` (or none)."""
    surface = _surface(rng, product)
    if label != "ok":
        surface = draw_defect(surface, label, rng)
    surface = surface + rng.normal(0.0, rng.uniform(0.012, 0.025), surface.shape)
    return np.clip(surface * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _label(rng: np.random.Generator, defect_rate: float) -> str:
    if rng.random() >= defect_rate:
        return "ok"
    return DEFECTS[int(rng.integers(len(DEFECTS)))]


def generate_day(day: dt.date, config: GeneratorConfig | None = None) -> pd.DataFrame:
    """``config.images`` images of ``day``, as lake rows (metadata measured as at ingest)."""
    from pipelines.usecases.visual_quality_control.images import measure

    cfg = config or GeneratorConfig()
    start = pd.Timestamp(day, tz="UTC")
    spacing = pd.Timedelta(days=1) / cfg.images
    rows = []
    for i in range(cfg.images):
        rng = np.random.default_rng([cfg.seed, day.toordinal(), i])
        line = i % cfg.lines
        product = PRODUCTS[line % len(PRODUCTS)]
        label = _label(rng, cfg.defect_rate)
        pixels = render(rng, product, label)
        if cfg.lighting != 1.0:
            pixels = np.clip(pixels * cfg.lighting + 0.5, 0, 255).astype(np.uint8)
        data = encode_png(pixels)
        captured = (start + spacing * (i + 0.5)).floor("us")
        line_name = f"line-{chr(ord('a') + line)}"
        rows.append(
            {
                "image_id": f"{day:%Y%m%d}-{i:07d}",
                "captured_at": captured,
                "line": line_name,
                "camera": f"{line_name}-cam-{1 + (i // cfg.lines) % 2}",
                "lot": f"{line_name}-{day:%Y%m%d}-{captured.hour // LOT_HOURS}",
                "product_type": product,
                "label": label,
                "defect": int(label != "ok"),
                **measure(_Size(pixels), pixels),
                "lot_images": 0,
                "sha256": sha256(data),
                "image": data,
            }
        )
    frame = pd.DataFrame(rows)
    frame["lot_images"] = frame.groupby("lot")["image_id"].transform("count")
    return frame.astype({c: t for c, t in SCHEMA.items() if t != "binary"})


class _Size:
    """What ``measure`` reads of a decoded image, for pixels drawn here (never decoded)."""

    def __init__(self, pixels: np.ndarray):
        self.size = (pixels.shape[1], pixels.shape[0])

    @staticmethod
    def getbands() -> tuple[str, ...]:
        return ("L",)


@dataclass(frozen=True)
class GeneratedDays:
    """The generator as the core's ingest calls it (``pipelines.data.ingest.DayGenerator``)."""

    config: GeneratorConfig = GeneratorConfig()

    def __call__(self, day: dt.date) -> pd.DataFrame:
        return generate_day(day, self.config)

    def describe(self) -> dict:
        return {"generator": asdict(self.config)}


def sample_image(label: str, product: str = "machined", seed: int = 7) -> np.ndarray:
    """One image of ``label`` (pixels), for requests, tests and the README's curl."""
    rng = np.random.default_rng([seed, PRODUCTS.index(product), len(label)])
    return render(rng, product, label)
