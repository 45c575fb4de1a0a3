"""Images for the embedded sample: real photographs shipped in scikit-image's wheel plus generated ones."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

# Colour photographs bundled inside scikit-image's wheel (no download): astronaut, cat, coffee, rocket, ...
_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "retina.jpg",
           "hubble_deep_field.jpg", "color.png", "ihc.png", "camera.png")
SAMPLE_SIZE = (96, 96)


def _photo_dir() -> Path | None:
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "data"


def _photos() -> list[Path]:
    folder = _photo_dir()
    return [folder / name for name in _PHOTOS if folder and (folder / name).is_file()]


def sample_image(index: int, size: tuple[int, int] = SAMPLE_SIZE) -> Image.Image:
    """Image number ``index``: even numbers cycle through real photos, odd ones are generated patterns."""
    photos = _photos()
    if photos and index % 2 == 0:
        with Image.open(photos[(index // 2) % len(photos)]) as photo:
            return photo.convert("RGB").resize(size)
    rng = np.random.default_rng(index)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    base = rng.uniform(0, 255, 3)
    slope = rng.uniform(-2, 2, (2, 3))
    pixels = base + x[..., None] * slope[0] + y[..., None] * slope[1]
    cx, cy, radius = rng.uniform(0, size[0]), rng.uniform(0, size[1]), rng.uniform(8, size[0] / 2)
    disc = (x - cx) ** 2 + (y - cy) ** 2 < radius**2
    pixels[disc] = rng.uniform(0, 255, 3)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def write_image(path: Path, index: int, size: tuple[int, int] = SAMPLE_SIZE) -> None:
    """Save sample image ``index`` at ``path``; the suffix picks the format (.jpg, .png, .bmp)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sample_image(index, size).save(path)


def write_corrupt_image(path: Path, index: int = 0) -> None:
    """A JPEG cut off after its first kilobyte, as an interrupted download leaves it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, index)
    data = path.read_bytes()
    path.write_bytes(data[: min(1024, len(data) // 3)])
