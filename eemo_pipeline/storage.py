"""Where outputs live under the storage root (``Settings.storage``): ``<root>/<asset>/<partition>.parquet`` (or
``<asset>.parquet``), and how files get there.

Every file is written under a hidden temporary name in its own directory (:func:`partial_path`), fsynced, then
renamed over the final name, so a reader sees the old file or the new one, never half of one. The files of one
asset partition (data, quarantine, lineage record) are replaced together by :func:`commit`: POSIX has no atomic
rename of several files, so the commit is a small redo journal, ``<root>/_commits/<asset>__<partition>.journal``,
that lists the renames. Before the journal exists nothing final has changed (a failure, ENOSPC included, only
removes the temporary files: the previous build stays whole); once it exists the commit is decided, and whoever
next touches that partition (:func:`recover`, also run at the start of every commit) finishes the renames it
lists. Renames are idempotent (a temporary file already renamed is simply gone), so rolling forward twice is
harmless. Commits of one partition hold an exclusive ``flock`` on ``_commits/<asset>__<partition>.lock``, so a
recovery never replays a journal whose writer is still renaming, and two writers of one partition never
interleave their files.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import polars as pl

COMMITS_DIR = "_commits"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.=-]+")


def asset_path(root: Path, asset: str, partition: str | None = None) -> Path:
    return root / asset / f"{partition}.parquet" if partition else root / f"{asset}.parquet"


def quarantine_path(root: Path, asset: str, partition: str | None = None) -> Path:
    return asset_path(root / "quarantine", asset, partition)


def storage_relative(path: Path | str, root: Path) -> str:
    """``path`` as data stores it: relative to the storage ``root`` (POSIX) when it lies inside, else absolute, so that
    no output depends on where its storage root is (rebuilds into another root are byte-identical)."""
    resolved = Path(path).expanduser().resolve()
    try:
        return resolved.relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(resolved)


def from_storage(value: str, root: Path) -> Path:
    """The inverse of ``storage_relative``: a relative ``value`` lies under the storage ``root``."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(root) / path


def partial_path(path: Path) -> Path:
    """The temporary name of ``path`` for this process and thread: hidden, beside it (so the rename stays on one
    file system), ending in ``.<pid>.<thread>.partial`` (so a later commit can tell a dead writer's leftovers)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")


def write_partial(frame: pl.DataFrame, path: Path) -> Path:
    """Write ``frame`` as zstd Parquet to ``partial_path(path)`` and fsync it; returns the temporary file. A failed
    write (disk full included) removes it and raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    try:
        frame.write_parquet(partial, compression="zstd", statistics=True)
        _fsync(partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return partial


def write_parquet(frame: pl.DataFrame, path: Path) -> Path:
    """Write zstd Parquet through a temporary file and a rename, so a crash never leaves half a file."""
    partial = write_partial(frame, path)
    try:
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    _fsync(path.parent)
    return path


def discard(paths: Iterable[Path | None]) -> None:
    """Remove temporary files that will not be committed."""
    for path in paths:
        if path is not None:
            path.unlink(missing_ok=True)


def commit_key(asset: str, partition: str | None) -> str:
    return "__".join(_SAFE_NAME.sub("_", part)[:80] for part in (asset, partition or "-"))


def commit(root: Path, key: str, moves: list[tuple[Path, Path]]) -> None:
    """Rename every ``(partial, final)`` of ``moves``, in order, as one commit of partition ``key`` (see the module
    docstring). Fails before the journal is written: every partial is removed and no final file changed. Fails
    after (a crash between renames): the journal stays and the next :func:`recover` or commit of ``key`` finishes
    the renames. After a commit, temporary files of dead writers beside the final files are removed."""
    journal = _journal(root, key)
    with _partition_lock(root, key):
        _roll_forward(root, journal)
        staged = journal.with_name(f".{journal.name}.partial")
        try:
            staged.write_text(json.dumps([[storage_relative(p, root), storage_relative(f, root)] for p, f in moves]))
            _fsync(staged)
            os.replace(staged, journal)
            _fsync(journal.parent)
        except BaseException:
            discard([staged, journal, *(partial for partial, _ in moves)])
            raise
        _roll_forward(root, journal)
    for _, final in moves:
        sweep_partials(final.parent, f".{glob_escape(final.name)}.*.partial")


def recover(root: Path, key: str) -> None:
    """Finish a commit of partition ``key`` that a crash cut off between its renames (nothing to do without one)."""
    journal = _journal(root, key)
    if journal.is_file():
        with _partition_lock(root, key):
            _roll_forward(root, journal)


def _journal(root: Path, key: str) -> Path:
    return Path(root) / COMMITS_DIR / f"{key}.journal"


@contextlib.contextmanager
def _partition_lock(root: Path, key: str) -> Iterator[None]:
    path = Path(root) / COMMITS_DIR / f"{key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held for a few renames only
        yield
    finally:
        os.close(fd)


def _roll_forward(root: Path, journal: Path) -> None:
    """Rename what ``journal`` lists (a partial already renamed is gone and skipped), then remove it."""
    try:
        moves = json.loads(journal.read_text())
    except FileNotFoundError:
        return
    directories = set()
    for partial, final in moves:
        partial, final = from_storage(partial, root), from_storage(final, root)
        if partial.exists():
            os.replace(partial, final)
        directories.add(final.parent)
    for directory in sorted(directories):
        _fsync(directory)
    journal.unlink()
    _fsync(journal.parent)


def sweep_partials(directory: Path, pattern: str) -> None:
    """Remove the temporary files in ``directory`` matching ``pattern`` whose writer no longer runs (a killed
    write); a live writer's files stay."""
    for partial in directory.glob(pattern):
        pid = partial.name.rsplit(".", 3)[-3]
        if pid.isdigit() and not _alive(int(pid)):
            partial.unlink(missing_ok=True)


def glob_escape(name: str) -> str:
    """``name`` matched literally by ``Path.glob``."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
