"""Where outputs live under the storage root (``Settings.storage``): ``<root>/<asset>/<partition>.parquet`` (or
``<asset>.parquet``), written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl


def asset_path(root: Path, asset: str, partition: str | None = None) -> Path:
    return root / asset / f"{partition}.parquet" if partition else root / f"{asset}.parquet"


def quarantine_path(root: Path, asset: str, partition: str | None = None) -> Path:
    return asset_path(root / "quarantine", asset, partition)


def write_parquet(frame: pl.DataFrame, path: Path) -> Path:
    """Write zstd Parquet through a temporary file and a rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        frame.write_parquet(partial, compression="zstd", statistics=True)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
