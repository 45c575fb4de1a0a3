"""Keys only from the environment and never written anywhere; the web UI binds to localhost."""

from __future__ import annotations

import re
import sys
import uuid
from pathlib import Path

import duckdb
import polars as pl
import pytest
from dagster import Definitions, EnvVar

from eemo_pipeline.generation.batch import run_batch_sync
from eemo_pipeline.generation.cache import ResponseCache
from eemo_pipeline.generation.offline_server.chat_api import DEFAULT_MODEL
from eemo_pipeline.generation.offline_server.server import running_in_thread
from eemo_pipeline.generation.work import WorkItem
from eemo_pipeline_tests.conftest import DemoRun

REPO = Path(__file__).resolve().parents[1]
EEMO = Path(sys.executable).with_name("eemo")


def _files_containing(root: Path, needle: str) -> list[Path]:
    """Files under ``root`` holding ``needle``: raw bytes, and the decoded rows of Parquet and DuckDB files
    (both compress, so a raw grep alone could miss a value stored inside them)."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if needle.encode() in path.read_bytes():
            found.append(path)
        elif path.suffix == ".parquet" and needle in str(pl.read_parquet(path).rows()):
            found.append(path)
        elif path.suffix == ".duckdb":
            with duckdb.connect(str(path), read_only=True) as db:
                tables = db.sql("select table_name from information_schema.tables where table_type = 'BASE TABLE'")
                if any(needle in str(db.sql(f'select * from "{name}"').fetchall()) for (name,) in tables.fetchall()):
                    found.append(path)
    return found


def test_the_scanner_finds_a_key_inside_parquet_and_duckdb(tmp_path: Path) -> None:
    canary = f"sk-canary-{uuid.uuid4().hex}"
    frame = pl.DataFrame({"x": ["a" * 5000 + canary] * 50})
    frame.write_parquet(tmp_path / "t.parquet", compression="zstd", statistics=False)
    with duckdb.connect(str(tmp_path / "t.duckdb")) as db:
        db.execute("create table t as select repeat('b', 5000) || ? as x from range(50)", [canary])
    assert _files_containing(tmp_path, canary) == [tmp_path / "t.duckdb", tmp_path / "t.parquet"]


def _reasoning_item() -> WorkItem:
    user = "Explain the ranking.\n\nFacts:\nEmotion ranking: joy, fear\nDescription: a park.\nComments: none\nWord limit: 80"
    messages = [{"role": "system", "content": "Task: reason"}, {"role": "user", "content": user}]
    return WorkItem(key="item/0", messages=messages, template="reason", template_version="reason@v1",
                    cache_payload={"messages": messages}, context={"ranking": ["joy", "fear"]})


def test_an_envvar_key_reaches_the_endpoint_and_stays_out_of_config(tmp_path: Path, monkeypatch) -> None:
    from eemo_pipeline.resources import LLMEndpointResource

    canary = f"sk-canary-{uuid.uuid4().hex}"
    monkeypatch.setenv("TEAM_REASONER_KEY", canary)
    monkeypatch.setenv("EEMO_REASONER_API_KEY", "sk-wrong-fallback")  # the EnvVar field wins over the fallback
    with running_in_thread(api_key=canary) as server:
        resource = LLMEndpointResource(role="reasoner", base_url=server.base_url, model=DEFAULT_MODEL,
                                       api_key=EnvVar("TEAM_REASONER_KEY"))
        # What the UI and the run storage keep of the resource: the variable's name, never the value.
        snapshot = Definitions(resources={"reasoner": resource}).get_repository_def().get_top_level_resources()
        assert "TEAM_REASONER_KEY" in str(snapshot["reasoner"].config_schema.default_value)
        assert canary not in str(snapshot["reasoner"].config_schema.default_value)
        with resource.process_config_and_initialize_cm() as initialized:  # a context manager: it may own a server
            endpoint = initialized.endpoint()
        assert canary not in repr(endpoint) and canary not in str(endpoint.public())
        result = run_batch_sync([_reasoning_item()], endpoint, ResponseCache(tmp_path / "c.sqlite"),
                                lambda text, item: None)
        assert len(result.answers) == 1 and server.outcome_counts().get("unauthorized") is None

        # Without the field, EEMO_<ROLE>_API_KEY is read when the client is built.
        monkeypatch.setenv("EEMO_REASONER_API_KEY", canary)
        fallback = LLMEndpointResource(role="reasoner", base_url=server.base_url, model=DEFAULT_MODEL).endpoint()
        assert fallback.api_key is None
        result = run_batch_sync([_reasoning_item()], fallback, ResponseCache(tmp_path / "d.sqlite"),
                                lambda text, item: None)
        assert len(result.answers) == 1 and server.outcome_counts().get("unauthorized") is None
    assert _files_containing(tmp_path, canary) == []


@pytest.mark.slow
def test_the_demo_with_canary_keys_leaves_them_nowhere(demo_run: DemoRun) -> None:
    storage, home, done = demo_run.storage, demo_run.root / "dagster_home", demo_run.done
    assert list(storage.rglob("*.parquet")) and list(home.rglob("*.db")) and (storage / "lineage.duckdb").is_file()
    for canary in demo_run.canaries.values():
        assert canary not in done.stdout + done.stderr
        assert _files_containing(demo_run.root, canary) == []
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_documented_ui_command_binds_to_localhost() -> None:
    from dagster_webserver.cli import DEFAULT_WEBSERVER_HOST

    assert DEFAULT_WEBSERVER_HOST == "127.0.0.1"  # what `dagster dev` binds to when no host is given
    documents = [REPO / "README.md", REPO / "eemo_pipeline" / "demo.py", *sorted((REPO / "scripts").glob("*.sh"))]
    commands = [line for path in documents if path.is_file()
                for line in path.read_text(encoding="utf-8").splitlines() if re.search(r"dagster(-webserver)? dev -", line)]
    assert commands
    for line in commands:
        assert re.search(r"(-h|--host) 127\.0\.0\.1\b", line) and "0.0.0.0" not in line, line
