"""Images the manifest and the describer open (issue #19): size and pixel caps before decoding, 16-bit images
scaled rather than clipped, reasons free of memory addresses."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from eemo_pipeline.generation.images import image_data_url
from eemo_pipeline.sources.images import ImageRejected, image_limits, load_rgb
from eemo_pipeline.sources.manifest import ByteBudget, build_manifest, inspect_image, memory_needed

LIMITS = image_limits()


def _png(path: Path, width: int, height: int, bits: int = 8, value: int = 0) -> None:
    """A grey PNG written row by row (never the whole image in memory), every pixel ``value``."""
    sample = np.full(width, value, dtype=">u2" if bits == 16 else np.uint8).tobytes()
    packer = zlib.compressobj(1)
    body = b"".join(packer.compress(b"\0" + sample) for _ in range(height)) + packer.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, bits, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def test_an_image_over_the_size_cap_is_never_read(tmp_path: Path) -> None:
    sparse = tmp_path / "big.jpg"
    with sparse.open("wb") as handle:  # sparse: no disk used; read whole, it would be LIMITS.max_bytes of memory
        handle.truncate(LIMITS.max_bytes + 1)
    info = inspect_image(tmp_path, "big.jpg")
    assert not info["decodable"] and info["size_bytes"] == LIMITS.max_bytes + 1 and info["sha256"] is None
    assert info["error"] == (f"image file is {LIMITS.max_bytes + 1:,} bytes, over the limit of {LIMITS.max_bytes:,} "
                             "(max_image_bytes in data_contracts/image_manifest.yaml); not read")
    with pytest.raises(ImageRejected, match="over the limit"):
        image_data_url(sparse)


def test_an_image_over_the_pixel_cap_is_never_decoded(tmp_path: Path) -> None:
    _png(tmp_path / "wide.png", 12_000, 12_000)  # 144 megapixels in a 0.1 MB file
    info = inspect_image(tmp_path, "wide.png")
    assert not info["decodable"] and info["sha256"] is not None and info["width"] is None
    assert info["error"].startswith("image is 12000x12000 = 144,000,000 pixels, over the limit of 40,000,000")
    with pytest.raises(ImageRejected, match="144,000,000 pixels"):
        image_data_url(tmp_path / "wide.png")


def test_a_16_bit_image_is_scaled_not_clipped_to_white(tmp_path: Path) -> None:
    _png(tmp_path / "grey16.png", 64, 48, bits=16, value=0x4000)  # a quarter of full scale
    rgb, _ = load_rgb(tmp_path / "grey16.png")
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (64, 64, 64)
    url, _ = image_data_url(tmp_path / "grey16.png")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as sent:
        assert abs(np.asarray(sent.convert("L"), dtype=float).mean() - 64) < 2  # what the describer sees
    info = inspect_image(tmp_path, "grey16.png")
    assert info["decodable"] and (info["width"], info["height"]) == (64, 48)


def test_the_manifest_bounds_the_bytes_of_images_in_flight_not_only_the_threads(tmp_path: Path) -> None:
    """Before: eight threads decoded eight images at once whatever their size (ten 6000 x 6600 RGBA PNGs: 1.31 GB)."""
    for n in range(6):
        Image.new("RGBA", (512, 512), (n, 2 * n, 3 * n, 255)).save(tmp_path / f"{n}.png")
    needs = [memory_needed(tmp_path / f"{n}.png", LIMITS) for n in range(6)]
    assert min(needs) > 512 * 512 * 4  # the file plus its decoded RGBA pixels
    annotations = pl.DataFrame({"image_id": [str(n) for n in range(6)], "image_path": [f"{n}.png" for n in range(6)]})
    # Two at a time at most; then a budget under one image: one at a time.
    for limit, most in ((int(2.5 * min(needs)), int(2.5 * min(needs))), (min(needs) // 2, max(needs))):
        budget = ByteBudget(limit)
        manifest, quarantine = build_manifest(annotations, tmp_path, "emotion6", workers=8, budget=budget)
        assert manifest["decodable"].all() and quarantine.is_empty()
        assert min(needs) <= budget.peak <= most and budget.used == 0, (budget.peak, limit)


def _float_tiff(path: Path, values: np.ndarray) -> None:
    Image.fromarray(values.astype(np.float32), "F").save(path, "TIFF")


def test_a_float_image_is_scaled_from_its_range_or_refused(tmp_path: Path) -> None:
    """Before: a float TIFF of 0.5 was marked decodable and load_rgb returned it all black."""
    _float_tiff(tmp_path / "half.tif", np.full((8, 8), 0.5))
    rgb, _ = load_rgb(tmp_path / "half.tif")
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (128, 128, 128)
    _float_tiff(tmp_path / "bytes.tif", np.full((8, 8), 200.0))
    assert load_rgb(tmp_path / "bytes.tif")[0].getpixel((0, 0)) == (200, 200, 200)
    assert inspect_image(tmp_path, "half.tif")["decodable"]
    for name, values, reason in (
        ("wide.tif", np.linspace(-1, 1000, 64).reshape(8, 8), "float image spans -1..1000, neither 0..1 nor 0..255"),
        ("nan.tif", np.full((8, 8), np.nan), "float image holds NaN or infinite pixels"),
    ):
        _float_tiff(tmp_path / name, values)
        info = inspect_image(tmp_path, name)
        assert not info["decodable"] and info["error"].startswith(reason), info["error"]
        with pytest.raises(ImageRejected, match=reason):
            load_rgb(tmp_path / name)


def test_the_reason_for_a_non_image_is_the_same_on_every_build(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("hello world, not a JPEG\n")
    reasons = {inspect_image(tmp_path, "notes.jpg")["error"] for _ in range(3)}
    assert reasons == {"image does not decode: not an image format Pillow knows (starts with b'hello wo')"}
    annotations = pl.DataFrame({"image_id": ["a", "b"], "image_path": ["notes.jpg", "notes.jpg"]})
    _, first = build_manifest(annotations, tmp_path, "emotion6", workers=2)
    _, second = build_manifest(annotations, tmp_path, "emotion6", workers=2)
    assert first.equals(second) and "0x" not in " ".join(first["reason"])
