"""What a reader sees of a scoring run: ``summary.md`` (measured rows beside the
paper's quoted ones, official beside strict, every split, the exclusions), the
sentences the report's tables share with it, the pass@1 chart and the wide table
behind both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from editforge.records import STYLES, PathLike

if TYPE_CHECKING:
    from editforge.evaluation.scoring import Exclusion, Scores

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


def summary_markdown(scores: Scores, ks: Sequence[int]) -> str:
    """The headline (measured rows, then the paper's, marked as quoted), official
    beside strict with the samples where they differ, every split, the exclusions."""
    wide = wide_pass_at_1(scores.summary)
    warning = unisolated_warning(scores.summary)
    lines = [
        "# CanItEdit pass@1 (%)",
        "",
        *([warning, ""] if warning else []),
        "| model | lazy | descriptive | overall | source |",
        "|---|---|---|---|---|",
    ]
    for row in wide.iter_rows(named=True):
        flag = f"; flagged (early exits: {row['early_exits']})" if row["early_exits"] else ""
        lines.append(
            f"| {row['target']} | {_fmt(row['lazy'])} | {_fmt(row['descriptive'])} | {_fmt(row['overall'])} "
            f"| measured{flag} |"
        )
    for model, lazy, descriptive, overall in PAPER_ROWS:
        lines.append(
            f"| {model} | {_fmt(lazy)} | {_fmt(descriptive)} | {_fmt(overall)} | quoted from the paper, not measured |"
        )
    lines += [
        "",
        f"Rows marked *quoted from the paper, not measured* are copied from {QUOTED_SOURCE}. "
        "They cover all 105 problems with 20 samples each; measured rows cover the problems counted below. "
        "Measured rows follow the harness: every sample counts, and a sample passes when its program "
        "(with the tests) exits with status 0.",
        "",
        excluded_sentence(scores.excluded),
        "",
        isolation_sentence(scores.summary),
        "",
        "## Official and strict pass@1 (%)",
        "",
        *([warning, ""] if warning else []),
        "| target | lazy | lazy (strict) | descriptive | descriptive (strict) | overall | overall (strict) "
        "| early exits |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in wide.iter_rows(named=True):
        values = [row[c] for c in ("lazy", "lazy_strict", "descriptive", "descriptive_strict", "overall",
                                   "overall_strict")]
        flag = f"{row['early_exits']} (flagged)" if row["early_exits"] else "0"
        lines.append(f"| {row['target']} | " + " | ".join(_fmt(v) for v in values) + f" | {flag} |")
    lines += [
        "",
        "*Official*: exit status 0, as the harness (the headline). *Strict*: exit status 0 and the tests "
        "reached their end. An early exit passes officially but not strictly (the program exited with "
        "status 0 before its tests were done); a target with any is flagged.",
        "",
    ]
    if scores.early_exits.is_empty():
        lines.append("No sample passes officially but not strictly.")
    else:
        lines += ["Samples that pass officially but not strictly:", "", "| target | problem | kind | samples |",
                  "|---|---|---|---|"]
        grouped = scores.early_exits.group_by("target", "problem_id", "full_name", "kind", maintain_order=True).agg(
            pl.col("sample_index")
        )
        for row in grouped.iter_rows(named=True):
            samples = ", ".join(str(i) for i in row["sample_index"])
            lines.append(f"| {row['target']} | {row['full_name']} | {row['kind']} | {samples} |")
    columns = [
        "target",
        "split",
        "problems",
        "samples",
        *[f"pass@{k}" for k in ks],
        *[f"strict_pass@{k}" for k in ks],
        "early_exits",
        "covered_problems",
        "excess_code",
        "excess_code_se",
        "mean_median_coverage",
    ]
    lines += ["", "## Measured, all splits", "", *([warning, ""] if warning else [])]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in scores.summary.iter_rows(named=True):
        lines.append("| " + " | ".join(_fmt(row[c]) if isinstance(row[c], float) or row[c] is None
                                       else str(row[c]) for c in columns) + " |")
    lines += [
        "",
        "A problem is one (problem, instruction kind) pair; `samples` counts every sample. "
        "`excess_code` is the harness's ExcessCode (uncovered lines per line of the ndiff between `before` "
        "and the edited program, the mean over a problem's passing samples with coverage, then the mean over "
        "problems, in %), `excess_code_se` its standard error, `mean_median_coverage` the mean over problems of "
        "the median of 100 - coverage; all three over the `covered_problems` that have a passing sample with "
        "coverage. `harness_pass_k.csv` gives them as the harness prints them.",
    ]
    return "\n".join(lines) + "\n"


def isolation_sentence(summary: pl.DataFrame) -> str:
    """Which isolation each target's programs ran under (``summary.csv``'s ``isolation``)."""
    rows = summary.filter(pl.col("split") == "overall").select("target", "isolation").iter_rows()
    return "Programs ran in the sandbox with: " + "; ".join(f"{target}: {how}" for target, how in rows) + "."


def unisolated_warning(summary: pl.DataFrame) -> str | None:
    """A warning for the tables when any target's programs ran without isolation (``sandbox: none``)."""
    targets = summary.filter(pl.col("isolation").str.contains("NOT isolated"))["target"].unique(maintain_order=True)
    if targets.is_empty():
        return None
    return (
        f"**Warning: the programs of {', '.join(targets.to_list())} ran WITHOUT isolation (`sandbox: none`): "
        "a program could have read the hidden tests or changed its own results.**"
    )


def excluded_sentence(excluded: Sequence[Exclusion]) -> str:
    """What the tables say about the problems the preflight left out."""
    if not excluded:
        return "No problem was excluded before generation."
    names = "; ".join(f"{e.full_name} ({e.reason})" for e in excluded)
    return (
        f"Excluded before generation, because their reference program fails in this environment, and not "
        f"counted in any row: {names}."
    )


def plot_pass_at_1(summary: pl.DataFrame, path: PathLike) -> None:
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
    ax.set_ylabel("pass@1 (%), official rule")
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


def wide_pass_at_1(summary: pl.DataFrame) -> pl.DataFrame:
    """One row per target: official and strict pass@1 of lazy, descriptive and
    overall (null where not measured), and the overall ExcessCode and early exits."""
    rows = []
    for target in summary["target"].unique(maintain_order=True):
        mine = {r["split"]: r for r in summary.filter(pl.col("target") == target).iter_rows(named=True)}
        row: dict[str, Any] = {"target": target}
        for split in (*STYLES, "overall"):
            row[split] = mine[split]["pass@1"] if split in mine else None
            row[f"{split}_strict"] = mine[split]["strict_pass@1"] if split in mine else None
        overall = mine.get("overall", {})
        row |= {key: overall.get(key) for key in ("excess_code", "excess_code_se")}
        row["early_exits"] = overall.get("early_exits", 0)
        rows.append(row)
    return pl.DataFrame(
        rows,
        schema={
            "target": pl.String,
            **{f"{split}{suffix}": pl.Float64 for split in (*STYLES, "overall") for suffix in ("", "_strict")},
            "excess_code": pl.Float64,
            "excess_code_se": pl.Float64,
            "early_exits": pl.Int64,
        },
    )


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
