"""Opening a source image, for the image manifest and the describer alike (one function, so that what the
manifest calls decodable is what the describer can send).

The file size and the pixel count are checked before the image is read or decoded (``max_image_bytes``,
``max_image_pixels`` in ``data_contracts/image_manifest.yaml``): a 2 GB sparse file is never read, a
144-megapixel PNG never decoded. 16-bit images are scaled to 8 bits (Pillow's own conversion clips every value
above 255, so a 16-bit grey image turns white); float images (mode F, e.g. a float TIFF) are scaled from their
range, 0..1 by 255 and 0..255 as they are, and refused when their values fit neither or are not finite (Pillow
would turn 0.5 into black). Reasons never quote an object's memory address, so a rebuild writes the same
quarantine.
"""

from __future__ import annotations

import hashlib
import io
import re
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from eemo_pipeline.contracts import table_contract

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
# Each decoded image in one allocation: one that large is mapped and unmapped whole, so its memory goes back to
# the system when the image is freed. In Pillow's default 16 MB blocks it stayed in the malloc arena of the thread
# that decoded it: the manifest's 8 threads held 794 MiB after ten 158 MB images decoded one at a time (226 MiB now).
Image.core.set_use_block_allocator(1)
_ADDRESS = re.compile(r"<([\w.]+) object at 0x[0-9a-fA-F]+>")


class ImageRejected(ValueError):
    """Why an image file cannot be used; ``size`` and ``sha256`` as far as they were learnt."""

    def __init__(self, reason: str, size: int | None = None, sha256: str | None = None):
        super().__init__(reason)
        self.reason, self.size, self.sha256 = reason, size, sha256


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int


def image_limits() -> ImageLimits:
    rules = table_contract("image_manifest").rules
    return ImageLimits(int(rules["max_image_bytes"]), int(rules["max_image_pixels"]))


def _plain(error: Exception) -> str:
    """An exception's message without object addresses (``<_io.BytesIO object at 0x7f...>``)."""
    return _ADDRESS.sub(r"<\1>", str(error)) or type(error).__name__


@dataclass(frozen=True)
class OpenedImage:
    image: Image.Image  # header read, pixels not yet decoded
    size: int
    sha256: str


@contextmanager
def open_image(path: Path, limits: ImageLimits | None = None) -> Iterator[OpenedImage]:
    """Open ``path`` as an image within ``limits`` (default: the manifest contract's); raises ``ImageRejected``."""
    limits = limits or image_limits()
    try:
        status = Path(path).stat()
    except OSError as error:
        raise ImageRejected(f"image cannot be read ({error.strerror or _plain(error)})") from None
    if not stat.S_ISREG(status.st_mode):
        raise ImageRejected("image path is not a file (a directory, FIFO, socket or device)")
    if status.st_size > limits.max_bytes:
        raise ImageRejected(f"image file is {status.st_size:,} bytes, over the limit of {limits.max_bytes:,} "
                            "(max_image_bytes in data_contracts/image_manifest.yaml); not read", size=status.st_size)
    with open(path, "rb") as handle:
        data = handle.read(limits.max_bytes + 1)
    size, digest = len(data), hashlib.sha256(data).hexdigest()
    if size > limits.max_bytes:  # grew since the check
        raise ImageRejected(f"image file is over the limit of {limits.max_bytes:,} bytes (max_image_bytes in "
                            "data_contracts/image_manifest.yaml); not read", size=size)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own, lower limit follows
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageRejected(f"image does not decode: not an image format Pillow knows (starts with {data[:8]!r})",
                            size, digest) from None
    except Image.DecompressionBombError:
        raise ImageRejected(f"image has more than {limits.max_pixels:,} pixels (max_image_pixels in "
                            "data_contracts/image_manifest.yaml); not decoded", size, digest) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageRejected(f"image does not decode: {_plain(error)}", size, digest) from None
    with image:
        pixels = image.width * image.height
        if pixels > limits.max_pixels:
            raise ImageRejected(f"image is {image.width}x{image.height} = {pixels:,} pixels, over the limit of "
                                f"{limits.max_pixels:,} (max_image_pixels in data_contracts/image_manifest.yaml); "
                                "not decoded", size, digest)
        yield OpenedImage(image, size, digest)


def decode(opened: OpenedImage) -> Image.Image:
    """Decode every pixel (``verify`` misses truncated JPEGs; a full decode does not); a float image must have a
    range ``to_rgb`` can scale."""
    try:
        opened.image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageRejected(f"image does not decode: {_plain(error)}", opened.size, opened.sha256) from None
    if opened.image.mode == "F":
        values = np.asarray(opened.image)
        if not np.isfinite(values).all():
            raise ImageRejected("float image holds NaN or infinite pixels: no 8-bit image to make of it",
                                opened.size, opened.sha256)
        low, high = float(values.min(initial=0.0)), float(values.max(initial=0.0))
        if low < 0 or high > 255:
            raise ImageRejected(f"float image spans {low:g}..{high:g}, neither 0..1 nor 0..255: no known scale to "
                                "8 bits", opened.size, opened.sha256)
    return opened.image


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB of a decoded image; 16-bit grey (and 32-bit integer grey holding 16-bit values) is scaled by
    1/257, not clipped; float grey (checked by ``decode``) by 255 when it lies in 0..1, else taken as 0..255."""
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 if values.max(initial=0.0) <= 1.0 else 1.0
        grey = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if image.mode in _SIXTEEN_BIT:
        values = np.asarray(image, dtype=np.float64)
        scale = 257.0 if values.max(initial=0) <= 65535 else values.max() / 255.0
        grey = np.clip(np.rint(values / scale), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    return image.convert("RGB")


def load_rgb(path: Path, limits: ImageLimits | None = None) -> tuple[Image.Image, str]:
    """``(8-bit RGB image, sha256 of the file)``: what the describer sends; raises ``ImageRejected``."""
    with open_image(path, limits) as opened:
        return to_rgb(decode(opened)), opened.sha256
