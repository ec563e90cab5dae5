"""Reading image files safely, and what is measured of each once, at ingest.

Every image that enters the lake or reaches the model passes ``open_image``: empty files,
files over the byte limit, files that are not PNG or JPEG, images with more pixels than the
limit (decompression bombs: a few KB of PNG can declare gigapixels, refused before a pixel
is decoded), modes the model cannot read and truncated files are refused with one line naming
the file and the cause. The model reads grayscale ``IMAGE_SIZE`` squares (``to_pixels``).
"""

from __future__ import annotations

import hashlib
import io

import numpy as np

from pipelines.usecases.visual_quality_control.schema import IMAGE_SIZE

FORMATS = ("PNG", "JPEG")
MODES = ("L", "RGB", "RGBA", "LA", "P")
"""Modes converted to grayscale; others (16-bit, float, CMYK, 1-bit) are refused."""
MAX_IMAGE_BYTES = 4_000_000
MAX_PIXELS = 4096 * 4096


class ImageError(ValueError):
    """An image refused; the message names it and the cause in one line."""


def open_image(data: bytes, name: str, *, max_bytes: int = MAX_IMAGE_BYTES, max_pixels=MAX_PIXELS):
    """``data`` as a decoded Pillow image, or ``ImageError``."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)")
    if len(data) > max_bytes:
        raise ImageError(f"{name}: {len(data)} bytes exceeds the limit of {max_bytes} bytes")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: too many pixels, a decompression bomb ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise ImageError(f"{name}: not an image (PNG or JPEG expected)") from None
    if image.format not in FORMATS:
        raise ImageError(f"{name}: {image.format} image; PNG or JPEG expected")
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(
            f"{name}: {width}x{height} pixels exceeds the limit of {max_pixels}"
            " (a decompression bomb?)"
        )
    if image.mode not in MODES:
        raise ImageError(f"{name}: mode {image.mode} is not accepted ({', '.join(MODES)})")
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(f"{name}: truncated or corrupt image ({cause})") from None
    return image


def to_pixels(image, size: int = IMAGE_SIZE) -> np.ndarray:
    """A decoded image as the model reads it: grayscale, ``size`` x ``size``, uint8."""
    from PIL import Image

    gray = image.convert("L")
    if gray.size != (size, size):
        gray = gray.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(gray, dtype=np.uint8)


def decode(data: bytes, name: str = "image", **limits) -> np.ndarray:
    return to_pixels(open_image(data, name, **limits))


def encode_png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def measure(image, pixels: np.ndarray) -> dict:
    """What the suite checks of an image: its size and channels as received, and of the
    model's pixels what ``pixel_measures`` says."""
    return {
        "width": image.size[0],
        "height": image.size[1],
        "channels": len(image.getbands()),
        **pixel_measures(pixels),
    }


def pixel_measures(pixels: np.ndarray) -> dict:
    """Brightness and contrast (mean and standard deviation, 0..1) and a focus score
    (variance of the Laplacian; a blurred image scores low) of the model's pixels."""
    gray = pixels.astype(np.float64) / 255.0
    laplacian = (
        4 * gray[1:-1, 1:-1] - gray[:-2, 1:-1] - gray[2:, 1:-1] - gray[1:-1, :-2] - gray[1:-1, 2:]
    )
    return {
        "brightness": round(float(gray.mean()), 6),
        "contrast": round(float(gray.std()), 6),
        "focus": round(float(laplacian.var()), 6),
    }


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
