"""Training checkpoints: written atomically, found again after a kill, pruned.

A checkpoint is a folder ``<checkpoints>/step-000200`` holding what
``Accelerator.save_state`` writes (model or LoRA weights, optimizer, scheduler,
every process's RNG states; sharded under FSDP) plus ``trainer_state.json``
(the step, the loss log so far, and the run's fingerprint). It is written under
``.partial-step-000200`` and renamed into place when complete, so a folder
named ``step-*`` is always whole; a kill during the save leaves only a
``.partial-*`` folder, which the next run removes.

The fingerprint hashes the dataset's bytes, the base model, the prompt format
and the settings that change training: a checkpoint from another dataset or
other hyperparameters is never resumed from (it is deleted instead).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from editforge.records import write_json
from editforge.training.settings import NOT_FINGERPRINTED

STATE_FILE = "trainer_state.json"
PATTERN = re.compile(r"step-(\d+)")


def checkpoints_dir(out_dir: str | os.PathLike[str]) -> Path:
    """``<out_dir>/../checkpoints``: beside the model folder, never inside it."""
    return Path(out_dir).resolve().parent / "checkpoints"


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(
    dataset: str | os.PathLike[str], base_model: str, chat_template: bool, settings: Mapping[str, Any]
) -> str:
    trained = {key: value for key, value in settings.items() if key not in NOT_FINGERPRINTED}
    identity = {
        "dataset": file_sha256(dataset),
        "base_model": base_model,
        "chat_template": chat_template,
        "settings": trained,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:06d}"


def partial_dir(root: Path, step: int) -> Path:
    return root / f".partial-step-{step:06d}"


def complete(root: Path) -> list[tuple[int, Path]]:
    """The complete checkpoints under ``root`` as (step, folder), oldest first."""
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = PATTERN.fullmatch(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest(root: Path, expected_fingerprint: str) -> tuple[Path, dict[str, Any]] | None:
    """The newest complete checkpoint of this run, or None."""
    for _, path in reversed(complete(root)):
        state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
        if state.get("fingerprint") == expected_fingerprint:
            return path, state
    return None


def clean_stale(root: Path, expected_fingerprint: str) -> list[str]:
    """Remove partial folders and other runs' checkpoints; return what was removed (main process only)."""
    removed = []
    if not root.is_dir():
        return removed
    for path in sorted(root.iterdir()):
        stale = path.name.startswith(".partial-")
        if PATTERN.fullmatch(path.name):
            state_file = path / STATE_FILE
            stale = not state_file.is_file() or (
                json.loads(state_file.read_text(encoding="utf-8")).get("fingerprint") != expected_fingerprint
            )
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def finish(root: Path, step: int, state: Mapping[str, Any], keep: int) -> Path:
    """Write ``trainer_state.json`` into the partial folder, rename it into place, prune old ones."""
    partial = partial_dir(root, step)
    write_json(partial / STATE_FILE, dict(state))
    final = step_dir(root, step)
    if final.exists():  # a checkpoint of the same step from an earlier attempt of this very run
        shutil.rmtree(final)
    os.replace(partial, final)
    for _, old in complete(root)[: -max(keep, 1)]:
        shutil.rmtree(old, ignore_errors=True)
    return final
