"""The forest plot of an experiment grid (``forest.png``): each variant's Δ against its student's
baseline, with its interval, one panel per benchmark (overall split, the contrasts the table shows).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import polars as pl

from editforge.records import PathLike

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SHOWN = "shown"  # the family of the contrasts the table shows (overall splits)
_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")  # one per student


def write_forest_plot(deltas: pl.DataFrame, benchmarks: Sequence[str], baseline: str, path: PathLike) -> None:
    """``forest_figure`` saved as a PNG."""
    import matplotlib.pyplot as plt

    figure = forest_figure(deltas, benchmarks, baseline)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def forest_figure(deltas: pl.DataFrame, benchmarks: Sequence[str], baseline: str) -> Figure:
    """One panel per benchmark: per student and non-baseline variant, Δ (points) as a dot and its
    interval as a horizontal line, a vertical line at 0, the Holm-adjusted p at the right. Without
    contrasts (only the baseline was run) a figure that says so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = deltas.filter(pl.col("family") == SHOWN)
    if shown.is_empty():
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.text(
            0.5,
            0.5,
            f"No contrasts to plot: only the baseline variant ({baseline}) was run.",
            ha="center",
            va="center",
            fontsize=10,
        )
        ax.axis("off")
        return fig
    lines = shown.filter(pl.col("benchmark") == benchmarks[0]).height
    fig, axes = plt.subplots(len(benchmarks), 1, figsize=(8, len(benchmarks) * (1.2 + 0.4 * lines)), squeeze=False)
    for ax, name in zip(axes[:, 0], benchmarks):
        _panel(ax, shown.filter(pl.col("benchmark") == name), name, baseline)
    fig.tight_layout()
    return fig


def _panel(ax: Axes, contrasts: pl.DataFrame, benchmark: str, baseline: str) -> None:
    students = contrasts["student"].unique(maintain_order=True).to_list()
    rows = contrasts.to_dicts()
    labels = []
    for position, row in enumerate(rows):
        y = len(rows) - 1 - position  # the first contrast at the top
        colour = _COLOURS[students.index(row["student"]) % len(_COLOURS)]
        ax.hlines(y, 100 * row["low"], 100 * row["high"], color=colour, linewidth=2)
        ax.plot(100 * row["delta"], y, "o", color=colour)
        p = row["p_holm"]
        ax.text(
            1.01,
            y,
            "p<0.001" if p < 0.001 else f"p={p:.3f}",
            transform=ax.get_yaxis_transform(),
            va="center",
            fontsize=8,
        )
        labels.append((y, f"{row['student']} · {row['variant']}"))
    ax.axvline(0, color="#444444", linewidth=1)
    ax.set_yticks([y for y, _ in labels], [label for _, label in labels], fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel(f"Δ pass@1 vs {baseline} (points), overall; Holm-adjusted p at the right")
    ax.set_title(f"{benchmark}: variant minus baseline")
