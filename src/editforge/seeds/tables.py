"""The rows of table sources (both kinds): JSON Lines, parquet and Hugging Face hub datasets.

``hf`` lists the dataset repo's files with ``huggingface_hub`` and reads the
parquet or JSON Lines files of the configured ``config_name`` and ``split``
(``editforge.hub.select_hf_files``), without the ``datasets`` package; that
package is tried only when it is installed and the repo's layout shows no such
files. With ``HF_HUB_OFFLINE`` set or no network, the error says to download
the files and use a ``jsonl``/``parquet`` source. ``max_files`` caps the rows
of all of a source's files together. Lines and rows that hold no row are
counted by reason, and the first malformed lines named.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from editforge.hub import (
    HubError,
    datasets_available,
    download_command,
    download_dataset_file,
    hf_format,
    hub_offline,
    list_dataset_files,
    select_hf_files,
)
from editforge.records import LineTooLong, iter_jsonl_lines, jsonl_lines, parquet_shape, read_parquet
from editforge.seeds.settings import SeedError, SeedSettings, Tally, log


@dataclass(frozen=True)
class Table:
    """One data file of a table source (jsonl, parquet, or a hub dataset's files)."""

    path: Path
    fmt: str  # "jsonl" or "parquet"
    label: str = ""  # prefix of its row labels where a source has several files

    def row_label(self, number: int) -> str:
        return f"{self.label} row {number}" if self.label else f"row {number}"


def cap(items: list[Any], max_files: int | None, rng: random.Random, tally: Tally) -> list[Any]:
    """At most ``max_files`` items, a seeded sample kept in the original order."""
    if max_files is None or len(items) <= max_files:
        return items
    tally.files_skipped["over_max_files"] += len(items) - max_files
    keep = sorted(rng.sample(range(len(items)), max_files))
    return [items[i] for i in keep]


def _jsonl_positions(name: str, path: Path) -> list[int]:
    """The numbers of the non-blank lines of a JSON Lines file."""
    if not path.is_file():
        raise SeedError(f"source {name!r}: {path} is not a file")
    try:
        return [number for number, _ in jsonl_lines(path, binary=True)]
    except (OSError, EOFError) as err:
        raise SeedError(f"source {name!r}: cannot read {path} ({err})") from None


# A JSON Lines row holds at most two files (a commit's old and new contents), which JSON
# escaping can double, and a few short columns: a longer line is too large unread.
def max_row_bytes(settings: SeedSettings) -> int:
    return 4 * settings.max_file_bytes + 65_536


def _jsonl_rows(
    path: Path, wanted: set[int], settings: SeedSettings, tally: Tally
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The objects on the lines ``wanted``; lines too long or holding none are counted, and named."""
    for number, row in iter_jsonl_lines(path, binary=True, wanted=wanted, max_length=max_row_bytes(settings)):
        if isinstance(row, LineTooLong):
            tally.files_skipped["too_large"] += 1
        elif isinstance(row, UnicodeDecodeError):
            tally.skip_line(path, number, "binary_or_not_utf8", "not UTF-8")
        elif isinstance(row, json.JSONDecodeError):
            tally.skip_line(path, number, "not_json", f"not JSON: {row.msg} at column {row.colno}")
        elif not isinstance(row, dict):
            tally.skip_line(path, number, "not_json", f"a JSON {type(row).__name__}, not an object")
        else:
            yield number, row


def _parquet_open(name: str, path: Path, required: Sequence[str]) -> tuple[list[str], int]:
    """A parquet file's column names and its row count."""
    import polars as pl

    if not path.is_file():
        raise SeedError(f"source {name!r}: {path} is not a file")
    try:
        columns, count = parquet_shape(path)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise SeedError(f"source {name!r}: cannot read {path} as parquet ({err})") from None
    for column in required:
        if column not in columns:
            raise SeedError(f"source {name!r}: {path} has no column {column!r} (columns: {', '.join(columns)})")
    return columns, count


def _parquet_rows(name: str, path: Path, columns: list[str], wanted: set[int]) -> Iterator[tuple[int, dict[str, Any]]]:
    import polars as pl

    try:
        return read_parquet(path, columns, wanted)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise SeedError(f"source {name!r}: cannot read {path} as parquet ({err})") from None


def _table_rows(
    name: str,
    tables: Sequence[Table],
    required: Sequence[str],
    optional: Sequence[str],
    settings: SeedSettings,
    rng: random.Random,
    tally: Tally,
) -> Iterator[tuple[Table, int, dict[str, Any]]]:
    """The rows of a source's files, as (file, 1-based row number, row).

    ``max_files`` caps the rows of all files together (a seeded sample, in
    order). A parquet file without a ``required`` column is an error; a JSON
    Lines row is yielded as it is, whatever its keys; lines that are not JSON
    objects are counted. Only the ``required`` and ``optional`` columns of a
    parquet file are read.
    """
    positions: list[tuple[int, int]] = []
    opened: dict[int, list[str]] = {}
    for index, table in enumerate(tables):
        if table.fmt == "jsonl":
            positions.extend((index, number) for number in _jsonl_positions(name, table.path))
        else:
            columns, count = _parquet_open(name, table.path, required)
            opened[index] = [c for c in dict.fromkeys((*required, *optional)) if c in columns]
            positions.extend((index, number) for number in range(1, count + 1))
    tally.files_seen += len(positions)
    wanted: dict[int, set[int]] = {}
    for index, number in cap(positions, settings.max_files, rng, tally):
        wanted.setdefault(index, set()).add(number)
    for index, table in enumerate(tables):
        if index not in wanted:
            continue
        if table.fmt == "jsonl":
            rows = _jsonl_rows(table.path, wanted[index], settings, tally)
        else:
            rows = _parquet_rows(name, table.path, opened[index], wanted[index])
        for number, row in rows:
            yield table, number, row


def _download_hint(dataset_id: str, config_name: str | None) -> str:
    return (
        f"download the files first (e.g. `{download_command(dataset_id, config_name)}`) "
        f"and use a source of type 'jsonl' or 'parquet' with 'path' set to one of them"
    )


def _hf_tables(name: str, source: dict[str, Any]) -> list[Table] | None:
    """The local copies of a hub dataset's data files for the source's config and split.

    None where the repo's layout shows no such files (the caller may then try
    the ``datasets`` package). Raises SeedError, with what to do instead, when
    the hub cannot be reached (``HF_HUB_OFFLINE`` set, no network) or the
    dataset does not exist or is gated.
    """
    dataset_id = source.get("dataset")
    if not dataset_id:
        raise SeedError(f"source {name!r}: type 'hf' needs 'dataset'")
    config_name, split = source.get("config_name"), source.get("split", "train")
    revision = source.get("revision")
    hint = _download_hint(dataset_id, config_name)
    if hub_offline():
        raise SeedError(f"source {name!r}: type 'hf' needs the network, but HF_HUB_OFFLINE is set; {hint}")
    try:
        files = list_dataset_files(dataset_id, revision)
    except HubError as err:
        if err.kind == "package" and datasets_available():
            return None
        raise SeedError(_hub_failure(name, dataset_id, revision, err, hint)) from None
    chosen = select_hf_files(files, config_name, split)
    if not chosen:
        return None
    log.info("source %r: %d file(s) of %s: %s", name, len(chosen), dataset_id, ", ".join(chosen))
    tables = []
    for path in chosen:
        try:
            local = download_dataset_file(dataset_id, path, revision)
        except HubError as err:
            raise SeedError(
                f"source {name!r}: cannot download {path} of {dataset_id!r} ({err.cause}); {hint}"
            ) from None
        tables.append(Table(local, hf_format(path) or "jsonl", path if len(chosen) > 1 else ""))
    return tables


def _hub_failure(name: str, dataset_id: str, revision: str | None, err: HubError, hint: str) -> str:
    """What a failed listing of a hub dataset's files means for the source, and what to do."""
    if err.kind == "package":
        return (
            f"source {name!r}: type 'hf' needs the 'huggingface_hub' package (pip install huggingface_hub); "
            f"or {hint}"
        )
    if err.kind == "gated":
        return f"source {name!r}: dataset {dataset_id!r} is gated; accept its terms and set HF_TOKEN ({err.cause})"
    if err.kind == "missing":
        return f"source {name!r}: no dataset {dataset_id!r} (revision {revision or 'main'}) on the hub ({err.cause})"
    cause = err.cause
    return f"source {name!r}: cannot reach the Hugging Face hub ({type(cause).__name__}: {cause}); {hint}"


def _no_hf_files(name: str, source: dict[str, Any]) -> SeedError:
    where = f"config {source.get('config_name')!r}, " if source.get("config_name") else ""
    return SeedError(
        f"source {name!r}: found no parquet or JSON Lines files for {where}split {source.get('split', 'train')!r} "
        f"in dataset {source.get('dataset')!r}; check 'config_name' and 'split', install the 'datasets' package "
        f"to use its loader, or {_download_hint(source['dataset'], source.get('config_name'))}"
    )


def _datasets_rows(
    name: str,
    source: dict[str, Any],
    required: Sequence[str],
    optional: Sequence[str],
    settings: SeedSettings,
    rng: random.Random,
    tally: Tally,
) -> Iterator[tuple[Table, int, dict[str, Any]]]:
    """The fallback for layouts ``select_hf_files`` does not know: the ``datasets`` loader."""
    import datasets

    dataset_id = source["dataset"]
    try:
        data = datasets.load_dataset(dataset_id, source.get("config_name"), split=source.get("split", "train"))
    except Exception as err:  # the library raises many types; all mean "cannot load"
        raise SeedError(f"source {name!r}: cannot load dataset {dataset_id!r} ({err})") from None
    for column in required:
        if column not in data.column_names:
            raise SeedError(f"source {name!r}: dataset {dataset_id!r} has no column {column!r}")
    data = data.select_columns([c for c in dict.fromkeys((*required, *optional)) if c in data.column_names])
    tally.files_seen += len(data)
    table = Table(Path(dataset_id), "datasets")
    for index in cap(list(range(len(data))), settings.max_files, rng, tally):
        yield table, index + 1, data[index]


def source_rows(
    source: dict[str, Any],
    required: Sequence[str],
    optional: Sequence[str],
    settings: SeedSettings,
    rng: random.Random,
    tally: Tally,
) -> Iterator[tuple[Table, int, dict[str, Any]]]:
    """The rows of a table source: jsonl, parquet or hf."""
    name, kind = source["name"], source["type"]
    if kind in ("jsonl", "parquet"):
        if not source.get("path"):
            raise SeedError(f"source {name!r}: type {kind!r} needs 'path'")
        tables = [Table(Path(source["path"]), kind)]
    else:
        found = _hf_tables(name, source)
        if found is None:
            if not datasets_available():
                raise _no_hf_files(name, source)
            return _datasets_rows(name, source, required, optional, settings, rng, tally)
        tables = found
    return _table_rows(name, tables, required, optional, settings, rng, tally)
