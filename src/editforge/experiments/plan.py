"""The experiment's plan before any training: its cells, its jobs, the GPU-hours its time limits
reserve, and the smallest paired difference it can detect on each benchmark (the power preflight).
``snakemake --dry-run`` prints it in a few lines; the run writes it to ``cells.tsv`` and ``power.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

from editforge.config import benchmark_settings
from editforge.experiments.grid import Cell, Experiment
from editforge.experiments.statistics import minimum_detectable_difference
from editforge.records import PathLike, write_json

CELL_COLUMNS = ("cell", "variant", "student", "seed", "data", "model")


def benchmark_items(cfg: Mapping[str, Any], name: str) -> int:
    """Items (problem x kind) a cell is scored on: the selected problems, or the whole benchmark."""
    from editforge.evaluation.benchmarks import benchmark  # loaded only for a run with experiments

    bench, problems = benchmark(name), benchmark_settings(dict(cfg), name)["problems"]
    count = bench.size if problems is None else problems if isinstance(problems, int) else len(problems)
    return count * len(bench.kinds)  # each instruction kind of a problem is an item


def plan(
    exp: Experiment,
    cfg: Mapping[str, Any],
    training_hours: Callable[[Cell], float],
    evaluation_hours: Callable[[Cell, str], float],
) -> dict[str, Any]:
    """The cells and the power preflight; ``*_hours``: the GPU-hours a cell's jobs reserve (time limit x GPUs)."""
    cells = [
        {
            "cell": cell.id,
            "variant": cell.variant,
            "student": cell.student,
            "seed": cell.seed,
            "data": f"{exp.data_dir(cell.variant)}/train.jsonl",
            "model": f"{exp.cell_dir(cell.id)}/model",
        }
        for cell in exp.cells
    ]
    settings = {name: benchmark_settings(dict(cfg), name) for name in exp.benchmarks}
    power = exp.power
    detectable = {
        name: {
            "items": benchmark_items(cfg, name),
            "samples": settings[name]["samples"],
            "points": 100
            * minimum_detectable_difference(
                items=benchmark_items(cfg, name),
                samples=settings[name]["samples"],
                seeds=len(exp.seeds),
                item_variance=power["item_variance"],
                seed_variance=power["seed_variance"],
                alpha=power["alpha"],
                power=power["power"],
            ),
        }
        for name in exp.benchmarks
    }
    training = sum(training_hours(cell) for cell in exp.cells)
    evaluation = sum(evaluation_hours(cell, name) for cell in exp.cells for name in exp.benchmarks)
    variants = len(exp.variants)
    return {
        "experiment": exp.name,
        "cells": cells,
        "preflight": {
            "cells": len(exp.cells),
            "variants": variants,
            "students": len(exp.students),
            "seeds": len(exp.seeds),
            "contrasts": (variants - 1) * len(exp.students) * len(exp.benchmarks),
            "jobs": _jobs(exp, cfg),
            "gpu_hours": {"training": training, "evaluation": evaluation, "total": training + evaluation},
            "detectable_difference": detectable,
            "assumptions": dict(power),
        },
    }


def _jobs(exp: Experiment, cfg: Mapping[str, Any]) -> dict[str, int]:
    """The jobs the experiment adds to the run's own: data stages it rebuilds, a set per variant, a training
    per cell, each cell's generation and execution (twice with a second try), the scores and the report."""
    shards = cfg["seeds"]["num_shards"]
    stages = 0
    for name in exp.owners("generation"):
        stages += 1 + 3 * shards * len(exp.variants[name].config["synthesis"]["models"])  # type: ignore[index]
    for name in exp.owners("filtering"):
        stages += 1 + shards * len(exp.variants[name].config["synthesis"]["models"])  # type: ignore[index]
    stages += len(exp.owners("judge")) + len(exp.owners("dataset"))
    # A synthesis model only variants use, where their generation is the run's: built in the run's folders.
    added = {
        model
        for variant in exp.variants.values()
        if variant.config and variant.owners["generation"] == ""
        for model in variant.config["synthesis"]["models"]
        if model not in cfg["synthesis"]["models"]
    }
    stages += len(added) * (1 + 3 * shards)  # its preflight, then both rounds and the parse per shard
    evaluation = 2 * len(exp.benchmarks) * len(exp.cells)  # first tries only (experiments.scores)
    data = len(exp.variants) + sum(1 for v in exp.variants.values() if v.kind == "external")
    jobs = {"data": stages + data, "training": len(exp.cells), "evaluation": evaluation, "tables": 3}
    return jobs | {"total": sum(jobs.values())}


def plan_text(planned: Mapping[str, Any]) -> str:
    """The preflight in a few lines, for the dry run."""
    pre = planned["preflight"]
    hours = pre["gpu_hours"]
    lines = [
        f"experiment {planned['experiment']}: {pre['cells']} cells ({pre['variants']} variants x {pre['students']} "
        f"students x {pre['seeds']} seeds), {pre['jobs']['total']} jobs of its own ({pre['jobs']['training']} "
        f"trainings), {hours['total']:.1f} GPU-hours reserved (time limits x GPUs: training {hours['training']:.1f}, "
        f"evaluation {hours['evaluation']:.1f})",
        f"smallest paired difference it detects (power {pre['assumptions']['power']}, alpha "
        f"{pre['assumptions']['alpha']}, {pre['contrasts']} contrasts): "
        + "; ".join(
            f"{name} {d['points']:.1f} points ({d['items']} items x {d['samples']} samples x {pre['seeds']} seeds)"
            for name, d in pre["detectable_difference"].items()
        ),
    ]
    return "\n".join(lines)


def write_plan(planned: Mapping[str, Any], cells_path: PathLike, power_path: PathLike) -> None:
    """``cells.tsv`` (one row per cell, its stable id first) and ``power.json`` (the preflight)."""
    pl.DataFrame(planned["cells"], schema=dict.fromkeys(CELL_COLUMNS, pl.String) | {"seed": pl.Int64}).write_csv(
        cells_path, separator="\t"
    )
    write_json(power_path, {"experiment": planned["experiment"], **planned["preflight"]})
