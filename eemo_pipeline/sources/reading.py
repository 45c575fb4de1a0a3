"""Reading a source's files: every annotation byte a reader reads comes through a reading session.

``read_source(source, root, last_read)`` runs the source's reader inside a session that

* reads each file once, as a plain file inside the root (``base.require_file`` and ``optional_file`` refuse a
  directory, FIFO, socket, device, broken link or link out of the root, naming the file), and refuses a file
  over the source's ``max_file_bytes`` (``sources.yaml``, else the raw_annotations rule) or a text file with a
  line over ``max_line_bytes`` before anything is decoded or parsed, so memory stays bounded and no message
  quotes a huge line;
* refuses a text file that is UTF-16 or UTF-32 (a byte order mark, or NUL bytes between the characters) or that
  ends in NUL padding (a file preallocated by a writer that stopped), naming the byte offset; and hands readers
  LF line ends whatever the file used (LF, CRLF or CR only), so no reader sees a CR;
* records the size and sha256 of every file read, as it is on disk (``SourceRead.files``);
* decides whether a file that ends without its final line break was cut inside its last record. A missing
  final newline is no evidence of a cut (many releases end that way); evidence is: the file being a strict
  prefix of the last version read before (``last_read``, kept by :func:`remember_files`), the release's record
  count declared in ``data_contracts/sources.yaml`` when the file claims to be the release (at least
  ``release_share`` of the declared records, fewer than declared: cut; a smaller file is a subset, whose last
  record nothing can check), a twin file the reader compares (GAPED's "with SD" files), or what the reader
  sees in the record itself (an unclosed bracket). Without any, the record is kept and a note says it could
  not be checked.

Readers call ``base.read_text`` / ``read_csv_text`` / ``read_json`` / ``read_file_bytes`` and
``cut_last_record``; those find the session here. Outside ``read_source`` (a reader called directly, the VAD
lexicon) a session without a root, release facts or earlier versions is used. No Dagster imports.
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
    max_file_bytes: int | None = None  # the source's limit (sources.yaml); None: the raw_annotations rule
    limit_key: str = "max_file_bytes in data_contracts/raw_annotations.yaml"  # where the limit is declared
    files: dict[str, FileRead] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # files whose unterminated last record could not be checked

    def key(self, path: Path) -> str:
        path = Path(path)
        if self.root is not None and path.is_relative_to(self.root):
            return path.relative_to(self.root).as_posix()
        return str(path)

    def read(self, path: Path, *, text: bool, long_lines: bool = False) -> bytes:
        """The bytes of ``path``, checked and recorded (see the module docstring). For ``text``, the file's
        encoding and ending are checked and its line ends come back as LF; ``long_lines`` lifts the line-length
        limit (a JSON file may be one line)."""
        from eemo_pipeline.sources.base import SourceFormatError, require_plain_file  # base imports this module

        require_plain_file(path)
        rules = table_contract("raw_annotations").rules
        limit = self.max_file_bytes or int(rules["max_file_bytes"])
        size = path.stat().st_size
        if size > limit:
            raise SourceFormatError(path, f"the file is {size:,} bytes, over the limit of {limit:,} bytes ({self.limit_key})")
        try:
            with path.open("rb") as handle:
                data = handle.read(limit + 1)
        except OSError as error:
            raise SourceFormatError(path, f"cannot read the file ({error.strerror or error})") from error
        if len(data) > limit:  # grew since the check
            raise SourceFormatError(path, f"the file is over the limit of {limit:,} bytes ({self.limit_key})")
        if text:
            problem = wide_encoding(data) or nul_padding(data)
            if problem is not None:
                raise SourceFormatError(path, problem[0], line=problem[1])
            long_line = None if long_lines else first_long_line(data, int(rules["max_line_bytes"]))
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
        return lf_line_ends(data) if text else data

    def last_record_cut(
        self, path: Path, records: int, twin: Callable[[], bool | None] | None = None, evidence: str | None = None
    ) -> bool:
        """Whether the last of ``records`` records of ``path`` was cut short: only when the file ends without its
        final line break and evidence says so (see the module docstring); a note records the decision.
        ``evidence``: what the reader found in the last record itself that shows a cut (an unclosed bracket)."""
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
        if evidence is not None:
            self.notes.append(f"{key}: ends without a line break and its last record {evidence}: quarantined as cut short")
            return True
        verdict = twin() if twin is not None else None
        if verdict is not None:
            self.notes.append(f"{key}: ends without a line break; its last record {'agrees' if verdict else 'disagrees'}"
                              f" with the twin file: {'kept' if verdict else 'quarantined as cut short'}")
            return not verdict
        declared = self.release.get(key)
        share = float(table_contract("raw_annotations").rules["release_share"])
        if declared is not None and share * declared <= records < declared:
            self.notes.append(f"{key}: holds {records:,} of the release's {declared:,} records and ends without a "
                              "line break: its last record is quarantined as cut short")
            return True
        if declared is not None and records == declared:
            self.notes.append(f"{key}: ends without a line break and holds the release's {declared:,} records: "
                              "its last record is kept")
            return False
        self.unchecked.append(key)
        if declared is not None and records < declared:
            self.notes.append(f"{key}: ends without a line break and holds {records:,} records, under {share:.0%} of the "
                              f"release's {declared:,} (release_share): a subset, not the release, so the count is no "
                              "evidence: its last record is kept, unchecked")
            return False
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
    facts = source_facts(source)
    declared = facts.release if release is None else release
    limit_key = (f"max_file_bytes of {source} in data_contracts/sources.yaml" if facts.max_file_bytes is not None
                 else ReadingSession.limit_key)
    session = ReadingSession(root=root, release=dict(declared), last_read=last_read,
                             max_file_bytes=facts.max_file_bytes, limit_key=limit_key)
    with reading(session) as current:
        result = source_module(source).read(root)
    return replace(result, files=dict(current.files), notes=tuple(current.notes), unchecked=tuple(current.unchecked))


_WIDE_BOMS = ((b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe\x00\x00", "UTF-32"), (b"\xfe\xff", "UTF-16"), (b"\xff\xfe", "UTF-16"))
_SNIFF = 4096  # bytes looked at for NULs between characters


def wide_encoding(data: bytes) -> tuple[str, None] | None:
    """Why ``data`` is UTF-16 or UTF-32 text rather than UTF-8 (a byte order mark, or NUL bytes in every other
    position of its start, as ASCII text in UTF-16 has), else None."""
    for bom, name in _WIDE_BOMS:
        if data.startswith(bom):
            return f"{name} encoded (byte order mark {bom.hex(' ').upper()}): convert it to UTF-8", None
    head = data[:_SNIFF]
    half = len(head) // 2
    nuls = sorted((head[0::2].count(0), head[1::2].count(0)))
    if half >= 8 and nuls[1] >= 0.8 * half and nuls[0] < 0.2 * half:  # all NULs is padding, not text
        return "UTF-16 encoded (a NUL byte between the characters, no byte order mark): convert it to UTF-8", None
    return None


def nul_padding(data: bytes) -> tuple[str, int] | None:
    """Why ``data`` ends in NUL padding (NUL bytes, maybe with blanks and line breaks among them, to the end: what a
    writer that preallocated the file leaves when it stops), with the line where it starts; else None."""
    body = data.rstrip(b"\x00\r\n\t ")
    if len(body) == len(data) or b"\x00" not in data[len(body):]:
        return None
    start = len(body) + data[len(body):].index(b"\x00")
    nuls = data.count(b"\x00", start)
    line = 1 + data.count(b"\n", 0, start) + data.count(b"\r", 0, start) - data.count(b"\r\n", 0, start)
    return (f"ends in NUL padding: {nuls:,} NUL bytes from byte offset {start:,} (line {line}) to the end of the file, "
            "as a writer that stopped (crashed?) leaves a preallocated file: damaged, restore it"), line


def lf_line_ends(data: bytes) -> bytes:
    """``data`` with CRLF and CR-only line ends as LF (a copy only when there is a CR)."""
    if b"\r" not in data:
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


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
        stored = last_read / "files" / f"{read.sha256}.gz"
        stored.parent.mkdir(parents=True, exist_ok=True)
        partial = stored.with_name(f".{stored.name}.{os.getpid()}.partial")
        digest = hashlib.sha256()
        try:  # block by block: a copy of a large file in memory beside the frames just read would raise the peak
            with path.open("rb") as source, gzip.open(partial, "wb", compresslevel=6) as handle:
                while block := source.read(_CHUNK):
                    digest.update(block)
                    handle.write(block)
        except OSError:
            partial.unlink(missing_ok=True)
            continue
        if digest.hexdigest() != read.sha256:
            partial.unlink(missing_ok=True)
            continue
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
