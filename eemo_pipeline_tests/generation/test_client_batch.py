"""The client, cache and batch runner against a real chat-completions server on 127.0.0.1."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from eemo_pipeline.generation.batch import BatchFailed, raise_if_failed, run_batch_sync
from eemo_pipeline.generation.cache import ResponseCache
from eemo_pipeline.generation.images import MAX_PIXELS, MIN_PIXELS, fit_pixel_budget, image_data_url
from eemo_pipeline.generation.offline_server.faults import FaultPlan
from eemo_pipeline.generation.offline_server.server import running_in_thread
from eemo_pipeline.generation.work import WorkItem
from eemo_pipeline.settings import EndpointNotConfigured, EndpointSettings, Settings

CANARY = "sk-canary-7f3e9b2d4c1a"


def items(n: int, prefix: str = "item") -> list[WorkItem]:
    """Reasoner-style items whose answers must name their ranked emotion."""
    result = []
    for i in range(n):
        user = f"Explain the ranking of {prefix} {i}.\n\nFacts:\nEmotion ranking: joy, fear\nDescription: a park.\nComments: none\nWord limit: 80"
        messages = [{"role": "system", "content": "Task: reason"}, {"role": "user", "content": user}]
        result.append(WorkItem(key=f"{prefix}/{i}", messages=messages, template="reason", template_version="reason@v1",
                               cache_payload={"messages": messages}, context={"ranking": ["joy", "fear"]}))
    return result


def names_joy(text: str, item: WorkItem) -> str | None:
    return None if "joy" in text.lower() else "joy not mentioned"


def config(url: str, **overrides) -> EndpointSettings:
    values = {"role": "reasoner", "base_url": url, "model": "eemo-offline-rules-v1", "concurrency": 8,
              "backoff_base_s": 0.01, "backoff_max_s": 0.05, "max_retries": 6, "timeout_s": 5.0}
    return EndpointSettings(**(values | overrides))


def test_every_output_arrives_through_every_kind_of_fault(tmp_path: Path) -> None:
    faults = FaultPlan(rate_limit_first=1, retry_after_s=0.05, server_error_first=1, drop_first=1, malformed_first=1)
    with running_in_thread(faults=faults) as server:
        result = run_batch_sync(items(12), config(server.base_url), ResponseCache(tmp_path / "c.sqlite"), names_joy)
        outcomes = server.outcome_counts()
    assert len(result.answers) == 12 and result.quarantine == []
    assert all(a.attempts == 5 for a in result.answers.values())  # 429, 500, drop, malformed, then the answer
    assert result.stats["retries"] == 4 * 12 and result.stats["calls"] == 5 * 12
    assert {k: outcomes.get(k, 0) for k in ("ok", "rate_limit", "server_error", "drop", "malformed")} == {
        "ok": 12, "rate_limit": 12, "server_error": 12, "drop": 12, "malformed": 12}


def test_retries_are_bounded_and_the_failure_is_quarantined_with_the_item(tmp_path: Path) -> None:
    with running_in_thread(faults=FaultPlan(server_error_first=100)) as server:
        result = run_batch_sync(items(3), config(server.base_url, max_retries=2), ResponseCache(tmp_path / "c.sqlite"),
                                names_joy)
        assert server.total_requests() == 3 * 3  # one try and two retries each, no more
    assert result.answers == {} and len(result.quarantine) == 3
    assert result.quarantine[0]["file"].startswith("item/") and "gave up after 3 attempts: HTTP 500" in result.quarantine[0]["reason"]


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    with running_in_thread(faults=FaultPlan(rate_limit_first=1, retry_after_s=0.6)) as server:
        started = time.perf_counter()
        result = run_batch_sync(items(2), config(server.base_url), ResponseCache(tmp_path / "c.sqlite"), names_joy)
    assert len(result.answers) == 2 and time.perf_counter() - started >= 0.6


def test_a_wrong_key_fails_at_once_without_retries_and_without_the_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EEMO_REASONER_API_KEY", "sk-wrong-key-123456")
    with running_in_thread(api_key=CANARY) as server:
        result = run_batch_sync(items(2), config(server.base_url), ResponseCache(tmp_path / "c.sqlite"), names_joy)
        assert server.outcome_counts().get("unauthorized") == 2  # one request each: no retry
    assert len(result.quarantine) == 2 and "(HTTP 401)" in result.quarantine[0]["reason"]
    assert "sk-wrong-key-123456" not in str(result.quarantine) and CANARY not in str(result.quarantine)


def test_an_invalid_answer_gets_one_fresh_sample_then_quarantine(tmp_path: Path) -> None:
    with running_in_thread() as server:
        result = run_batch_sync(items(4), config(server.base_url), ResponseCache(tmp_path / "c.sqlite"),
                                lambda text, item: "always wrong")
        assert server.total_requests() == 8
    assert len(result.quarantine) == 4 and result.quarantine[0]["reason"] == "answer rejected twice: always wrong"
    assert result.stats["invalid_answers"] == 8


def test_the_cache_answers_a_rerun_without_any_request(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    with running_in_thread() as server:
        first = run_batch_sync(items(10), config(server.base_url), cache, names_joy)
        server.reset_log()
        second = run_batch_sync(items(10), config(server.base_url), cache, names_joy)
        assert server.total_requests() == 0
    assert second.stats["cache_hits"] == 10 and all(a.cached for a in second.answers.values())
    assert {k: a.text for k, a in first.answers.items()} == {k: a.text for k, a in second.answers.items()}
    # The cache key follows the configured model: another model is another answer.
    with running_in_thread() as server:
        run_batch_sync(items(10), config(server.base_url, model="other"), cache, names_joy)
        assert server.total_requests() == 10


_WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from test_client_batch import config, items, names_joy
    from eemo_pipeline.generation.batch import run_batch_sync
    from eemo_pipeline.generation.cache import ResponseCache
    run_batch_sync(items(40), config(sys.argv[1], concurrency=4), ResponseCache(Path(sys.argv[2])), names_joy)
    """
)


@pytest.mark.slow
def test_a_killed_run_started_again_requests_no_completed_item_twice(tmp_path: Path) -> None:
    cache_path = tmp_path / "c.sqlite"
    here = str(Path(__file__).parent)
    with running_in_thread(faults=FaultPlan(latency_s=0.2)) as server:
        worker = subprocess.Popen([sys.executable, "-c", _WORKER, server.base_url, str(cache_path), here])
        deadline = time.monotonic() + 60
        while not cache_path.exists() or len(ResponseCache(cache_path)) < 12:
            assert time.monotonic() < deadline and worker.poll() is None
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        done_before = len(ResponseCache(cache_path))
        assert 12 <= done_before < 40
        server.reset_log()
        subprocess.run([sys.executable, "-c", _WORKER, server.base_url, str(cache_path), here], check=True, timeout=120)
        # Only the items without a cached answer were requested again.
        assert server.total_requests() == 40 - done_before
    assert len(ResponseCache(cache_path)) == 40


def test_endpoint_configuration_comes_from_the_settings() -> None:
    with pytest.raises(EndpointNotConfigured, match="set EEMO_DESCRIBER_BASE_URL and EEMO_DESCRIBER_MODEL"):
        Settings.from_env({}).endpoint("describer").require()
    environ = {"EEMO_DESCRIBER_BASE_URL": "http://127.0.0.1:9/v1", "EEMO_DESCRIBER_MODEL": "qwen2.5-vl-7b",
               "EEMO_DESCRIBER_API_KEY": CANARY}
    endpoint = Settings.from_env(environ).endpoint("describer").require()
    assert (endpoint.base_url, endpoint.model, endpoint.temperature) == ("http://127.0.0.1:9/v1", "qwen2.5-vl-7b", 0.2)
    assert CANARY not in repr(endpoint) and CANARY not in str(endpoint.public())


def test_images_fit_the_pixel_budget(tmp_path: Path) -> None:
    from PIL import Image

    assert fit_pixel_budget(96, 96) == (448, 448)  # small images grow to at least 256 patches
    w, h = fit_pixel_budget(4000, 3000)
    assert w * h <= MAX_PIXELS and w % 28 == h % 28 == 0 and abs(w / h - 4 / 3) < 0.05
    w, h = fit_pixel_budget(1000, 700)
    assert MIN_PIXELS <= w * h <= MAX_PIXELS
    Image.new("RGB", (640, 480), (200, 30, 30)).save(tmp_path / "x.png")
    url, digest = image_data_url(tmp_path / "x.png")
    assert url.startswith("data:image/jpeg;base64,") and len(digest) == 64
    with pytest.raises(ValueError, match="empty"):
        fit_pixel_budget(0, 10)


def test_only_accepted_answers_are_cached_and_a_stale_rejected_one_is_asked_again(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    with running_in_thread() as server:
        rejected = run_batch_sync(items(3), config(server.base_url), cache, lambda text, item: "always wrong")
        assert len(rejected.quarantine) == 3 and len(cache) == 0
        assert all(q["record"]["rejected_runs"] == 1 for q in rejected.quarantine)
        accepted = run_batch_sync(items(3), config(server.base_url), cache, names_joy)
        assert len(accepted.answers) == 3 and len(cache) == 3
        server.reset_log()
        # a cached answer that the (stricter) validator now rejects is not served: the item is asked again
        stricter = run_batch_sync(items(3), config(server.base_url), cache, lambda text, item: "stricter now")
        assert stricter.stats["cache_hits"] == 0 and server.total_requests() == 3 * 2


def test_a_batch_fails_past_the_allowed_share_with_the_last_error(tmp_path: Path) -> None:
    with running_in_thread(faults=FaultPlan(server_error_rate=0.5, seed=1)) as server:
        result = run_batch_sync(items(20), config(server.base_url, max_retries=0), ResponseCache(tmp_path / "c.sqlite"),
                                names_joy)
    failed = len(result.quarantine)
    assert 0 < failed < 20 and "HTTP 500" in (result.last_error or "")
    raise_if_failed(result, max_failed_share=failed / 20)  # at the limit: passes
    with pytest.raises(BatchFailed, match=f"{failed} of 20 items failed.*last error: item/.*HTTP 500") as raised:
        raise_if_failed(result, max_failed_share=(failed - 1) / 20)
    assert raised.value.transient
