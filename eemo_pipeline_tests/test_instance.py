"""Opening one new Dagster home from several processes at once (`eemo demo`, tests, tools): every one gets the
instance with the pipeline's pool limits."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from dagster import DagsterInstance

OPEN = """
import os, sys, time
from pathlib import Path
from eemo_pipeline.instance import get_instance
go = Path(sys.argv[2])
(go.parent / f"ready-{os.getpid()}").touch()
while not go.exists():
    time.sleep(0.01)
get_instance(sys.argv[1]).dispose()
"""


def test_processes_opening_one_new_home_at_once_all_get_the_pool_limits(tmp_path: Path) -> None:
    """Issue 19: two `eemo demo` on one new Dagster home crashed (`UNIQUE constraint failed: concurrency_limits`;
    six openers at once also failed on Dagster's own schema set-up: `UNIQUE constraint failed:
    alembic_version.version_num`). Openers now create the databases and set the limits one after the other."""
    home, go = tmp_path / "home", tmp_path / "go"
    openers = [subprocess.Popen([sys.executable, "-c", OPEN, str(home), str(go)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(6)]
    deadline = time.monotonic() + 600
    while len(list(tmp_path.glob("ready-*"))) < len(openers) and time.monotonic() < deadline:
        time.sleep(0.1)  # every process has imported Dagster and waits at the start line
    go.touch()
    for opener in openers:
        out, _ = opener.communicate(timeout=600)
        assert opener.returncode == 0, out
    with DagsterInstance.from_config(str(home)) as instance:
        assert {pool: instance.event_log_storage.get_concurrency_info(pool).slot_count for pool in ("llm", "gpu")} \
            == {"llm": 8, "gpu": 1}
