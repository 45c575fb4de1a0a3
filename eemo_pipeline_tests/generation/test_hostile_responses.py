"""Answers no batch may be lost to, and bodies the client must not wait for or hold (a hostile tester's probes):
one answer that cannot be stored among good ones, a Retry-After given as an HTTP-date, an endless body, a body
dripped a byte at a time, a model name with terminal escapes, a cache that cannot be written. Real HTTP against the
offline server on 127.0.0.1, real SQLite files."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from email.utils import formatdate
from pathlib import Path

import pytest

from eemo_pipeline.generation.batch import run_batch_sync
from eemo_pipeline.generation.cache import ResponseCache, cache_key
from eemo_pipeline.generation.client import retry_after_seconds
from eemo_pipeline.generation.offline_server.faults import FaultPlan
from eemo_pipeline.generation.offline_server.server import running_in_thread
from eemo_pipeline.generation.work import ChatAnswer
from eemo_pipeline_tests.generation.test_client_batch import config, items

MIB = 1024 * 1024
SURROGATE_ANSWER = "A calm lake \ud800 boat and joy."  # a lone surrogate: no UTF-8 encoder writes it


def accept(text: str, item) -> None:
    return None


@pytest.mark.parametrize(("faults", "answered", "reason", "unreadable"), [
    (FaultPlan(answer_text=SURROGATE_ANSWER), 7, "answer rejected twice: lone surrogate U+D800 at character 12", 0),
    (FaultPlan(usage_value=10 ** 400), 8, None, 1),  # no float holds it
    (FaultPlan(usage_value=2 ** 63), 8, None, 1),  # no SQLite integer holds it
], ids=["surrogate", "usage-10^400", "usage-2^63"])
def test_one_answer_that_cannot_be_stored_as_it_is_costs_no_other_answer(
        tmp_path: Path, faults: FaultPlan, answered: int, reason: str | None, unreadable: int) -> None:
    # Only item 3's answers are altered; the other seven must be answered and cached whatever item 3's does.
    faults = replace(faults, altered_only_for="item 3.")
    cache = ResponseCache(tmp_path / "c.sqlite")
    with running_in_thread(faults=faults) as server:
        result = run_batch_sync(items(8), config(server.base_url), cache, accept)
        sent = server.total_requests()
    assert len(result.answers) == answered and len(cache) == answered
    assert sent == 8 + (8 - answered)  # one fresh sample for the rejected item, nothing else asked twice
    if reason is None:  # the paid answer is kept; its token counts are unreadable, so counted as 0
        assert result.quarantine == [] and result.stats["unreadable_usage"] == unreadable
        assert result.answers["item/3"].prompt_tokens == 0 and result.answers["item/3"].text
    else:
        assert [(q["file"], q["reason"]) for q in result.quarantine] == [("item/3", reason)]


def test_a_retry_after_date_is_honoured_and_one_beyond_the_cap_fails_at_once_naming_it(tmp_path: Path) -> None:
    # Within the cap: the date is 1-2 s ahead (an HTTP-date has whole seconds), so no retry leaves before 1 s.
    with running_in_thread(faults=FaultPlan(rate_limit_first=1, retry_after_s=2, retry_after_date=True)) as server:
        result = run_batch_sync(items(1), config(server.base_url), ResponseCache(tmp_path / "a.sqlite"), accept)
        events = server.events()
    assert len(result.answers) == 1 and result.stats["retries"] == 1
    (refused,) = [at for at, what in events if what == "rate_limit"]
    (_, retried) = [at for at, what in events if what == "arrival"]
    assert retried - refused >= 1.0
    # An hour ahead: beyond retry_after_cap_s, so the item fails at once with the server's date in the reason.
    with running_in_thread(faults=FaultPlan(rate_limit_first=1000, retry_after_s=3600, retry_after_date=True)
                           ) as server:
        started = time.monotonic()
        result = run_batch_sync(items(1), config(server.base_url), ResponseCache(tmp_path / "b.sqlite"), accept)
        assert server.total_requests() == 1 and time.monotonic() - started < 20
    (record,) = result.quarantine
    assert "the server asked to retry after 3599 s (Retry-After: " in record["reason"] or \
        "the server asked to retry after 3600 s (Retry-After: " in record["reason"]
    assert " GMT), beyond retry_after_cap_s of 60 s" in record["reason"]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = 1_800_000_000.0
    assert retry_after_seconds({"retry-after": "20"}, now) == 20
    assert retry_after_seconds({"retry-after": formatdate(now + 30, usegmt=True)}, now) == pytest.approx(30)
    assert retry_after_seconds({"retry-after": "Sun, 06 Nov 1994 08:49:37 GMT"}, now) == 0  # past: no wait
    assert retry_after_seconds({"retry-after": formatdate(now + 30)}, now) == pytest.approx(30)  # numeric zone
    for value in ("soon", "", "nan", "inf", "Sun, 99 Nov 1994 08:49:37 GMT"):
        assert retry_after_seconds({"retry-after": value}, now) is None
    assert retry_after_seconds({}, now) is None


def test_a_body_over_max_response_bytes_is_refused_without_reading_the_rest(tmp_path: Path) -> None:
    with running_in_thread(faults=FaultPlan(flood_mib=256)) as server:
        result = run_batch_sync(items(1), config(server.base_url, max_retries=0, max_response_bytes=MIB),
                                ResponseCache(tmp_path / "c.sqlite"), accept)
        # The server's send ends once the client has closed the connection.
        deadline = time.monotonic() + 60
        while not server.streamed_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)
        (streamed,) = server.streamed_bytes()
    (record,) = result.quarantine
    assert "response body over max_response_bytes of 1,048,576 bytes: not read further" in record["reason"]
    assert streamed < 64 * MIB  # of 256 MiB: the connection was closed, the rest never sent


def test_a_body_nested_deeper_than_the_decoder_goes_is_retried_then_quarantined(tmp_path: Path) -> None:
    # [ * 100000 + ] * 100000: json.loads raises RecursionError, no ValueError; the batch must not crash on it.
    plan = FaultPlan(malformed_first=5, malformed_kind="deep_nesting")
    with running_in_thread(faults=plan) as server:
        result = run_batch_sync(items(1), config(server.base_url, max_retries=1), ResponseCache(tmp_path / "c.sqlite"),
                                accept)
        assert server.total_requests() == 2
        again = run_batch_sync(items(1, prefix="next"), config(server.base_url, max_retries=5),
                               ResponseCache(tmp_path / "d.sqlite"), accept)
    (record,) = result.quarantine
    assert record["reason"] == "gave up after 2 attempts: malformed response body (RecursionError)"
    assert list(again.answers) == ["next/0"]  # retried past the five broken bodies, then answered


def test_timeout_s_bounds_the_whole_request_of_a_server_that_drips(tmp_path: Path) -> None:
    # One byte every 0.05 s: no read waits long, but a whole answer takes about 20 s.
    with running_in_thread(faults=FaultPlan(drip_s=0.05)) as server:
        started = time.monotonic()
        result = run_batch_sync(items(1), config(server.base_url, timeout_s=1.0, max_retries=1, item_budget_s=120),
                                ResponseCache(tmp_path / "c.sqlite"), accept)
        seconds = time.monotonic() - started
        assert server.total_requests() == 2
    (record,) = result.quarantine
    assert record["reason"] == "gave up after 2 attempts: no whole answer within timeout_s of 1 s"
    assert seconds < 15


def test_control_characters_in_the_answering_model_are_escaped_and_counted_from_the_cache(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    work = items(3)
    with running_in_thread(faults=FaultPlan(answer_model="evil-model\x1b[31m\ud800")) as server:
        endpoint = config(server.base_url)
        fresh = run_batch_sync(work, endpoint, cache, accept)
        again = run_batch_sync(work, endpoint, cache, accept)
        assert server.total_requests() == 3
        # A row written before names were escaped still holds the raw escape: read escaped, counted too.
        old = items(1, prefix="old")[0]
        key = cache_key(endpoint.role, endpoint.model, old.template_version, old.cache_payload)
        cache.put(key, endpoint.role, endpoint.model, old.template_version,
                  ChatAnswer("joy", "old-model\x1b[2J", 1, 1, cached=False, attempts=1))
        from_old = run_batch_sync([old], endpoint, cache, accept)
    escaped = "evil-model\\x1b[31m\\ud800"
    assert {answer.model for answer in fresh.answers.values()} == {escaped}
    assert fresh.stats["model_mismatches"] == 3 and fresh.other_models == {escaped: 3}
    assert again.stats["cache_hits"] == 3 and again.stats["model_mismatches"] == 3
    assert {answer.model for answer in again.answers.values()} == {escaped}
    assert any("3 answers came from another model" in note and "3 from the response cache" in note
               for note in again.notes)
    assert from_old.answers["old/0"].model == "old-model\\x1b[2J" and from_old.stats["model_mismatches"] == 1


_FULL_DISK_WORKER = textwrap.dedent(
    """
    import resource, signal, sys
    from eemo_pipeline.generation.batch import run_batch_sync
    from eemo_pipeline.generation.cache import CacheError, ResponseCache
    from eemo_pipeline_tests.generation.test_client_batch import config, items

    cache = ResponseCache(sys.argv[2])
    # No file of this process may grow past 64 KiB: the cache's WAL fills after a few answers, as on a full disk.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
    try:
        run_batch_sync(items(40), config(sys.argv[1], concurrency=int(sys.argv[3]), max_tokens=16384), cache,
                       lambda text, item: None)
    except CacheError as error:
        print(error)
        sys.exit(3)
    """
)


def test_a_cache_that_cannot_be_written_stops_the_requests_and_keeps_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with running_in_thread(faults=FaultPlan(answer_text=" ".join(["joy"] * 3000))) as server:  # 12 KB answers
        worker = subprocess.run([sys.executable, "-c", _FULL_DISK_WORKER, server.base_url, str(path), "1"],
                                capture_output=True, text=True, timeout=120)
        sent = server.total_requests()
    assert worker.returncode == 3, worker.stderr
    assert worker.stdout.startswith(f"response cache {path}: ")
    kept = ResponseCache(path)
    assert 1 <= len(kept) < 40
    assert sent == len(kept) + 1  # the answer it could not keep, and no request after it
    (sidecar,) = tmp_path.glob("c.sqlite.unstored-*.jsonl")  # ... and that answer beside the cache
    assert f"1 answers were received but could not be stored: 1 written to {sidecar}" in worker.stdout


@pytest.mark.parametrize(("words", "spill"), [(3000, False), (10000, True)], ids=["12KB", "40KB-sidecar-full-too"])
def test_answers_received_but_not_stored_are_kept_beside_the_cache_and_the_cause_is_named(
        tmp_path: Path, words: int, spill: bool) -> None:
    # Hostile probe (`ulimit -f 300`, 150 KB answers, 4 slots): the answers in flight when the cache stopped taking
    # them were lost, and the message said only "disk I/O error".
    path = tmp_path / "c.sqlite"
    text = " ".join(["joy"] * words)
    with running_in_thread(faults=FaultPlan(answer_text=text, latency_s=0.2)) as server:
        worker = subprocess.run([sys.executable, "-c", _FULL_DISK_WORKER, server.base_url, str(path), "4"],
                                capture_output=True, text=True, timeout=120)
        sent = server.total_requests()
    assert worker.returncode == 3, worker.stderr
    message = worker.stdout.strip()
    (sidecar,) = tmp_path.glob("c.sqlite.unstored-*.jsonl")
    beside = [json.loads(line) for line in sidecar.read_text().splitlines()]
    on_stderr = [json.loads(line) for line in worker.stderr.splitlines() if line.startswith("{")]
    unstored = beside + on_stderr
    kept = ResponseCache(path)
    # Every answer the server sent is in the cache or kept aside; none is lost, none was asked after the stop.
    assert len(kept) + len(unstored) == sent and len(kept) < 40
    assert all(record["text"] == text and kept.get(record["key"]) is None for record in unstored)
    assert {"key", "role", "model", "template", "item", "answered_by", "prompt_tokens"} <= set(unstored[0])
    assert message.startswith(f"response cache {path}: ")
    assert f"; {len(unstored)} answers were received but could not be stored: {len(beside)} written to {sidecar}" \
        in message
    if spill:  # the sidecar hit the same limit: the rest on stderr, whole lines only, and the OS's own cause
        assert len(beside) >= 1 and len(on_stderr) >= 1
        assert f"; {len(on_stderr)} to stderr (could not write {sidecar}: [Errno 27] File too large)" in message
        assert message.endswith("; cause: file too large (EFBIG)")
    else:
        assert on_stderr == [] and len(unstored) >= 2  # the one that failed and those in flight
        assert "; cause: file too large: c.sqlite-wal is " in message
        assert message.endswith(f"near this process's file size limit of {64 * 1024:,} bytes (ulimit -f)")
