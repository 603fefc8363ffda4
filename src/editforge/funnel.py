"""The data funnel: how many samples each stage kept, why the rest were dropped,
and what the synthesis calls cost, per synthesis model."""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from .records import read_jsonl, write_json

PathLike = str | os.PathLike[str]


def _usage_by_model(usage_paths: list[PathLike]) -> dict[str, dict[str, float]]:
    """Sum usage files laid out as results/synthesis/<model>/round<r>/<shard>.usage.json."""
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    priced: set[str] = set()
    for path in usage_paths:
        model = Path(path).parts[-3]
        usage = json.loads(Path(path).read_text())
        for key in ("calls", "cached", "errors", "prompt_tokens", "completion_tokens"):
            totals[model][key] += usage.get(key) or 0
        if usage.get("cost") is not None:
            totals[model]["cost"] += usage["cost"]
            priced.add(model)
    result: dict[str, dict[str, float]] = {}
    for model, counts in totals.items():
        result[model] = dict(counts)
        result[model]["cost"] = round(counts["cost"], 6) if model in priced else None  # type: ignore[assignment]
    return result


def _outcomes_by_model(filtered_path: PathLike) -> dict[str, Counter[str]]:
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    for record in read_jsonl(filtered_path):
        key = "kept" if record.get("status") == "ok" else record.get("reason", "unknown")
        outcomes[record["model"]][key] += 1
    return outcomes


def write_funnel(
    seeds_stats: PathLike,
    usage_paths: list[PathLike],
    filtered_path: PathLike,
    dataset_stats: PathLike,
    json_out: PathLike,
    markdown_out: PathLike,
) -> dict[str, Any]:
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
        "dataset": dataset,
    }
    write_json(json_out, funnel)
    Path(markdown_out).write_text(render_markdown(funnel), encoding="utf-8")
    return funnel


def render_markdown(funnel: dict[str, Any]) -> str:
    seeds = funnel["seeds"]
    lines = ["# Data funnel", "", "## Seeds", ""]
    for key in ("files_seen", "files_used", "snippets", "duplicates_removed", "pairs"):
        if key in seeds:
            lines.append(f"- {key.replace('_', ' ')}: {seeds[key]}")
    for group in ("files_skipped", "snippets_skipped"):
        if seeds.get(group):
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(seeds[group].items()))
            lines.append(f"- {group.replace('_', ' ')}: {reasons}")
    lines += ["", "## Synthesis to filtered triplets", "",
              "| model | prompts | kept | dropped (by reason) | calls | cached | tokens in | tokens out | cost |",
              "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for model, row in funnel["synthesis"].items():
        use = row["usage"]
        drops = "; ".join(f"{r}: {n}" for r, n in row["dropped"].items()) or "-"
        cost = "-" if use.get("cost") is None else f"{use['cost']:.4f}"
        lines.append(
            f"| {model} | {row['prompts']} | {row['kept']} | {drops} | {use.get('calls', 0):.0f} | "
            f"{use.get('cached', 0):.0f} | {use.get('prompt_tokens', 0):.0f} | {use.get('completion_tokens', 0):.0f} | {cost} |"
        )
    dataset = funnel["dataset"]
    lines += ["", "## Dataset", "", "```json", json.dumps(dataset, indent=2), "```", ""]
    return "\n".join(lines)
