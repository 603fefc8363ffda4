"""The data funnel: how many samples each stage kept, why the rest were dropped,
and what the synthesis calls cost, per synthesis model.

Every record of the filtered triplets file carries the reason it was dropped,
whichever stage dropped it, so the counts after each stage follow from the
reasons (``stage_counts``, ``REASON_STAGES``). ``plot_funnel`` draws them.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from editforge.records import PathLike, read_jsonl, write_json


# The stages a triplet passes, in order, and the drop reasons of each. A reason
# not listed belongs to "parsed" (synthesis calls and parsing, which name their
# reasons themselves). Within the per-shard filter the checks of "valid" and
# "diff" are interleaved: a triplet counts where its first failed check is.
STAGES = ("synthesized", "parsed", "valid", "diff", "executes", "decontaminated", "deduplicated")
REASON_STAGES: dict[str, tuple[str, ...]] = {
    "valid": (
        "pre_code_syntax", "post_code_syntax", "empty_instruction", "lazy_too_long", "descriptive_leaks_post_code",
    ),
    "diff": ("no_change", "too_few_changed_lines", "too_many_changed_lines", "too_many_hunks"),
    "executes": ("post_code_fails_to_run", "no_tests", "generated_tests_fail_on_post", "generated_tests_pass_on_pre"),
    "decontaminated": ("contaminated",),
    "deduplicated": ("exact_duplicate", "near_duplicate_code", "near_duplicate_diff", "near_duplicate_instruction"),
}
_STAGE_OF = {reason: stage for stage, reasons in REASON_STAGES.items() for reason in reasons}


def stage_of(reason: str) -> str:
    """The stage that drops for ``reason``."""
    return _STAGE_OF.get(reason, "parsed")


def stage_counts(outcomes: Mapping[str, Mapping[str, int]]) -> list[dict[str, Any]]:
    """What remains after each stage, in total and per model, and what each stage dropped.

    ``outcomes`` maps a model to its counts: ``kept`` (or ``ok``) and one count per
    drop reason. Returns one entry per stage of ``STAGES``: ``stage``,
    ``remaining``, ``per_model`` (remaining per model) and ``dropped`` (reason ->
    count, all models).
    """
    per_model_start = {model: sum(counts.values()) for model, counts in outcomes.items()}
    remaining = dict(per_model_start)
    rows = [{"stage": STAGES[0], "remaining": sum(remaining.values()), "per_model": dict(remaining), "dropped": {}}]
    for stage in STAGES[1:]:
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


COUNTS = ("calls", "batch_calls", "cached", "errors")
TOKENS = ("prompt_tokens", "completion_tokens")


def _usage_by_model(usage_paths: list[PathLike]) -> dict[str, dict[str, Any]]:
    """Sum usage files (results/synthesis/<model>/round<r>/<shard>.usage.json) per the model they name.

    Per model: ``answered`` (every answer once: ``calls`` paid by the run that wrote the
    file, plus ``cached``, which includes answers paid by an earlier run that was killed),
    ``batch_calls`` (of ``calls``, those answered through batches, costed at the batch price),
    ``errors`` (calls that failed after their retries), the tokens and ``cost`` of all the
    answers, ``paid_cost`` (what the runs that wrote the files paid), and the counts per
    round in ``by_round``. The model is read from the file, not its path: a name may hold ``/``.
    """
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    rounds: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    priced: set[str] = set()
    for path in usage_paths:
        usage = json.loads(Path(path).read_text())
        model = usage.get("model") or Path(path).parts[-3]
        round_ = usage.get("round") or Path(path).parent.name
        for key in COUNTS:
            totals[model][key] += usage.get(key) or 0
            rounds[model][round_][key] += usage.get(key) or 0
        for key in TOKENS:
            totals[model][key] += (usage.get(key) or 0) + (usage.get(f"cached_{key}") or 0)
        if usage.get("cost") is not None:
            priced.add(model)
            totals[model]["paid_cost"] += usage["cost"]
            totals[model]["cost"] += usage["cost"] + (usage.get("cached_cost") or 0)
    result: dict[str, dict[str, Any]] = {}
    for model, counts in totals.items():
        result[model] = {
            "answered": counts["calls"] + counts["cached"],
            **{key: counts[key] for key in (*COUNTS, *TOKENS)},
            "cost": round(counts["cost"], 6) if model in priced else None,
            "paid_cost": round(counts["paid_cost"], 6) if model in priced else None,
            "by_round": {
                round_: {"answered": c["calls"] + c["cached"], **{key: c[key] for key in COUNTS}}
                for round_, c in sorted(rounds[model].items())
            },
        }
    return result


def _outcomes_by_model(filtered_path: PathLike) -> dict[str, dict[str, int]]:
    return outcomes_of(read_jsonl(filtered_path))


def write_funnel(
    seeds_stats: PathLike,
    usage_paths: list[PathLike],
    filtered_path: PathLike,
    dataset_stats: PathLike,
    json_out: PathLike,
    markdown_out: PathLike,
    png_out: PathLike | None = None,
) -> dict[str, Any]:
    """Write the funnel as JSON and Markdown (and, with ``png_out``, as a plot); return it."""
    seeds = json.loads(Path(seeds_stats).read_text())
    dataset = json.loads(Path(dataset_stats).read_text())
    usage = _usage_by_model(usage_paths)
    outcomes = _outcomes_by_model(filtered_path)
    funnel = {
        "seeds": seeds,
        "synthesis": {
            model: {"prompts": sum(counts.values()), "kept": counts.get("kept", 0),
                    "dropped": {r: n for r, n in sorted(counts.items()) if r != "kept"},
                    "usage": usage.get(model, {})}
            for model, counts in sorted(outcomes.items())
        },
        "stages": stage_counts(outcomes),
        "dataset": dataset,
    }
    write_json(json_out, funnel)
    Path(markdown_out).write_text(render_markdown(funnel), encoding="utf-8")
    if png_out is not None:
        plot_funnel(funnel, png_out)
    return funnel


def render_markdown(funnel: dict[str, Any]) -> str:
    seeds = funnel["seeds"]
    lines = ["# Data funnel", "", "## Seeds", ""]
    for key in ("files_seen", "files_used", "snippets", "duplicates_removed", "pairs", "most_reused_snippet"):
        if key in seeds:
            lines.append(f"- {key.replace('_', ' ')}: {seeds[key]}")
    if seeds.get("pairs_short"):
        lines.append(f"- **fewer pairs than asked**: {seeds['pairs_short']}")
    for group in ("files_skipped", "snippets_skipped"):
        if seeds.get(group):
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(seeds[group].items()))
            lines.append(f"- {group.replace('_', ' ')}: {reasons}")
    lines += ["", "## Synthesis to filtered triplets", "",
              "| model | prompts | kept | dropped (by reason) | answered calls | paid now | from cache | failed calls "
              "| tokens in | tokens out | cost |",
              "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for model, row in funnel["synthesis"].items():
        use = row["usage"]
        drops = "; ".join(f"{r}: {n}" for r, n in row["dropped"].items()) or "-"
        cost = "-" if use.get("cost") is None else f"{use['cost']:.4f}"
        lines.append(
            f"| {model} | {row['prompts']} | {row['kept']} | {drops} | {use.get('answered', 0):.0f} | "
            f"{use.get('calls', 0):.0f} | {use.get('cached', 0):.0f} | {use.get('errors', 0):.0f} | "
            f"{use.get('prompt_tokens', 0):.0f} | {use.get('completion_tokens', 0):.0f} | {cost} |"
        )
    lines += ["", "Tokens and cost are those of every answer, whichever run paid for it (an answer from the cache "
              "was paid once, by an earlier run); failed calls are those that failed after their retries.", "",
              "| model | round | answered calls | paid now | of them by batch | from cache | failed calls |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for model, row in funnel["synthesis"].items():
        for round_, use in row["usage"].get("by_round", {}).items():
            lines.append(f"| {model} | {round_} | {use['answered']:.0f} | {use['calls']:.0f} | "
                         f"{use.get('batch_calls', 0):.0f} | {use['cached']:.0f} | {use['errors']:.0f} |")
    if funnel.get("stages"):
        lines += ["", "## Triplets after each stage", "", *stage_table(funnel["stages"])]
    dataset = funnel["dataset"]
    lines += ["", "## Dataset", "", "```json", json.dumps(dataset, indent=2), "```", ""]
    return "\n".join(lines)


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
