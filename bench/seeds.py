"""Benchmark: seed snippet extraction over this Python's standard library.

    python bench/seeds.py [--mode syntactic|window|both] [--runs 3]

Reads, checks, parses and cuts every ``.py`` file of the standard library
(``site-packages`` excluded: not part of it), and prints files/s and
snippets/s as the median of the runs. Pairing and writing are not timed; they
are negligible next to parsing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from editforge.seeds import collect_snippets

SOURCE = {"name": "stdlib", "type": "stdlib", "exclude": ["site-packages/*"]}


def bench(mode: str, runs: int) -> None:
    settings = {"snippet_mode": mode, "min_lines": 5, "max_lines": 15, "max_file_bytes": 300_000}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        snippets, stats = collect_snippets([SOURCE], settings, seed=42)
        times.append(time.perf_counter() - start)
    elapsed = statistics.median(times)
    print(
        f"{mode:>9}: {stats['files_seen']} files ({stats['files_used']} used), "
        f"{stats['snippets_found']} snippets ({len(snippets)} unique) in {elapsed:.2f} s (median of {runs}): "
        f"{stats['files_seen'] / elapsed:,.0f} files/s, {stats['snippets_found'] / elapsed:,.0f} snippets/s"
    )
    print(f"{'':>9}  files skipped: {stats['files_skipped']}")
    print(f"{'':>9}  snippets skipped: {stats['snippets_skipped']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["syntactic", "window", "both"], default="both")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}")
    for mode in ("syntactic", "window") if args.mode == "both" else (args.mode,):
        bench(mode, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
