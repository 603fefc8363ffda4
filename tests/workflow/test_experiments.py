"""The experiments: block through Snakemake: the small grid end to end on the tiny model and the fake
teacher (two variants, one student, two seeds), the jobs a variant adds in a dry run, a set too small
stopping before any training, and config/experiments.yaml planning offline without API keys."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from editforge.backend.fake_server import FakeServer
from helpers import REPO
from helpers.workflow import planned_rules, run_snakemake, synthesis_responder, tiny_config

GRID = {
    "name": "small",
    "baseline": "both_styles",
    "students": ["tiny-edit"],
    "seeds": [1, 2],
    "size": {"n": 6},
    "resamples": 1000,
    "variants": {"both_styles": {}, "lazy_only": {"overrides": {"dataset": {"styles": ["lazy"]}}}},
}


@dataclass
class GridRun:
    workdir: Path
    config: dict[str, Any]
    server: FakeServer
    calls_before: int  # the server's calls once the run's own data was made
    run: Any


def _write(workdir: Path, config: dict[str, Any]) -> None:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture(scope="module")
def grid_run(
    tmp_path_factory: pytest.TempPathFactory, code_dir: Path, tiny_model_dir: Path, benchmark_path: Path
) -> Iterator[GridRun]:
    workdir = tmp_path_factory.mktemp("grid")
    with FakeServer(responder=synthesis_responder) as server:
        config = tiny_config(workdir, code_dir, server.base_url, str(tiny_model_dir), benchmark_path)
        config["evaluation"]["targets"] = ["tiny"]
        _write(workdir, config)
        first = run_snakemake(workdir, "results/dataset/train.jsonl")
        assert first.returncode == 0, first.stderr[-3000:]
        calls_before = sum(server.calls.values())
        config["experiments"] = copy.deepcopy(GRID)
        _write(workdir, config)
        run = run_snakemake(workdir)
        yield GridRun(workdir, config, server, calls_before, run)


def test_the_small_grid_runs_end_to_end_without_a_second_llm_call(grid_run: GridRun) -> None:
    assert grid_run.run.returncode == 0, grid_run.run.stderr[-4000:]
    root = grid_run.workdir / "results/experiments/small"
    # lazy-only shares synthesis, filtering and dedup with the run: only its mix is its own, no new call
    assert sum(grid_run.server.calls.values()) == grid_run.calls_before
    assert [path.name for path in (root / "stages").iterdir()] == ["lazy_only"]
    assert [path.name for path in (root / "stages/lazy_only").iterdir()] == ["dataset"]

    cells = pl.read_csv(root / "cells.tsv", separator="\t")
    assert cells["cell"].to_list() == [
        "both_styles~tiny-edit~s1",
        "both_styles~tiny-edit~s2",
        "lazy_only~tiny-edit~s1",
        "lazy_only~tiny-edit~s2",
    ]
    for cell in cells["cell"]:
        assert (root / "cells" / cell / "model/config.json").exists()
    # the cell's training seed reached the trainer, which names the run after the cell and logs it beside it
    for seed in (1, 2):
        summary = json.loads((root / f"cells/lazy_only~tiny-edit~s{seed}/model/training_summary.json").read_text())
        assert summary["settings"]["seed"] == seed
        assert summary["run_name"] == f"small/lazy_only/tiny-edit/s{seed}"
        assert Path(summary["tracking_dir"]) == (root / f"cells/lazy_only~tiny-edit~s{seed}/runs").resolve()
        assert list((root / f"cells/lazy_only~tiny-edit~s{seed}/model/runs").glob("events.out.tfevents.*"))

    for variant, styles in (("both_styles", {"lazy", "descriptive"}), ("lazy_only", {"lazy"})):
        data = root / "data" / variant
        manifest = json.loads((data / "manifest.json").read_text())
        rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
        assert manifest["rows"] == len(rows) == 6
        assert set(manifest["styles"]) == styles == {row["style"] for row in rows}
        assert manifest["sha256"] == hashlib.sha256((data / "train.jsonl").read_bytes()).hexdigest()
        assert manifest["licences"] and manifest["decontamination"]

    scores = pl.read_parquet(root / "per_problem.parquet")
    assert scores.columns == ["cell", "variant", "student", "seed", "benchmark", "problem", "kind", "n", "c"]
    assert scores.height == 4 * 2 * 2  # cells x problems x kinds
    assert set(scores["n"]) == {2}

    table = (root / "table.md").read_text()
    lines = [line for line in table.splitlines() if line.startswith("| tiny-edit")]
    assert [line.split(" | ")[1] for line in lines] == ["both_styles", "lazy_only"]
    assert "Holm-adjusted" in table and "Minimum detectable difference" in table
    deltas = pl.read_csv(root / "deltas.csv")
    assert set(deltas["split"]) == {"lazy", "descriptive", "overall"}
    assert (deltas["p_holm"] >= deltas["p_value"]).all()
    power = json.loads((root / "power.json").read_text())
    assert power["cells"] == 4 and power["detectable_difference"]["canitedit"]["items"] == 4
    assert (root / "forest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "\\begin{tabular}" in (root / "table.tex").read_text()


def test_the_manifest_reports_the_held_out_rows_and_the_runs_settings_hold_out_the_runs(grid_run: GridRun) -> None:
    assert grid_run.run.returncode == 0, grid_run.run.stderr[-4000:]

    def lines(path: Path) -> list[dict[str, Any]]:
        return [json.loads(line) for line in path.read_text().splitlines()]

    results = grid_run.workdir / "results"
    run_held = lines(results / "dataset/validation.jsonl")
    assert run_held, "the tiny config holds out a quarter of its samples: a triplet at least"
    stats = json.loads((results / "dataset/stats.json").read_text())
    assert stats["validation"]["rows"] == len(run_held)
    assert stats["total"] == len(lines(results / "dataset/train.jsonl"))
    root = results / "experiments/small/data"
    for variant in ("both_styles", "lazy_only"):
        held = lines(root / variant / "validation.jsonl")
        train = lines(root / variant / "train.jsonl")
        manifest = json.loads((root / variant / "manifest.json").read_text())
        assert manifest["validation"]["rows"] == len(held) > 0
        assert manifest["validation"]["triplets"] == len({row["triplet_id"] for row in held})
        digest = hashlib.sha256((root / variant / "validation.jsonl").read_bytes()).hexdigest()
        assert manifest["validation"]["sha256"] == digest and manifest["validation"]["tokens"] > 0
        assert not {row["triplet_id"] for row in train} & {row["triplet_id"] for row in held}
    # both_styles has the run's settings: the run's held-out rows, none of them trained on
    both_held = lines(root / "both_styles/validation.jsonl")
    assert sorted(row["id"] for row in both_held) == sorted(row["id"] for row in run_held)
    # lazy_only's own mix holds out its own rows, and the variant holds out the same ones
    lazy_held = lines(results / "experiments/small/stages/lazy_only/dataset/validation.jsonl")
    assert sorted(r["id"] for r in lines(root / "lazy_only/validation.jsonl")) == sorted(r["id"] for r in lazy_held)


def test_a_set_too_small_stops_before_any_training(grid_run: GridRun) -> None:
    config = copy.deepcopy(grid_run.config)
    config["experiments"]["variants"]["huge"] = {"size": {"n": 100000}}
    _write(grid_run.workdir, config)
    try:
        result = run_snakemake(grid_run.workdir, "experiment")
    finally:
        _write(grid_run.workdir, grid_run.config)
    assert result.returncode != 0
    log = (grid_run.workdir / "logs/experiments/small/data/huge.log").read_text()
    assert "experiments.variants.huge" in log and "100000 asked" in log and "at_most" in log
    assert not list((grid_run.workdir / "results/experiments/small/cells").glob("huge~*"))


def _plan(workdir: Path, config: dict[str, Any], *targets: str) -> dict[str, int]:
    _write(workdir, config)
    result = run_snakemake(workdir, "--dry-run", *targets)
    assert result.returncode == 0, result.stderr[-3000:]
    return planned_rules(result)


def test_a_dry_run_shows_the_jobs_each_variant_adds(tmp_path: Path, code_dir: Path, benchmark_path: Path) -> None:
    config = tiny_config(tmp_path, code_dir, "http://127.0.0.1:9", "/nonexistent-model", benchmark_path)
    config["evaluation"]["targets"] = ["fake"]
    config["experiments"] = copy.deepcopy(GRID) | {"variants": {"both_styles": {}}}
    base = _plan(tmp_path, config)

    def added(variant: dict[str, Any]) -> dict[str, int]:
        grown = copy.deepcopy(config)
        grown["experiments"]["variants"]["new"] = variant
        plan = _plan(tmp_path, grown)
        return {rule: plan[rule] - base.get(rule, 0) for rule in plan if plan[rule] != base.get(rule, 0)}

    per_cell = {"experiment_finetune": 2, "eval_generate": 2, "eval_execute": 2}
    assert added({"overrides": {"dataset": {"styles": ["lazy"]}}}) == {
        "experiment_mix": 1,
        "experiment_data": 1,
        **per_cell,
    }
    assert added({"size": {"n": 3}}) == {"experiment_data": 1, **per_cell}
    assert added({"overrides": {"filtering": {"max_hunks": 99}}}) == {
        "experiment_filter_shard": 2,
        "experiment_dedup": 1,
        "experiment_mix": 1,
        "experiment_data": 1,
        **per_cell,
    }
    # The judge reuses the run's filtering and dedup (its model behind an API is checked first).
    assert added({"overrides": {"filtering": {"judge": {"model": "fake"}}}}) == {
        "preflight": 1,
        "experiment_judge": 1,
        "experiment_mix": 1,
        "experiment_data": 1,
        **per_cell,
    }
    no_static = dict.fromkeys(("undefined_names", "missing_imports", "leftover_markup", "truncated_code"), False)
    assert added({"overrides": {"filtering": {"static_checks": no_static}}}) == {
        "experiment_filter_shard": 2,
        "experiment_dedup": 1,
        "experiment_mix": 1,
        "experiment_data": 1,
        **per_cell,
    }
    assert added({"overrides": {"seeds": {"snippet_mode": "window"}}}) == {
        "experiment_seeds": 1,
        "experiment_synthesize_round1": 2,
        "experiment_synthesize_round2": 2,
        "experiment_parse": 2,
        "experiment_filter_shard": 2,
        "experiment_dedup": 1,
        "experiment_mix": 1,
        "experiment_data": 1,
        **per_cell,
    }


def test_config_experiments_yaml_plans_offline_without_api_keys(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")} | {"HF_HUB_OFFLINE": "1"}
    (tmp_path / "config.yaml").write_text((REPO / "config/experiments.yaml").read_text())
    result = run_snakemake(tmp_path, "--dry-run", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert "environment variable DASHSCOPE_API_KEY is not set" in out and "a real run stops here" in out
    assert out.count("smallest paired difference it detects") == 1
    plan = planned_rules(result)
    assert plan["experiment_finetune"] > 0 and plan["experiment_report"] == 1
