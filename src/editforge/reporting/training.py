"""The report's training curves and final training numbers (rule ``report_training``), per student, from
its model folder: ``training_log.jsonl`` (one line per optimizer step) and ``training_summary.json``.

Logs written before validation and throughput were recorded (step, loss, lr, tokens, grad_norm, seconds
only) are read too: tokens per second come from tokens and seconds, and what a log or summary lacks shows
as a dash. Figures are ``matplotlib.figure.Figure`` objects saved with the Agg canvas: no pyplot state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from editforge.monitoring import finite_number, log_series, read_training_log, read_training_summary
from editforge.records import PathLike

_MISSING = "-"
# Above this ratio of the largest to the smallest rate, the tokens-per-second panel is on a log scale.
LOG_SCALE_RATIO = 20.0
# training.csv's columns: its name in training.md, its type, how a value is printed there.
COLUMNS: dict[str, tuple[str, Any, str]] = {
    "student": ("student", pl.String, "{}"),
    "steps": ("steps", pl.Int64, "{:,}"),
    "final_train_loss": ("final train loss", pl.Float64, "{:.4f}"),
    "final_val_loss": ("final val loss", pl.Float64, "{:.4f}"),
    "best_val_loss": ("best val loss", pl.Float64, "{:.4f}"),
    "best_val_step": ("best val step", pl.Int64, "{}"),
    "tokens_per_second": ("tokens/s (median)", pl.Float64, "{:,.0f}"),
    "mfu": ("MFU (estimate)", pl.Float64, "{:.1%}"),
    "memory_gib": ("peak memory (GiB)", pl.Float64, "{:.1f}"),
    "train_seconds": ("train seconds", pl.Float64, "{:,.1f}"),
    "samples": ("samples", pl.Int64, "{:,}"),
    "validation_samples": ("validation samples", pl.Int64, "{:,}"),
}


@dataclass(frozen=True)
class TrainingRun:
    """One student's fine-tune as its model folder records it; empty where a file is missing."""

    student: str
    log: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of the log's lines that hold a finite number under ``key``."""
        return log_series(self.log, key)

    def tokens_per_second(self) -> tuple[list[int], list[float]]:
        """(steps, tokens per second): the logged rate, or tokens over seconds in an old log."""
        kept = [(entry["step"], rate) for entry in self.log if (rate := _rate(entry)) is not None]
        return [step for step, _ in kept], [rate for _, rate in kept]


def read_run(student: str, model_dir: PathLike) -> TrainingRun:
    """A student's log (in step order) and summary from its model folder."""
    return TrainingRun(student, read_training_log(model_dir), read_training_summary(model_dir))


def final_numbers(run: TrainingRun) -> dict[str, Any]:
    """training.csv's row of one student: the log's last and best values, the summary's where the log
    has none (None where neither has one)."""
    summary = run.summary
    validation = summary.get("validation") if isinstance(summary.get("validation"), dict) else {}
    throughput = summary.get("throughput") if isinstance(summary.get("throughput"), dict) else {}
    _, losses = run.series("loss")
    val_steps, val_losses = run.series("val_loss")
    best = min(zip(val_losses, val_steps), key=lambda pair: pair[0]) if val_losses else None
    _, rates = run.tokens_per_second()
    _, mfus = run.series("mfu")
    _, memory = run.series("memory_gib")
    if "validation" in summary and summary["validation"] is None:
        held_out: int | None = 0  # a run that held nothing out
    else:
        held_out = validation.get("samples")
    return {
        "student": run.student,
        "steps": run.log[-1]["step"] if run.log else summary.get("steps"),
        "final_train_loss": losses[-1] if losses else finite_number(summary.get("final_loss")),
        "final_val_loss": val_losses[-1] if val_losses else finite_number(validation.get("final_loss")),
        "best_val_loss": best[0] if best else finite_number(validation.get("best_loss")),
        "best_val_step": best[1] if best else validation.get("best_step"),
        "tokens_per_second": median(rates[1:] or rates)
        if rates
        else finite_number(throughput.get("tokens_per_second")),
        "mfu": median(mfus[1:] or mfus) if mfus else finite_number(throughput.get("mfu")),
        "memory_gib": max(memory) if memory else finite_number(throughput.get("memory_gib")),
        "train_seconds": finite_number(summary.get("train_seconds")),
        "samples": summary.get("samples"),
        "validation_samples": held_out,
    }


def training_frame(runs: Sequence[TrainingRun]) -> pl.DataFrame:
    """training.csv: one row per student (``final_numbers``), COLUMNS' columns."""
    return pl.DataFrame(
        [final_numbers(run) for run in runs], schema={name: kind for name, (_, kind, _) in COLUMNS.items()}
    )


def training_markdown(frame: pl.DataFrame) -> str:
    """training.md: the table, a dash for each missing number, and what the columns are."""
    header = [shown for shown, _, _ in COLUMNS.values()]
    lines = ["# Training: final numbers per student", "", _md_row(header), "|" + "---|" * len(header)]
    for row in frame.iter_rows(named=True):
        lines.append(
            _md_row([_MISSING if row[n] is None else form.format(row[n]) for n, (_, _, form) in COLUMNS.items()])
        )
    if frame.is_empty():
        lines.append("")
        lines.append("No student was fine-tuned in this run.")
    lines += [
        "",
        "Final train loss: the last optimizer step's; final and best val loss: the held-out validation set's, "
        "at the last evaluation and at its best step; tokens/s: the median over the steps after the first; "
        "MFU: model FLOPs utilisation, estimated, where the device's peak is known; peak memory: the "
        "accelerator's, on a GPU. A dash: not recorded (nothing held out, no GPU, or a log from before these "
        "numbers were logged).",
    ]
    return "\n".join(lines) + "\n"


def training_figure(runs: Sequence[TrainingRun]) -> Figure:
    """Three panels, a colour per student: train loss per step (a line) with the validation loss (markers
    joined by a dashed line), the learning rate, tokens per second. Without any logged step, a figure
    that says so."""
    logged = [run for run in runs if run.log]
    if not logged:
        fig = Figure(figsize=(7, 3), dpi=120, layout="tight")
        _say_no_data(fig.subplots(), "No training log: no curves to show")
        return fig
    fig = Figure(figsize=(15, 4.5), dpi=120, layout="tight")
    loss, rate, speed = fig.subplots(1, 3)
    for index, run in enumerate(logged):
        colour = f"C{index % 10}"  # matplotlib's default colour cycle
        _line(loss, run.series("loss"), colour, f"{run.student} train", linewidth=1.2)
        _line(loss, run.series("val_loss"), colour, f"{run.student} validation", linestyle="--", marker="o")
        _line(rate, run.series("lr"), colour, run.student)
        _line(speed, run.tokens_per_second(), colour, run.student)
    _finish(loss, "loss", "loss per step (validation: dashed, markers)")
    _finish(rate, "learning rate", "learning rate")
    _finish(speed, "tokens per second", "tokens per second")
    rates = [value for run in logged for value in run.tokens_per_second()[1] if value > 0]
    if rates and max(rates) / min(rates) > LOG_SCALE_RATIO:
        speed.set_yscale("log")
    return fig


def write_training_report(models: Mapping[str, PathLike], png: PathLike, csv: PathLike, md: PathLike) -> None:
    """training_curves.png, training.csv and training.md from each student's model folder (student ->
    folder, in the order of the config)."""
    runs = [read_run(student, folder) for student, folder in models.items()]
    training_figure(runs).savefig(png)
    frame = training_frame(runs)
    frame.write_csv(csv)
    Path(md).write_text(training_markdown(frame), encoding="utf-8")


def _line(ax: Axes, points: tuple[list[int], list[float]], colour: str, label: str, **style: Any) -> None:
    """A student's series as a line, if it has points (a lone point gets a marker, to be seen)."""
    steps, values = points
    if steps:
        marker = style.pop("marker", "o" if len(steps) == 1 else None)
        ax.plot(steps, values, color=colour, label=label, marker=marker, markersize=4, **style)


def _finish(ax: Axes, ylabel: str, title: str) -> None:
    ax.set_title(title)
    if not ax.lines:
        _say_no_data(ax, f"No {ylabel} logged")
        return
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)


def _say_no_data(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, transform=ax.transAxes)
    ax.set_axis_off()


def _rate(entry: Mapping[str, Any]) -> float | None:
    rate = finite_number(entry.get("tokens_per_second"))
    if rate is not None:
        return rate
    tokens, seconds = finite_number(entry.get("tokens")), finite_number(entry.get("seconds"))
    return tokens / seconds if tokens is not None and seconds else None


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"
