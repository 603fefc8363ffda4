"""The report's histograms (``snakemake --report``): the diff size of every kept
triplet, and the topic sizes of the balanced dataset beside the sizes before
balancing. Figures are ``matplotlib.figure.Figure`` objects saved with the Agg
canvas: no pyplot state.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from statistics import median
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from editforge.pycode.diff import diff_stats
from editforge.records import PathLike, read_jsonl

# Below this many topics each bar is named by its id and top words; above, only counted.
MAX_NAMED_TOPICS = 30


def diff_sizes(triplets: Iterable[Mapping[str, Any]]) -> list[int]:
    """Changed lines of each kept triplet, counted as the diff filter counts them."""
    return [diff_stats(t["pre_code"], t["post_code"]).changed_lines for t in triplets if t.get("status") == "ok"]


def integer_bins(values: Sequence[int], max_bins: int) -> list[float]:
    """Histogram edges for whole numbers: bins of equal whole width, centred on the
    numbers they hold, one per number where the range allows, at most ``max_bins``."""
    if not values or max_bins < 1:
        raise ValueError(f"integer_bins needs values and max_bins >= 1; got {len(values)} values, {max_bins}")
    low, span = min(values), max(values) - min(values) + 1
    width = math.ceil(span / max_bins)
    return [low - 0.5 + i * width for i in range(math.ceil(span / width) + 1)]


def diff_size_figure(sizes: Sequence[int], max_bins: int) -> Figure:
    """A histogram of changed lines per kept triplet; without triplets, a figure that says so."""
    fig = Figure(figsize=(7, 4), dpi=120, layout="tight")
    ax = fig.subplots()
    if not sizes:
        _say_no_data(ax, "No kept triplets: no diff sizes to show")
        return fig
    ax.hist(sizes, bins=integer_bins(sizes, max_bins), color="#4c72b0", edgecolor="white")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("changed lines (added + removed + modified)")
    ax.set_ylabel("kept triplets")
    ax.set_title(f"Diff size of the {len(sizes)} kept triplets (median {median(sizes):g} lines)")
    return fig


def topic_figure(topics: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Per instruction style, each topic's size before balancing (the kept triplets)
    and in the dataset, from ``topics.json``; without topics, a figure that says so."""
    styles = [style for style, entry in topics.items() if entry.get("topics")]
    fig = Figure(figsize=(9, 1.5 + 3 * max(len(styles), 1)), dpi=120, layout="tight")
    if not styles:
        _say_no_data(fig.subplots(), "No topics recorded: no topic sizes to show")
        return fig
    for ax, style in zip(fig.subplots(len(styles), 1, squeeze=False)[:, 0], styles):
        _topic_bars(ax, style, topics[style])
    return fig


def _topic_bars(ax: Axes, style: str, entry: Mapping[str, Any]) -> None:
    rows = entry["topics"]
    positions = range(len(rows))
    ax.bar(positions, [row["kept"] for row in rows], color="#c6d4e8", label="kept triplets (before balancing)")
    ax.bar(positions, [row["selected"] for row in rows], width=0.5, color="#4c72b0", label="samples in the dataset")
    if len(rows) <= MAX_NAMED_TOPICS:
        ax.set_xticks(positions, [_topic_label(row) for row in rows], rotation=45, ha="right", fontsize=7)
    else:
        ax.set_xticks([])
    ax.set_xlabel(f"{len(rows)} topics ({entry.get('method', '?')}), largest first")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("samples")
    ax.set_title(f"{style}: {entry.get('selected', 0)} samples over {len(rows)} topics")
    ax.legend(fontsize=8)


def _topic_label(row: Mapping[str, Any]) -> str:
    words = " ".join(row.get("top_words", [])[:2])
    return f"{row['topic']}: {words}" if words else str(row["topic"])


def _say_no_data(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, transform=ax.transAxes)
    ax.set_axis_off()


def write_figures(
    filtered_path: PathLike, topics_path: PathLike, diff_png: PathLike, topics_png: PathLike, max_bins: int
) -> None:
    """The diff-size and topic histograms, from the filtered triplets and ``topics.json``."""
    diff_size_figure(diff_sizes(read_jsonl(filtered_path)), max_bins).savefig(diff_png)
    topic_figure(json.loads(Path(topics_path).read_text())).savefig(topics_png)
