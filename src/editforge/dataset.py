"""Mixing filtered triplets into the chat-format training set.

For each instruction style, samples are drawn from the kept triplets by the
configured share of each synthesis model. Unlike the reference (which reseeds
identically for both styles and so pairs every selected program with both of its
instructions), each style draws with its own seed; ``style_split: disjoint``
goes further and gives each triplet to at most one style. Every sample's
``messages`` come from ``edit_format.training_messages``, the format evaluation
prompts with.
"""

from __future__ import annotations

import os
import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from editforge.edit_format import training_messages
from editforge.records import STYLES, TrainingRecord, read_jsonl, status_counts, write_json, write_jsonl

STYLE_SPLITS = ("independent", "disjoint")


class MixError(ValueError):
    """The filtered triplets or the dataset settings cannot make a training set."""


def run_mix(
    filtered_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], settings: Mapping[str, Any], seed: int
) -> dict[str, Any]:
    """Write train.jsonl, train.parquet, stats.json and card.md to ``out_dir``; return the stats.

    ``settings`` is the config's ``dataset:`` section: ``styles``, ``mix`` (model
    -> share; equal shares when absent), ``size_per_style`` (an upper bound: a
    model with fewer kept triplets than its quota gives all it has) and
    ``style_split`` (``independent``, the default, or ``disjoint``).
    """
    records = list(read_jsonl(filtered_path))
    kept = sorted((r for r in records if r.get("status") == "ok"), key=lambda r: r["id"])
    if not kept:
        raise MixError(f"no triplets survived filtering; see {filtered_path} reasons: {status_counts(records)}")
    styles = _styles(settings.get("styles", STYLES))
    style_split = settings.get("style_split", "independent")
    if style_split not in STYLE_SPLITS:
        raise MixError(f"dataset.style_split is {style_split!r}; expected one of {', '.join(STYLE_SPLITS)}")

    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in kept:
        by_model[record["model"]].append(record)
    shares = _shares(settings.get("mix") or {model: 1.0 for model in by_model}, by_model)
    quotas = _largest_remainder(shares, settings["size_per_style"])

    samples: list[TrainingRecord] = []
    for model, quota in quotas.items():
        pools = _style_pools(by_model.get(model, []), styles, style_split, seed, model)
        for style in styles:
            chosen = random.Random(f"{seed}:{style}:{model}").sample(pools[style], min(quota, len(pools[style])))
            samples += [_training_record(record, style) for record in chosen]
    if not samples:
        raise MixError(f"dataset.mix {dict(shares)} with size_per_style {settings['size_per_style']} selects no samples")
    random.Random(f"{seed}:order").shuffle(samples)

    out = Path(out_dir)
    write_jsonl(out / "train.jsonl", samples)
    pl.DataFrame(samples).write_parquet(out / "train.parquet")
    stats = _stats(samples, kept, quotas, styles, style_split, filtered_path, seed)
    write_json(out / "stats.json", stats)
    (out / "card.md").write_text(_card(stats), encoding="utf-8")
    return stats


def _styles(styles: Sequence[str]) -> list[str]:
    unknown = [s for s in styles if s not in STYLES]
    if unknown or not styles:
        raise MixError(f"dataset.styles must list some of {', '.join(STYLES)}; got {list(styles)}")
    return list(styles)


def _shares(mix: Mapping[str, float], by_model: Mapping[str, list[Any]]) -> dict[str, float]:
    """Shares normalised to sum to 1; a mixed model with no kept triplets is an error unless others have some."""
    total = sum(mix.values())
    if total <= 0 or any(share < 0 for share in mix.values()):
        raise MixError(f"dataset.mix needs non-negative shares with a positive sum; got {dict(mix)}")
    if not any(by_model.get(model) for model, share in mix.items() if share > 0):
        raise MixError(
            f"none of the kept triplets come from the models in dataset.mix ({', '.join(mix)}); "
            f"kept triplets per model: { {m: len(r) for m, r in by_model.items()} }"
        )
    return {model: share / total for model, share in mix.items()}


def _largest_remainder(shares: Mapping[str, float], size: int) -> dict[str, int]:
    """Integer quotas summing to ``size``: floors, then the leftover to the largest fractions."""
    exact = {model: share * size for model, share in shares.items()}
    quotas = {model: int(value) for model, value in exact.items()}
    leftover = size - sum(quotas.values())
    for model in sorted(exact, key=lambda m: (quotas[m] - exact[m], m))[:leftover]:
        quotas[model] += 1
    return quotas


def _style_pools(
    records: list[dict[str, Any]], styles: list[str], style_split: str, seed: int, model: str
) -> dict[str, list[dict[str, Any]]]:
    """The triplets each style may draw from: all of them, or a disjoint deal of a shuffled deck."""
    if style_split == "independent":
        return {style: records for style in styles}
    deck = list(records)
    random.Random(f"{seed}:split:{model}").shuffle(deck)
    return {style: deck[i :: len(styles)] for i, style in enumerate(styles)}


def _training_record(triplet: Mapping[str, Any], style: str) -> TrainingRecord:
    instruction = triplet[f"instruction_{style}"]
    return {
        "id": f"{triplet['id']}:{style}",
        "triplet_id": triplet["id"],
        "model": triplet["model"],
        "style": style,  # type: ignore[typeddict-item]  # checked by _styles
        "pre_code": triplet["pre_code"],
        "post_code": triplet["post_code"],
        "instruction": instruction,
        "messages": training_messages(triplet["pre_code"], instruction, triplet["post_code"]),
    }


def _stats(
    samples: list[TrainingRecord],
    kept: list[dict[str, Any]],
    quotas: Mapping[str, int],
    styles: list[str],
    style_split: str,
    filtered_path: str | os.PathLike[str],
    seed: int,
) -> dict[str, Any]:
    per_model_style: dict[str, dict[str, int]] = {
        model: {style: 0 for style in styles} for model in sorted({*quotas, *(s["model"] for s in samples)})
    }
    for sample in samples:
        per_model_style[sample["model"]][sample["style"]] += 1
    triplet_styles = Counter(s["triplet_id"] for s in samples)
    return {
        "source": str(filtered_path),
        "seed": seed,
        "styles": styles,
        "style_split": style_split,
        "total": len(samples),
        "per_style": {style: sum(counts[style] for counts in per_model_style.values()) for style in styles},
        "per_model": {model: sum(counts.values()) for model, counts in per_model_style.items()},
        "per_model_style": per_model_style,
        "quota_per_style": dict(quotas),
        "kept_triplets_per_model": dict(Counter(r["model"] for r in kept)),
        "distinct_triplets": len(triplet_styles),
        "triplets_in_several_styles": sum(1 for n in triplet_styles.values() if n > 1),
    }


def _card(stats: Mapping[str, Any]) -> str:
    styles = stats["styles"]
    rows = "\n".join(
        f"| {model} | {' | '.join(str(counts[s]) for s in styles)} | {sum(counts.values())} |"
        for model, counts in stats["per_model_style"].items()
    )
    return f"""# Code-edit training set

Synthesized (pre-edit code, instruction, post-edit code) triplets, filtered,
deduplicated and decontaminated against the evaluation benchmark, in chat format
(system, user, assistant) with the same edit prompt that evaluation uses.

- Source: `{stats['source']}` (kept triplets per model: {stats['kept_triplets_per_model']})
- Samples: {stats['total']} from {stats['distinct_triplets']} triplets; \
{stats['triplets_in_several_styles']} triplets appear with more than one instruction style
- Style split: {stats['style_split']}; seed {stats['seed']}; quota per style and model: {stats['quota_per_style']}

| model | {' | '.join(styles)} | total |
|---|{'---|' * len(styles)}---|
{rows}

Files: `train.jsonl` (one record per sample), `train.parquet` (the same table),
`stats.json` (these counts).
"""
