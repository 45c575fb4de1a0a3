"""Progress for long work on tqdm: a redrawn bar on a terminal, plain periodic lines otherwise.

``progress(items, "ingest")`` wraps an iterable; ``progress(total, "describer")`` gives a counter to
``advance()`` or to pass as a ``(done, total)`` callback (the signature of the generation batch runner, the
manifest builder and the evaluation runner). On a TTY tqdm redraws the bar in place on stderr (at most
``REDRAW_S`` apart); elsewhere (CI, Dagster compute logs, a pipe) tqdm's line goes out as a plain line, without
carriage returns, at most once every ``interval_s`` seconds while the work runs, plus a final line, and nothing
at all for work shorter than that (tqdm's ``delay``). Nested work (the batch runner's bar inside ``eemo assess``'s)
moves no cursor there: each bar writes its own plain lines, and no escape sequence reaches the file.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Generic, TypeVar

from tqdm import tqdm

T = TypeVar("T")

# Plain lines (no TTY): at most one per interval, and none for work that finishes within it.
DEFAULT_INTERVAL_S = 10.0
# Bar redraws on a TTY: often enough to look live, rarely enough to cost nothing.
REDRAW_S = 0.1
FALLBACK_SIZE = (80, 24)  # columns, rows
# Terminal escape sequences (CSI such as tqdm's cursor-up ``\x1b[A``, and lone ESC pairs): no place in a log line.
ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")


def _columns(stream: IO[str]) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


class _Lines:
    """A file for tqdm that turns its in-place redraws (``\\r`` + status + padding) into one line per status, without
    the cursor movements (``\\x1b[A``) of nested bars."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._last = ""

    def write(self, text: str) -> None:
        for part in ESCAPES.sub("", text).replace("\r", "\n").split("\n"):
            line = part.strip()
            if line and line != self._last:
                self.stream.write(line + "\n")
                self._last = line

    def flush(self) -> None:
        self.stream.flush()


class Progress(Generic[T]):
    """One piece of long work: ``done`` of ``total`` items (``total`` may be unknown)."""

    def __init__(self, items: Iterable[T] | None, total: int | None, description: str, *,
                 stream: IO[str] | None = None, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.items = items
        self.description = description
        stream = stream if stream is not None else sys.stderr
        self.is_tty = bool(getattr(stream, "isatty", lambda: False)())
        # disable=False explicitly: TQDM_DISABLE (the demo's setting for third-party bars) must not hide these.
        if self.is_tty:
            # Follow the terminal's size; one that reports none (a bare pseudo-terminal) gets a fixed one, since
            # tqdm would draw nothing in 0 rows.
            sized = _columns(stream) > 0
            self._bar = tqdm(total=total, desc=description, file=stream, mininterval=REDRAW_S, dynamic_ncols=sized,
                             ncols=None if sized else FALLBACK_SIZE[0], nrows=None if sized else FALLBACK_SIZE[1],
                             disable=False)
        else:
            # position=0: a bar inside another (the batch runner's in assess's) keeps its own lines rather than a row
            # below the outer bar, reached by moving the cursor.
            self._bar = tqdm(total=total, desc=description, file=_Lines(stream), mininterval=interval_s,
                             delay=interval_s, miniters=1, ascii=True, disable=False, position=0)

    @property
    def total(self) -> int | None:
        return self._bar.total

    @property
    def done(self) -> int:
        return self._bar.n

    def __iter__(self) -> Iterator[T]:
        if self.items is None:
            raise TypeError(f"progress {self.description!r} was built from a count, not an iterable")
        try:
            for item in self.items:
                yield item
                self._bar.update(1)
        finally:
            self.close()

    def advance(self, count: int = 1) -> None:
        self._bar.update(count)

    def update(self, done: int, total: int | None = None) -> None:
        """Set the absolute count (and the total when it becomes known)."""
        if total is not None:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def __call__(self, done: int, total: int) -> None:
        """A ``(done, total)`` callback, as the batch runners take."""
        self.update(done, total)

    def write(self, message: str, stream: IO[str] | None = None) -> None:
        """Print ``message`` (to stdout by default) without tearing the bar: clear it, print, redraw."""
        if self.is_tty:
            self._bar.clear()
        print(message, file=stream if stream is not None else sys.stdout, flush=True)
        if self.is_tty:
            self._bar.refresh()

    def close(self) -> None:
        """Final state: the bar left on its own line (TTY), or a last line when any line went out before."""
        self._bar.close()

    def __enter__(self) -> Progress[T]:
        return self

    def __exit__(self, *_) -> None:
        self.close()


def progress(items: Iterable[T] | int | None, description: str, *, total: int | None = None,
             stream: IO[str] | None = None, interval_s: float = DEFAULT_INTERVAL_S) -> Progress[T]:
    """Progress over an iterable (iterate the result) or a count (``advance``/``update``/call it; close it)."""
    if isinstance(items, int) or items is None:
        return Progress(None, items if total is None else total, description, stream=stream, interval_s=interval_s)
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    return Progress(items, total, description, stream=stream, interval_s=interval_s)
