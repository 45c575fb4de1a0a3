"""The figures of docs/reliability.md for the endpoint probes of issues 19 and 21, against the offline server on
127.0.0.1.

An endpoint that restarts and is away 2 s mid-run (10 items, one slot, 2 retries, probed every 0.2 s); 429 with
Retry-After 3600 on every request (10 items, 2 slots); an endpoint that never answered (nothing listens); the
size of the decompression-bomb PNG of the tests. Replicas (60 items, 6 slots, 0.1 s per answer, probed every
0.2 s): three answering, one of three stopped after 10 answers, both of two stopped for 2 s then one back. A
managed offline server: its start, and its restart after SIGKILL to its process group. The tests assert these
states; this prints their numbers (seconds on this machine, with client and servers in one process).

    .venv/bin/python perf/endpoint_faults.py
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eemo_pipeline.generation.batch import BatchResult, run_batch_sync  # noqa: E402
from eemo_pipeline.generation.cache import ResponseCache  # noqa: E402
from eemo_pipeline.generation.managed_server import ManagedServer, free_port  # noqa: E402
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


def replicas() -> None:
    figures = ("calls", "retries", "replica_outages", "health_probes", "outage_s")
    endpoint = dict(concurrency=6, health_interval_s=0.2, outage_wait_s=60, max_retries=2)

    def run(servers: list[LocalChatServer], stop_after: int | None, stopped: list[LocalChatServer],
            back: list[LocalChatServer]) -> None:
        with contextlib.ExitStack() as stack:
            running = {id(server): stack.enter_context(contextlib.ExitStack()) for server in servers}
            for server in servers:
                running[id(server)].enter_context(server.running_in_thread())
            urls = ",".join(server.base_url for server in servers)
            out: dict[str, BatchResult] = {}
            started = time.monotonic()
            worker = threading.Thread(target=lambda: out.update(result=run_batch_sync(
                items(60), config(urls, **endpoint), ResponseCache(Path(":memory:")), accept)))
            worker.start()
            if stop_after is not None:
                while sum(server.completed_count() for server in servers) < stop_after:
                    time.sleep(0.01)
                for server in stopped:
                    running[id(server)].close()
                if back:
                    time.sleep(2.0)  # every replica away
                    for server in back:
                        running[id(server)].enter_context(server.running_in_thread())
            worker.join(120)
            seconds = time.monotonic() - started
        result = out["result"]
        share = [result.stats["requests_by_replica"][server.base_url] for server in servers]
        print(f"  {len(result.answers)} answered, {len(result.quarantine)} quarantined in {seconds:.2f} s; requests "
              f"per replica {share}; " + ", ".join(f"{key} {result.stats[key]}" for key in figures))

    latency = FaultPlan(latency_s=0.1)
    print("replicas, 3 answering:")
    run([LocalChatServer(faults=latency) for _ in range(3)], None, [], [])
    print("replicas, 1 of 3 stopped after 10 answers:")
    three = [LocalChatServer(faults=latency) for _ in range(3)]
    run(three, 10, three[1:2], [])
    print("replicas, both of 2 stopped after 10 answers, one back 2 s later:")
    two = [LocalChatServer(faults=latency) for _ in range(2)]
    run(two, 10, two, two[:1])


def managed_server() -> None:
    with tempfile.TemporaryDirectory() as folder:
        command = f"{sys.executable} -m eemo_pipeline.generation.offline_server --port {{port}}"
        server = ManagedServer(command, Path(folder) / "server.log", free_port(), start_timeout_s=120)
        started = time.monotonic()
        with server:
            print(f"managed offline server: answered GET /v1/models {time.monotonic() - started:.2f} s after its start")
            first = server.pid
            killed = time.monotonic()
            os.killpg(first, signal.SIGKILL)
            while server.pid in (None, first) or server.restarts < 1:
                time.sleep(0.01)
            while True:
                try:
                    urllib.request.urlopen(f"{server.base_url}/models", timeout=5).close()
                    break
                except OSError:
                    time.sleep(0.01)
            print(f"  SIGKILL to its process group: answering again {time.monotonic() - killed:.2f} s later "
                  f"(pids {server.pids})")
        print(f"  stopped; pids left: {[pid for pid in server.pids if Path(f'/proc/{pid}').exists()]}")


def main() -> None:
    restart()
    retry_after_beyond_the_cap()
    never_answered()
    replicas()
    managed_server()
    with tempfile.TemporaryDirectory() as folder:
        print(f"decompression bomb: {_decompression_bomb(Path(folder) / 'bomb.png').stat().st_size} bytes")


if __name__ == "__main__":
    main()
