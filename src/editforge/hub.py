"""Hugging Face hub access: which of a dataset repo's files hold a config's split, the offline
switch, listing and downloading with errors that say what went wrong.

Files are listed and downloaded with ``huggingface_hub`` (it comes with
transformers), without the ``datasets`` package; ``select_hf_files`` reads the
parquet or JSON Lines files of a config and split from the repo's layout. A
caller whose layout is unknown may fall back to ``datasets`` when it is
installed (``datasets_available``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

HF_FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".jsonl.gz": "jsonl"}
# Folder and file names that mark a split in a dataset repo's layout.
KNOWN_SPLITS = frozenset({"train", "test", "validation", "valid", "dev", "eval"})
_SPLIT_PREFIX = re.compile(r"([A-Za-z]+)(?:[-_.]|$)")
# The values that switch a huggingface_hub flag on (huggingface_hub.constants.ENV_VARS_TRUE_VALUES),
# compared upper-cased and unstripped, as its ``_is_true`` does.
TRUE_VALUES = frozenset({"1", "ON", "YES", "TRUE"})


def hub_offline() -> bool:
    """Whether huggingface_hub works offline: ``HF_HUB_OFFLINE`` (else ``TRANSFORMERS_OFFLINE``) set to
    1, ON, YES or TRUE in any case, by the library's own rule (``huggingface_hub.constants.HF_HUB_OFFLINE``).

    Read now, not when the library was imported, so that a stage sees the environment it runs in.
    """
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return value is not None and value.upper() in TRUE_VALUES


def hf_format(path: str) -> str | None:
    """"parquet" or "jsonl" by the file's suffix; None for any other file."""
    return next((fmt for suffix, fmt in HF_FORMATS.items() if path.endswith(suffix)), None)


def _split_of(rel: str, splits: frozenset[str]) -> str | None:
    """The split a data file belongs to by its path (relative to its config's folder), if it says."""
    parts = rel.split("/")
    for part in parts[:-1]:
        if part.lower() in splits:
            return part.lower()
    match = _SPLIT_PREFIX.match(parts[-1])
    if match and match.group(1).lower() in splits:
        return match.group(1).lower()
    return None


def select_hf_files(files: Sequence[str], config_name: str | None, split: str) -> list[str]:
    """The data files (parquet or JSON Lines) of one config and split in a dataset repo.

    ``files`` is the repo's file list. The folder of a config is tried as
    ``data/<config>/`` (CommitPackFT: ``data/python/data.jsonl``), then
    ``<config>/`` (the hub's parquet export: ``<config>/<split>/0000.parquet``);
    without a config, ``data/`` (``data/train-00000-of-00002.parquet``), then
    the repo's top level. Inside it, a file counts when every folder between
    it and the config's folder names a split. The split's files are those in a
    folder named after it or whose name starts with it (``train-...``,
    ``train.jsonl``); when no file names any split, all of them are the
    ``train`` split (the hub's rule). Returns [] when nothing fits; sorted.
    """
    splits = KNOWN_SPLITS | {split.lower()}
    roots = [f"data/{config_name}/", f"{config_name}/"] if config_name else ["data/", ""]
    for root in roots:
        candidates: list[tuple[str, str | None]] = []
        for path in files:
            if not path.startswith(root) or hf_format(path) is None:
                continue
            rel = path[len(root) :]
            if not all(part.lower() in splits for part in rel.split("/")[:-1]):
                continue
            candidates.append((path, _split_of(rel, splits)))
        if not candidates:
            continue
        if any(found for _, found in candidates):
            chosen = [path for path, found in candidates if found == split.lower()]
        else:
            chosen = [path for path, _ in candidates] if split.lower() == "train" else []
        if chosen:
            return sorted(chosen)
    return []


def datasets_available() -> bool:
    """Whether the ``datasets`` package can be imported (without importing it: that is slow)."""
    try:
        return importlib.util.find_spec("datasets") is not None
    except (ImportError, ValueError):  # a module without a spec, as test doubles are
        return "datasets" in sys.modules


def download_command(dataset_id: str, config_name: str | None = None) -> str:
    """The command that downloads a dataset's files (of one config, where given) into a folder."""
    include = f" --include 'data/{config_name}/*'" if config_name else ""
    return f"hf download {dataset_id} --repo-type dataset{include} --local-dir DIR"


class HubError(Exception):
    """A hub request that failed, and how: ``kind`` is "package" (huggingface_hub is not installed),
    "gated", "missing" (no such dataset or revision) or "unreachable" (offline mode, DNS, timeouts:
    any other failure); ``cause`` is the library's own error, for the message."""

    def __init__(self, kind: str, cause: BaseException) -> None:
        super().__init__(f"{kind}: {type(cause).__name__}: {cause}")
        self.kind = kind
        self.cause = cause


def list_dataset_files(dataset_id: str, revision: str | None = None) -> list[str]:
    """The files of a dataset repo on the hub, at ``revision`` (None: main); raises HubError."""
    try:
        import huggingface_hub
        from huggingface_hub import errors as hub_errors
    except ImportError as err:
        raise HubError("package", err) from None
    missing = tuple(
        getattr(hub_errors, n) for n in ("RepositoryNotFoundError", "RevisionNotFoundError") if hasattr(hub_errors, n)
    )
    gated = getattr(hub_errors, "GatedRepoError", ())
    try:
        return huggingface_hub.HfApi().list_repo_files(dataset_id, repo_type="dataset", revision=revision)
    except gated as err:  # before ``missing``: a gated repo error is also a "not found" one
        raise HubError("gated", err) from None
    except missing as err:
        raise HubError("missing", err) from None
    except Exception as err:  # offline mode, DNS, timeouts: the library raises many types
        raise HubError("unreachable", err) from None


def download_dataset_file(dataset_id: str, path: str, revision: str | None = None) -> Path:
    """The local copy of one file of a dataset repo (downloaded once, then cached by huggingface_hub);
    raises HubError."""
    try:
        import huggingface_hub
    except ImportError as err:
        raise HubError("package", err) from None
    try:
        return Path(huggingface_hub.hf_hub_download(dataset_id, path, repo_type="dataset", revision=revision))
    except Exception as err:  # as in list_dataset_files
        raise HubError("unreachable", err) from None
