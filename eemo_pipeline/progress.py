"""Progress for long work, dependency-free: a redrawn bar on a terminal, plain periodic lines otherwise.

``progress(items, "ingest")`` wraps an iterable; ``progress(total, "describer")`` gives a counter to
``advance()`` or to pass as a ``(done, total)`` callback (the signature of the generation batch runner, the
manifest builder and the evaluation runner). On a TTY the bar is redrawn in place on stderr (at most
``REDRAW_S`` apart); elsewhere (CI, Dagster compute logs, a pipe) one line is printed every ``interval_s``
seconds while the work runs, plus a final line, and nothing at all for work shorter than that.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Generic, TypeVar

T = TypeVar("T")

# Plain lines (no TTY): at most one per interval, and none for work that finishes within it.
DEFAULT_INTERVAL_S = 10.0
# Bar redraws on a TTY: often enough to look live, rarely enough to cost nothing.
REDRAW_S = 0.1
BAR_WIDTH = 24


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress(Generic[T]):
    """One piece of long work: ``done`` of ``total`` items (``total`` may be unknown)."""

    def __init__(self, items: Iterable[T] | None, total: int | None, description: str, *,
                 stream: IO[str] | None = None, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.items = items
        self.total = total
        self.description = description
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.interval_s = interval_s
        self.is_tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self._shown_at: float | None = None  # when the last bar or line went out
        self._closed = False
        if self.is_tty:
            self._draw()

    # -- counting

    def __iter__(self) -> Iterator[T]:
        if self.items is None:
            raise TypeError(f"progress {self.description!r} was built from a count, not an iterable")
        try:
            for item in self.items:
                yield item
                self.advance()
        finally:
            self.close()

    def advance(self, count: int = 1) -> None:
        self.update(self.done + count)

    def update(self, done: int, total: int | None = None) -> None:
        """Set the absolute count (and the total when it becomes known)."""
        self.done = done
        if total is not None:
            self.total = total
        now = time.monotonic()
        if self.is_tty:
            if self._shown_at is None or now - self._shown_at >= REDRAW_S or self._complete():
                self._draw()
        elif now - (self._shown_at or self.started) >= self.interval_s:
            self._line()

    def __call__(self, done: int, total: int) -> None:
        """A ``(done, total)`` callback, as the batch runners take."""
        self.update(done, total)

    def _complete(self) -> bool:
        return self.total is not None and self.done >= self.total

    # -- output

    def status(self) -> str:
        """``description: 40/100 (40%) 0:12 elapsed, ~0:18 left`` (count and elapsed only when total is unknown)."""
        elapsed = time.monotonic() - self.started
        if not self.total:
            return f"{self.description}: {self.done} {_duration(elapsed)} elapsed"
        share = min(self.done / self.total, 1.0)
        text = f"{self.description}: {self.done}/{self.total} ({share:.0%}) {_duration(elapsed)} elapsed"
        if 0 < self.done < self.total:
            text += f", ~{_duration(elapsed * (self.total - self.done) / self.done)} left"
        return text

    def _draw(self) -> None:
        if self.total:
            filled = int(BAR_WIDTH * min(self.done / self.total, 1.0))
            bar = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
        else:
            bar = ""
        self.stream.write(f"\r\x1b[K{bar}{self.status()}")
        self.stream.flush()
        self._shown_at = time.monotonic()

    def _line(self) -> None:
        self.stream.write(self.status() + "\n")
        self.stream.flush()
        self._shown_at = time.monotonic()

    def write(self, message: str, stream: IO[str] | None = None) -> None:
        """Print ``message`` (to stdout by default) without tearing the bar: clear it, print, redraw."""
        out = stream if stream is not None else sys.stdout
        if self.is_tty and not self._closed:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        print(message, file=out, flush=True)
        if self.is_tty and not self._closed:
            self._draw()

    def close(self) -> None:
        """Final state: the bar left on its own line (TTY), or a last line when any line went out before."""
        if self._closed:
            return
        self._closed = True
        if self.is_tty:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
        elif self._shown_at is not None:
            self._line()

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
