from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from eemo_pipeline_tests.postgres_server import PostgresServer, running_postgres, unavailable_reason

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    root = tmp_path / "source"
    root.mkdir()
    return root


@dataclass(frozen=True)
class DemoRun:
    """One `eemo demo` in a subprocess: its folder (sample, storage, dagster_home), environment, process id and
    output, and the rival demos started while it ran (``run_demo(rivals=True)``)."""

    root: Path
    env: dict[str, str]
    canaries: dict[str, str]
    pid: int
    done: subprocess.CompletedProcess
    rivals: tuple[subprocess.CompletedProcess, ...] = ()

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    @property
    def rival_root(self) -> Path:
        """Where the rival on the same Dagster home would have put its own storage and sample."""
        return self.root / "rival"


EEMO = Path(sys.executable).with_name("eemo")


def run_demo(root: Path, sample_dir: Path, canaries: dict[str, str] | None = None, rivals: bool = False) -> DemoRun:
    """`eemo demo` with every EEMO_ variable unset but ``canaries`` (fake API keys), storage and Dagster home in
    ``root``; the offline model serves every role. With ``rivals``, once the demo is under way two more are
    started: one in the same folders, one with its own storage but the same Dagster home (both must refuse)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EEMO_")}
    env |= {"EEMO_STORAGE": str(root / "storage"), "DAGSTER_HOME": str(root / "dagster_home"), **(canaries or {}),
            "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}  # this checkout's code, wherever `eemo` came from
    root.mkdir(parents=True, exist_ok=True)
    command = [str(EEMO), "demo", "--sample-dir", str(sample_dir)]
    out, err = root / "demo.stdout", root / "demo.stderr"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=stdout, stderr=stderr,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        started: list[subprocess.CompletedProcess] = []
        if rivals:
            deadline = time.monotonic() + 600
            while "sample:" not in out.read_text() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
            if process.poll() is None and "sample:" in out.read_text():  # under way, holding its folders
                other = root / "rival"
                other.mkdir()
                for cwd, extra, sample in ((root, {}, sample_dir), (other, {"EEMO_STORAGE": str(other / "storage")},
                                                                    other / "sample")):
                    started.append(subprocess.run([str(EEMO), "demo", "--sample-dir", str(sample)], cwd=cwd,
                                                  env={**env, **extra}, capture_output=True, text=True, timeout=600,
                                                  stdin=subprocess.DEVNULL))
        returncode = process.wait(timeout=900)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    done = subprocess.CompletedProcess(command, returncode, out.read_text(), err.read_text())
    return DemoRun(root, env, canaries or {}, process.pid, done, tuple(started))


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The whole demo once per session (about 80 s), with a canary API key per role and two rival demos while it
    runs: test_cli checks what it built and that the rivals refused, test_security that no key reached any
    file, test_rebuild that a second build is byte-identical."""
    from eemo_pipeline.settings import ENDPOINT_ROLES, endpoint_variable

    root = tmp_path_factory.mktemp("demo")
    return run_demo(root, root / "sample", {endpoint_variable(role, "api_key"): f"sk-canary-{uuid.uuid4().hex}"
                                            for role in ENDPOINT_ROLES}, rivals=True)


@dataclass(frozen=True)
class Daemon:
    """A `dagster-daemon run` in a subprocess: its folder, Dagster home, workspace file and environment."""

    root: Path
    home: Path
    workspace: Path
    env: dict[str, str]

    def log_tail(self, chars: int = 3000) -> str:
        return (self.root / "daemon.log").read_text(errors="replace")[-chars:]

    def wait_for(self, what: str, condition: Callable[[], object], timeout: float, interval: float = 0.5) -> object:
        """Poll ``condition`` until it returns something true; after ``timeout`` seconds fail with the daemon's log."""
        deadline = time.monotonic() + timeout
        while True:
            if value := condition():
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; daemon log tail:\n"
                                     f"{self.log_tail()}")
            time.sleep(interval)


@contextlib.contextmanager
def running_daemon(root: Path, home: Path, workspace_yaml: str, env: dict[str, str] | None = None) -> Iterator[Daemon]:
    """`dagster-daemon run` on ``home`` with the workspace ``workspace_yaml`` (written to ``root``), this
    repository's code first on the path; stopped (its whole process group) on exit."""
    workspace = root / "workspace.yaml"
    workspace.write_text(workspace_yaml)
    env = {**(env or os.environ), "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO)}
    with open(root / "daemon.log", "wb") as log:
        process = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], cwd=root, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield Daemon(root, home, workspace, env)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the session's own (``postgres_server.py``). Skipped where no server or no
    dagster-postgres can be had, except under CI=true, where that fails (``scripts/test.sh`` installs both)."""
    reason = unavailable_reason()
    if reason is None and importlib.util.find_spec("dagster_postgres") is None:
        reason = "dagster-postgres is not installed (pip install '.[postgres]')"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: {reason}")
        pytest.skip(reason)
    with running_postgres() as server:
        print(f"PostgreSQL started in {server.start_seconds:.1f} s (initdb to accepting connections)")
        yield server
