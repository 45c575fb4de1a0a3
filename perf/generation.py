"""Throughput of the generation client against the local OpenAI-compatible server, and the cache's cost.

The server runs in its own process with 100 ms injected latency; the pipeline's ChatClient sends requests at
concurrency 1, 16, 64 and 256 (best of 3 runs of a few seconds each). Ideal throughput is concurrency / latency; target:
at least 90% of ideal at concurrency 64 on a 2-core machine. Then the response cache: the cost of one hit
through the batch runner (cache lookup and validation, no request).

    .venv/bin/python perf/generation.py [--seconds S] [--latency L]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eemo_pipeline.generation.batch import run_batch_sync  # noqa: E402
from eemo_pipeline.generation.cache import ResponseCache  # noqa: E402
from eemo_pipeline.generation.client import ChatClient  # noqa: E402
from eemo_pipeline.generation.offline_server.chat_api import DEFAULT_MODEL  # noqa: E402
from eemo_pipeline.generation.offline_server.server import running_in_subprocess  # noqa: E402
from eemo_pipeline.generation.work import WorkItem  # noqa: E402
from eemo_pipeline.settings import EndpointSettings  # noqa: E402

CONCURRENCY = (1, 16, 64, 256)
TARGET_SHARE = 0.9
_MESSAGES = [{"role": "user", "content": "Say something short."}]


async def throughput(url: str, concurrency: int, seconds: float, warmup: float = 1.0) -> float:
    """Steady-state completed requests per second with ``concurrency`` requests always in flight: requests
    finishing in the first ``warmup`` seconds (connections being opened) are not counted."""
    client = ChatClient(EndpointSettings(role="bench", base_url=url, model=DEFAULT_MODEL, concurrency=concurrency))
    done = 0
    started = time.perf_counter()
    counting_from, deadline = started + warmup, started + warmup + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await client.complete("bench", _MESSAGES)
            done += time.perf_counter() >= counting_from

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - counting_from
    await client.aclose()
    return done / elapsed


def cache_hit_cost(url: str, items: int = 2000) -> float:
    """Seconds per item of a batch answered entirely from the cache."""
    work = [WorkItem(f"bench/{i}", [{"role": "user", "content": f"item {i}"}], "bench", "bench@v1",
                     {"item": i}) for i in range(items)]
    config = EndpointSettings(role="bench", base_url=url, model=DEFAULT_MODEL, concurrency=64)
    with tempfile.TemporaryDirectory() as folder:
        cache = ResponseCache(Path(folder) / "cache.sqlite")
        run_batch_sync(work, config, cache, lambda text, item: None)  # fill
        started = time.perf_counter()
        result = run_batch_sync(work, config, cache, lambda text, item: None)
        elapsed = time.perf_counter() - started
        assert result.stats["cache_hits"] == items and result.stats["calls"] == 0
    return elapsed / items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per run")
    parser.add_argument("--latency", type=float, default=0.1, help="server latency in seconds")
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs per concurrency level")
    args = parser.parse_args()
    with running_in_subprocess(latency_s=args.latency) as server:
        shares = {}
        for concurrency in CONCURRENCY:
            rate = max(asyncio.run(throughput(server.base_url, concurrency, args.seconds)) for _ in range(args.repeats))
            ideal = concurrency / args.latency
            shares[concurrency] = rate / ideal
            print(f"concurrency {concurrency:>3}: {rate:7.1f} req/s of ideal {ideal:6.0f} ({rate / ideal:.0%})")
        hit = cache_hit_cost(server.base_url)
    print(f"cache hit: {hit * 1e6:.0f} us per item through the batch runner")
    verdict = "PASS" if shares[64] >= TARGET_SHARE else "MISS"
    print(f"verdict: {verdict} ({shares[64]:.0%} of ideal at concurrency 64, target {TARGET_SHARE:.0%})")


if __name__ == "__main__":
    main()
