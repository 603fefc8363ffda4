"""The funnel report (rule ``report``): how many samples each stage kept, why the rest were
dropped, and what the synthesis calls cost, per synthesis model (``funnel.json``, ``.md``,
``.png``). The counting and drawing are ``editforge.funnel``'s, shared with the dataset card.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from editforge.funnel import outcomes_of, plot_funnel, stage_counts, stage_table
from editforge.records import PathLike, read_jsonl, write_json
from editforge.verdicts import verdict_table

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
    # The judge's usage file (round "judge") is reported on its own: its calls are filtering's, not synthesis's.
    judge_paths = [p for p in usage_paths if json.loads(Path(p).read_text()).get("round") == "judge"]
    usage = _usage_by_model([p for p in usage_paths if p not in judge_paths])
    outcomes = _outcomes_by_model(filtered_path)
    funnel = {
        "seeds": seeds,
        "synthesis": {
            model: {"prompts": sum(counts.values()), "kept": counts.get("kept", 0),
                    "dropped": {r: n for r, n in sorted(counts.items()) if r != "kept"},
                    "usage": usage.get(model, {})}
            for model, counts in sorted(outcomes.items())
        },
        "stages": stage_counts(outcomes, judged=bool(judge_paths)),
        "dataset": dataset,
    }
    if judge_paths:
        funnel["judge"] = _usage_by_model(judge_paths)
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
    if funnel.get("judge"):
        lines += ["", "## LLM judge", "", "| model | answered calls | paid now | from cache | failed calls | tokens in "
                  "| tokens out | cost |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for model, use in funnel["judge"].items():
            cost = "-" if use.get("cost") is None else f"{use['cost']:.4f}"
            counts = " | ".join(f"{use[key]:.0f}" for key in ("answered", "calls", "cached", "errors", *TOKENS))
            lines.append(f"| {model} | {counts} | {cost} |")
    verdicts = (funnel["dataset"].get("judge") or {}).get("by_teacher")
    if verdicts:
        lines += ["", "Verdicts by teacher and instruction style:", "", *verdict_table(verdicts)]
    if funnel.get("stages"):
        lines += ["", "## Triplets after each stage", "", *stage_table(funnel["stages"])]
    dataset = funnel["dataset"]
    lines += ["", "## Dataset", "", "```json", json.dumps(dataset, indent=2), "```", ""]
    return "\n".join(lines)
