"""The data funnel, counted and drawn: the stage at which each drop reason removes a sample, what
remains after each stage, as a Markdown table and a chart. Shared by the dataset card and the
report.

Every record of the filtered triplets file carries the reason it was dropped, whichever stage
dropped it, so the counts after each stage follow from the reasons (``stage_counts``,
``REASON_STAGES``).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from editforge.records import PathLike

# The stages a triplet passes, in order, and the drop reasons of each. A reason
# not listed belongs to "parsed" (synthesis calls and parsing, which name their
# reasons themselves). Within the per-shard filter the checks of "valid" and
# "diff" are interleaved: a triplet counts where its first failed check is.
STAGES = ("synthesized", "parsed", "valid", "diff", "static", "executes", "decontaminated", "deduplicated", "judged")
REASON_STAGES: dict[str, tuple[str, ...]] = {
    "valid": (
        "pre_code_syntax", "post_code_syntax", "empty_instruction", "lazy_too_long", "descriptive_leaks_post_code",
    ),
    "diff": ("no_change", "too_few_changed_lines", "too_many_changed_lines", "too_many_hunks"),
    "static": tuple(
        f"{code}_{check}"
        for code in ("pre_code", "post_code")
        for check in ("leftover_markup", "truncated", "missing_import", "undefined_name")
    ),
    "executes": ("post_code_fails_to_run", "no_tests", "generated_tests_fail_on_post", "generated_tests_pass_on_pre"),
    "decontaminated": ("contaminated",),
    "deduplicated": ("exact_duplicate", "near_duplicate_code", "near_duplicate_diff", "near_duplicate_instruction"),
    "judged": (
        "judge_edit_not_needed", "judge_edit_incomplete", "judge_unrelated_change", "judge_unparseable", "judge_error",
    ),
}
_STAGE_OF = {reason: stage for stage, reasons in REASON_STAGES.items() for reason in reasons}


def stage_of(reason: str) -> str:
    """The stage that drops for ``reason``."""
    return _STAGE_OF.get(reason, "parsed")


def stage_counts(outcomes: Mapping[str, Mapping[str, int]], judged: bool = False) -> list[dict[str, Any]]:
    """What remains after each stage, in total and per model, and what each stage dropped.

    ``outcomes`` maps a model to its counts: ``kept`` (or ``ok``) and one count per
    drop reason. Returns one entry per stage of ``STAGES``: ``stage``,
    ``remaining``, ``per_model`` (remaining per model) and ``dropped`` (reason ->
    count, all models). The last stage, ``judged``, only where the LLM judge ran (``judged``).
    """
    per_model_start = {model: sum(counts.values()) for model, counts in outcomes.items()}
    remaining = dict(per_model_start)
    rows = [{"stage": STAGES[0], "remaining": sum(remaining.values()), "per_model": dict(remaining), "dropped": {}}]
    for stage in STAGES[1:] if judged else STAGES[1:-1]:
        dropped: Counter[str] = Counter()
        for model, counts in outcomes.items():
            for reason, count in counts.items():
                if reason not in ("kept", "ok") and stage_of(reason) == stage:
                    dropped[reason] += count
                    remaining[model] -= count
        rows.append(
            {"stage": stage, "remaining": sum(remaining.values()), "per_model": dict(remaining),
             "dropped": dict(sorted(dropped.items()))}
        )
    return rows


def outcomes_of(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Per model: ``kept`` and the count of each drop reason."""
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    for record in records:
        key = "kept" if record.get("status") == "ok" else str(record.get("reason", "unknown"))
        outcomes[str(record.get("model", "unknown"))][key] += 1
    return {model: dict(counts) for model, counts in sorted(outcomes.items())}


def stage_table(stages: list[dict[str, Any]]) -> list[str]:
    """Markdown table lines: each stage's remaining triplets, per model, and its drops by reason."""
    models = sorted({model for row in stages for model in row.get("per_model", {})})
    lines = [
        f"| stage | remaining | {' | '.join(models)}{' | ' if models else ''}dropped (by reason) |",
        f"|---|---:|{'---:|' * len(models)}---|",
    ]
    for row in stages:
        per_model = " | ".join(str(row.get("per_model", {}).get(m, 0)) for m in models)
        drops = "; ".join(f"{r}: {n}" for r, n in row.get("dropped", {}).items()) or "-"
        lines.append(f"| {row['stage']} | {row['remaining']} | {per_model}{' | ' if models else ''}{drops} |")
    return lines


def plot_funnel(funnel: Mapping[str, Any], png_path: PathLike) -> None:
    """Draw the funnel as horizontal bars, one per stage, stacked by model, to a PNG.

    ``funnel`` is what ``write_funnel`` returns, or any mapping with ``stages``
    (as ``stage_counts`` gives); without ``stages`` they are derived from
    ``synthesis`` (model -> kept and dropped by reason). A ``dataset`` entry with
    ``distinct_triplets`` and ``per_style`` (the dataset stage's stats) adds a
    last bar: the triplets the training set uses.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = list(funnel.get("stages") or stage_counts(
        {model: {"kept": row["kept"], **row["dropped"]} for model, row in funnel.get("synthesis", {}).items()}
    ))
    dataset = funnel.get("dataset") or {}
    if "distinct_triplets" in dataset:
        per_style = ", ".join(f"{n} {style}" for style, n in dataset.get("per_style", {}).items())
        stages.append({
            "stage": f"in dataset ({per_style} samples)" if per_style else "in dataset",
            "remaining": dataset["distinct_triplets"],
            "per_model": dataset.get("triplets_per_model", {}),
            "dropped": {},
        })
    models = sorted({model for row in stages for model in row.get("per_model", {})})
    labels = [row["stage"] for row in stages]
    start = stages[0]["remaining"] if stages else 0
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(stages) + 1.5), dpi=120)
    y = list(range(len(stages)))[::-1]
    left = [0.0] * len(stages)
    for model in models:
        widths = [row.get("per_model", {}).get(model, 0) for row in stages]
        ax.barh(y, widths, left=left, label=model)
        left = [a + b for a, b in zip(left, widths)]
    if not models:
        ax.barh(y, [row["remaining"] for row in stages])
    for position, row in zip(y, stages):
        share = f" ({row['remaining'] / start:.0%})" if start else ""
        ax.text(row["remaining"], position, f" {row['remaining']}{share}", va="center", fontsize=8)
    ax.set_yticks(y, labels)
    ax.set_xlabel("triplets")
    ax.set_xlim(0, max(start, 1) * 1.25)
    ax.set_title("Data funnel: triplets remaining after each stage")
    if len(models) > 1:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    partial = Path(png_path).with_name(Path(png_path).name + ".partial.png")
    fig.savefig(partial)
    plt.close(fig)
    os.replace(partial, png_path)
