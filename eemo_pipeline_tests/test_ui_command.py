"""The README's UI command on a fresh clone, before `eemo demo` has run (no .eemo/, no DAGSTER_HOME): it creates
the instance and serves the UI with the pipeline's code location. A real `dagster dev` on a free port, polled at
/server_info and through its GraphQL API."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 240
ASSETS_QUERY = "{ assetNodes { assetKey { path } } }"


def readme_ui_command() -> str:
    """The one command of the README's "The Dagster UI" code block."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## The Dagster UI"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    [command] = [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    return command


def fresh_clone(target: Path) -> Path:
    """The repository's files as a clone has them (tracked and not ignored; no .eemo/), with ./.venv the virtual
    environment running this test."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source, copy = REPO / name, target / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():  # as git checks links out (eemo_pipeline/data_contracts, for the wheel)
            copy.symlink_to(os.readlink(source))
        elif source.is_file():
            shutil.copy2(source, copy)
    (target / ".venv").symlink_to(Path(sys.prefix))
    return target


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _asset_names(url: str) -> set[str]:
    request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": ASSETS_QUERY}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        nodes = json.load(response)["data"]["assetNodes"]
    return {"/".join(node["assetKey"]["path"]) for node in nodes}


@pytest.mark.slow
def test_the_readme_ui_command_starts_on_a_fresh_clone(tmp_path: Path) -> None:
    clone = fresh_clone(tmp_path / "clone")
    assert not (clone / ".eemo").exists()
    port = _free_port()
    command, replaced = re.subn(r"(-p|--port)(\s+|=)3000\b", rf"\g<1>\g<2>{port}", readme_ui_command())
    assert replaced == 1, f"the README's UI command names no port 3000: {command}"
    env = {name: value for name, value in os.environ.items() if not name.startswith(("EEMO_", "DAGSTER_"))}
    env["PYTHONPATH"] = str(clone)
    log = tmp_path / "ui.log"
    started = time.monotonic()
    with open(log, "wb") as output:
        process = subprocess.Popen(["bash", "-c", command], cwd=clone, env=env, stdout=output,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def tail() -> str:
        return log.read_text(errors="replace")[-3000:]

    try:
        serving = names = None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline and not (names and "raw_annotations" in names):
            if process.poll() is not None:
                pytest.fail(f"`{command}` exited with {process.returncode} on a fresh clone:\n{tail()}")
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
                    serving = serving or (response.status == 200 and time.monotonic() - started)
                names = _asset_names(url)
            except (OSError, KeyError, TypeError):
                pass
            time.sleep(0.5)
        assert serving, f"`{command}` did not serve {url}/server_info within {STARTUP_TIMEOUT_S} s:\n{tail()}"
        assert names and {"raw_annotations", "image_manifest", "grpo_checkpoint"} <= names, tail()
        print(f"`{command}` served /server_info {serving:.1f} s and the code location "
              f"{time.monotonic() - started:.1f} s after it started")
        home = clone / ".eemo" / "dagster_home"
        assert (home / "dagster.yaml").read_text() == (REPO / "dagster.yaml").read_text()
    finally:
        # Ctrl-C to the whole group (what dagster dev expects), then kill whatever is left.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
