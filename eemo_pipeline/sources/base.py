"""What every source reader shares: the canonical frame, parse errors, quarantine records.

A reader is a plain function ``read(root: Path) -> SourceRead``. It raises ``SourceFormatError`` when a
file cannot be read as a whole (missing file or columns, colliding headers, no data rows, an unclosed quote,
wrong format) and returns rows it could not parse as quarantine records, so valid rows keep flowing.
Damage every reader guards against the same way (helpers below): a file that ends without its final
newline may have been cut inside its last record, so that record is quarantined (``CUT_REASON``) rather
than kept with a shortened value; a record repeated for the same key is dropped when identical and
quarantined with every line named when its values differ. Readers never import Dagster.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from eemo_pipeline.contracts import source_declarations, table_contract
from eemo_pipeline.sources.files import is_inside

# The declared sources in data_contracts/sources.yaml order: the Dagster partitions, so keep it stable.
SOURCES: tuple[str, ...] = tuple(source_declarations())
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


CUT_REASON = "record cut short: the file ends mid-row (truncated file?)"


class SourceFormatError(ValueError):
    """A whole file is unreadable as the expected format; the message names the file, what was expected and,
    where the problem has one, its 1-based line and column (a missing file or a binary .mat has none).

    Deterministic: the same bytes fail the same way, so the ingestion assets never retry it."""

    def __init__(self, file: Path | str, expected: str, line: int | None = None, column: int | None = None):
        self.file, self.expected, self.line, self.column = str(file), expected, line, column
        where = ", ".join(f"{name} {n}" for name, n in (("line", line), ("column", column)) if n is not None)
        super().__init__(f"{file}: {expected}" + (f" ({where})" if where else ""))


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
        raise SourceFormatError(
            file, f"missing columns {missing}; expected columns {columns}, found {frame.columns}", line=1
        )


def ends_mid_record(path: Path) -> bool:
    """True when a file's last line holds something but no newline ends it: the last record may have been
    cut inside a value (the sample and published files end with a newline). A last line of blanks or TABs
    only (GAPED's spacer lines) is no record."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        handle.seek(max(0, size - 4096))
        tail = handle.read()
    last = tail.replace(b"\r", b"\n").rpartition(b"\n")[2]
    return last.strip(b" \t") != b""


def open_quote(text: str, quote: str = '"') -> tuple[int, int] | None:
    """``(line, column)`` (1-based) of a quote that opens a field and is never closed, else None.

    Counts quote characters (a doubled quote inside a field counts twice, so it keeps the parity), as a
    CSV parser would for fields that are quoted whole.
    """
    if text.count(quote) % 2 == 0:
        return None
    opening = -1
    position = text.find(quote)
    while position != -1:
        if opening == -1:
            opening = position
        else:
            opening = -1
        position = text.find(quote, position + 1)
    line = text.count("\n", 0, opening) + 1
    return line, opening - (text.rfind("\n", 0, opening) + 1) + 1


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

    Parse failures become ``SourceFormatError`` naming ``path`` (and the line and column of a quote left
    open), with a hint when the file ends mid-record; so do repeated column names.
    """
    try:
        return pl.read_csv(path if text is None else text.encode("utf-8"), infer_schema=False, **options)
    except pl.exceptions.DuplicateError as error:
        raise SourceFormatError(path, f"the header names a column twice ({error})", line=1) from error
    except pl.exceptions.PolarsError as error:  # whatever polars cannot parse is a malformed file
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        hint = "; the file ends inside a record (truncated download?)" if ends_mid_record(path) else ""
        quote = options.get("quote_char", '"')
        text = read_text(path) if text is None else text
        unclosed = open_quote(text, quote) if quote else None
        if unclosed is not None:
            hint = f"; a {quote}-quoted field is never closed (truncated download?)"
        line, column = unclosed or _overlong_record(text, options.get("separator", ","), quote)
        raise SourceFormatError(path, f"not a readable delimited text file ({first}){hint}", line, column) from error


def _overlong_record(text: str, separator: str, quote: str | None) -> tuple[int | None, int | None]:
    """``(line, column)`` of the first field beyond the header's count, else ``(None, None)``."""
    quoting = csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE
    rows = csv.reader(io.StringIO(text), delimiter=separator, quotechar=quote or None, quoting=quoting)
    try:
        width = len(next(rows))
        for row in rows:
            if len(row) > width:
                return rows.line_num, width + 1
    except (StopIteration, csv.Error):
        pass
    return None, None


def clean_header(frame: pl.DataFrame, file: Path | str, clean: Callable[[str], str]) -> pl.DataFrame:
    """Rename the columns by ``clean`` (trimming, brackets); two columns that become one name raise
    ``SourceFormatError`` naming both as written."""
    seen: dict[str, tuple[int, str]] = {}
    for index, name in enumerate(frame.columns, start=1):
        cleaned = clean(name)
        if cleaned in seen:
            first_index, first = seen[cleaned]
            both = f"columns {first_index} [{first}] and {index} [{name}] both read as '{cleaned}'"
            raise SourceFormatError(file, both, line=1, column=index)
        seen[cleaned] = (index, name)
    return frame.rename({name: clean(name) for name in frame.columns})


def require_rows(frame: pl.DataFrame, file: Path | str) -> None:
    """A file with a header and nothing after it is damaged (an empty partition would pass for success)."""
    if frame.is_empty():
        raise SourceFormatError(file, "no data rows: the file holds a header only (truncated or emptied?)", line=2)


def cut_last_record(frame: pl.DataFrame, path: Path) -> pl.Expr:
    """True for the last record of ``frame`` (rows in file order) when the file ends mid-record."""
    if frame.is_empty() or not ends_mid_record(path):
        return pl.lit(False)
    return pl.int_range(pl.len()) == pl.len() - 1


def repeated_records(
    frame: pl.DataFrame, key: list[str], compared: list[str], file: str, record: list[str]
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Split off records whose ``key`` (e.g. image, or image and annotator) appears on several lines.

    Repeats with identical ``compared`` cells are one record: the first line is kept and the others are
    dropped with a quarantine record. Repeats that differ are quarantined on every line, the reason naming
    all of them: averaging or summing them would invent data. Rows with a null key are left alone (their
    own checks reject them). Returns ``(kept rows, quarantine records)``; ``frame`` needs ``source_line``,
    one per record (one file at a time).
    """
    repeated = frame.filter(pl.all_horizontal(pl.col(key).is_not_null()) & (pl.len().over(key) > 1))
    if repeated.is_empty():
        return frame, []
    repeated = repeated.with_columns(
        pl.struct(compared).n_unique().over(key).alias("_variants"),
        pl.col("source_line").sort().over(key, mapping_strategy="join").alias("_lines"),
    )
    first = pl.col("_lines").list.first()
    bad = repeated.filter((pl.col("_variants") > 1) | (pl.col("source_line") != first))
    names = ", ".join(key)
    records = []
    for row in bad.iter_rows(named=True):
        what = " ".join(f"{k} '{row[k]}'" for k in key)
        if row["_variants"] > 1:
            lines = ", ".join(str(n) for n in row["_lines"])
            reason = f"{what} appears on lines {lines} with other values; none is kept (same {names} twice)"
        else:
            reason = f"exact repeat of line {row['_lines'][0]} ({what}); dropped"
        line = row["source_line"]
        records.append({"file": file, "line": line, "reason": reason, "record": {c: row[c] for c in record}})
    return frame.filter(~pl.col("source_line").is_in(bad["source_line"].implode())), records


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
