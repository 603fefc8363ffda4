"""The grid's training curves (curves.png) and the final losses in its results table, from hand-written
cell logs in the trainer's format and the old one."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from editforge.experiments.curves import (
    SEED_LINESTYLES,
    cell_losses,
    curves_figure,
    read_curves,
    write_curves,
)
from editforge.experiments.table import experiment_tables, table_latex, write_experiment_tables
from editforge.records import write_jsonl

PNG = b"\x89PNG\r\n\x1a\n"
VARIANTS = ("base", "better")
STUDENTS = ("qwen", "deepseek")
SEEDS = (0, 1)
MANIFESTS = {v: {"rows": 100, "tokens": 5000, "licences": ["MIT"], "sources": ["s"]} for v in VARIANTS}


def train_loss(variant: str, student: str, seed: int, step: int) -> float:
    return 3.0 / step + 0.1 * VARIANTS.index(variant) + 0.01 * seed + 0.5 * STUDENTS.index(student)


def val_loss(variant: str, student: str, seed: int, step: int) -> float:
    return train_loss(variant, student, seed, step) + 0.2


def cell_log(variant: str, student: str, seed: int, *, validation: bool) -> list[dict[str, Any]]:
    """Four steps; the current format validates at steps 2 and 4, the old one has no val_loss."""
    log = []
    for step in range(1, 5):
        entry: dict[str, Any] = {
            "step": step,
            "loss": train_loss(variant, student, seed, step),
            "lr": 1e-4,
            "tokens": 100,
            "grad_norm": 1.0,
            "seconds": 0.1,
        }
        if validation and step % 2 == 0:
            entry["val_loss"] = val_loss(variant, student, seed, step)
        log.append(entry)
    return log


def cells(root: Path, *, old_student: str | None = None) -> tuple[list[dict[str, Any]], list[Path]]:
    """The grid's cells (qwen's first) and their model folders; ``old_student``'s logs in the old format."""
    found, folders = [], []
    for student in STUDENTS:
        for variant in VARIANTS:
            for seed in SEEDS:
                cell = {"variant": variant, "student": student, "seed": seed, "id": f"{variant}~{student}~s{seed}"}
                folder = root / cell["id"] / "model"
                folder.mkdir(parents=True)
                write_jsonl(
                    folder / "training_log.jsonl", cell_log(variant, student, seed, validation=student != old_student)
                )
                found.append(cell)
                folders.append(folder)
    return found, folders


def test_curves_overlay_variants_by_colour_and_seeds_by_line_style(tmp_path: Path) -> None:
    curves = read_curves(*cells(tmp_path, old_student="deepseek"))
    axes = curves_figure(curves).get_axes()
    assert [ax.get_title() for ax in axes] == [
        "qwen: train loss per step",
        "qwen: validation loss",
        "deepseek: train loss per step",
        "deepseek: validation loss",
    ]
    qwen_train, qwen_val, deepseek_train, deepseek_val = axes
    assert len(qwen_train.lines) == len(qwen_val.lines) == len(deepseek_train.lines) == 4  # variants x seeds
    styles = {(line.get_color(), line.get_linestyle()) for line in qwen_train.lines}
    assert styles == {(f"C{v}", SEED_LINESTYLES[s]) for v in range(2) for s in range(2)}
    better_s1 = qwen_train.lines[3]  # base s0, base s1, better s0, better s1
    assert (better_s1.get_color(), better_s1.get_linestyle()) == ("C1", "--")
    assert list(better_s1.get_ydata()) == [train_loss("better", "qwen", 1, s) for s in range(1, 5)]
    assert list(qwen_val.lines[0].get_xdata()) == [2, 4] and qwen_val.lines[0].get_marker() == "o"
    assert not deepseek_val.lines and any("none logged" in t.get_text() for t in deepseek_val.texts)  # old logs
    labels = [text.get_text() for text in qwen_train.get_legend().get_texts()]
    assert labels == ["base", "better", "seed 0", "seed 1"]


def test_missing_logs_draw_a_figure_that_says_so(tmp_path: Path) -> None:
    cell = {"variant": "base", "student": "qwen", "seed": 0}
    curves = read_curves([cell], [tmp_path / "nothing"])
    assert cell_losses(curves).row(0, named=True)["final_train_loss"] is None
    (ax,) = curves_figure(curves).get_axes()
    assert any("No training log" in text.get_text() for text in ax.texts)
    write_curves(curves, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes().startswith(PNG)
    with pytest.raises(ValueError, match="1 cells but 2 model folders"):
        read_curves([cell], [tmp_path, tmp_path])


def test_cell_losses_are_each_logs_last_values(tmp_path: Path) -> None:
    losses = cell_losses(read_curves(*cells(tmp_path, old_student="deepseek")))
    row = losses.filter((pl.col("variant") == "better") & (pl.col("student") == "qwen") & (pl.col("seed") == 1))
    assert row.row(0, named=True) == {
        "variant": "better",
        "student": "qwen",
        "seed": 1,
        "final_train_loss": train_loss("better", "qwen", 1, 4),
        "final_val_loss": val_loss("better", "qwen", 1, 4),
    }
    assert losses.filter(pl.col("student") == "deepseek")["final_val_loss"].null_count() == 4


def per_problem() -> pl.DataFrame:
    rows = [
        {
            "cell": f"{v}~{st}~s{seed}",
            "variant": v,
            "student": st,
            "seed": seed,
            "benchmark": "canitedit",
            "problem": f"p{p}",
            "kind": "lazy",
            "n": 4,
            "c": (p + seed + VARIANTS.index(v)) % 5,
        }
        for st in STUDENTS
        for v in VARIANTS
        for seed in SEEDS
        for p in range(6)
    ]
    return pl.DataFrame(rows)


def test_the_table_gets_the_mean_final_losses_over_seeds(tmp_path: Path) -> None:
    losses = cell_losses(read_curves(*cells(tmp_path / "cells", old_student="deepseek")))
    common = {
        "baseline": "base",
        "variants": VARIANTS,
        "benchmarks": ["canitedit"],
        "samples": {"canitedit": 4},
        "seeds": list(SEEDS),
        "resamples": 200,
    }
    tables = experiment_tables(per_problem(), MANIFESTS, losses=losses, **common)
    row = tables.rows.filter((pl.col("student") == "qwen") & (pl.col("variant") == "better")).row(0, named=True)
    assert row["final_train_loss"] == pytest.approx(statistics.mean(train_loss("better", "qwen", s, 4) for s in SEEDS))
    assert row["final_val_loss"] == pytest.approx(statistics.mean(val_loss("better", "qwen", s, 4) for s in SEEDS))
    assert tables.rows.filter(pl.col("student") == "deepseek")["final_val_loss"].to_list() == [None, None]

    write_experiment_tables(tables, tmp_path)
    csv = pl.read_csv(tmp_path / "table.csv")
    assert csv.columns[-2:] == ["final_train_loss", "final_val_loss"]
    lines = (tmp_path / "table.md").read_text(encoding="utf-8").splitlines()
    assert next(line for line in lines if line.startswith("| student")).endswith("| tokens | train loss | val loss |")
    better = next(line for line in lines if line.startswith("| qwen | better"))
    assert better.endswith(f"| {row['final_train_loss']:.4f} | {row['final_val_loss']:.4f} |")
    assert next(line for line in lines if line.startswith("| deepseek | base")).endswith(" | — |")
    assert any(line.startswith("Train loss and val loss: each cell's loss at its last training step") for line in lines)
    assert r"train loss & val loss \\" in table_latex(tables)

    without = experiment_tables(per_problem(), MANIFESTS, **common)
    assert "final_val_loss" not in without.rows.columns
    assert not any(note.startswith("Train loss") for note in without.footnotes)
