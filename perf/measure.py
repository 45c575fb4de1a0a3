"""Best-of-N timing of a code snippet in a fresh interpreter, with the process's peak memory."""

from __future__ import annotations

import json
import subprocess
import sys

# argv: JSON of variables, setup code (not timed), step code (timed; may set RESULT to a dict of figures).
_RUNNER = """
import json, sys, time
import polars  # imported before the clock starts, for every measurement
globals().update(json.loads(sys.argv[1]))
RESULT = {}
exec(sys.argv[2])
start = time.perf_counter()
exec(sys.argv[3])
wall = time.perf_counter() - start
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the (large) parent process.
peak_kib = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"wall_s": wall, "peak_mib": peak_kib / 1024, **RESULT}))
"""


def measure(step: str, setup: str = "", variables: dict[str, object] | None = None, repeats: int = 3) -> dict:
    """Run ``setup`` then time ``step`` in ``repeats`` fresh processes; the fastest run's figures."""
    best: dict = {}
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, "-c", _RUNNER, json.dumps(variables or {}), setup, step],
            check=True, capture_output=True, text=True,
        )
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        if not best or figures["wall_s"] < best["wall_s"]:
            best = figures
    return best
