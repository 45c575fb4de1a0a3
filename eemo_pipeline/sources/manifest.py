"""Image manifest of one source: path, sha256, size and whether the image decodes, for every image
referenced by its annotations. Missing, escaping, oversized and undecodable images become quarantine records
(``sources/images.py`` opens them, as it does for the describer).

Images are inspected by several threads, but memory is bounded by bytes, not by the thread count: each image
reserves its file size plus its decoded size (read from its header) out of ``max_decoded_bytes_in_flight``
(``image_manifest.yaml``) before it is read, and waits while the others hold too much; an image larger than the
whole budget runs alone. Ten 6000 x 6600 RGBA PNGs (158 MB each decoded) took 1.31 GB with 8 threads before."""

from __future__ import annotations

import os
import stat
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import polars as pl
from PIL import Image

from eemo_pipeline.contracts import table_contract
from eemo_pipeline.sources.base import find_image, rejects
from eemo_pipeline.sources.files import UnusablePathError, resolve_inside
from eemo_pipeline.sources.images import ImageLimits, ImageRejected, decode, image_limits, open_image

Progress = Callable[[int, int], None]


class ByteBudget:
    """Bytes in flight across threads: ``reserve(n)`` waits until ``n`` more fit under ``limit`` (or nothing else
    is reserved: a reservation over the limit runs alone). One reservation per thread at a time: no deadlock."""

    def __init__(self, limit: int):
        self.limit, self.used, self.peak = limit, 0, 0
        self._changed = threading.Condition()

    @contextmanager
    def reserve(self, size: int) -> Iterator[None]:
        with self._changed:
            while self.used and self.used + size > self.limit:
                self._changed.wait()
            self.used += size
            self.peak = max(self.peak, self.used)
        try:
            yield
        finally:
            with self._changed:
                self.used -= size
                self._changed.notify_all()


_BYTES_PER_BAND = {"I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2, "I": 4, "F": 4}


def memory_needed(path: Path, limits: ImageLimits) -> int:
    """The file's size plus its decoded size from its header; 0 for what ``open_image`` refuses before reading
    (not a file, over the caps) or cannot read as an image (it then says why)."""
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode) or status.st_size > limits.max_bytes:
            return 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:  # the header only
                if image.width * image.height > limits.max_pixels:
                    return 0
                bands = len(image.getbands()) * _BYTES_PER_BAND.get(image.mode, 1)
                return status.st_size + image.width * image.height * bands
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return 0


def inspect_image(
    root: Path, relative: str | None, limits: ImageLimits | None = None, budget: ByteBudget | None = None
) -> dict[str, Any]:
    """Locate, hash and fully decode one image; ``error`` says why it is unusable (else None). ``budget``: the
    bytes in flight that this image's file and decoded pixels are reserved from while it is open."""
    found = {"image_path": None, "sha256": None, "size_bytes": None, "width": None, "height": None,
             "format": None, "decodable": False, "error": None}
    if not relative:
        return found | {"error": "no image path in the annotations"}
    try:
        resolve_inside(root, relative)
        path = find_image(root, relative)
        if path is None:
            return found | {"error": f"image file not found: {relative}"}
        resolved = resolve_inside(root, path)  # the file found may be a link out of the root
    except UnusablePathError as error:
        return found | {"error": f"image {error}"}
    found["image_path"] = path
    limits = limits or image_limits()
    with budget.reserve(memory_needed(resolved, limits)) if budget is not None else nullcontext():
        try:
            with open_image(resolved, limits) as opened:
                image = decode(opened)
                return found | {"sha256": opened.sha256, "size_bytes": opened.size, "width": image.width,
                                "height": image.height, "format": image.format, "decodable": True}
        except ImageRejected as rejected:
            return found | {"sha256": rejected.sha256, "size_bytes": rejected.size, "error": rejected.reason}


def build_manifest(
    annotations: pl.DataFrame, root: Path, source: str, *, workers: int | None = None, progress: Progress | None = None,
    budget: ByteBudget | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Inspect every distinct image of ``annotations``; returns ``(manifest, quarantine)``. ``workers`` threads
    (default ``min(8, 2 x CPUs)``) share ``budget`` (default ``max_decoded_bytes_in_flight``, module docstring)."""
    root = Path(root).resolve()
    images = annotations.group_by("image_id", maintain_order=True).agg(pl.col("image_path").drop_nulls().first())
    pairs = list(images.iter_rows())
    workers = workers or min(8, 2 * (os.cpu_count() or 1))
    limits = image_limits()
    budget = budget or ByteBudget(int(table_contract("image_manifest").rules["max_decoded_bytes_in_flight"]))
    rows: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, ((image_id, relative), info) in enumerate(
            zip(pairs, pool.map(lambda pair: inspect_image(root, pair[1], limits, budget), pairs)), start=1
        ):
            rows.append({"source": source, "image_id": image_id, **info, "_requested": relative})
            if progress and (done % 500 == 0 or done == len(pairs)):
                progress(done, len(pairs))
    contract = table_contract("image_manifest")
    if not rows:
        return contract.empty(), rejects()
    frame = pl.DataFrame(rows, schema={**contract.schema, "_requested": pl.String})
    quarantine = frame.filter(~pl.col("decodable")).select(
        pl.coalesce("image_path", "_requested", pl.lit("<no path>")).alias("file"),
        pl.lit(None, pl.Int64).alias("line"),
        pl.col("error").alias("reason"),
        pl.struct("image_id", pl.col("_requested").alias("image_path")).struct.json_encode().alias("record"),
    )
    return contract.conform(frame), quarantine


def manifest_violations(manifest: pl.DataFrame) -> list[str]:
    """Contract problems of a manifest: schema, nulls, duplicate ids, decodable rows lacking facts."""
    contract = table_contract("image_manifest")
    problems = contract.violations(manifest)
    if problems or manifest.is_empty():
        return problems
    incomplete = manifest.filter(
        pl.col("decodable") & pl.any_horizontal(pl.col("sha256", "width", "height", "image_path").is_null())
    ).height
    unexplained = manifest.filter(~pl.col("decodable") & pl.col("error").is_null()).height
    if incomplete:
        problems.append(f"{incomplete} decodable images lack a path, hash or size")
    if unexplained:
        problems.append(f"{unexplained} undecodable images carry no error")
    return problems
