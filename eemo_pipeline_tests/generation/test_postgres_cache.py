"""The response cache in PostgreSQL against a real server: several processes writing at once lose no answer and no
rejection count, the batch runner reads its answers back, and a generation asset run on an instance configured
with deploy/dagster-postgres.yaml keeps its answers in the instance's database (no SQLite file on the shared
storage)."""

from __future__ import annotations

import multiprocessing
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from dagster import DagsterInstance, materialize

from eemo_pipeline.assets.generation import CACHE_FILE, image_descriptions
from eemo_pipeline.assets.ingestion import image_manifest, raw_annotations
from eemo_pipeline.assets.labels import label_taxonomy, mapped_labels
from eemo_pipeline.assets.vad import vad_lexicon, vad_scores
from eemo_pipeline.generation.batch import run_batch_sync
from eemo_pipeline.generation.offline_server.server import running_in_thread
from eemo_pipeline.generation.postgres_cache import RESPONSES_TABLE, PostgresResponseCache
from eemo_pipeline.sample import SAMPLE_LEXICON, write_sample
from eemo_pipeline_tests.assets.conftest import (
    generation_resources,
    materialize_generation_inputs,
    point_generation_at,
)
from eemo_pipeline_tests.generation.cache_writers import KEYS_PER_WRITER, OVERLAP, SHARED_ITEM, write
from eemo_pipeline_tests.generation.test_client_batch import config, items, names_joy
from eemo_pipeline_tests.postgres_server import PostgresServer

REPO = Path(__file__).resolve().parents[2]
WRITERS = 4
SOURCE, IMAGES = "affection", 4

pytestmark = pytest.mark.slow


@pytest.fixture
def database_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A fresh database of the session's server for one test."""
    name = "cache_" + request.node.name.removeprefix("test_")[:40].lower()
    return postgres_server.url(postgres_server.create_database(name))


def test_concurrent_writers_lose_no_answer_and_no_rejection_count(database_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    ready, start, counts = context.Queue(), context.Event(), context.Queue()
    writers = [context.Process(target=write, args=(database_url, i, ready, start, counts)) for i in range(WRITERS)]
    for writer in writers:
        writer.start()
    assert sorted(ready.get(timeout=300) for _ in writers) == list(range(WRITERS))  # all connected: go together
    started = time.monotonic()
    start.set()
    seen = [counts.get(timeout=300) for _ in writers]
    for writer in writers:
        writer.join(60)
        assert writer.exitcode == 0
    print(f"{WRITERS} processes wrote {WRITERS * KEYS_PER_WRITER} answers and "
          f"{sum(map(len, seen))} rejections in {time.monotonic() - started:.1f} s")

    cache = PostgresResponseCache(database_url)
    unique = (WRITERS - 1) * (KEYS_PER_WRITER - OVERLAP) + KEYS_PER_WRITER
    assert len(cache) == unique
    assert all(cache.get(f"key-{n}").text == f"answer {n}" for n in range(unique))
    assert cache.get("key-missing") is None
    # Every increment was atomic: each writer saw rising counts, and together they saw every count exactly once.
    total = sum(map(len, seen))
    assert all(counts_seen == sorted(counts_seen) for counts_seen in seen)
    assert sorted(n for counts_seen in seen for n in counts_seen) == list(range(1, total + 1))
    assert cache.rejected_runs(SHARED_ITEM)[0] == total
    cache.close()


def test_the_batch_runner_reads_its_answers_back(database_url: str) -> None:
    with running_in_thread() as server:
        first = run_batch_sync(items(12), config(server.base_url), PostgresResponseCache(database_url), names_joy)
        asked = server.total_requests()
        again = run_batch_sync(items(12), config(server.base_url), PostgresResponseCache(database_url), names_joy)
        assert server.total_requests() == asked  # nothing asked the second time
    assert len(first.answers) == 12 and first.stats["cache_hits"] == 0
    assert again.stats["cache_hits"] == 12
    assert {key: answer.text for key, answer in again.answers.items()} == {
        key: answer.text for key, answer in first.answers.items()}
    assert all(answer.cached for answer in again.answers.values())


@pytest.fixture
def postgres_instance(postgres_server: PostgresServer, tmp_path: Path) -> Iterator[DagsterInstance]:
    """A Dagster instance from deploy/dagster-postgres.yaml on a fresh database, its variables in the environment."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "deploy" / "dagster-postgres.yaml", home / "dagster.yaml")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in postgres_server.environment().items():
            patch.setenv(name, value)
        patch.setenv("DAGSTER_PG_DB", postgres_server.create_database("cache_instance"))
        with DagsterInstance.from_config(str(home)) as instance:
            yield instance


def test_a_generation_run_on_a_postgres_instance_caches_in_its_database(
        postgres_instance: DagsterInstance, postgres_server: PostgresServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert type(postgres_instance.run_storage).__name__ == "PostgresRunStorage"
    storage = tmp_path / "storage"
    roots = write_sample(tmp_path / "sample", [SOURCE, "emotic"])  # label_taxonomy reads emotic
    upstream = [raw_annotations, image_manifest, label_taxonomy, vad_lexicon, mapped_labels, vad_scores]
    assets = [*upstream, image_descriptions]
    with running_in_thread() as server:
        point_generation_at(monkeypatch, roots, tmp_path / "sample" / SAMPLE_LEXICON, server.base_url, "sk-unused")
        resources = generation_resources(storage)
        materialize_generation_inputs(assets, roots, SOURCE, resources, postgres_instance)
        run_config = {"ops": {"image_descriptions": {"config": {"limit": IMAGES}}}}
        metadata = []
        for _ in range(2):
            result = materialize(assets, selection=[image_descriptions], partition_key=SOURCE, resources=resources,
                                 instance=postgres_instance, run_config=run_config)
            assert result.success
            metadata.append(result.asset_materializations_for_node("image_descriptions")[0].metadata)
        assert server.total_requests() == IMAGES  # the second run asked nothing

    assert metadata[0]["answered"].value == IMAGES and metadata[0]["cache_hits"].value == 0
    assert metadata[1]["answered"].value == IMAGES and metadata[1]["cache_hits"].value == IMAGES
    assert not list(storage.glob(f"{CACHE_FILE}*")), "the response cache went to SQLite on the shared storage"
    engine = sqlalchemy.create_engine(postgres_server.url("cache_instance"))
    with engine.connect() as db:
        stored = db.execute(sqlalchemy.text(f"select role, count(*) from {RESPONSES_TABLE} group by role")).all()
    engine.dispose()
    assert stored == [("describer", IMAGES)]
