"""The experiment's plan before any training: items per benchmark, cells with their paths, the jobs it
adds, the GPU-hours it reserves, the smallest difference it detects, and the files it writes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from editforge import config as efconfig
from editforge.experiments.grid import Cell, experiment
from editforge.experiments.plan import CELL_COLUMNS, benchmark_items, plan, plan_text, write_plan
from editforge.experiments.statistics import minimum_detectable_difference
from helpers.experiments import DEMO, VARIANTS
from helpers.workflow import AIDER_EXERCISM, HUMANEVALFIX, every_benchmark

HOURS = {"canitedit": 0.5, "humanevalfix": 0.25, "aider_exercism": 1.5}


def configured(variants: dict[str, Any], *, every: bool = False, **block: Any) -> tuple[dict[str, Any], Any]:
    """The validated demo config with an experiment of ``variants`` (one student, seeds 1 and 2), on
    CanItEdit alone or (``every``) on all three benchmarks, and its experiment."""
    raw = copy.deepcopy(DEMO)
    if every:
        every_benchmark(raw)  # HumanEvalFix: 1 problem; Aider: 1 problem, two tries
    raw["experiments"] = {
        "name": "g",
        "baseline": "paper",
        "students": ["smollm2-edit"],
        "seeds": [1, 2],
        "size": {"n": 10},
        "variants": copy.deepcopy(variants),
    } | block
    cfg = efconfig.validate(raw)
    return cfg, experiment(cfg)


def planned(cfg: dict[str, Any], exp: Any) -> dict[str, Any]:
    return plan(exp, cfg, lambda cell: 2.0, lambda cell, name: HOURS[name])


def test_benchmark_items_are_problems_times_kinds() -> None:
    cfg = every_benchmark(efconfig.validate(copy.deepcopy(DEMO)))
    assert benchmark_items(cfg, "canitedit") == 10 * 2  # the demo's 10 problems, lazy and descriptive
    assert benchmark_items(cfg, "humanevalfix") == 1 * 2  # its own count, tests and docs
    assert benchmark_items(cfg, "aider_exercism") == 1  # a list of one, one kind
    cfg["evaluation"]["problems"] = None  # the whole benchmarks
    del cfg["evaluation"]["benchmarks"]["humanevalfix"]["problems"]
    assert benchmark_items(cfg, "canitedit") == 105 * 2
    assert benchmark_items(cfg, "humanevalfix") == 164 * 2
    cfg["evaluation"]["problems"] = ["1", "7", "33"]  # CanItEdit ids; the other benchmarks take them all
    assert benchmark_items(cfg, "canitedit") == 3 * 2
    assert benchmark_items(cfg, "humanevalfix") == 164 * 2
    cfg["evaluation"]["benchmarks"]["aider_exercism"]["problems"] = None
    assert benchmark_items(cfg, "aider_exercism") == 133


def test_the_plan_lists_each_cell_with_its_data_and_model() -> None:
    cfg, exp = configured(VARIANTS)
    cells = planned(cfg, exp)["cells"]
    assert [c["cell"] for c in cells] == [c.id for c in exp.cells]
    assert len(cells) == 12
    lazy = next(c for c in cells if c["cell"] == "lazy_only~smollm2-edit~s2")
    assert lazy == {
        "cell": "lazy_only~smollm2-edit~s2",
        "variant": "lazy_only",
        "student": "smollm2-edit",
        "seed": 2,
        "data": "results/experiments/g/data/lazy_only/train.jsonl",
        "model": "results/experiments/g/cells/lazy_only~smollm2-edit~s2/model",
    }
    assert all(tuple(c) == CELL_COLUMNS for c in cells)


def test_the_preflight_counts_cells_contrasts_jobs_and_hours() -> None:
    cfg, exp = configured(VARIANTS, every=True)
    assert sorted(exp.benchmarks) == ["aider_exercism", "canitedit", "humanevalfix"]
    pre = planned(cfg, exp)["preflight"]
    assert (pre["cells"], pre["variants"], pre["students"], pre["seeds"]) == (12, 6, 1, 2)
    assert pre["contrasts"] == (6 - 1) * 1 * 3
    # 2 shards, 1 synthesis model: window rebuilds seeds (1), both synthesis rounds and parse (3 x 2),
    # filtering (2 shards + dedup) and its mix; no_hunks filtering and mix; lazy_only its mix;
    # then a set per variant (6) and the external pool (1)
    data = (1 + 3 * 2) + 2 * (2 + 1) + 3 + 6 + 1
    # per cell: generation and execution on each benchmark (first tries: no second try for a cell)
    evaluation = 12 * (2 + 2 + 2)
    assert pre["jobs"] == {
        "data": data,
        "training": 12,
        "evaluation": evaluation,
        "tables": 3,
        "total": data + 12 + evaluation + 3,
    }
    assert pre["jobs"]["total"] == 110
    assert pre["gpu_hours"] == {
        "training": 12 * 2.0,
        "evaluation": 12 * (0.5 + 0.25 + 1.5),
        "total": 12 * 2.0 + 12 * 2.25,
    }


@pytest.mark.parametrize(
    ("variants", "data"),
    [
        ({}, 1),  # the baseline's set: every stage is the run's
        ({"small": {"size": {"n": 5}}}, 2),  # a set of its own, nothing rebuilt
        ({"lazy_only": VARIANTS["lazy_only"]}, 2 + 1),  # and its mix
        ({"lazy_a": VARIANTS["lazy_only"], "lazy_b": VARIANTS["lazy_only"]}, 3 + 1),  # one mix for both
        ({"no_hunks": VARIANTS["no_hunks"]}, 2 + 1 + (1 + 2)),  # its mix, dedup and 2 filter shards
        ({"ext": VARIANTS["ext"]}, 2 + 1),  # its pool
    ],
)
def test_each_variant_adds_its_own_jobs(variants: dict[str, Any], data: int) -> None:
    cfg, exp = configured({"paper": {}, **variants})
    cells = 2 * (1 + len(variants))
    assert planned(cfg, exp)["preflight"]["jobs"] == {
        "data": data,
        "training": cells,
        "evaluation": 2 * cells,  # CanItEdit: generation and execution
        "tables": 3,
        "total": data + cells + 2 * cells + 3,
    }


def test_a_variant_adding_a_synthesis_model_counts_that_models_synthesis() -> None:
    raw = copy.deepcopy(DEMO)
    raw["models"]["smollm2b"] = copy.deepcopy(raw["models"]["smollm2"])
    raw["experiments"] = {
        "name": "g",
        "baseline": "paper",
        "students": ["smollm2-edit"],
        "variants": {
            "paper": {},
            "two": {
                "overrides": {
                    "synthesis": {"models": ["smollm2", "smollm2b"]},
                    "dataset": {"mix": {"smollm2": 0.5, "smollm2b": 0.5}},
                }
            },
        },
    }
    cfg = efconfig.validate(raw)
    exp = experiment(cfg)
    assert exp.variants["two"].owners["generation"] == ""
    # two sets, two's mix, its dedup and 2 shards x 2 models of filtering, and smollm2b's own synthesis:
    # its preflight and, per shard (2), round 1, round 2 and parse
    assert planned(cfg, exp)["preflight"]["jobs"]["data"] == 2 + 1 + (1 + 2 * 2) + (1 + 3 * 2)


def test_the_detectable_difference_is_the_power_formula_in_points() -> None:
    power = {"item_variance": 0.2, "seed_variance": 0.01, "alpha": 0.1, "power": 0.9}
    cfg, exp = configured({"paper": {}, "lazy_only": VARIANTS["lazy_only"]}, every=True, power=power, seeds=[1, 2, 3])
    cfg["evaluation"]["benchmarks"]["humanevalfix"]["samples"] = 5
    detectable = planned(cfg, exp)["preflight"]["detectable_difference"]
    expected = {"canitedit": (20, 2), "humanevalfix": (2, 5), "aider_exercism": (1, 2)}
    assert set(detectable) == set(expected)
    for name, (items, samples) in expected.items():
        mde = minimum_detectable_difference(items=items, samples=samples, seeds=3, **power)
        assert detectable[name] == {"items": items, "samples": samples, "points": pytest.approx(100 * mde)}
    assert planned(cfg, exp)["preflight"]["assumptions"] == power
    # the defaults
    cfg, exp = configured({"paper": {}})
    points = planned(cfg, exp)["preflight"]["detectable_difference"]["canitedit"]["points"]
    assert points == pytest.approx(100 * minimum_detectable_difference(items=20, samples=2, seeds=2))


def test_hours_come_from_each_cell_and_benchmark() -> None:
    cfg, exp = configured({"paper": {}, "lazy_only": VARIANTS["lazy_only"]}, every=True)
    seen: list[tuple[str, str]] = []

    def evaluation_hours(cell: Cell, name: str) -> float:
        seen.append((cell.id, name))
        return 1.0 if cell.variant == "paper" else 3.0

    hours = plan(exp, cfg, lambda cell: float(cell.seed), evaluation_hours)["preflight"]["gpu_hours"]
    assert sorted(seen) == sorted((c.id, b) for c in exp.cells for b in exp.benchmarks)
    assert hours == {"training": 2 * (1 + 2), "evaluation": 3 * (2 * 1.0 + 2 * 3.0), "total": 6 + 24}


def test_plan_text_is_two_lines_of_cells_hours_and_points() -> None:
    cfg, exp = configured(VARIANTS)
    planned_ = planned(cfg, exp)
    text = plan_text(planned_)
    lines = text.split("\n")
    assert len(lines) == 2
    jobs = planned_["preflight"]["jobs"]
    assert lines[0].startswith("experiment g: 12 cells (6 variants x 1 students x 2 seeds)")
    assert f"{jobs['total']} jobs of its own (12 trainings)" in lines[0]
    assert "30.0 GPU-hours reserved" in lines[0] and "training 24.0, evaluation 6.0" in lines[0]
    points = planned_["preflight"]["detectable_difference"]["canitedit"]["points"]
    assert lines[1].startswith("smallest paired difference it detects (power 0.8, alpha 0.05, 5 contrasts): ")
    assert f"canitedit {points:.1f} points (20 items x 2 samples x 2 seeds)" in lines[1]


def test_write_plan_writes_the_cells_and_the_preflight(tmp_path: Path) -> None:
    cfg, exp = configured(VARIANTS)
    planned_ = planned(cfg, exp)
    write_plan(planned_, tmp_path / "cells.tsv", tmp_path / "power.json")
    header = (tmp_path / "cells.tsv").read_text().splitlines()[0]
    assert header.split("\t") == list(CELL_COLUMNS)
    cells = pl.read_csv(tmp_path / "cells.tsv", separator="\t")
    assert cells.to_dicts() == planned_["cells"]
    assert cells["cell"].to_list()[:2] == [c.id for c in exp.cells][:2]
    power = json.loads((tmp_path / "power.json").read_text())
    assert power == {"experiment": "g", **json.loads(json.dumps(planned_["preflight"]))}
    assert power["contrasts"] == 5 and power["cells"] == 12


def test_each_benchmarks_size_is_the_problem_count_of_its_copy(benchmark_path: Path) -> None:
    from editforge.evaluation.benchmarks import benchmark

    copies = {"canitedit": benchmark_path, "humanevalfix": HUMANEVALFIX, "aider_exercism": AIDER_EXERCISM}
    for name, path in copies.items():
        assert benchmark(name).size == len(benchmark(name).load(str(path))), name
