"""Images sent to a vision model: opened as the image manifest opens them (``sources/images.py``: size and
pixel caps before decoding, 16-bit scaled to 8 bits), resized into the pixel budget and encoded as data URLs."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

from PIL import Image

from eemo_pipeline.constants import MAX_PIXELS, MIN_PIXELS, PATCH
from eemo_pipeline.sources.images import load_rgb

__all__ = ["MAX_PIXELS", "MIN_PIXELS", "PATCH", "fit_pixel_budget", "image_data_url"]


def fit_pixel_budget(width: int, height: int, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS,
                     factor: int = PATCH) -> tuple[int, int]:
    """Width and height, multiples of ``factor``, closest to the original aspect ratio with an area in
    [min_pixels, max_pixels]."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width}x{height} is empty")
    w = max(factor, round(width / factor) * factor)
    h = max(factor, round(height / factor) * factor)
    if w * h > max_pixels:
        scale = math.sqrt(width * height / max_pixels)
        w = max(factor, math.floor(width / scale / factor) * factor)
        h = max(factor, math.floor(height / scale / factor) * factor)
    elif w * h < min_pixels:
        scale = math.sqrt(min_pixels / (width * height))
        w = math.ceil(width * scale / factor) * factor
        h = math.ceil(height * scale / factor) * factor
    return w, h


def image_data_url(path: Path, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS) -> tuple[str, str]:
    """``(data URL of the resized JPEG, sha256 of the original file)``; the hash keys the response cache.
    Raises ``sources.images.ImageRejected`` (a ValueError) for an image the manifest would quarantine."""
    rgb, digest = load_rgb(Path(path))
    size = fit_pixel_budget(rgb.width, rgb.height, min_pixels, max_pixels)
    if size != rgb.size:
        rgb = rgb.resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=90)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/jpeg;base64,{encoded}", digest
