"""The dataset card (``README.md``): the Hub's metadata, so ``datasets.load_dataset(folder)`` loads the
training set (and the held-out validation split, where there is one) and ``load_dataset(folder, "alpaca")``
its other layout, then what the data is, how it was made, and its counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from editforge.funnel import stage_table
from editforge.verdicts import verdict_table

# The Hub's dataset configs: name -> the Parquet file it loads as its train split (the default config
# also loads validation.parquet as its validation split where rows were held out).
CONFIGS = {
    "default": "train.parquet",
    "alpaca": "train_alpaca.parquet",
    "unfiltered": "unfiltered.parquet",
    "unfiltered_alpaca": "unfiltered_alpaca.parquet",
    "unfiltered_triplets": "unfiltered_triplets.parquet",
}


def front_matter(stats: Mapping[str, Any], licence_id: str, generators: Mapping[str, str]) -> str:
    """The card's YAML header: the Hub's metadata and the ``configs`` that ``load_dataset`` reads."""
    total = stats["total"]
    size = next(
        (name for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")) if total < bound),
        "100K<n<1M",
    )
    metadata = {
        "license": licence_id,
        "language": ["en"],
        "task_categories": ["text-generation"],
        "tags": ["code", "code-editing", "synthetic"],
        "size_categories": [size],
        "pretty_name": "editforge code-edit training set",
        # Not a Hub field: the models that wrote the data (synthesis name -> model).
        "generated_by": dict(generators),
        "configs": [
            {"config_name": name, "data_files": [{"split": "train", "path": path}]} for name, path in CONFIGS.items()
        ],
    }
    if (stats.get("validation") or {}).get("rows"):
        metadata["configs"][0]["data_files"].append({"split": "validation", "path": "validation.parquet"})
    return f"---\n{yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)}---\n"


def render_card(
    stats: Mapping[str, Any],
    stages: Sequence[Mapping[str, Any]],
    topics: Mapping[str, Any],
    decontamination: Mapping[str, Any],
    licence_id: str,
    generators: Mapping[str, str],
    seeds: Mapping[str, Any] | None = None,
) -> str:
    """The dataset card (``README.md``): Hub metadata, then what the data is, how it was made and its counts."""
    styles = stats["styles"]
    rows = "\n".join(
        f"| {model} | {' | '.join(str(counts[s]) for s in styles)} | {sum(counts.values())} |"
        for model, counts in stats["per_model_style"].items()
    )
    lines = [
        front_matter(stats, licence_id, generators),
        "# Code-edit training set",
        "",
        (
            "Synthesized (pre-edit code, instruction, post-edit code) triplets, filtered, deduplicated and "
            "decontaminated against the evaluation benchmark, balanced over topics, in chat format (system, user, "
            "assistant) with the same edit prompt that evaluation uses."
        ),
        "",
        f"- Source: `{stats['source']}` (kept triplets per model: {stats['kept_triplets_per_model']})",
        "- Written by: " + ", ".join(f"{name} (`{model}`)" for name, model in generators.items()),
        f"- Licence: `{licence_id}`",
        (
            f"- Samples: {stats['total']} from {stats['distinct_triplets']} triplets; "
            f"{stats['triplets_in_several_styles']} triplets appear with more than one instruction style"
        ),
        validation_line(stats.get("validation") or {}),
        (
            f"- Style split: {stats['style_split']}; seed {stats['seed']}; "
            f"quota per style and model: {stats['quota_per_style']}"
        ),
        "",
        "## Samples per model and instruction style",
        "",
        f"| model | {' | '.join(styles)} | total |",
        f"|---|{'---|' * len(styles)}---|",
        rows,
        "",
        "## Triplets after each stage",
        "",
        "![funnel](funnel.png)",
        "",
        *stage_table(list(stages)),
        "",
        (
            f"The training set then takes {stats['distinct_triplets']} of the {stats['kept_triplets']} kept triplets "
            f"({', '.join(f'{n} {s}' for s, n in stats['per_style'].items())} samples)"
            + (
                f"; {held['triplets']} more ({held['rows']} samples) are held out for validation."
                if (held := stats.get("validation") or {}).get("rows")
                else "."
            )
        ),
        "",
        *seed_sources_section(seeds or {}),
        *decontamination_section(decontamination),
        *judge_section(stats.get("judge") or {}),
        "## Topic balancing",
        "",
    ]
    for style, summary in topics.items():
        lines += [
            f"### {style}",
            "",
            (
                f"Method {summary['method']}: {summary['topics']} topics over {summary['documents']} kept "
                f"triplets (vocabulary {summary['vocabulary']}); {summary['selected']} selected. Largest topics:"
            ),
            "",
            no_topic_line(summary),
            "",
            "| topic | kept | selected | top words |",
            "|---:|---:|---:|---|",
            *(
                f"| {t['topic']} | {t['kept']} | {t['selected']} | {', '.join(t['top_words'][:8])} |"
                for t in summary["table"][:10]
            ),
            "",
        ]
    lines += [
        "## Files",
        "",
        "Each table is a JSON Lines file and a Parquet file with the same rows; the configs above load the Parquet "
        "ones (`load_dataset(folder)` the training set, `load_dataset(folder, \"alpaca\")` and so on).",
        "",
        "- `train.jsonl`, `train.parquet` (config `default`): the training set, chat messages (`messages`: "
        "role/content turns)",
        "- `validation.jsonl`, `validation.parquet` (config `default`, split `validation`, where rows were held "
        "out): whole triplets held out of the training set, for a validation loss; empty when none were",
        "- `train_alpaca.*` (config `alpaca`): the training samples as system/instruction/input/output",
        "- `unfiltered_triplets.*` (config `unfiltered_triplets`): every triplet before filtering, with `status` "
        "and `reason`",
        (
            "- `unfiltered.*`, `unfiltered_alpaca.*` (configs `unfiltered`, `unfiltered_alpaca`): a sample per "
            "triplet and style, dropped ones included, with the triplet's `status` and `reason`. Triplets that "
            "overlap the benchmark are left out of these too, whatever dropped them."
        ),
        (
            "- `dataset_info.json`: LLaMA-Factory's registry of the training files "
            "(`editforge_train`, `editforge_train_alpaca`, `editforge_unfiltered`, `editforge_unfiltered_alpaca`, "
            "and `editforge_validation` where rows were held out)"
        ),
        "- `topics.json`: each style's topics, top words and sizes before and after balancing",
        "- `stats.json`: the counts above; `funnel.png`: the plot above",
        "",
    ]
    return "\n".join(lines)


def validation_line(validation: Mapping[str, Any]) -> str:
    """The card's line on the held-out validation split (``dataset.validation``): its size, or why it is empty."""
    if validation.get("rows"):
        return (
            f"- Validation: {validation['rows']} samples from {validation['triplets']} triplets held out of the "
            "training set (whole triplets, both styles on one side; `validation.*`)"
        )
    return f"- Validation: none held out ({validation.get('reason') or 'not split'})"


def seed_sources_section(seeds: Mapping[str, Any]) -> list[str]:
    """The card's list of the code the prompts were seeded with: each source, where it comes from, and
    its snippets per licence (as the files' SPDX headers, their packages' metadata or the rows state it)."""
    sources = seeds.get("sources") or {}
    if not sources:
        return []
    lines = [
        "## Seed sources",
        "",
        "Real code seeded the prompts; the models wrote new programs from it. The snippets cut from each source, "
        "by licence (as the files' SPDX headers, their packages' metadata or the rows state it):",
        "",
        "| source | from | snippets | licences (snippets) |",
        "|---|---|---:|---|",
    ]
    for name, source in sources.items():
        licences = ", ".join(f"{licence} ({count})" for licence, count in source.get("licences", {}).items())
        lines.append(f"| {name} | {source.get('repository', '-')} | {source.get('snippets', 0)} | {licences or '-'} |")
    return [*lines, ""]


def decontamination_section(summary: Mapping[str, Any]) -> list[str]:
    """The card's account of decontamination: how many triplets matched the benchmark, how, and which problems."""
    lines = ["## Decontamination", ""]
    if summary.get("decontamination") != "done":
        return [*lines, f"Decontamination was {summary.get('decontamination', 'not run')}.", ""]
    matches = summary.get("contaminated", [])
    methods = Counter(m["method"] for m in matches)
    problems = Counter(m["problem"] for m in matches)
    lines.append(
        f"{len(matches)} triplets overlapped the benchmark (CanItEdit) and are in no file here: "
        f"{methods.get('code', 0)} by their code (canonical form: renaming, layout, quotes and docstrings do not "
        f"count; containment either way), {methods.get('literal', 0)} by a long string literal of a benchmark "
        f"program, {methods.get('instruction', 0)} by an instruction (character n-grams). "
        f"{sum(1 for m in matches if m.get('kept_before'))} of them had passed every other filter."
    )
    if problems:
        top = ", ".join(f"{name} ({n})" for name, n in problems.most_common(10))
        lines.append(f"Problems matched most: {top}.")
    return [*lines, ""]


def judge_section(judge: Mapping[str, Any]) -> list[str]:
    """The card's account of the LLM judge (``filtering.judge``), from the dataset stats' ``judge`` entry:
    what it checks, and its verdicts per teacher and style. Nothing when the judge did not run."""
    if not judge:
        return []
    models = ", ".join(f"`{model}`" for model in judge.get("models", [])) or "the configured judge"
    uncertain = judge.get("uncertain", [])
    counted = f"; UNCERTAIN counted as {uncertain[0]}" if len(uncertain) == 1 else ""
    excluded = ", ".join(f"{n} {style}" for style, n in judge.get("excluded_per_style", {}).items())
    lines = [
        "## LLM judge",
        "",
        (
            f"A model ({models}) judged each instruction style of the deduplicated triplets on its own: whether the "
            "edit is needed (the pre-edit code does not already do what the instruction asks), complete (the "
            "post-edit code does all of it) and focused (it changes no behaviour the instruction does not ask for), "
            f"each PASS, FAIL or UNCERTAIN{counted}. A style that failed a required verdict gives no sample "
            f"(kept triplets left out: {excluded or 'none'}); a triplet that passed no style was dropped."
        ),
        "",
        *verdict_table(judge.get("by_teacher", {})),
    ]
    return [*lines, ""]


def no_topic_line(summary: Mapping[str, Any]) -> str:
    no_topic = summary.get("no_topic", {"kept": 0, "selected": 0})
    return (
        f"Triplets with no topic (too few known words to place; a bucket of their own, not capped like a topic): "
        f"{no_topic['kept']} kept, {no_topic['selected']} selected."
    )
