"""The image files a model is asked about: read, checked and decoded, every failure an ``ImageError`` naming the file.

Decoding an untrusted file can fail in many ways (a truncated stream, a decompression bomb, a malformed chunk);
each becomes an ``ImageError`` with the file and the cause, so ``eemo assess`` and the benchmarks report it
instead of a traceback. Pixel and byte caps are those of ``eemo_pipeline.generation.images``.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path

from eemo_pipeline.generation.images import fit_pixel_budget


class ImageError(ValueError):
    """An image that cannot be read or decoded; the message names the file and the cause."""


def _undecodable(path: Path, error: Exception) -> ImageError:
    return ImageError(f"{path}: not a decodable image ({type(error).__name__}: {error})")


def image_sha256(path: Path) -> str:
    """Content hash of an image file (the cache keys on content, not on paths); names the file when missing."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as error:
        raise ImageError(f"{path}: cannot read the image ({error.strerror or error})") from error


def load_rgb(path: Path, min_pixels: int, max_pixels: int):
    """The image as RGB, resized (multiples of 28 pixels) into ``[min_pixels, max_pixels]``; names the file on failure."""
    from PIL import Image

    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ImageError(f"{path}: cannot read the image ({error.strerror or error})") from error
    try:
        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB")
    except Exception as error:  # noqa: BLE001 - any decoder failure of an untrusted file is this file's error
        raise _undecodable(path, error) from error
    size = fit_pixel_budget(rgb.width, rgb.height, min_pixels, max_pixels)
    return rgb if size == rgb.size else rgb.resize(size, Image.Resampling.BICUBIC)


def check_images(paths: Sequence[Path]) -> None:
    """Raise ``ImageError`` naming the first file that is missing or not a decodable image."""
    from PIL import Image

    for path in paths:
        if not Path(path).is_file():
            raise ImageError(f"{path}: no such image file")
        try:
            with Image.open(path) as image:
                image.load()  # decodes the pixels: a truncated file passes verify() but not this
        except Exception as error:  # noqa: BLE001 - any decoder failure of an untrusted file is this file's error
            raise _undecodable(path, error) from error
