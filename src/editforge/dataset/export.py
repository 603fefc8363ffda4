"""What the dataset stage writes besides ``train.jsonl``: other layouts, the
unfiltered set, LLaMA-Factory's dataset registry and the dataset card
(``README.md``, with the Hub's metadata, so ``datasets.load_dataset(folder)``
loads the training set and ``load_dataset(folder, "alpaca")`` its other layout).

No file here holds benchmark text: a triplet that decontamination matched
(``contaminated_by``) is left out of every export, the unfiltered ones too,
whatever else dropped it.

Layouts (each as JSON Lines and as Parquet, the same rows):

* chat messages (``train``, ``unfiltered``): ``messages`` is a list of
  ``{"role", "content"}`` turns (system, user, assistant), the OpenAI layout
  that LLaMA-Factory reads as "sharegpt" with role/content tags;
* Alpaca (``train_alpaca``, ``unfiltered_alpaca``): ``system``, ``instruction``
  (the user turn), ``input`` (empty) and ``output`` (the assistant turn).

Both hold the same text, made by ``edit_format.training_messages``, the prompt
that evaluation sends, so a model trained on either is scored on the prompt it
was trained on. ``unfiltered_triplets`` holds every triplet record the
filtering stage wrote, dropped ones included, with ``status`` and ``reason``;
``unfiltered`` and ``unfiltered_alpaca`` hold a training sample for every
triplet and style that has the text for one (for ablations: training on
unfiltered data), with the triplet's ``status`` and ``reason``.

``dataset_info.json`` registers the four training files for LLaMA-Factory
(copy it beside them into LLaMA-Factory's ``dataset_dir``, or point
``dataset_dir`` at this folder).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from editforge.edit_format import training_messages
from editforge.reporting.funnel import stage_table
from editforge.records import write_json, write_jsonl

DATASET_PREFIX = "editforge"

# LLaMA-Factory's "sharegpt" formatting with the OpenAI-style keys.
SHAREGPT_ENTRY: dict[str, Any] = {
    "formatting": "sharegpt",
    "columns": {"messages": "messages"},
    "tags": {
        "role_tag": "role",
        "content_tag": "content",
        "user_tag": "user",
        "assistant_tag": "assistant",
        "system_tag": "system",
    },
}
ALPACA_ENTRY: dict[str, Any] = {
    "formatting": "alpaca",
    "columns": {"prompt": "instruction", "query": "input", "response": "output", "system": "system"},
}

# The columns of the unfiltered triplets table, in order (missing fields are null).
TRIPLET_COLUMNS = (
    "id", "model", "shard", "pair_id", "fewshot_id", "pre_code", "post_code", "instruction_lazy",
    "instruction_descriptive", "status", "reason", "duplicate_of", "contaminated_by",
)
_SAMPLE_KEYS = ("id", "triplet_id", "model", "style", "topic", "status", "reason")


def alpaca_record(sample: Mapping[str, Any]) -> dict[str, Any]:
    """The Alpaca form of a chat-format sample (system, user and assistant turns)."""
    turns = {message["role"]: message["content"] for message in sample["messages"]}
    record = {key: sample[key] for key in _SAMPLE_KEYS if key in sample}
    return record | {"system": turns["system"], "instruction": turns["user"], "input": "", "output": turns["assistant"]}


def unfiltered_samples(records: Iterable[Mapping[str, Any]], styles: Sequence[str]) -> list[dict[str, Any]]:
    """A chat-format sample for every triplet and style with non-blank code and instruction, dropped or not."""
    samples = []
    for record in records:
        pre, post = record.get("pre_code") or "", record.get("post_code") or ""
        for style in styles:
            instruction = record.get(f"instruction_{style}") or ""
            if pre.strip() and post.strip() and instruction.strip():
                samples.append({
                    "id": f"{record['id']}:{style}",
                    "triplet_id": record["id"],
                    "model": record.get("model"),
                    "style": style,
                    "status": record.get("status"),
                    "reason": record.get("reason"),
                    "messages": training_messages(pre, instruction, post),
                })
    return samples


def triplet_rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Triplet records with exactly the columns of TRIPLET_COLUMNS (a table needs one shape)."""
    return [{column: record.get(column) for column in TRIPLET_COLUMNS} for record in records]


def write_table(folder: str | os.PathLike[str], name: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Write ``rows`` as ``name.jsonl`` and ``name.parquet`` in ``folder``; return the file names."""
    out = Path(folder)
    write_jsonl(out / f"{name}.jsonl", rows)
    frame = pl.DataFrame(list(rows), infer_schema_length=None) if rows else pl.DataFrame()
    partial = out / f"{name}.parquet.partial"
    frame.write_parquet(partial)
    os.replace(partial, out / f"{name}.parquet")
    return [f"{name}.jsonl", f"{name}.parquet"]


def dataset_info(prefix: str = DATASET_PREFIX) -> dict[str, Any]:
    """LLaMA-Factory's registry of the training files: name -> file and layout."""
    return {
        f"{prefix}_train": {"file_name": "train.jsonl", **SHAREGPT_ENTRY},
        f"{prefix}_train_alpaca": {"file_name": "train_alpaca.jsonl", **ALPACA_ENTRY},
        f"{prefix}_unfiltered": {"file_name": "unfiltered.jsonl", **SHAREGPT_ENTRY},
        f"{prefix}_unfiltered_alpaca": {"file_name": "unfiltered_alpaca.jsonl", **ALPACA_ENTRY},
    }


def without_benchmark_text(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The triplet records that decontamination did not match."""
    return [record for record in records if not record.get("contaminated_by")]


def write_exports(
    folder: str | os.PathLike[str],
    samples: Sequence[Mapping[str, Any]],
    records: Sequence[Mapping[str, Any]],
    styles: Sequence[str],
) -> list[str]:
    """Write every export but ``train.jsonl``/``train.parquet``; return the file names written."""
    clean = without_benchmark_text(records)
    files = write_table(folder, "train_alpaca", [alpaca_record(s) for s in samples])
    files += write_table(folder, "unfiltered_triplets", triplet_rows(clean))
    unfiltered = unfiltered_samples(clean, styles)
    files += write_table(folder, "unfiltered", unfiltered)
    files += write_table(folder, "unfiltered_alpaca", [alpaca_record(s) for s in unfiltered])
    write_json(Path(folder) / "dataset_info.json", dataset_info())
    return [*files, "dataset_info.json"]


# ---------------------------------------------------------------- the card


# The Hub's dataset configs: name -> the Parquet file it loads as its train split.
CONFIGS = {
    "default": "train.parquet",
    "alpaca": "train_alpaca.parquet",
    "unfiltered": "unfiltered.parquet",
    "unfiltered_alpaca": "unfiltered_alpaca.parquet",
    "unfiltered_triplets": "unfiltered_triplets.parquet",
}


def front_matter(stats: Mapping[str, Any], license_id: str, generators: Mapping[str, str]) -> str:
    """The card's YAML header: the Hub's metadata and the ``configs`` that ``load_dataset`` reads."""
    total = stats["total"]
    size = next(
        (name for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")) if total < bound),
        "100K<n<1M",
    )
    metadata = {
        "license": license_id,
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
    return f"---\n{yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)}---\n"


def render_card(
    stats: Mapping[str, Any],
    stages: Sequence[Mapping[str, Any]],
    topics: Mapping[str, Any],
    decontamination: Mapping[str, Any],
    license_id: str,
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
        front_matter(stats, license_id, generators),
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
        f"- Licence: `{license_id}`",
        (
            f"- Samples: {stats['total']} from {stats['distinct_triplets']} triplets; "
            f"{stats['triplets_in_several_styles']} triplets appear with more than one instruction style"
        ),
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
            f"The dataset then takes {stats['distinct_triplets']} of the {stats['kept_triplets']} kept triplets "
            f"({', '.join(f'{n} {s}' for s, n in stats['per_style'].items())} samples)."
        ),
        "",
        *seed_sources_section(seeds or {}),
        *decontamination_section(decontamination),
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
        "- `train_alpaca.*` (config `alpaca`): the same samples as system/instruction/input/output",
        "- `unfiltered_triplets.*` (config `unfiltered_triplets`): every triplet before filtering, with `status` "
        "and `reason`",
        (
            "- `unfiltered.*`, `unfiltered_alpaca.*` (configs `unfiltered`, `unfiltered_alpaca`): a sample per "
            "triplet and style, dropped ones included, with the triplet's `status` and `reason`. Triplets that "
            "overlap the benchmark are left out of these too, whatever dropped them."
        ),
        (
            "- `dataset_info.json`: LLaMA-Factory's registry of the four training files "
            "(`editforge_train`, `editforge_train_alpaca`, `editforge_unfiltered`, `editforge_unfiltered_alpaca`)"
        ),
        "- `topics.json`: each style's topics, top words and sizes before and after balancing",
        "- `stats.json`: the counts above; `funnel.png`: the plot above",
        "",
    ]
    return "\n".join(lines)


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


def no_topic_line(summary: Mapping[str, Any]) -> str:
    no_topic = summary.get("no_topic", {"kept": 0, "selected": 0})
    return (
        f"Triplets with no topic (too few known words to place; a bucket of their own, not capped like a topic): "
        f"{no_topic['kept']} kept, {no_topic['selected']} selected."
    )
