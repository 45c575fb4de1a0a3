from __future__ import annotations

import io
import os
import pty
import subprocess
import sys

import pytest

from eemo_pipeline.progress import progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_tty_at_most_one_per_interval() -> None:
    stream = io.StringIO()
    for _ in progress(range(4), "ingest", stream=stream, interval_s=0.0):
        pass
    lines = stream.getvalue().splitlines()
    # One line per item (interval 0) plus the final line; never a carriage return in a log.
    assert "\r" not in stream.getvalue()
    assert lines[0].startswith("ingest: 1/4 (25%)") and "left" in lines[0]
    assert lines[-1].startswith("ingest: 4/4 (100%)") and len(lines) == 5


def test_short_work_prints_nothing_without_a_tty() -> None:
    stream = io.StringIO()
    assert list(progress(["a", "b"], "export", stream=stream)) == ["a", "b"]
    assert stream.getvalue() == ""


def test_bar_is_redrawn_in_place_on_a_tty_and_left_on_close() -> None:
    stream = FakeTerminal()
    with progress(3, "describer", stream=stream) as bar:
        for done in range(1, 4):
            bar(done, 3)  # the batch runners' (done, total) callback
    output = stream.getvalue()
    assert output.startswith("\r\x1b[K[" + "." * 24 + "] describer: 0/3 (0%)")
    assert f"[{'#' * 24}] describer: 3/3 (100%)" in output and output.endswith("\n")
    assert output.count("\n") == 1


def test_unknown_total_counts_and_write_keeps_the_bar_whole() -> None:
    stream, out = FakeTerminal(), io.StringIO()
    bar = progress((x for x in range(2)), "stages", stream=stream)
    assert bar.total is None
    for item in bar:
        bar.write(f"running {item}", stream=out)
    assert out.getvalue() == "running 0\nrunning 1\n"
    assert "stages: 2 " in stream.getvalue() and "%" not in stream.getvalue()
    assert stream.getvalue().count("\r\x1b[K") >= 4  # cleared before each message, redrawn after


def test_total_learned_late_and_count_progress_cannot_be_iterated() -> None:
    stream = io.StringIO()
    bar = progress(None, "evaluation", stream=stream, interval_s=0.0)
    bar.update(5, total=10)
    assert stream.getvalue().startswith("evaluation: 5/10 (50%)")
    with pytest.raises(TypeError, match="built from a count"):
        next(iter(bar))


def test_a_real_terminal_gets_the_bar_and_a_pipe_gets_nothing_for_short_work() -> None:
    code = ("from eemo_pipeline.progress import progress\n"
            "for _ in progress(range(3), 'demo stages'): pass\n")
    leader, follower = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-c", code], stderr=follower, stdout=subprocess.DEVNULL, timeout=60)
        os.close(follower)
        assert done.returncode == 0
        terminal = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the follower side closed
                break
            if not chunk:
                break
            terminal += chunk
    finally:
        os.close(leader)
    assert b"\r\x1b[K[" in terminal and b"demo stages: 3/3 (100%)" in terminal
    piped = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0 and piped.stderr == ""
