"""What every source reader shares: the canonical frame, parse errors, quarantine records, reading files.

A reader is a plain function ``read(root: Path) -> SourceRead``. It raises ``SourceFormatError`` when a
file cannot be read as a whole (missing file or columns, colliding headers, no data rows, an unclosed quote,
wrong format, not a plain file inside the root) and returns rows it could not parse as quarantine records, so
valid rows keep flowing. Readers open files only through ``require_file``/``optional_file`` and read them only
through ``read_text``/``read_csv_text``/``read_file_bytes`` (the reading session of ``sources/reading.py``
checks, bounds and records every file). Damage every reader guards against the same way (helpers below): a
last record of a file that was cut inside it (``cut_last_record``: only on evidence, never for a missing final
newline alone) is quarantined (``CUT_REASON``) rather than kept with a shortened value; a record repeated for
the same key is dropped when identical and quarantined with every line named when its values differ. Readers
never import Dagster.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from eemo_pipeline.contracts import source_declarations, table_contract
from eemo_pipeline.sources.files import PathEscapeError, canonical_relative, is_inside, resolve_inside
from eemo_pipeline.sources.reading import FileRead, session

# The declared sources in data_contracts/sources.yaml order: the Dagster partitions, so keep it stable.
SOURCES: tuple[str, ...] = tuple(source_declarations())
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


CUT_REASON = "record cut short: the file ends mid-row (truncated file?)"
EXACT_REPEAT = "exact repeat of line"  # how repeated_records names a dropped identical repeat (no fault)
# Control characters no cell of a text source holds: C0 but TAB and LF (line ends reach readers as LF), DEL, C1
# (U+0080..U+009F: U+009B is an 8-bit terminal escape, U+0085 a line break to some readers) and the bidirectional
# embeddings, overrides and isolates (U+202A..U+202E, U+2066..U+2069), which make a cell read otherwise than it is.
# Written as the characters themselves (not escapes) so that Python's ``re`` and Polars' regex read it alike.
_CONTROL_CODES = (*range(0, 9), *range(11, 32), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A))
CONTROL_CHARACTERS = r"[\x00-\x08\x0B-\x1F" + "\x7f-\x9f\u202a-\u202e\u2066-\u2069" + "]"
CONTROL_NAMES = {chr(c): f"U+{c:04X}" + (" (NUL)" if c == 0 else "") for c in _CONTROL_CODES}
_MESSAGE_CHARS = 2000  # a format error quotes at most this much of what it found


def excerpt(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked with how many were left out."""
    return text if len(text) <= limit else f"{text[:limit]}... [{len(text) - limit:,} more characters]"


class SourceFormatError(ValueError):
    """A whole file is unreadable as the expected format; the message names the file, what was expected and,
    where the problem has one, its 1-based line and column (a missing file or a binary .mat has none).

    Deterministic: the same bytes fail the same way, so the ingestion assets never retry it."""

    def __init__(self, file: Path | str, expected: str, line: int | None = None, column: int | None = None):
        expected = excerpt(expected, _MESSAGE_CHARS)
        self.file, self.expected, self.line, self.column = str(file), expected, line, column
        where = ", ".join(f"{name} {n}" for name, n in (("line", line), ("column", column)) if n is not None)
        super().__init__(f"{file}: {expected}" + (f" ({where})" if where else ""))


@dataclass(frozen=True)
class SourceRead:
    """A reader's output: canonical rows (``raw_annotations`` columns) and rows rejected while parsing, and
    ``record_images``: the image of every record parsed (``file``, ``line``, ``image_id``; rejected records
    included), so that validation can quarantine the rest of an image one of whose records was rejected (no
    partial distribution). Filled in by ``reading.read_source``: every file read (relative path -> size,
    sha256), notes on how files that end without a line break were judged, and the files whose last record
    could not be checked."""

    rows: pl.DataFrame
    rejects: pl.DataFrame
    record_images: pl.DataFrame | None = None
    files: Mapping[str, FileRead] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    unchecked: tuple[str, ...] = ()


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
    return cap_quarantine(pl.DataFrame(rows, schema=schema))


def _cap_record(record: str, limit: int) -> str:
    """A JSON record over ``limit`` characters with each long string value cut (still JSON), else its excerpt."""
    try:
        values = json.loads(record)
    except ValueError:
        return json.dumps({"excerpt": excerpt(record, limit)}, ensure_ascii=False)
    if isinstance(values, dict):
        share = max(80, limit // max(1, len(values)))
        values = {k: excerpt(v, share) if isinstance(v, str) else v for k, v in values.items()}
    capped = json.dumps(values, ensure_ascii=False, default=str)
    return capped if len(capped) <= limit else json.dumps({"excerpt": excerpt(record, limit)}, ensure_ascii=False)


def cap_quarantine(frame: pl.DataFrame) -> pl.DataFrame:
    """Quarantine rows with ``reason`` and ``record`` cut to ``max_record_chars`` (raw_annotations rules): a huge
    cell is named, never copied whole into the quarantine, metadata or logs."""
    limit = int(table_contract("raw_annotations").rules["max_record_chars"])
    too_long = (pl.col("reason").str.len_chars() > limit) | (pl.col("record").str.len_chars() > limit).fill_null(False)
    if frame.is_empty() or not frame.select(too_long.any()).item():
        return frame
    return frame.with_columns(
        pl.Series("reason", [excerpt(r, limit) for r in frame["reason"]], pl.String),
        pl.Series("record", [r if r is None or len(r) <= limit else _cap_record(r, limit) for r in frame["record"]],
                  pl.String),
    )


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def require_plain_file(path: Path) -> None:
    """Raise ``SourceFormatError`` naming ``path`` unless it is (a link to) a plain file: a reader never opens a
    FIFO (it would wait forever), a device or a directory, and never skips one silently."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            raise SourceFormatError(path, f"a broken link (to {os.readlink(path)}), not a file") from None
        raise SourceFormatError(path, "file not found") from None
    except OSError as error:
        raise SourceFormatError(path, f"cannot read the file ({error.strerror or error})") from error
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise SourceFormatError(path, f"{kind}, not a file")


def optional_file(root: Path, relative: str) -> Path | None:
    """``root / relative`` when a plain file inside ``root`` is there, None when nothing is. Anything else there
    raises ``SourceFormatError`` naming it: a directory, FIFO, socket or device, a broken link, or a link out of
    the root (an annotation file's content must be what the root's fingerprint covers)."""
    path = Path(root) / relative
    if not os.path.lexists(path):
        return None
    try:
        resolve_inside(root, relative)
    except PathEscapeError as error:
        raise SourceFormatError(path, f"a link out of the source root (to {error.resolved}): refused") from None
    require_plain_file(path)
    return path


def require_file(root: Path, relative: str, expected: str) -> Path:
    path = optional_file(root, relative)
    if path is None:
        raise SourceFormatError(Path(root) / relative, f"file not found; expected {expected}")
    return path


def require_columns(frame: pl.DataFrame, columns: list[str], file: Path | str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        found = excerpt(repr(frame.columns), 300)
        raise SourceFormatError(file, f"missing columns {missing}; expected columns {columns}, found {found}", line=1)


def record_images(frame: pl.DataFrame, file: str, image_id: pl.Expr | str = "image_id") -> pl.DataFrame:
    """``file, line, image_id`` of every record of ``frame`` (``source_line`` per record): ``SourceRead.record_images``."""
    image = pl.col(image_id) if isinstance(image_id, str) else image_id
    return frame.select(pl.lit(file).alias("file"), pl.col("source_line").cast(pl.Int64).alias("line"),
                        image.alias("image_id")).filter(pl.col("image_id").is_not_null())


# A path spelled otherwise than ``canonical_relative`` writes it: a '.' or '..' segment, an empty one, a leading or trailing '/'.
NON_CANONICAL_PATH = r"(^|/)\.\.?(/|$)|//|^/|/$"


def canonical_paths(frame: pl.DataFrame, column: str, alias: str | None = None) -> pl.DataFrame:
    """``frame`` with the image paths of ``column`` (relative to the folder a reader puts in front of them) in
    their one spelling (``files.canonical_relative``), as ``alias`` (default: in place). Every reader builds its
    image_id from these, so that ``x/../a.jpg``, ``./a.jpg`` and ``/a.jpg`` are the image ``a.jpg``: one image,
    whose labels are kept or quarantined whole. A path whose ``..`` climbs above its folder keeps its spelling
    (validation quarantines it as escaping the source root); one that is nothing but slashes and dots is null
    (a missing image). Only the odd spellings are looked at (most files have none)."""
    odd = pl.col(column).str.contains(NON_CANONICAL_PATH)
    target = alias or column
    if not frame.select(odd.any()).item():
        return frame if target == column else frame.with_columns(pl.col(column).alias(target))
    mapping: dict[str, str | None] = {}
    for spelling in frame.filter(odd.fill_null(False))[column].unique().to_list():
        canonical = canonical_relative(spelling)
        if canonical is not None:
            mapping[spelling] = canonical or None
    return frame.with_columns(pl.col(column).replace(mapping).alias(target))


def control_characters(frame: pl.DataFrame, columns: list[str]) -> pl.Expr:
    """Per row of ``frame``, why a cell of ``columns`` (text) holds a control character
    (``CONTROL_CHARACTERS``: C0 but TAB and LF, DEL, C1, bidi overrides), naming the column, the character (as
    ``U+009B``, never itself) and
    its position in the cell; null when none. Such a row is damaged (a NUL from a crashed writer, binary junk):
    readers quarantine it whole. The reasons are spelled out only when some cell holds one (a scan of the file
    first: spelling them for every row would copy every cell)."""
    if not frame.select(pl.any_horizontal(pl.col(c).str.contains(CONTROL_CHARACTERS).any() for c in columns)).item():
        return pl.lit(None, pl.String)
    found = [
        pl.when(pl.col(c).str.contains(CONTROL_CHARACTERS)).then(pl.format(
            "column '{}' holds control character {} at character {} of the cell: damaged?", pl.lit(c),
            pl.col(c).str.extract(f"({CONTROL_CHARACTERS})").replace_strict(CONTROL_NAMES, default="?"),
            pl.col(c).str.extract(f"^([^{CONTROL_CHARACTERS[1:-1]}]*)").str.len_chars() + 1,
        ))
        for c in columns
    ]
    reason = pl.concat_str(found, separator="; ", ignore_nulls=True)
    return pl.when(reason != "").then(reason)


def _ends_inside_line(data: bytes) -> bool:
    """True when the last line holds something but no line break ends it (blanks and TABs only are nothing)."""
    return data.replace(b"\r", b"\n").rpartition(b"\n")[2].strip(b" \t") != b""


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


def read_file_bytes(path: Path) -> bytes:
    """A binary annotation file's bytes (EMOTIC's .mat), checked and recorded by the reading session."""
    return session().read(path, text=False)


def read_json(path: Path, expected: str) -> pl.DataFrame:
    """A JSON array of objects (``expected`` says which), checked by the reading session as text (UTF-16, NUL
    padding) but with no line-length limit; an error names its line and column."""
    data = session().read(path, text=True, long_lines=True)
    try:
        return pl.read_json(data, infer_schema_length=None)
    except (pl.exceptions.PolarsError, ValueError) as error:
        first = excerpt((str(error).strip().splitlines() or [type(error).__name__])[0], 300)
        try:
            json.loads(data.decode("utf-8-sig"))
        except UnicodeDecodeError as bad:
            line = data.count(b"\n", 0, bad.start) + 1
            column = bad.start - data.rfind(b"\n", 0, bad.start)
            raise SourceFormatError(path, f"not UTF-8 text (byte {data[bad.start]:#04x} at byte offset {bad.start:,}); "
                                    f"expected {expected}", line, column) from error
        except json.JSONDecodeError as bad:
            raise SourceFormatError(path, f"not JSON ({bad.msg}); expected {expected}", bad.lineno, bad.colno) from error
        raise SourceFormatError(path, f"not {expected} ({first})") from error


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def read_text(path: Path) -> str:
    """A text file as UTF-8 (BOM dropped), else cp1252; line ends are LF whatever the file used (the session)."""
    return _decode(session().read(path, text=True))


def read_csv_text(path: Path, text: str | None = None, **options: Any) -> pl.DataFrame:
    """Read a delimited file (or its already decoded ``text``) with every cell as a string.

    Parse failures become ``SourceFormatError`` naming ``path`` (and the line and column of a quote left
    open), with a hint when the file ends mid-record; so do repeated column names.
    """
    data = session().read(path, text=True) if text is None else text.encode("utf-8")
    try:
        return pl.read_csv(data, infer_schema=False, **options)
    except pl.exceptions.DuplicateError as error:
        raise SourceFormatError(path, f"the header names a column twice ({error})", line=1) from error
    except pl.exceptions.PolarsError as error:  # whatever polars cannot parse is a malformed file
        first = excerpt((str(error).strip().splitlines() or [type(error).__name__])[0], 300)
        hint = "; the file ends inside a record (truncated download?)" if _ends_inside_line(data) else ""
        quote = options.get("quote_char", '"')
        text = _decode(data) if text is None else text
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
    ``SourceFormatError`` naming both as written, as does a name holding a control character."""
    require_plain_header(frame.columns, file)
    seen: dict[str, tuple[int, str]] = {}
    for index, name in enumerate(frame.columns, start=1):
        cleaned = clean(name)
        if cleaned in seen:
            first_index, first = seen[cleaned]
            both = f"columns {first_index} [{first}] and {index} [{name}] both read as '{cleaned}'"
            raise SourceFormatError(file, both, line=1, column=index)
        seen[cleaned] = (index, name)
    return frame.rename({name: clean(name) for name in frame.columns})


def require_plain_header(names: list[str], file: Path | str) -> None:
    """A header cell holding a control character (``CONTROL_CHARACTERS``) is a damaged file: ``SourceFormatError``."""
    control = re.compile(CONTROL_CHARACTERS)
    for index, name in enumerate(names, start=1):
        found = control.search(name)
        if found:
            raise SourceFormatError(file, f"header column {index} {excerpt(repr(name), 100)} holds control character "
                                    f"{CONTROL_NAMES[found.group()]}: damaged file?", line=1, column=index)


def require_rows(frame: pl.DataFrame, file: Path | str) -> None:
    """A file with a header and nothing after it is damaged (an empty partition would pass for success)."""
    if frame.is_empty():
        raise SourceFormatError(file, "no data rows: the file holds a header only (truncated or emptied?)", line=2)


def cut_last_record(
    frame: pl.DataFrame, path: Path, twin: Callable[[], bool | None] | None = None, evidence: str | None = None
) -> pl.Expr:
    """True for the last record of ``frame`` (all records of ``path`` in file order) when the file was cut inside
    it: it ends without its final line break and evidence says so (``reading.ReadingSession.last_record_cut``).
    ``twin`` tells whether the last record agrees with a twin file (True), disagrees (False) or cannot be
    compared (None); ``evidence`` is what the reader saw in the record itself. A missing final line break alone
    keeps the record."""
    if frame.is_empty() or not session().last_record_cut(path, frame.height, twin, evidence):
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
    # Candidates first, by a 64-bit hash of the key (a window over the string keys of Affection's half a million
    # rows costs ~250 MB); the exact count over the key then runs on the few candidates only.
    hashed = pl.lit(0, pl.UInt64)
    for seed, name in enumerate(key):
        hashed = hashed.xor(pl.col(name).hash(seed))
    candidates = frame.filter(pl.all_horizontal(pl.col(key).is_not_null()) & hashed.is_duplicated())
    repeated = candidates.filter(pl.len().over(key) > 1)
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
            reason = f"{EXACT_REPEAT} {row['_lines'][0]} ({what}); dropped"
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
    None when not found, or when the path leaves the root or no file can have it (a NUL byte): nothing outside
    the root is probed."""
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
