"""The benchmarks by name: the keys of ``evaluation.benchmarks`` in the config."""

from __future__ import annotations

from editforge.evaluation.benchmarks.aider_exercism import AiderExercism
from editforge.evaluation.benchmarks.base import Benchmark
from editforge.evaluation.benchmarks.canitedit import CanItEdit
from editforge.evaluation.benchmarks.humanevalfix import HumanEvalFix
from editforge.evaluation.sources import BenchmarkError

BENCHMARKS: dict[str, type[Benchmark]] = {cls.name: cls for cls in (CanItEdit, HumanEvalFix, AiderExercism)}


def benchmark(name: str) -> Benchmark:
    """The benchmark called ``name``, or a BenchmarkError listing the known ones."""
    if name not in BENCHMARKS:
        raise BenchmarkError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}")
    return BENCHMARKS[name]()
