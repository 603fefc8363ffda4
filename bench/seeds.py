"""Benchmark: seed snippet extraction, its speed and what each content filter drops.

    python bench/seeds.py [--runs 3] [--sdist requests] [--modes syntactic,window,lines]

Reads, checks, parses (tree-sitter) and cuts every ``.py`` file of this Python's
standard library (``site-packages`` excluded: not part of it), and of the sdist of a
popular package fetched with ``pip download`` (skipped, saying so, where pip cannot
reach an index). For each source and mode (``syntactic``; ``window``, aligned to
statements; ``lines``, the paper's raw line windows) it prints files/s and
snippets/s as the median of the runs, then the share of files each file filter
dropped and the share of candidate snippets each snippet filter dropped. Pairing and
writing are not timed; they are negligible next to parsing.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from editforge.seeds import collect_snippets

STDLIB = {"name": "stdlib", "type": "stdlib", "exclude": ["site-packages/*"]}
MODES = {
    "syntactic": {"snippet_mode": "syntactic"},
    "window": {"snippet_mode": "window", "window_alignment": "statements"},
    "lines": {"snippet_mode": "window", "window_alignment": "lines"},
}
BASE = {"min_lines": 5, "max_lines": 15, "max_file_bytes": 300_000}


def fetch_sdist(name: str, folder: Path) -> Path | None:
    """The unpacked sdist of ``name``, or None (said) where pip cannot download it."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", "--dest",
         str(folder), name],
        capture_output=True, text=True, timeout=300,
    )
    archives = sorted(folder.glob("*.tar.gz"))
    if result.returncode != 0 or not archives:
        print(f"sdist {name}: skipped, pip download failed ({result.stderr.strip().splitlines()[-1:] or 'no archive'})")
        return None
    with tarfile.open(archives[0]) as archive:
        archive.extractall(folder / "src", filter="data")
    return next((folder / "src").iterdir())


def bench(label: str, source: dict[str, Any], mode: str, runs: int) -> None:
    settings = {**BASE, **MODES[mode]}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        snippets, stats = collect_snippets([source], settings, seed=42)
        times.append(time.perf_counter() - start)
    elapsed = statistics.median(times)
    print(
        f"{label} / {mode}: {stats['files_seen']} files ({stats['files_used']} used), "
        f"{stats['snippets_found']} snippets ({len(snippets)} unique) in {elapsed:.2f} s (median of {runs}): "
        f"{stats['files_seen'] / elapsed:,.0f} files/s, {stats['snippets_found'] / elapsed:,.0f} snippets/s"
    )
    files = stats["files_seen"] or 1
    print("    files dropped: " + _shares(stats["files_skipped"], files))
    candidates = (stats["snippets_found"] + sum(stats["snippets_skipped"].values())) or 1
    print(f"    of {candidates} candidate snippets dropped: " + _shares(stats["snippets_skipped"], candidates))


def _shares(counts: dict[str, int], total: int) -> str:
    ordered = sorted(counts.items(), key=lambda item: -item[1])
    return ", ".join(f"{reason} {count / total:.1%} ({count})" for reason, count in ordered) or "none"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sdist", default="requests", help="a package whose sdist to fetch ('' to skip)")
    parser.add_argument("--modes", default="syntactic,window,lines")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}")
    sources = [("stdlib", STDLIB)]
    with tempfile.TemporaryDirectory() as scratch:
        if args.sdist:
            root = fetch_sdist(args.sdist, Path(scratch))
            if root is not None:
                sources.append((root.name, {"name": args.sdist, "type": "directory", "path": str(root)}))
        for label, source in sources:
            for mode in args.modes.split(","):
                bench(label, source, mode, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
