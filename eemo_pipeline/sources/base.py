"""What every source reader shares: the canonical frame, parse errors, quarantine records.

A reader is a plain function ``read(root: Path) -> SourceRead``. It raises ``SourceFormatError`` when a
file cannot be read as a whole (missing file or columns, wrong format) and returns rows it could not
parse as quarantine records, so valid rows keep flowing. Readers never import Dagster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from eemo_pipeline.contracts import source_declarations, table_contract
from eemo_pipeline.sources.files import is_inside

# The declared sources in data_contracts/sources.yaml order: the Dagster partitions, so keep it stable.
SOURCES: tuple[str, ...] = tuple(source_declarations())
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class SourceFormatError(ValueError):
    """A whole file is unreadable as the expected format; the message names the file and what was expected."""

    def __init__(self, file: Path | str, expected: str):
        self.file = str(file)
        self.expected = expected
        super().__init__(f"{file}: {expected}")


@dataclass(frozen=True)
class SourceRead:
    """A reader's output: canonical rows (``raw_annotations`` columns) and rows rejected while parsing."""

    rows: pl.DataFrame
    rejects: pl.DataFrame


def canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """Conform a reader's frame to the raw_annotations contract (order, dtypes, absent columns as nulls)."""
    return table_contract("raw_annotations").conform(frame)


def rejects(records: list[dict[str, Any]] | None = None) -> pl.DataFrame:
    """Quarantine records from dicts with ``file``, ``line``, ``reason`` and optional ``record`` (any JSON-able)."""
    schema = {k: v for k, v in table_contract("quarantine").schema.items() if k not in ("asset", "partition")}
    rows = [
        {
            "file": str(r["file"]),
            "line": r.get("line"),
            "reason": r["reason"],
            "record": None if r.get("record") is None else json.dumps(r["record"], default=str, ensure_ascii=False),
        }
        for r in records or ()
    ]
    return pl.DataFrame(rows, schema=schema)


def require_file(root: Path, relative: str, expected: str) -> Path:
    path = root / relative
    if not path.is_file():
        raise SourceFormatError(path, f"file not found; expected {expected}")
    return path


def require_columns(frame: pl.DataFrame, columns: list[str], file: Path | str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SourceFormatError(file, f"missing columns {missing}; expected columns {columns}, found {frame.columns}")


def ends_mid_record(path: Path) -> bool:
    """True when a non-empty file does not end with a newline: its last record may have been cut short."""
    size = path.stat().st_size
    if size == 0:
        return False
    with path.open("rb") as handle:
        handle.seek(size - 1)
        return handle.read(1) not in (b"\n", b"\r")


def read_text(path: Path) -> str:
    """A text file as UTF-8 (BOM dropped), else cp1252; CRLF and CR-only line ends become LF."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SourceFormatError(path, f"cannot read the file ({error.strerror or error})") from error
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_csv_text(path: Path, text: str | None = None, **options: Any) -> pl.DataFrame:
    """Read a delimited file (or its already decoded ``text``) with every cell as a string.

    Parse failures become ``SourceFormatError`` naming ``path``, with a hint when the file ends mid-record.
    """
    try:
        return pl.read_csv(path if text is None else text.encode("utf-8"), infer_schema=False, **options)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, pl.exceptions.ShapeError) as error:
        first = str(error).strip().splitlines()[0]
        hint = "; the file ends inside a record (truncated download?)" if ends_mid_record(path) else ""
        raise SourceFormatError(path, f"not a readable delimited text file ({first}){hint}") from error


def line_numbers(frame: pl.DataFrame, first_line: int, multiline: list[str] | None = None) -> pl.Expr:
    """1-based line of each record's start: ``first_line`` for row 0, counting newlines inside quoted cells."""
    index = pl.int_range(pl.len(), dtype=pl.Int64)
    if not multiline:
        return index + first_line
    breaks = pl.sum_horizontal([pl.col(c).fill_null("").str.count_matches("\n") for c in multiline])
    return index + first_line + breaks.cum_sum().shift(1, fill_value=0).cast(pl.Int64)


def to_float(column: str) -> pl.Expr:
    """Parse a text cell as a float (null when it is not a number)."""
    return pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)


def find_image(root: Path, relative: str) -> str | None:
    """The image's path relative to ``root``: as given, or the same stem with another image suffix.
    None when not found, or when the path leaves the root (nothing outside it is probed)."""
    if not is_inside(root, relative):
        return None
    candidate = root / relative
    if candidate.is_file():
        return relative
    stem = candidate.with_suffix("")
    for suffix in IMAGE_SUFFIXES:
        for variant in (suffix, suffix.upper()):
            other = stem.with_suffix(variant)
            if other.is_file():
                return other.relative_to(root).as_posix()
    return None
