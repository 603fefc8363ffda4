"""Where an external dataset's rows come from: a local ``.jsonl``/``.jsonl.gz``/``.json``/``.parquet``
file, a folder of them (chosen as on the hub: by ``files``, else the split's files), or a Hugging Face
dataset through ``editforge.hub``; and the one error every step of reading it raises."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

from editforge.hub import (
    HubError,
    download_command,
    download_dataset_file,
    hub_offline,
    list_dataset_files,
    select_hf_files,
)
from editforge.records import iter_jsonl_lines, read_parquet

if TYPE_CHECKING:
    from editforge.experiments.external import ExternalSpec


class ExternalDatasetError(ValueError):
    """An external dataset that cannot be loaded: the message names the variant, the key or path, the fix."""


def external_error(name: str, what: str) -> ExternalDatasetError:
    return ExternalDatasetError(f"experiment variant '{name}': {what}")


def external_rows(spec: ExternalSpec) -> Iterator[tuple[str, Any]]:
    """(where, row) for every row of the source's chosen files, in order."""
    path = Path(spec.source).expanduser()
    if path.is_file():
        files = [path]
    elif path.is_dir():
        listing = sorted(
            p.relative_to(path).as_posix()
            for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        files = [path / rel for rel in _choose(spec, listing, str(path))]
    elif spec.source.startswith(("/", ".", "~")) or spec.source.endswith((".jsonl", ".jsonl.gz", ".json", ".parquet")):
        raise external_error(
            spec.name, f"external.source {spec.source} does not exist; give an existing file or folder"
        )
    else:
        files = _hub_files(spec)
    for file in files:
        yield from _file_rows(spec, file)


def _choose(spec: ExternalSpec, listing: Sequence[str], where: str) -> list[str]:
    """The data files of a folder or hub repo: those ``files`` matches (path or name), else the split's."""
    if spec.files:
        chosen = [f for f in listing if fnmatchcase(f, spec.files) or fnmatchcase(f.rsplit("/", 1)[-1], spec.files)]
    else:
        chosen = select_hf_files(listing, spec.config, spec.split)
    if not chosen:
        wanted = f"external.files {spec.files!r}" if spec.files else f"the split '{spec.split}'"
        raise external_error(
            spec.name,
            f"{where} has no data file for {wanted} (it has {', '.join(listing[:8]) or 'no files'}); "
            "set external.files to a file name or glob",
        )
    return sorted(chosen)


def _hub_files(spec: ExternalSpec) -> list[Path]:
    source = spec.source
    local = f"download it (`{download_command(source)}`) and set external.source to that folder or a file in it"
    if hub_offline():
        raise external_error(
            spec.name,
            f"external.source '{source}' is a Hugging Face dataset and the hub is offline (HF_HUB_OFFLINE); {local}",
        )
    try:
        chosen = _choose(spec, list_dataset_files(source, spec.revision), f"the Hugging Face dataset '{source}'")
        return [download_dataset_file(source, name, spec.revision) for name in chosen]
    except HubError as err:
        cause = " ".join(f"{type(err.cause).__name__}: {err.cause}".split())[:300]
        raise external_error(
            spec.name,
            f"could not load the Hugging Face dataset '{source}' ({err.kind}: {cause}), "
            f"and no local path {source} exists; {local}",
        ) from None


def _file_rows(spec: ExternalSpec, path: Path) -> Iterator[tuple[str, Any]]:
    text = str(path)
    if text.endswith(".parquet"):
        yield from ((f"{path} row {number}", row) for number, row in read_parquet(path))
        return
    if text.endswith(".json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            data = None  # JSON Lines named .json: read below
        if data is not None:
            if not isinstance(data, list):
                raise external_error(spec.name, f"{path} holds a JSON {type(data).__name__}; expected a list of rows")
            yield from ((f"{path} row {number}", row) for number, row in enumerate(data, start=1))
            return
    elif not text.endswith((".jsonl", ".jsonl.gz")):
        raise external_error(
            spec.name, f"{path}: unsupported file; external sources are .jsonl, .jsonl.gz, .json or .parquet"
        )
    for number, value in iter_jsonl_lines(path, binary=text.endswith(".gz")):
        if isinstance(value, Exception):
            raise external_error(spec.name, f"{path}:{number}: not JSON ({value})")
        yield f"{path}:{number}", value
