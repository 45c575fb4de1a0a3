from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest


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
    env |= {"EEMO_STORAGE": str(root / "storage"), "DAGSTER_HOME": str(root / "dagster_home"), **(canaries or {})}
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
