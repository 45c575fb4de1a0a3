"""Files of a source root: containment of every path a data set names, and the root's content fingerprint.

No Dagster imports: ``resolve_inside`` is used by the readers, the image manifest, generation and the
trainer exports; ``source_fingerprint`` backs the observable ``source_files`` asset.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

_CHUNK = 1 << 20


class UnusablePathError(ValueError):
    """A path named by a data set that no file inside its source root can have."""


class PathEscapeError(UnusablePathError):
    """A path named by a data set leaves its source root (``..``, an absolute path, or a symlink out)."""

    def __init__(self, relative: str, root: Path, resolved: Path | None, where: str = ""):
        self.relative, self.root, self.resolved = relative, root, resolved
        target = f" (resolves to {resolved})" if resolved is not None else ""
        super().__init__(f"{where + ': ' if where else ''}path '{relative}' escapes the source root {root}{target}")


NUL_REASON = "holds a NUL byte, which no file name can"


def resolve_inside(root: Path | str, relative: str, where: str = "") -> Path:
    """``root / relative`` with symlinks resolved; raises ``PathEscapeError`` (naming ``where``, e.g. the file
    and row the path came from) unless the result lies inside ``root``.

    Absolute paths and drive letters are refused before anything is touched, so an annotation file can
    never make the pipeline probe, hash or read a file elsewhere on the machine; a NUL byte raises
    ``UnusablePathError`` (the operating system would refuse the name with a bare ``ValueError``).
    """
    if "\x00" in relative:
        raise UnusablePathError(f"{where + ': ' if where else ''}path {relative!r} {NUL_REASON}")
    root = Path(root).resolve()
    if PurePosixPath(relative).is_absolute() or PureWindowsPath(relative).drive or PureWindowsPath(relative).root:
        raise PathEscapeError(relative, root, None, where)
    resolved = (root / relative).resolve()
    if not resolved.is_relative_to(root):
        raise PathEscapeError(relative, root, resolved, where)
    return resolved


def canonical_relative(path: str) -> str | None:
    """The one spelling of a relative path a data set names: POSIX segments without empty or ``.`` ones (so a
    leading, doubled or trailing ``/`` goes), each ``..`` resolved lexically against the segment before it;
    ``""`` when nothing is left, None when a ``..`` climbs above the start (it escapes: the caller keeps the
    spelling so that validation refuses it). A backslash is no separator here (validation refuses it)."""
    parts: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(segment)
    return "/".join(parts)


def is_inside(root: Path | str, relative: str) -> bool:
    try:
        resolve_inside(root, relative)
    except UnusablePathError:
        return False
    return True


@dataclass(frozen=True)
class Fingerprint:
    """A root's data version: sha256 over every file's relative path and content hash, in path order."""

    version: str
    files: int
    bytes: int
    hashed: int  # files read this time (the rest matched the cache by size and modification time)
    skipped: tuple[str, ...] = ()  # FIFOs, sockets and devices: never opened (a FIFO would block the walk)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def source_fingerprint(root: Path | str, cache_file: Path | None = None) -> Fingerprint:
    """Content fingerprint of every file under ``root`` (annotation files and images alike).

    Symlinks are never followed (one that points elsewhere is fingerprinted by its target text), so the
    walk stays inside the root. FIFOs, sockets and devices are skipped and listed in ``skipped`` (opening a
    FIFO would wait forever for a writer). ``cache_file`` (JSON, path -> [size, mtime_ns, sha256]) lets an unchanged
    file (same size and modification time) skip re-reading: a daily observation of a 100k-image source
    then reads only what changed.
    """
    root = Path(root).resolve()
    cached: dict[str, list] = {}
    if cache_file is not None and cache_file.is_file():
        try:
            cached = json.loads(cache_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cached = {}  # a damaged cache only costs a full re-hash
    entries: dict[str, list] = {}
    skipped: list[str] = []
    hashed = 0
    for directory, folders, names in os.walk(root, followlinks=False):
        folders.sort()
        for name in names + [f for f in folders if os.path.islink(os.path.join(directory, f))]:
            path = Path(directory, name)
            relative = path.relative_to(root).as_posix()
            status = path.lstat()
            if stat.S_ISLNK(status.st_mode):
                entries[relative] = [0, 0, "symlink:" + os.readlink(path)]
                continue
            if not stat.S_ISREG(status.st_mode):
                skipped.append(relative)
                continue
            previous = cached.get(relative)
            if previous and previous[0] == status.st_size and previous[1] == status.st_mtime_ns:
                entries[relative] = previous
            else:
                entries[relative] = [status.st_size, status.st_mtime_ns, _sha256(path)]
                hashed += 1
    digest = hashlib.sha256()
    for relative in sorted(entries):
        digest.update(f"{relative}\0{entries[relative][2]}\n".encode())
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps(entries, sort_keys=True), encoding="utf-8")
        os.replace(partial, cache_file)
    return Fingerprint(
        version=digest.hexdigest(), files=len(entries), bytes=sum(e[0] for e in entries.values()), hashed=hashed,
        skipped=tuple(sorted(skipped)),
    )
