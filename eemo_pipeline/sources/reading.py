"""Reading a source's files: every annotation byte a reader reads comes through a reading session.

``read_source(source, root, last_read)`` runs the source's reader inside a session that

* reads each file once, as a plain file inside the root (``base.require_file`` and ``optional_file`` refuse a
  directory, FIFO, socket, device, broken link or link out of the root, naming the file), and refuses a file
  over ``max_file_bytes`` or a text file with a line over ``max_line_bytes`` (raw_annotations rules) before
  anything is decoded or parsed, so memory stays bounded and no message quotes a huge line;
* records the size and sha256 of every file read (``SourceRead.files``);
* decides whether a file that ends without its final line break was cut inside its last record. A missing
  final newline is no evidence of a cut (many releases end that way); evidence is: the file being a strict
  prefix of the last version read before (``last_read``, kept by :func:`remember_files`), the release's record
  count declared in ``data_contracts/sources.yaml`` (fewer records: cut), or a twin file the reader compares
  (GAPED's "with SD" files). Without any, the record is kept and a note says it could not be checked.

Readers call ``base.read_text`` / ``read_csv_text`` / ``read_file_bytes`` and ``cut_last_record``; those find
the session here. Outside ``read_source`` (a reader called directly, the VAD lexicon) a session without a
root, release facts or earlier versions is used. No Dagster imports.
"""

from __future__ import annotations

import contextvars
import gzip
import hashlib
import json
import os
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from eemo_pipeline.contracts import source_facts, table_contract

if TYPE_CHECKING:
    from eemo_pipeline.sources.base import SourceRead

_CHUNK = 1 << 20
INDEX = "index.json"


@dataclass(frozen=True)
class FileRead:
    """One file as a reader read it. ``cut_from``: the size of the version read before, when this file is a
    strict prefix of it (the rest was lost); ``cut_at_line_end``: that version went on with a line break, so
    the cut fell between records, not inside one."""

    size: int
    sha256: str
    final_newline: bool
    cut_from: int | None = None
    cut_at_line_end: bool = False


@dataclass
class ReadingSession:
    root: Path | None = None
    release: Mapping[str, int] = field(default_factory=dict)  # declared records per file (relative path)
    last_read: Path | None = None  # folder kept by remember_files
    files: dict[str, FileRead] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # files whose unterminated last record could not be checked

    def key(self, path: Path) -> str:
        path = Path(path)
        if self.root is not None and path.is_relative_to(self.root):
            return path.relative_to(self.root).as_posix()
        return str(path)

    def read(self, path: Path, *, text: bool) -> bytes:
        """The bytes of ``path``, checked and recorded (see the module docstring)."""
        from eemo_pipeline.sources.base import SourceFormatError, require_plain_file  # base imports this module

        require_plain_file(path)
        rules = table_contract("raw_annotations").rules
        size = path.stat().st_size
        if size > int(rules["max_file_bytes"]):
            raise SourceFormatError(
                path, f"the file is {size:,} bytes, over the limit of {int(rules['max_file_bytes']):,} bytes "
                "(max_file_bytes in data_contracts/raw_annotations.yaml)")
        try:
            with path.open("rb") as handle:
                data = handle.read()
        except OSError as error:
            raise SourceFormatError(path, f"cannot read the file ({error.strerror or error})") from error
        if text:
            long_line = first_long_line(data, int(rules["max_line_bytes"]))
            if long_line is not None:
                line, length = long_line
                raise SourceFormatError(
                    path, f"line {line} is {length:,} bytes long, over the limit of {int(rules['max_line_bytes']):,} "
                    "bytes (max_line_bytes in data_contracts/raw_annotations.yaml): damaged, or not this format?",
                    line=line)
        key = self.key(path)
        digest = hashlib.sha256(data).hexdigest()
        final_newline = data.endswith((b"\n", b"\r")) or not data.strip(b" \t")
        cut_from, next_byte = _strict_prefix_of(self.last_read, key, data, digest)
        self.files[key] = FileRead(len(data), digest, final_newline, cut_from, next_byte in (b"\n", b"\r"))
        if cut_from is not None and final_newline:
            self.notes.append(f"{key}: holds the first {len(data):,} of the {cut_from:,} bytes read before, ending "
                              "on a line break: the records after it are gone (cut or shortened file?)")
        return data

    def last_record_cut(self, path: Path, records: int, twin: Callable[[], bool | None] | None = None) -> bool:
        """Whether the last of ``records`` records of ``path`` was cut short: only when the file ends without its
        final line break and evidence says so (see the module docstring); a note records the decision."""
        key = self.key(path)
        read = self.files.get(key)
        if read is None or read.final_newline or records == 0:
            return False
        if read.cut_from is not None:
            whole = read.cut_at_line_end
            self.notes.append(f"{key}: holds the first {read.size:,} of the {read.cut_from:,} bytes read before and ends "
                              + ("at the end of a record (the version before went on with a line break): the last "
                                 "record is whole and kept" if whole else
                                 "inside its last record: that record is quarantined as cut short"))
            return not whole
        verdict = twin() if twin is not None else None
        if verdict is not None:
            self.notes.append(f"{key}: ends without a line break; its last record {'agrees' if verdict else 'disagrees'}"
                              f" with the twin file: {'kept' if verdict else 'quarantined as cut short'}")
            return not verdict
        declared = self.release.get(key)
        if declared is not None and records < declared:
            self.notes.append(f"{key}: holds {records:,} of the release's {declared:,} records and ends without a "
                              "line break: its last record is quarantined as cut short")
            return True
        if declared is not None and records == declared:
            self.notes.append(f"{key}: ends without a line break and holds the release's {declared:,} records: "
                              "its last record is kept")
            return False
        self.unchecked.append(key)
        self.notes.append(f"{key}: ends without a line break, and no earlier version, release record count or twin "
                          "file tells whether its last record is whole: kept, unchecked")
        return False


_SESSION: contextvars.ContextVar[ReadingSession | None] = contextvars.ContextVar("reading_session", default=None)


def session() -> ReadingSession:
    """The active reading session, else a fresh one without root, release facts or earlier versions."""
    return _SESSION.get() or ReadingSession()


@contextmanager
def reading(session: ReadingSession) -> Iterator[ReadingSession]:
    token = _SESSION.set(session)
    try:
        yield session
    finally:
        _SESSION.reset(token)


def read_source(
    source: str, root: Path, last_read: Path | None = None, release: Mapping[str, int] | None = None
) -> SourceRead:
    """Run the reader of ``source`` on ``root`` in a reading session; returns its ``SourceRead`` with ``files``,
    ``notes`` and ``unchecked`` filled in. ``release`` (records per file) replaces the declared release facts."""
    from eemo_pipeline.sources import source_module

    root = Path(root).resolve()
    declared = source_facts(source).release if release is None else release
    with reading(ReadingSession(root=root, release=dict(declared), last_read=last_read)) as current:
        result = source_module(source).read(root)
    return replace(result, files=dict(current.files), notes=tuple(current.notes), unchecked=tuple(current.unchecked))


def first_long_line(data: bytes, limit: int) -> tuple[int, int] | None:
    """``(1-based line, length in bytes)`` of the first line longer than ``limit`` (LF, CRLF or CR line ends).

    Jumps from line start to the last line break within ``limit`` bytes, so a file of short lines costs one
    step per ``limit`` bytes, not one per line."""
    start = 0
    while len(data) - start > limit:
        window = start + limit + 1
        brk = max(data.rfind(b"\n", start, window), data.rfind(b"\r", start, window))
        if brk == -1:
            ends = [i for i in (data.find(b"\n", start), data.find(b"\r", start)) if i != -1]
            line = 1 + data.count(b"\n", 0, start) + data.count(b"\r", 0, start) - data.count(b"\r\n", 0, start)
            return line, min(ends, default=len(data)) - start
        start = brk + (2 if data[brk : brk + 2] == b"\r\n" else 1)
    return None


# ---------------------------------------------------------------------------------------------------
# The last version of each file read: evidence that a later version was cut.


def _index(last_read: Path | None) -> dict[str, dict]:
    if last_read is None or not (last_read / INDEX).is_file():
        return {}
    try:
        return json.loads((last_read / INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a damaged index only loses the evidence


def _strict_prefix_of(last_read: Path | None, key: str, data: bytes, digest: str) -> tuple[int | None, bytes]:
    """``(size of the version of key read before, its byte after data)`` when ``data`` is a strict prefix of
    that version, else ``(None, b"")``."""
    entry = _index(last_read).get(key)
    if not entry or entry["size"] <= len(data) or entry["sha256"] == digest:
        return None, b""
    stored = last_read / "files" / f"{entry['sha256']}.gz"
    view = memoryview(data)
    try:
        with gzip.open(stored, "rb") as handle:
            position = 0
            while position < len(data):
                block = handle.read(min(_CHUNK, len(data) - position))
                if not block or view[position : position + len(block)] != block:
                    return None, b""
                position += len(block)
            following = handle.read(1)
    except (OSError, EOFError, zlib.error):
        return None, b""
    return int(entry["size"]), following


def remember_files(last_read: Path, root: Path, files: Mapping[str, FileRead]) -> None:
    """Keep (gzip) every file of ``files`` as the version later reads compare with, except a file found to be a
    strict prefix of the version before it: the complete version stays the evidence. Files that changed on disk
    since they were read are skipped."""
    index = _index(last_read)
    changed = False
    for key, read in files.items():
        if read.cut_from is not None or index.get(key, {}).get("sha256") == read.sha256:
            continue
        path = Path(key) if Path(key).is_absolute() else Path(root) / key
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if hashlib.sha256(data).hexdigest() != read.sha256:
            continue
        stored = last_read / "files" / f"{read.sha256}.gz"
        stored.parent.mkdir(parents=True, exist_ok=True)
        partial = stored.with_name(f".{stored.name}.{os.getpid()}.partial")
        with gzip.open(partial, "wb", compresslevel=6) as handle:
            handle.write(data)
        os.replace(partial, stored)
        index[key] = {"size": read.size, "sha256": read.sha256}
        changed = True
    if not changed:
        return
    partial = last_read / f".{INDEX}.{os.getpid()}.partial"
    partial.write_text(json.dumps(index, sort_keys=True, indent=1), encoding="utf-8")
    os.replace(partial, last_read / INDEX)
    kept = {f"{entry['sha256']}.gz" for entry in index.values()}
    for stale in (last_read / "files").glob("*.gz"):
        if stale.name not in kept:
            stale.unlink(missing_ok=True)
