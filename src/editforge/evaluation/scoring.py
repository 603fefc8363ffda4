"""pass@k per problem and per model, the report files and the bar chart.

Scores are percentages (0-100), as the paper reports them. A problem is one
(problem, instruction kind) pair, as in the harness, where each results file is
one problem. Samples whose outcome is ``env_error`` (a package missing from this
environment) say nothing about the model: they are left out of ``n`` and
counted; a problem left with no sample (``n == 0``) drops out of the means and is
counted as excluded. Every other outcome that is not ``pass`` is a failure.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from editforge.evaluation.benchmark import CHANGE_KINDS
from editforge.records import STYLES, RecordError, read_jsonl
from editforge.sandbox import OUTCOMES

SPLITS = (*STYLES, "overall", *CHANGE_KINDS)
QUOTED_SOURCE = (
    "OpenCodeEdit (Zhang et al., arXiv 2509.25203), results table; "
    "its GPT-4, GPT-3.5-Turbo, DeepSeekCoder-Instr, CodeLlama-Instruct and EditCoder rows are cited there "
    "from Cassano et al. (COLM 2024), the SelfCodeAlign row from Wei et al. (NeurIPS 2024)"
)
# (model, lazy, descriptive, overall) pass@1 in %, as printed in that table.
PAPER_ROWS: tuple[tuple[str, float | None, float | None, float], ...] = (
    ("GPT-4", 51.95, 63.33, 57.64),
    ("GPT-3.5-Turbo", 42.71, 48.14, 45.43),
    ("DeepSeekCoder-Instr-33B", 42.33, 55.90, 49.12),
    ("CodeLlama-Instruct-7B", 23.49, 32.83, 28.16),
    ("SelfCodeAlign-CQ-7B", None, None, 39.00),
    ("DeepSeekCoder-Instr-6.7B", 31.65, 41.03, 36.34),
    ("EditCoder-6.7B", 39.29, 48.33, 43.81),
    ("OpenCodeEdit-DSC-6.7B", 43.90, 52.81, 48.36),
    ("Qwen2.5-Coder-7B-Instr", 43.00, 51.43, 47.21),
    ("OpenCodeEdit-Qwen2.5-7B", 47.19, 56.24, 51.71),
    ("Qwen3-8B-Instr", 32.81, 33.81, 33.31),
    ("OpenCodeEdit-Qwen3-8B", 48.14, 60.05, 54.10),
)


# The fields of an execution record that scoring reads.
_SCORED = {
    "target": pl.String,
    "problem_id": pl.Int64,
    "full_name": pl.String,
    "kind": pl.String,
    "change_kind": pl.String,
    "outcome": pl.String,
}


@dataclass(frozen=True)
class Scores:
    per_problem: pl.DataFrame  # one row per (target, problem, kind)
    summary: pl.DataFrame  # one row per (target, split)


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimator 1 - C(n-c, k) / C(n, k), as a fraction.

    1.0 when n - c < k (every draw of k holds a pass). Needs 0 <= c <= n and
    1 <= k <= n.
    """
    if not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def score(executions: Iterable[Mapping[str, Any]], ks: Sequence[int] = (1,)) -> Scores:
    """Per-problem pass@k and, per target, the means over each split.

    Splits: lazy, descriptive, overall (all problems of both kinds) and each
    change kind (both instruction kinds). pass@k of a problem with fewer than k
    runnable samples is null and left out of that mean.
    """
    ks = _check_ks(ks)
    rows = [_row(record, f"execution record {number}") for number, record in enumerate(executions, start=1)]
    if not rows:
        raise ValueError("no execution records to score")
    frame = pl.DataFrame(rows, schema=_SCORED)
    per = (
        frame.group_by("target", "problem_id", "full_name", "kind", "change_kind")
        .agg(
            samples=pl.len(),
            env_errors=(pl.col("outcome") == "env_error").sum(),
            c=(pl.col("outcome") == "pass").sum(),
        )
        .with_columns(n=pl.col("samples") - pl.col("env_errors"))
        .with_columns(kind_order=pl.col("kind").replace_strict({kind: i for i, kind in enumerate(STYLES)}))
        .sort("target", "problem_id", "kind_order")
        .drop("kind_order")
    )
    for k in ks:
        values = [100 * pass_at_k(n, c, k) if n >= k else None for n, c in zip(per["n"], per["c"])]
        per = per.with_columns(pl.Series(f"pass@{k}", values, dtype=pl.Float64))
    per = per.select(
        "target",
        "problem_id",
        "full_name",
        "kind",
        "change_kind",
        "samples",
        "env_errors",
        "n",
        "c",
        *[f"pass@{k}" for k in ks],
    )
    return Scores(per_problem=per, summary=_summary(per, ks))


def run_score(
    execution_paths: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str], ks: Sequence[int]
) -> Scores:
    """Score execution files (one per target) and write per_problem.csv,
    summary.csv, summary.md and pass_at_1.png to ``out_dir``."""
    ks = _check_ks([1, *ks])
    rows = [
        _row(record, f"{path}: record {number}")
        for path in execution_paths
        for number, record in enumerate(read_jsonl(path), start=1)
    ]
    scores = score(rows, ks)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scores.per_problem.write_csv(out / "per_problem.csv")
    scores.summary.write_csv(out / "summary.csv")
    (out / "summary.md").write_text(summary_markdown(scores.summary, ks), encoding="utf-8")
    plot_pass_at_1(scores.summary, out / "pass_at_1.png")
    return scores


def summary_markdown(summary: pl.DataFrame, ks: Sequence[int]) -> str:
    """Measured rows, then the paper's rows (marked as quoted); change kinds; env errors."""
    wide = wide_pass_at_1(summary)
    lines = [
        "# CanItEdit pass@1 (%)",
        "",
        "| model | lazy | descriptive | overall | source |",
        "|---|---|---|---|---|",
    ]
    for row in wide.iter_rows(named=True):
        lines.append(
            f"| {row['target']} | {_fmt(row['lazy'])} | {_fmt(row['descriptive'])} | {_fmt(row['overall'])} "
            "| measured |"
        )
    for model, lazy, descriptive, overall in PAPER_ROWS:
        lines.append(
            f"| {model} | {_fmt(lazy)} | {_fmt(descriptive)} | {_fmt(overall)} | quoted from the paper, not measured |"
        )
    lines += [
        "",
        f"Rows marked *quoted from the paper, not measured* are copied from {QUOTED_SOURCE}. "
        "They cover all 105 problems with 20 samples each; measured rows cover the problems counted below.",
        "",
        "## Measured, all splits",
        "",
    ]
    columns = [
        "target",
        "split",
        "problems",
        *[f"pass@{k}" for k in ks],
        "excluded",
        "env_error_samples",
        "env_error_problems",
    ]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in summary.iter_rows(named=True):
        lines.append("| " + " | ".join(_fmt(row[c]) if c.startswith("pass@") else str(row[c]) for c in columns) + " |")
    lines += [
        "",
        "A problem is one (problem, instruction kind) pair. `env_error` samples (a package missing from "
        "the evaluation environment) are left out of n; `excluded` problems had no other sample and are "
        "left out of the means.",
    ]
    return "\n".join(lines) + "\n"


def plot_pass_at_1(summary: pl.DataFrame, path: str | os.PathLike[str]) -> None:
    """Grouped bars (lazy, descriptive, overall) per model; quoted rows hatched and pale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    wide = wide_pass_at_1(summary)
    models: list[tuple[str, Sequence[float | None], bool]] = [
        (row["target"], (row["lazy"], row["descriptive"], row["overall"]), False) for row in wide.iter_rows(named=True)
    ]
    models += [(f"{name} (paper)", values, True) for name, *values in PAPER_ROWS]
    colours = ("#4c72b0", "#dd8452", "#55a868")
    fig, ax = plt.subplots(figsize=(max(8.0, 0.75 * len(models) + 2), 5))
    width = 0.27
    for i, (_, values, quoted) in enumerate(models):
        for j, value in enumerate(values):
            if value is not None:
                ax.bar(
                    i + (j - 1) * width,
                    value,
                    width,
                    color=colours[j],
                    alpha=0.45 if quoted else 1.0,
                    hatch="//" if quoted else None,
                    edgecolor="#444444" if quoted else colours[j],
                )
    measured = wide.height
    if 0 < measured < len(models):
        ax.axvline(measured - 0.5, color="#888888", linestyle=":")
    ax.set_xticks(range(len(models)), [name for name, _, _ in models], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("pass@1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title("CanItEdit pass@1: measured here, and quoted from the paper (hatched)")
    handles = [Patch(color=colour, label=label) for colour, label in zip(colours, ("lazy", "descriptive", "overall"))]
    handles.append(
        Patch(facecolor="white", edgecolor="#444444", hatch="//", label="quoted from the paper, not measured")
    )
    ax.legend(handles=handles, fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _summary(per: pl.DataFrame, ks: Sequence[int]) -> pl.DataFrame:
    rows = []
    for target in per["target"].unique(maintain_order=True):
        mine = per.filter(pl.col("target") == target)
        for split in SPLITS:
            if split in STYLES:
                part = mine.filter(pl.col("kind") == split)
            elif split == "overall":
                part = mine
            else:
                part = mine.filter(pl.col("change_kind") == split)
            if part.is_empty():
                continue
            row: dict[str, Any] = {"target": target, "split": split, "problems": part.filter(pl.col("n") > 0).height}
            for k in ks:
                row[f"pass@{k}"] = part[f"pass@{k}"].mean()  # nulls (n < k) are skipped
            row["excluded"] = part.filter(pl.col("n") == 0).height
            row["env_error_samples"] = int(part["env_errors"].sum())
            row["env_error_problems"] = part.filter(pl.col("env_errors") > 0)["problem_id"].n_unique()
            rows.append(row)
    return pl.DataFrame(rows)


def wide_pass_at_1(summary: pl.DataFrame) -> pl.DataFrame:
    """One row per target: its lazy, descriptive and overall pass@1 (null where not measured)."""
    rows = []
    for target in summary["target"].unique(maintain_order=True):
        mine = {r["split"]: r["pass@1"] for r in summary.filter(pl.col("target") == target).iter_rows(named=True)}
        rows.append({"target": target, **{split: mine.get(split) for split in (*STYLES, "overall")}})
    return pl.DataFrame(
        rows, schema={"target": pl.String, "lazy": pl.Float64, "descriptive": pl.Float64, "overall": pl.Float64}
    )


def _row(record: Mapping[str, Any], where: str) -> dict[str, Any]:
    missing = [key for key in _SCORED if key not in record]
    if missing:
        raise RecordError(f"{where} lacks {', '.join(missing)}")
    if record["outcome"] not in OUTCOMES:
        raise RecordError(f"{where} has outcome {record['outcome']!r}, expected one of {', '.join(OUTCOMES)}")
    if record["kind"] not in STYLES:
        raise RecordError(f"{where} has kind {record['kind']!r}, expected one of {', '.join(STYLES)}")
    return {key: record[key] for key in _SCORED}


def _check_ks(ks: Sequence[int]) -> list[int]:
    bad = [k for k in ks if isinstance(k, bool) or not isinstance(k, int) or k < 1]
    if bad or not ks:
        raise ValueError(f"k must be a list of positive integers, got {list(ks)!r}")
    return sorted(set(ks))


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
