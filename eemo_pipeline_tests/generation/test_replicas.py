"""Several replicas behind one role (issue 21): the client spreads requests over two or three real offline servers on
127.0.0.1, skips one that is stopped mid-run (probing it), takes it back when it answers again, waits while all are
away, and holds only the replica whose 429 asked for it. Waits poll for states with generous limits."""

from __future__ import annotations

import socket
import threading
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from eemo_pipeline.generation.batch import BatchResult, run_batch_sync
from eemo_pipeline.generation.cache import ResponseCache
from eemo_pipeline.generation.offline_server.faults import FaultPlan
from eemo_pipeline.generation.offline_server.server import LocalChatServer
from eemo_pipeline.settings import EndpointNotConfigured, EndpointSettings, Settings, parse_base_urls
from eemo_pipeline_tests.generation.test_client_batch import config, items
from eemo_pipeline_tests.generation.test_endpoint_faults import accept, wait_for

# Failover in tests: probed every 0.2 s, items wait up to a minute for a replica; two retries only, so an item that
# met more than one away replica in a row without the failover would fail.
FAILOVER = dict(health_interval_s=0.2, outage_wait_s=60, max_retries=2)


class Replica:
    """An offline server that a test stops (its thread ends: connections refused) and starts again on its port."""

    def __init__(self, **kwargs: object):
        self.server = LocalChatServer(**kwargs)
        self._running: AbstractContextManager[LocalChatServer] | None = None

    def start(self) -> Replica:
        self._running = self.server.running_in_thread()
        self._running.__enter__()
        return self

    def stop(self) -> None:
        if self._running is not None:
            self._running.__exit__(None, None, None)
            self._running = None

    @property
    def url(self) -> str:
        return self.server.base_url

    def answered(self) -> int:
        return self.server.completed_count()


@pytest.fixture
def replicas():
    started: list[Replica] = []

    def make(count: int, **kwargs: object) -> list[Replica]:
        made = [Replica(**kwargs).start() for _ in range(count)]
        started.extend(made)
        return made

    yield make
    for replica in started:
        replica.stop()


def urls(replicas: list[Replica]) -> str:
    return ",".join(replica.url for replica in replicas)


def in_background(run) -> tuple[threading.Thread, dict[str, BatchResult]]:
    out: dict[str, BatchResult] = {}
    thread = threading.Thread(target=lambda: out.update(result=run()), daemon=True)
    thread.start()
    return thread, out


def finished(thread: threading.Thread, out: dict[str, BatchResult]) -> BatchResult:
    thread.join(120)
    assert not thread.is_alive(), "the batch did not finish"
    return out["result"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_requests_are_spread_over_the_replicas(replicas, tmp_path: Path) -> None:
    three = replicas(3)
    # One request at a time: each goes to the next replica in turn.
    result = run_batch_sync(items(12), config(urls(three), concurrency=1), ResponseCache(tmp_path / "a.sqlite"), accept)
    assert len(result.answers) == 12 and [replica.answered() for replica in three] == [4, 4, 4]
    assert result.stats["requests_by_replica"] == {replica.url: 4 for replica in three}
    # Six at a time: to the replica with the fewest in flight; every replica takes a share.
    result = run_batch_sync(items(30, "more"), config(urls(three), concurrency=6), ResponseCache(tmp_path / "b.sqlite"),
                            accept)
    assert len(result.answers) == 30 and sum(result.stats["requests_by_replica"].values()) == 30
    assert all(replica.answered() > 4 for replica in three)


def test_a_replica_stopped_mid_run_is_probed_and_skipped_then_taken_back(replicas, tmp_path: Path) -> None:
    first, stopped, third = replicas(3, faults=FaultPlan(latency_s=0.1))
    endpoint = config(urls([first, stopped, third]), concurrency=3, **FAILOVER)
    thread, out = in_background(lambda: run_batch_sync(items(100), endpoint, ResponseCache(tmp_path / "c.sqlite"),
                                                       accept))
    wait_for(lambda: stopped.answered() >= 3, "three answers from the replica to stop")
    stopped.stop()
    answered_before_stop = stopped.answered()
    others = first.answered() + third.answered()
    wait_for(lambda: first.answered() + third.answered() >= others + 9, "the run going on without it")
    stopped.start()  # back on its port
    wait_for(lambda: stopped.answered() > answered_before_stop, "the replica answering again")
    result = finished(thread, out)
    assert len(result.answers) == 100 and result.quarantine == []
    assert result.stats["replica_outages"] >= 1 and result.stats["health_probes"] >= 1
    assert result.stats["outage_s"] == 0  # never all away: no item waited
    # Sent to it while it was away: only the requests that found it so (at most one per slot), then it was skipped.
    sent = result.stats["requests_by_replica"][stopped.url]
    assert sent - stopped.answered() <= 3
    assert sum(result.stats["requests_by_replica"].values()) == result.stats["calls"]


def test_items_wait_while_every_replica_is_away_and_finish_on_the_one_that_returns(replicas, tmp_path: Path) -> None:
    back, gone = replicas(2, faults=FaultPlan(latency_s=0.1))
    endpoint = config(urls([back, gone]), concurrency=2, **FAILOVER)
    thread, out = in_background(lambda: run_batch_sync(items(12), endpoint, ResponseCache(tmp_path / "c.sqlite"),
                                                       accept))
    wait_for(lambda: back.answered() + gone.answered() >= 3, "three answers before both go away")
    back.stop()
    gone.stop()
    gone_answered = gone.answered()
    threading.Event().wait(2.0)  # both away for 2 s: the items can only wait
    back.start()
    result = finished(thread, out)
    assert len(result.answers) == 12 and result.quarantine == []
    assert result.stats["outage_s"] >= 1 and result.stats["replica_outages"] >= 2
    assert result.stats["health_probes"] >= 4  # both probed while away, every 0.2 s
    assert max(answer.attempts for answer in result.answers.values()) <= 3
    assert result.stats["requests_by_replica"][gone.url] - gone_answered <= 2  # the one still away was skipped


def test_a_429_holds_only_the_replica_that_sent_it(replicas, tmp_path: Path) -> None:
    limited, free = replicas(1, faults=FaultPlan(rate_limit_first=1000, retry_after_s=30)) + replicas(1)
    result = run_batch_sync(items(10), config(urls([limited, free]), concurrency=2),
                            ResponseCache(tmp_path / "c.sqlite"), accept)
    assert len(result.answers) == 10 and free.answered() == 10
    # Its Retry-After (30 s, within the 60 s cap) held it alone: the requests went to the other replica meanwhile,
    # none to it again (held as one endpoint, every item would have waited 30 s and asked it again).
    assert limited.server.total_requests() <= 2 and limited.server.outcome_counts().get("rate_limit", 0) >= 1


def test_a_replica_that_never_answered_is_skipped_and_all_of_them_fail_at_once(replicas, tmp_path: Path) -> None:
    (live,) = replicas(1)
    dead = f"http://127.0.0.1:{free_port()}/v1"
    result = run_batch_sync(items(6), config(f"{dead},{live.url}", concurrency=2, **FAILOVER),
                            ResponseCache(tmp_path / "a.sqlite"), accept)
    assert len(result.answers) == 6 and live.answered() == 6 and result.stats["replica_outages"] == 1
    assert result.stats["requests_by_replica"][dead] <= 2
    other = f"http://127.0.0.1:{free_port()}/v1"
    result = run_batch_sync(items(4), config(f"{dead},{other}", **FAILOVER), ResponseCache(tmp_path / "b.sqlite"),
                            accept)
    assert result.answers == {} and len(result.quarantine) == 4
    assert all(record["reason"].startswith(f"every replica of the endpoint ({dead}, {other}) does not answer "
                                           f"(GET /models: {dead}: ConnectError") for record in result.quarantine)


def test_base_urls_are_parsed_and_checked_naming_the_variable() -> None:
    settings = Settings.from_env({"EEMO_DESCRIBER_BASE_URL": " http://10.0.0.1:8000/v1 ,https://gpu-2.internal/v1",
                                  "EEMO_DESCRIBER_MODEL": "qwen"})
    endpoint = settings.endpoint("describer").require()
    assert endpoint.base_urls == ("http://10.0.0.1:8000/v1", "https://gpu-2.internal/v1")
    assert endpoint.identity == "http://10.0.0.1:8000/v1,https://gpu-2.internal/v1"
    assert EndpointSettings("judge", base_url="http://b/v1,http://a/v1").identity == "http://a/v1,http://b/v1"
    assert EndpointSettings("judge", base_url="http://a/v1").identity == "http://a/v1"  # as caches before had it
    assert parse_base_urls("", "EEMO_JUDGE_BASE_URL") == ()
    cases = {
        "http://a:8000/v1,ftp://b/v1": "entry 2 'ftp://b/v1' is not an http(s) URL with a host",
        "http://a:8000/v1,,http://b/v1": "entry 2 '' is empty (two commas, or one at an end)",
        "http://a:8000/v1,": "entry 2 '' is empty",
        "vllm.internal:8000": "entry 1 'vllm.internal:8000' is not an http(s) URL with a host",
        "http://a:8000/v1,http://a:8000/v1/": "entry 2 'http://a:8000/v1/' repeats entry 1",
        "http://a:99999/v1": "entry 1 'http://a:99999/v1' is not a URL (Port out of range",
        "http://user:sk-secret-1@a/v1": "entry 1 'http://[redacted]@a/v1' carries credentials: put the key in "
                                        "EEMO_DESCRIBER_API_KEY",
    }
    for text, problem in cases.items():
        with pytest.raises(EndpointNotConfigured, match="^EEMO_DESCRIBER_BASE_URL: ") as raised:
            EndpointSettings("describer", base_url=text, model="qwen").require()
        assert problem in str(raised.value) and "sk-secret-1" not in str(raised.value)


def test_cached_replies_do_not_depend_on_the_replica_that_answered(replicas, tmp_path: Path) -> None:
    from eemo_pipeline.evaluation.chat_model import ChatRequest
    from eemo_pipeline.evaluation.endpoint_model import EndpointChatModel
    from eemo_pipeline.generation.offline_server.chat_api import DEFAULT_MODEL

    one, two = replicas(2)
    requests = [ChatRequest(f"Describe the mood of scene {i}.", max_new_tokens=32) for i in range(4)]
    cache = ResponseCache(tmp_path / "c.sqlite")

    def model(base_url: str) -> EndpointChatModel:
        return EndpointChatModel(EndpointSettings.for_role("eval", base_url=base_url, model=DEFAULT_MODEL), cache)

    replies = model(f"{one.url},{two.url}").generate(requests)
    assert one.answered() == two.answered() == 2
    again = model(f"{two.url},{one.url}")  # the same replicas in another order: the same endpoint
    assert again.generate(requests) == replies and again.stats == {"calls": 0, "cache_hits": 4, "failed": 0}
    assert one.answered() + two.answered() == 4
