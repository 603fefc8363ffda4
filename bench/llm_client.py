"""Throughput of the openai backend against a server that answers in 200 ms, 64 at a time.

The fake server runs in its own process (``python -m editforge.backend.fake_server``), so
its work does not slow the client down inside one interpreter. Such a server
can answer at most 64 / 0.2 s = 320 requests per second; the backend should
reach at least 90% of that. For comparison, the one-request-at-a-time
synchronous loop of the reference scripts is timed on fewer requests (it needs
0.2 s for each). A bare aiohttp client with the same concurrency shows what
this machine reaches at all: on a busy machine both fall short of the limit.

    python bench/llm_client.py [--requests 2000] [--sync-requests 50]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

import aiohttp
import openai

from editforge.backend import Request, Sampling, open_backend

LATENCY_S = 0.2
CONCURRENCY = 64


def start_server() -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable,
        "-m",
        "editforge.backend.fake_server",
        "--port",
        "0",
        "--latency-ms",
        str(LATENCY_S * 1000),
        "--concurrency",
        str(CONCURRENCY),
    ]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline()  # "listening on <base url>"
    if not line.startswith("listening on "):
        server.kill()
        raise RuntimeError(f"the fake server did not start: {line!r}")
    return server, line.split()[-1]


def requests(count: int) -> list[Request]:
    sampling = Sampling(temperature=0.8, top_p=0.95, max_tokens=256)
    return [
        Request(messages=[{"role": "user", "content": f"Edit program number {i}."}], sampling=sampling)
        for i in range(count)
    ]


def bench_backend(base_url: str, count: int) -> float:
    spec = {"backend": "openai", "model": "fake", "base_url": base_url, "max_concurrency": CONCURRENCY}
    backend = open_backend("bench", spec, cache_dir=None)
    start = time.perf_counter()
    results = backend.generate(requests(count), desc="backend")
    elapsed = time.perf_counter() - start
    failed = sum(completion.error is not None for row in results for completion in row)
    if failed:
        raise RuntimeError(f"{failed} of {count} calls failed")
    return count / elapsed


def bench_bare(base_url: str, count: int) -> float:
    async def run() -> float:
        slots = asyncio.Semaphore(CONCURRENCY)
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def call(request: Request) -> None:
                body = {"model": "fake", "messages": request.messages, "temperature": 0.8, "max_tokens": 256}
                async with slots, session.post(f"{base_url}/chat/completions", json=body) as response:
                    response.raise_for_status()
                    await response.json()

            start = time.perf_counter()
            await asyncio.gather(*(call(request) for request in requests(count)))
            return count / (time.perf_counter() - start)

    return asyncio.run(run())


def bench_sync(base_url: str, count: int) -> float:
    client = openai.OpenAI(base_url=base_url, api_key="EMPTY")
    start = time.perf_counter()
    for request in requests(count):
        content = request.messages[0]["content"]
        client.chat.completions.create(
            model="fake", messages=[{"role": "user", "content": content}], temperature=0.8, max_tokens=256
        )
    elapsed = time.perf_counter() - start
    client.close()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--sync-requests", type=int, default=50)
    args = parser.parse_args()
    limit = CONCURRENCY / LATENCY_S
    server, base_url = start_server()
    try:
        fast = bench_backend(base_url, args.requests)
        bare = bench_bare(base_url, args.requests)
        slow = bench_sync(base_url, args.sync_requests)
    finally:
        server.terminate()
        server.wait()
    print(f"server limit: {CONCURRENCY} concurrent x {LATENCY_S * 1000:.0f} ms = {limit:.0f} req/s")
    print(f"openai backend: {args.requests} requests, {fast:.1f} req/s = {fast / limit:.2f} of the limit")
    print(f"bare aiohttp client: {args.requests} requests, {bare:.1f} req/s = {bare / limit:.2f} of the limit")
    print(f"synchronous one-at-a-time client: {args.sync_requests} requests, {slow:.2f} req/s")
    print(f"speed-up: {fast / slow:.0f}x")


if __name__ == "__main__":
    main()
