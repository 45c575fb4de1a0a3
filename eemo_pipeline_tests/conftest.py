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
    """One `eemo demo` in a subprocess: its folder (sample, storage, dagster_home), environment and output."""

    root: Path
    env: dict[str, str]
    canaries: dict[str, str]
    done: subprocess.CompletedProcess

    @property
    def storage(self) -> Path:
        return self.root / "storage"


def run_demo(root: Path, sample_dir: Path, canaries: dict[str, str] | None = None) -> DemoRun:
    """`eemo demo` with every EEMO_ variable unset but ``canaries`` (fake API keys), storage and Dagster home in
    ``root``; the offline model serves every role."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EEMO_")}
    env |= {"EEMO_STORAGE": str(root / "storage"), "DAGSTER_HOME": str(root / "dagster_home"), **(canaries or {}),
            "PYTHONPATH": str(REPO)}  # this checkout's code, wherever the environment's `eemo` was installed from
    root.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([str(Path(sys.executable).with_name("eemo")), "demo", "--sample-dir", str(sample_dir)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    return DemoRun(root, env, canaries or {}, done)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The whole demo once per session (about 80 s), with a canary API key per role: test_cli checks what it
    built, test_security that no key reached any file, test_rebuild that a second build is byte-identical."""
    from eemo_pipeline.settings import ENDPOINT_ROLES, endpoint_variable

    root = tmp_path_factory.mktemp("demo")
    return run_demo(root, root / "sample", {endpoint_variable(role, "api_key"): f"sk-canary-{uuid.uuid4().hex}"
                                            for role in ENDPOINT_ROLES})


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
