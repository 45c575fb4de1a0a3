from __future__ import annotations

import io
import os
import pty
import re
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
    # tqdm's line at the start and after each item (interval 0), then the final one; never a carriage return.
    assert "\r" not in stream.getvalue()
    assert lines[0].startswith("ingest:   0%") and "0/4" in lines[0]
    assert [line.split("| ")[1].split()[0] for line in lines[1:5]] == ["1/4", "2/4", "3/4", "4/4"]
    assert lines[-1].startswith("ingest: 100%") and len(lines) <= 6


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
    assert output.startswith("\rdescriber:   0%|") and "0/3" in output.split("\r")[1]
    assert "\rdescriber: 100%|" in output and "3/3" in output.split("\r")[-1] and output.endswith("\n")
    assert output.count("\n") == 1  # redrawn in place, left on its own line


def test_unknown_total_counts_and_write_keeps_the_bar_whole() -> None:
    stream, out = FakeTerminal(), io.StringIO()
    bar = progress((x for x in range(2)), "stages", stream=stream)
    assert bar.total is None
    for item in bar:
        bar.write(f"running {item}", stream=out)
    assert out.getvalue() == "running 0\nrunning 1\n"
    drawn = stream.getvalue()
    assert "stages: 2it" in drawn and "%" not in drawn  # a count, no share, without a total
    assert len(re.findall(r"\r +\r\rstages: \dit", drawn)) == 2  # cleared before each message, redrawn after


def test_total_learned_late_and_count_progress_cannot_be_iterated() -> None:
    stream = io.StringIO()
    bar = progress(None, "evaluation", stream=stream, interval_s=0.0)
    bar.update(5, total=10)
    assert stream.getvalue().splitlines()[-1].startswith("evaluation:  50%") and "5/10" in stream.getvalue()
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
    assert b"\rdemo stages:   0%" in terminal and b"demo stages: 100%" in terminal and b"3/3" in terminal
    piped = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0 and piped.stderr == ""


def test_tqdm_disable_hides_third_party_bars_but_not_ours() -> None:
    """The demo sets TQDM_DISABLE for the libraries' bars (weights loading); its own stage bar still shows."""
    code = ("import io, sys\n"
            "from tqdm import tqdm\n"
            "from eemo_pipeline.progress import progress\n"
            "for _ in tqdm(range(3), desc='third party', file=sys.stderr): pass\n"
            "for _ in progress(range(3), 'ours', interval_s=0.0): pass\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TQDM_DISABLE": "1"})
    assert done.returncode == 0, done.stderr
    assert "third party" not in done.stderr and "ours: 100%" in done.stderr


def test_nested_progress_without_a_tty_writes_plain_lines_without_cursor_movement() -> None:
    # Hostile probe: `eemo assess 2> file` held `\x1b[A` (tqdm moving the cursor up to the outer bar from the inner
    # one, the batch runner's bar inside assess's), though the README promises plain lines.
    stream = io.StringIO()
    with progress(2, "assess", stream=stream, interval_s=0.0) as outer:
        for _ in range(2):
            for _ in progress(range(3), "describer (m)", stream=stream, interval_s=0.0):
                pass
            outer.advance()
    text = stream.getvalue()
    assert "\x1b" not in text and "\r" not in text
    lines = text.splitlines()
    assert all(line and line == line.strip() for line in lines)
    assert sum(line.startswith("describer (m): 100%") for line in lines) >= 2  # each inner bar ends on its line
    assert lines[-1].startswith("assess: 100%")
