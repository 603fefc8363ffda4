"""What the dataset stage writes besides ``train.jsonl``: the held-out validation rows, other layouts,
the unfiltered set and LLaMA-Factory's dataset registry.

Layouts (each as JSON Lines and as Parquet, the same rows):

* chat messages (``train``, ``validation``, ``unfiltered``): ``messages`` is a list of
  ``{"role", "content"}`` turns (system, user, assistant), the OpenAI layout
  that LLaMA-Factory reads as "sharegpt" with role/content tags;
* Alpaca (``train_alpaca``, ``unfiltered_alpaca``): ``system``, ``instruction``
  (the user turn), ``input`` (empty) and ``output`` (the assistant turn).

Both hold the same text, made by ``edit_format.training_messages``, the prompt
that evaluation sends, so a model trained on either is scored on the prompt it
was trained on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from editforge.edit_format import training_messages
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


def dataset_info(prefix: str = DATASET_PREFIX, validation: bool = False) -> dict[str, Any]:
    """LLaMA-Factory's registry of the training files: name -> file and layout; with ``validation``
    (rows were held out) also ``<prefix>_validation``, for LLaMA-Factory's ``eval_dataset``.

    Written as ``dataset_info.json``: copy it beside the training files into
    LLaMA-Factory's ``dataset_dir``, or point ``dataset_dir`` at this folder.
    """
    held_out = {f"{prefix}_validation": {"file_name": "validation.jsonl", **SHAREGPT_ENTRY}} if validation else {}
    return {
        f"{prefix}_train": {"file_name": "train.jsonl", **SHAREGPT_ENTRY},
        **held_out,
        f"{prefix}_train_alpaca": {"file_name": "train_alpaca.jsonl", **ALPACA_ENTRY},
        f"{prefix}_unfiltered": {"file_name": "unfiltered.jsonl", **SHAREGPT_ENTRY},
        f"{prefix}_unfiltered_alpaca": {"file_name": "unfiltered_alpaca.jsonl", **ALPACA_ENTRY},
    }


def without_benchmark_text(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The triplet records that decontamination did not match.

    No file here holds benchmark text: a triplet that decontamination matched
    (``contaminated_by``) is left out of every export, the unfiltered ones too,
    whatever else dropped it.
    """
    return [record for record in records if not record.get("contaminated_by")]


def write_exports(
    folder: str | os.PathLike[str],
    samples: Sequence[Mapping[str, Any]],
    records: Sequence[Mapping[str, Any]],
    styles: Sequence[str],
    validation: Sequence[Mapping[str, Any]] = (),
) -> list[str]:
    """Write every export but ``train.jsonl``/``train.parquet``; return the file names written.

    ``validation`` (the held-out rows, chat format) is written as ``validation.jsonl`` and
    ``validation.parquet``, empty when none were held out.

    ``unfiltered_triplets`` holds every triplet record the filtering stage wrote,
    dropped ones included, with ``status`` and ``reason``; ``unfiltered`` and
    ``unfiltered_alpaca`` hold a training sample for every triplet and style that
    has the text for one (for ablations: training on unfiltered data), with the
    triplet's ``status`` and ``reason``.
    """
    clean = without_benchmark_text(records)
    files = write_table(folder, "validation", validation)
    files += write_table(folder, "train_alpaca", [alpaca_record(s) for s in samples])
    files += write_table(folder, "unfiltered_triplets", triplet_rows(clean))
    unfiltered = unfiltered_samples(clean, styles)
    files += write_table(folder, "unfiltered", unfiltered)
    files += write_table(folder, "unfiltered_alpaca", [alpaca_record(s) for s in unfiltered])
    write_json(Path(folder) / "dataset_info.json", dataset_info(validation=bool(validation)))
    return [*files, "dataset_info.json"]
