"""Child processes that end with the process that started them."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable


def end_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to send the child SIGTERM when the thread that started it ends; resolved
    before the fork, so the child only makes the system call."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    set_parent_death_signal = 1  # PR_SET_PDEATHSIG

    def arm() -> None:
        prctl(set_parent_death_signal, int(signal.SIGTERM))

    return arm
