"""Where a benchmark's records come from: a local JSON Lines or parquet copy, or a Hugging Face dataset.

Each reader gives (where, record) pairs, ``where`` naming the file line or row for the error that
a broken record gets; checking a record is the benchmark's own business.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from editforge.hub import HubError, download_dataset_file, hf_format, list_dataset_files, select_hf_files
from editforge.records import iter_jsonl_lines, read_parquet


class BenchmarkError(ValueError):
    """The benchmark cannot be loaded, or a record or a selection is invalid."""


def benchmark_rows(chosen: str, split: str, advice: str, hub_file: str | None = None) -> list[tuple[str, Any]]:
    """The records of a ``.jsonl`` or ``.parquet`` file, or of a hub dataset: its ``hub_file`` (a JSON
    Lines file in the dataset repo) where given, else its ``split``; ``advice`` ends the error when the
    hub cannot be reached."""
    if chosen.endswith(".jsonl"):
        return jsonl_rows(Path(chosen))
    if chosen.endswith(".parquet"):
        return parquet_rows(Path(chosen))
    if Path(chosen).exists():
        raise BenchmarkError(f"{chosen}: unsupported benchmark file; use a .jsonl or .parquet file")
    if hub_file is not None:
        try:
            path = download_dataset_file(chosen, hub_file)
        except HubError as err:
            raise BenchmarkError(
                f"could not load {hub_file} of the Hugging Face dataset '{chosen}' "
                f"({type(err.cause).__name__}: {err.cause}); {advice}"
            ) from err.cause
        return [(f"{chosen} {where}", row) for where, row in jsonl_rows(path)]
    return hub_rows(chosen, split, advice)


def jsonl_rows(path: Path) -> list[tuple[str, Any]]:
    rows = []
    for number, value in iter_jsonl_lines(path):
        if isinstance(value, json.JSONDecodeError):
            raise BenchmarkError(f"{path}:{number}: not JSON ({value.msg})")
        rows.append((f"{path}:{number}", value))
    return rows


def parquet_rows(path: Path) -> list[tuple[str, Any]]:
    return [(f"{path} row {number - 1}", row) for number, row in read_parquet(path)]


def hub_rows(dataset: str, split: str, advice: str) -> list[tuple[str, Any]]:
    """The split's parquet files from the Hugging Face hub (``editforge.hub``), read with polars.

    huggingface_hub comes with transformers, so no ``datasets`` install is needed;
    the files are cached by huggingface_hub like any hub download.
    """
    try:
        # push_to_hub writes data/test-00000-of-00001.parquet; converted repos test/0000.parquet.
        chosen = select_hf_files(list_dataset_files(dataset), None, split)
        wanted = [name for name in chosen if hf_format(name) == "parquet"]
        if not wanted:
            raise BenchmarkError(f"the Hugging Face dataset '{dataset}' has no '{split}' parquet files; {advice}")
        paths = [download_dataset_file(dataset, name) for name in wanted]
    except HubError as err:  # offline, unknown id, ...: all mean "use a local copy"
        cause = err.cause
        raise BenchmarkError(
            f"could not load the Hugging Face dataset '{dataset}' ({type(cause).__name__}: {cause}); {advice}"
        ) from cause
    return [(f"{dataset} {where}", row) for path in paths for where, row in parquet_rows(path)]
