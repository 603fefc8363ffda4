"""Every cell's per-item counts on every benchmark of the experiment: ``per_problem.parquet``.

A cell's executions are scored by the benchmark's own rules (``editforge.evaluation.scoring``: every
sample counts, the official pass rule, the preflight's exclusions), so a cell's pass@1 is the one the
evaluation tables would give it. ``c`` counts first tries: a benchmark's second try (Aider's) is a
different protocol, reported by the evaluation tables beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from editforge.evaluation.benchmarks import benchmark
from editforge.evaluation.scoring import read_preflight, score_files
from editforge.records import PathLike, read_jsonl

SCHEMA = {
    "cell": pl.String,
    "variant": pl.String,
    "student": pl.String,
    "seed": pl.Int64,
    "benchmark": pl.String,
    "problem": pl.String,
    "kind": pl.String,
    "n": pl.Int64,
    "c": pl.Int64,
}


def experiment_scores(
    cells: Sequence[Mapping[str, Any]],
    benchmarks: Sequence[str],
    executions: Mapping[tuple[str, str], PathLike],
    problems: Mapping[str, PathLike],
    preflights: Mapping[str, PathLike],
) -> pl.DataFrame:
    """One row per cell, benchmark and item. ``cells``: ``id``, ``variant``, ``student``, ``seed``;
    ``executions``: (benchmark, cell id) -> the cell's execution file; ``problems`` and ``preflights``:
    each benchmark's checked problems and its reference check."""
    frames = []
    for name in benchmarks:
        bench = benchmark(name)
        rows = list(read_jsonl(problems[name]))
        excluded = read_preflight(preflights[name])
        for cell in cells:
            scored = score_files([executions[name, cell["id"]]], rows, [1], excluded, bench.kinds).per_problem
            frames.append(
                scored.select(
                    pl.lit(cell["id"]).alias("cell"),
                    pl.lit(cell["variant"]).alias("variant"),
                    pl.lit(cell["student"]).alias("student"),
                    pl.lit(cell["seed"], dtype=pl.Int64).alias("seed"),
                    pl.lit(name).alias("benchmark"),
                    pl.col("full_name").alias("problem"),
                    "kind",
                    "n",
                    "c",
                ).cast(SCHEMA)  # type: ignore[arg-type]
            )
    return pl.concat(frames) if frames else pl.DataFrame(schema=SCHEMA)


def write_experiment_scores(frame: pl.DataFrame, path: PathLike) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)
