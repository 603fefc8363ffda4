"""What batch mode costs on our side: a shard's requests through the fake server's batch API
against the same requests as live calls, and a rerun answered from the cache.

The server answers at once, so the figures are the client's own work (writing and
uploading the batch file, polling, reading the results, caching) and the number of
calls the server saw: each request once in either mode, none on the rerun.

    python bench/batch.py [--requests 5000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from editforge.backend import Request, Sampling, open_backend
from editforge.backend.fake_server import FakeServer


def requests(count: int) -> list[Request]:
    body = "def f(values):\n    return [v * 2 for v in values]\n" * 20  # a prompt of about 1 kB
    return [Request(messages=[{"role": "user", "content": f"{body}\n# task {i}"}], sampling=Sampling(temperature=0.7))
            for i in range(count)]


def timed(server: FakeServer, spec: dict[str, Any], cache: Path, batch: list[Request]) -> tuple[float, int]:
    calls = sum(server.calls.values())
    started = time.perf_counter()
    open_backend("bench", spec, cache).generate(batch, desc="bench")
    return time.perf_counter() - started, sum(server.calls.values()) - calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    batch = requests(args.requests)
    figures: dict[str, list[float]] = {"live": [], "batch": [], "batch, from the cache": []}
    with FakeServer(batch_polls=1) as server, tempfile.TemporaryDirectory() as folder:
        live = {"backend": "openai", "model": "fake", "base_url": server.base_url, "max_concurrency": 64}
        batched = live | {"mode": "batch", "batch": {"poll_s": 0.05}}
        for repeat in range(args.repeats):
            root = Path(folder) / str(repeat)
            for name, spec, cache in (("live", live, root / "live"), ("batch", batched, root / "batch"),
                                      ("batch, from the cache", batched, root / "batch")):
                seconds, calls = timed(server, spec, cache, batch)
                figures[name].append(seconds)
                expected = 0 if "cache" in name else args.requests
                assert calls == expected, f"{name}: the server saw {calls} calls, expected {expected}"
        uploaded = sum(len(content) for file_id, content in server.files.items()
                       if file_id in {b["input_file_id"] for b in server.batches.values()})
        batches = len(server.batches)
    print(f"{args.requests} requests, median of {args.repeats} runs; each mode's server calls checked")
    for name, seconds in figures.items():
        median = statistics.median(seconds)
        print(f"  {name:24s} {median:7.2f} s  {args.requests / median:8.0f} requests/s")
    ratio = statistics.median(figures["batch"]) / statistics.median(figures["live"])
    print(f"  batch / live time: {ratio:.2f}; {batches} batches, "
          f"{uploaded / batches / 1e6:.1f} MB uploaded per batch")


if __name__ == "__main__":
    main()
