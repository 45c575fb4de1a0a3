"""The figures of docs/reliability.md for issue 19's endpoint probes, against the offline server on 127.0.0.1.

An endpoint that restarts and is away 2 s mid-run (10 items, one slot, 2 retries, probed every 0.2 s); 429 with
Retry-After 3600 on every request (10 items, 2 slots); an endpoint that never answered (nothing listens); the
size of the decompression-bomb PNG of the tests. The tests assert these states; this prints their numbers.

    .venv/bin/python perf/endpoint_faults.py
"""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eemo_pipeline.generation.batch import BatchResult, run_batch_sync  # noqa: E402
from eemo_pipeline.generation.cache import ResponseCache  # noqa: E402
from eemo_pipeline.generation.offline_server.faults import FaultPlan  # noqa: E402
from eemo_pipeline.generation.offline_server.server import LocalChatServer, running_in_thread  # noqa: E402
from eemo_pipeline_tests.evaluation.test_predict import _decompression_bomb  # noqa: E402
from eemo_pipeline_tests.generation.test_client_batch import config, items  # noqa: E402


def accept(text: str, item: object) -> None:
    return None


def restart() -> None:
    server = LocalChatServer(faults=FaultPlan(latency_s=0.2))
    out: dict[str, BatchResult] = {}
    with server.running_in_thread():
        endpoint = config(server.base_url, concurrency=1, max_retries=2, outage_wait_s=60, health_interval_s=0.2)
        worker = threading.Thread(target=lambda: out.update(
            result=run_batch_sync(items(10), endpoint, ResponseCache(Path(":memory:")), accept)))
        worker.start()
        while server.completed_count() < 3:
            time.sleep(0.01)
    time.sleep(2.0)  # away
    with server.running_in_thread():
        worker.join(60)
    result = out["result"]
    stats = {key: result.stats[key] for key in ("calls", "retries", "health_probes", "outage_s")}
    print(f"restart, away 2 s: {len(result.answers)} answered, {len(result.quarantine)} quarantined, {stats}")


def retry_after_beyond_the_cap() -> None:
    with running_in_thread(faults=FaultPlan(rate_limit_first=1000, retry_after_s=3600)) as server:
        started = time.monotonic()
        result = run_batch_sync(items(10), config(server.base_url, concurrency=2), ResponseCache(Path(":memory:")),
                                accept)
        print(f"429 with Retry-After 3600: {server.total_requests()} requests, {len(result.quarantine)} quarantined "
              f"in {time.monotonic() - started:.2f} s")


def never_answered() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    result = run_batch_sync(items(4), config(f"http://127.0.0.1:{port}/v1"), ResponseCache(Path(":memory:")), accept)
    print(f"never answered: {len(result.quarantine)} quarantined in {time.monotonic() - started:.2f} s: "
          f"{result.quarantine[0]['reason']}")


def main() -> None:
    restart()
    retry_after_beyond_the_cap()
    never_answered()
    with tempfile.TemporaryDirectory() as folder:
        print(f"decompression bomb: {_decompression_bomb(Path(folder) / 'bomb.png').stat().st_size} bytes")


if __name__ == "__main__":
    main()
