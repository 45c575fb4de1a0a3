"""The image files a model is asked about: read, checked and decoded, every failure an ``ImageError`` naming the file.

Decoding an untrusted file can fail in many ways (a truncated stream, a decompression bomb, a malformed chunk);
each becomes an ``ImageError`` with the file and the cause, so ``eemo assess`` and the benchmarks report it
instead of a traceback. Files are opened as the image manifest and the describer open them
(``eemo_pipeline.sources.images``): byte and pixel caps before decoding, 16-bit images scaled to 8 bits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from eemo_pipeline.generation.images import fit_pixel_budget


class ImageError(ValueError):
    """An image that cannot be read or decoded; the message names the file and the cause."""


def _undecodable(path: Path, error: Exception) -> ImageError:
    return ImageError(f"{path}: not a decodable image ({error})")


def image_sha256(path: Path) -> str:
    """Content hash of an image file (the cache keys on content, not on paths); names the file when missing."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as error:
        raise ImageError(f"{path}: cannot read the image ({error.strerror or error})") from error


def load_rgb(path: Path, min_pixels: int, max_pixels: int):
    """The image as RGB, resized (multiples of 28 pixels) into ``[min_pixels, max_pixels]``; names the file on failure."""
    from PIL import Image

    from eemo_pipeline.sources.images import ImageRejected
    from eemo_pipeline.sources.images import load_rgb as open_rgb

    try:
        Path(path).stat()
    except OSError as error:
        raise ImageError(f"{path}: cannot read the image ({error.strerror or error})") from error
    try:
        rgb, _ = open_rgb(Path(path))
    except ImageRejected as error:
        raise _undecodable(path, error) from error
    size = fit_pixel_budget(rgb.width, rgb.height, min_pixels, max_pixels)
    return rgb if size == rgb.size else rgb.resize(size, Image.Resampling.BICUBIC)


def check_images(paths: Sequence[Path]) -> None:
    """Raise ``ImageError`` naming the first file that is missing, no plain file (a directory, a FIFO, which would
    wait forever) or not a decodable image."""
    from eemo_pipeline.sources.base import SourceFormatError, require_plain_file
    from eemo_pipeline.sources.images import ImageRejected, decode, open_image

    for path in paths:
        if not Path(path).exists():
            raise ImageError(f"{path}: no such image file")
        try:
            require_plain_file(Path(path))
        except SourceFormatError as error:
            raise ImageError(f"{error}: give image files") from None
        try:
            with open_image(Path(path)) as opened:
                decode(opened)  # every pixel: a truncated file passes verify() but not this
        except ImageRejected as error:
            raise _undecodable(path, error) from error
