"""The training curves of an experiment grid (``curves.png``) and each cell's final losses (the results
table's loss columns), from each cell's model folder: ``training_log.jsonl``, one line per optimizer step
with its train loss (``loss``) and, on the steps where it was computed, the validation loss
(``val_loss``). Logs from before validation was logged have no validation points; a missing log, none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from editforge.monitoring import log_series, read_training_log
from editforge.records import PathLike

SEED_LINESTYLES = ("-", "--", ":", "-.")  # per seed; a variant is a colour of the default cycle
LOSS_SCHEMA: dict[str, Any] = {
    "variant": pl.String,
    "student": pl.String,
    "seed": pl.Int64,
    "final_train_loss": pl.Float64,
    "final_val_loss": pl.Float64,
}
Points = tuple[tuple[int, ...], tuple[float, ...]]  # (steps, values)


@dataclass(frozen=True)
class CellCurve:
    """One cell's train and validation loss per step."""

    variant: str
    student: str
    seed: int
    train: Points
    validation: Points

    @property
    def final_train_loss(self) -> float | None:
        return self.train[1][-1] if self.train[1] else None

    @property
    def final_val_loss(self) -> float | None:
        return self.validation[1][-1] if self.validation[1] else None


def read_curve(cell: Mapping[str, Any], model_dir: PathLike) -> CellCurve:
    """The curves of ``cell`` (its ``variant``, ``student`` and ``seed``) from its model folder."""
    log = read_training_log(model_dir)
    return CellCurve(
        cell["variant"], cell["student"], int(cell["seed"]), _points(log, "loss"), _points(log, "val_loss")
    )


def read_curves(cells: Sequence[Mapping[str, Any]], model_dirs: Sequence[PathLike]) -> list[CellCurve]:
    """Every cell's curves: ``cells`` and their model folders, in the same order."""
    if len(cells) != len(model_dirs):
        raise ValueError(f"{len(cells)} cells but {len(model_dirs)} model folders")
    return [read_curve(cell, folder) for cell, folder in zip(cells, model_dirs)]


def cell_losses(curves: Sequence[CellCurve]) -> pl.DataFrame:
    """Per cell (variant, student, seed): its final train loss and final validation loss (null if none)."""
    rows = [
        {
            "variant": c.variant,
            "student": c.student,
            "seed": c.seed,
            "final_train_loss": c.final_train_loss,
            "final_val_loss": c.final_val_loss,
        }
        for c in curves
    ]
    return pl.DataFrame(rows, schema=LOSS_SCHEMA)


def curves_figure(curves: Sequence[CellCurve]) -> Figure:
    """A row per student: train loss per step (left) and validation loss (right, markers), a colour per
    variant and a line style per seed, in the order the cells come. Without any logged step, a figure
    that says so."""
    logged = [c for c in curves if c.train[0] or c.validation[0]]
    if not logged:
        fig = Figure(figsize=(7, 3), dpi=120, layout="tight")
        _say_no_data(fig.subplots(), "No training log: no curves to show")
        return fig
    students = list(dict.fromkeys(c.student for c in logged))
    variants = list(dict.fromkeys(c.variant for c in logged))
    seeds = list(dict.fromkeys(c.seed for c in logged))
    fig = Figure(figsize=(13, 1 + 3.5 * len(students)), dpi=120, layout="tight")
    axes = fig.subplots(len(students), 2, squeeze=False)
    for (train_ax, val_ax), student in zip(axes, students):
        for curve in (c for c in logged if c.student == student):
            colour = f"C{variants.index(curve.variant) % 10}"
            style = SEED_LINESTYLES[seeds.index(curve.seed) % len(SEED_LINESTYLES)]
            if curve.train[0]:
                train_ax.plot(*curve.train, color=colour, linestyle=style, linewidth=1.2)
            if curve.validation[0]:
                val_ax.plot(*curve.validation, color=colour, linestyle=style, marker="o", markersize=4)
        _finish(train_ax, f"{student}: train loss per step")
        _finish(val_ax, f"{student}: validation loss")
    handles = [Line2D([], [], color=f"C{i % 10}", label=v) for i, v in enumerate(variants)]
    handles += [
        Line2D([], [], color="#444444", linestyle=SEED_LINESTYLES[i % len(SEED_LINESTYLES)], label=f"seed {s}")
        for i, s in enumerate(seeds)
    ]
    axes[0][0].legend(handles=handles, fontsize=7)
    return fig


def write_curves(curves: Sequence[CellCurve], path: PathLike) -> None:
    """``curves_figure`` saved as a PNG."""
    curves_figure(curves).savefig(path)


def _points(log: Sequence[Mapping[str, Any]], key: str) -> Points:
    steps, values = log_series(log, key)
    return tuple(steps), tuple(values)


def _finish(ax: Axes, title: str) -> None:
    ax.set_title(title)
    if not ax.lines:
        _say_no_data(ax, "none logged")
        return
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")


def _say_no_data(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, transform=ax.transAxes)
    ax.set_axis_off()
