"""An endpoint that rate-limits for long, restarts mid-run or was never there, and a damaged response cache: the
client and the batch runner against the real offline server on 127.0.0.1 (issue 19). Waits are short and
configured (a 2 s outage probed every 0.2 s); tests poll for states, never race a clock."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from eemo_pipeline.generation.batch import BatchResult, run_batch_sync
from eemo_pipeline.generation.cache import CacheError, ResponseCache
from eemo_pipeline.generation.offline_server.faults import FaultPlan
from eemo_pipeline.generation.offline_server.server import LocalChatServer, running_in_thread
from eemo_pipeline.generation.work import ChatAnswer
from eemo_pipeline_tests.generation.test_client_batch import config, items


def accept(text: str, item) -> None:
    return None


def wait_for(condition, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_answers_cut_oversized_or_with_control_characters_are_resampled_then_quarantined(tmp_path: Path) -> None:
    cases = [  # (fault plan, endpoint fields, reason): each an HTTP 200 that no validator here objects to
        (FaultPlan(), {"max_tokens": 3}, "cut at max_tokens 3 (finish_reason length)"),  # the model stops at 3 tokens
        (FaultPlan(answer_text="x" * 1_000_000), {}, "1,000,000 characters, more than 512 tokens can hold (16,384)"),
        (FaultPlan(answer_text="\x1b[31mjoy\x1b[0m and calm"), {}, "control character U+001B at character 0"),
        (FaultPlan(answer_text="joy\x00 and calm"), {}, "control character U+0000 at character 3"),
    ]
    for index, (faults, endpoint, reason) in enumerate(cases):
        cache = ResponseCache(tmp_path / f"c{index}.sqlite")
        with running_in_thread(faults=faults) as server:
            result = run_batch_sync(items(3), config(server.base_url, **endpoint), cache, accept)
            assert server.total_requests() == 2 * 3  # the answer and one fresh sample (another seed) per item
        assert result.answers == {} and len(cache) == 0
        assert [record["reason"] for record in result.quarantine] == [f"answer rejected twice: {reason}"] * 3
        assert result.stats["invalid_answers"] == 6


def test_a_cached_answer_with_control_characters_is_asked_again(tmp_path: Path) -> None:
    from eemo_pipeline.generation.cache import cache_key

    cache, work = ResponseCache(tmp_path / "c.sqlite"), items(2)
    with running_in_thread() as server:
        endpoint = config(server.base_url)
        for item in work:  # stored by a version that checked nothing
            key = cache_key(endpoint.role, endpoint.model, item.template_version, item.cache_payload)
            cache.put(key, endpoint.role, endpoint.model, item.template_version, _answer("\x1b[2Jjoy"))
        result = run_batch_sync(work, endpoint, cache, accept)
        assert server.total_requests() == 2
    assert result.stats["cache_hits"] == 0 and all("\x1b" not in a.text for a in result.answers.values())


def test_no_request_leaves_before_the_time_a_429_asked_for(tmp_path: Path) -> None:
    # Each body's first request gets 429 with Retry-After 0.5 s; one slot, so the items queue behind each other.
    with running_in_thread(faults=FaultPlan(rate_limit_first=1, retry_after_s=0.5)) as server:
        result = run_batch_sync(items(3), config(server.base_url, concurrency=1), ResponseCache(tmp_path / "c.sqlite"),
                                accept)
        events = server.events()
    assert len(result.answers) == 3 and result.stats["retries"] == 3
    refusals = [at for at, what in events if what == "rate_limit"]
    arrivals = [at for at, what in events if what == "arrival"]
    assert len(refusals) == 3 and len(arrivals) == 6
    # The server's clock is the client's (one process): no request arrived while a Retry-After was running.
    early = [(arrival - refused) for refused in refusals for arrival in arrivals if refused < arrival < refused + 0.5]
    assert early == []


def test_a_retry_after_beyond_the_cap_fails_every_item_at_once_naming_it(tmp_path: Path) -> None:
    faults = FaultPlan(rate_limit_first=1000, retry_after_s=3600)
    with running_in_thread(faults=faults) as server:
        started = time.monotonic()
        result = run_batch_sync(items(10), config(server.base_url, concurrency=2, item_budget_s=30),
                                ResponseCache(tmp_path / "c.sqlite"), accept)
        seconds = time.monotonic() - started
        # Only the two requests in flight when the first 429 came; none after it, none for the other 8 items.
        assert server.total_requests() == 2
    assert result.answers == {} and len(result.quarantine) == 10 and seconds < 20
    reasons = [record["reason"] for record in result.quarantine]
    asked = [reason for reason in reasons if "HTTP 429" in reason]
    assert len(asked) == 2 and all("the server asked to retry after 3600 s (Retry-After: 3600), beyond retry_after_cap_s "
                                   "of 60 s" in reason for reason in asked)
    held = [reason for reason in reasons if reason.startswith("not sent:")]
    assert len(held) == 8 and all("Retry-After holds every request for another" in reason for reason in held)
    assert result.last_error_transient


def _run_in_background(run) -> tuple[threading.Thread, dict[str, BatchResult]]:
    out: dict[str, BatchResult] = {}
    thread = threading.Thread(target=lambda: out.update(result=run()), daemon=True)
    thread.start()
    return thread, out


def test_items_wait_for_an_endpoint_that_restarts_and_finish(tmp_path: Path) -> None:
    server = LocalChatServer(faults=FaultPlan(latency_s=0.2))
    # Two retries only: without the wait for the endpoint, every item caught by the outage would give up; with
    # it, each spends one attempt on the outage.
    endpoint = dict(concurrency=1, max_retries=2, outage_wait_s=60, health_interval_s=0.2)
    with server.running_in_thread():
        thread, out = _run_in_background(lambda: run_batch_sync(
            items(10), config(server.base_url, **endpoint), ResponseCache(tmp_path / "c.sqlite"), accept))
        wait_for(lambda: server.completed_count() >= 3, "three answers before the restart")
    # Stopped: connections refused for 2 s, then the endpoint is back on the same port.
    time.sleep(2.0)
    with server.running_in_thread():
        thread.join(60)
    assert not thread.is_alive()
    result = out["result"]
    assert len(result.answers) == 10 and result.quarantine == []
    assert 1 <= result.stats["retries"] <= 10 and result.stats["health_probes"] >= 2 and result.stats["outage_s"] >= 1
    assert max(answer.attempts for answer in result.answers.values()) == 2
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        assert db.execute("select count(*) from responses").fetchone() == (10,)


def test_an_endpoint_away_beyond_the_outage_wait_fails_its_items_naming_it(tmp_path: Path) -> None:
    server = LocalChatServer(faults=FaultPlan(latency_s=0.2))
    endpoint = dict(concurrency=1, outage_wait_s=1.0, health_interval_s=0.2)
    with server.running_in_thread():
        thread, out = _run_in_background(lambda: run_batch_sync(
            items(6), config(server.base_url, **endpoint), ResponseCache(tmp_path / "c.sqlite"), accept))
        wait_for(lambda: server.completed_count() >= 2, "two answers before the endpoint goes away")
    thread.join(60)  # the server stays away
    assert not thread.is_alive()
    result = out["result"]
    assert 2 <= len(result.answers) < 6 and len(result.answers) + len(result.quarantine) == 6
    assert all("has been away for" in record["reason"] and "beyond outage_wait_s of 1 s" in record["reason"]
               and "(GET /models: " in record["reason"] for record in result.quarantine)


def test_an_endpoint_that_never_answered_fails_at_once(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    result = run_batch_sync(items(4), config(f"http://127.0.0.1:{port}/v1", outage_wait_s=600),
                            ResponseCache(tmp_path / "c.sqlite"), accept)
    assert result.answers == {} and time.monotonic() - started < 20  # no 10-minute wait for what was never there
    assert all(f"the endpoint http://127.0.0.1:{port}/v1 does not answer" in record["reason"]
               for record in result.quarantine)


def _answer(text: str) -> ChatAnswer:
    return ChatAnswer(text, "m", 1, 1, cached=False, attempts=1)


def _aside(folder: Path) -> list[Path]:
    return sorted(folder.glob("llm_cache.sqlite.corrupt-*[0-9]"))  # the database, not its WAL files


def test_a_damaged_cache_file_is_moved_aside_and_the_cache_goes_on(tmp_path: Path, caplog) -> None:
    path = tmp_path / "llm_cache.sqlite"
    cache = ResponseCache(path)
    for i in range(500):
        cache.put(f"k{i}", "reasoner", "m", "t@1", _answer("x" * 200))
    cache.close()
    with sqlite3.connect(path) as db:  # everything into the main file
        db.execute("pragma wal_checkpoint(truncate)")

    # Truncated under an open cache: the next read that meets the damage moves the file aside.
    cache = ResponseCache(path)
    assert cache.get("k1").text == "x" * 200
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 2)
    assert cache.get("k499") is None and len(cache) == 0
    (aside,) = _aside(tmp_path)
    assert cache.notes == [f"response cache {path} is not a readable SQLite database (database disk image is "
                           f"malformed): moved aside to {aside}; continuing with an empty cache, so the answers it "
                           "held are asked again"]
    assert str(aside) in caplog.text
    cache.put("k1", "reasoner", "m", "t@1", _answer("kept"))
    assert cache.get("k1").text == "kept"
    cache.close()

    # Overwritten by another program: found when the cache is opened.
    path.write_bytes(b"not a database " * 1000)
    reopened = ResponseCache(path)
    assert len(reopened) == 0 and len(_aside(tmp_path)) == 2
    assert "(file is not a database): moved aside to" in reopened.notes[0]
    reopened.close()


def test_a_writer_whose_cache_file_was_moved_aside_writes_into_the_fresh_one(tmp_path: Path) -> None:
    path = tmp_path / "llm_cache.sqlite"
    writer = ResponseCache(path)
    writer.put("k0", "reasoner", "m", "t@1", _answer("before"))
    # Another process found the file damaged: it moved the file (and its WAL files) aside and opened a fresh one.
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").rename(f"{path}.corrupt-x{suffix}")
    other = ResponseCache(path)
    writer.put("k1", "reasoner", "m", "t@1", _answer("after"))
    assert other.get("k1").text == "after" and other.get("k0") is None
    assert "was moved aside or replaced by another process" in writer.notes[0]
    with sqlite3.connect(f"{path}.corrupt-x") as aside:
        assert [key for (key,) in aside.execute("select key from responses")] == ["k0"]
    writer.close()
    other.close()


def test_another_applications_database_is_moved_aside_and_a_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "llm_cache.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("create table responses (id integer primary key, body text)")
        db.execute("create table invoices (id integer primary key)")
        db.execute("insert into invoices values (1)")
    cache = ResponseCache(path)
    (aside,) = _aside(tmp_path)
    assert cache.notes[0].startswith(f"response cache {path} is not a response cache (its tables are not a response "
                                     f"cache's: invoices, responses): moved aside to {aside}")
    cache.put("k", "reasoner", "m", "t@1", _answer("kept"))
    assert cache.get("k").text == "kept"
    cache.close()
    with sqlite3.connect(aside) as db:  # the other application's data untouched, no table of ours added
        assert db.execute("select id from invoices").fetchall() == [(1,)]
        assert "rejections" not in {name for (name,) in db.execute("select name from sqlite_master")}

    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(CacheError, match=f"response cache {folder} is a directory, not a file"):
        ResponseCache(folder)
