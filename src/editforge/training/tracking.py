"""Experiment trackers through accelerate's own tracking: TensorBoard, W&B, trackio, MLflow.

A run's trackers write live to ``runs/`` beside the model folder (next to ``checkpoints/``, so
they survive a failed job and a resumed run continues them); at the final save the TensorBoard
files are copied into the model folder's ``runs/``, where the Hub shows them. ``report_to:
auto`` is TensorBoard where it is installed. Every tracker gets the same run name
(``<run_name>/<student>``, or ``<experiment>/<variant>/<student>/s<seed>`` for a cell) and the
same flat config: the training settings and the dataset's rows, tokens and sha256.

Keys and tokens never pass through here: each tracker reads its own from the environment
(``WANDB_API_KEY``, ``MLFLOW_TRACKING_URI``, ...), and ``WANDB_MODE=offline`` is honoured.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from editforge.monitoring import installed, tracker_problem
from editforge.training.settings import TrainingError

RUN_ID_FILE = "run_id"


def runs_dir(out_dir: str | os.PathLike[str]) -> Path:
    """``<out_dir>/../runs``: beside the model folder, like the checkpoints."""
    return Path(out_dir).resolve().parent / "runs"


def tracker_names(report_to: str | Sequence[str]) -> list[str]:
    """The trackers to start: ``auto`` is TensorBoard where it is installed, else none."""
    if report_to == "auto":
        return ["tensorboard"] if installed("tensorboard") else []
    return list(report_to)


def check_trackers(names: Sequence[str]) -> None:
    """Each tracker installed, and W&B able to start without asking for a key; else one line saying how."""
    if problem := tracker_problem(names):
        raise TrainingError(f"report_to {problem}")


def prepare_folder(folder: Path, fresh: bool) -> None:
    """The trackers' folder with its run id (main process only). A fresh run empties it: what an
    earlier attempt logged there is not this run; a resumed run keeps it and its run id."""
    if fresh:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    id_file = folder / RUN_ID_FILE
    if not id_file.is_file():
        id_file.write_text(uuid.uuid4().hex[:12], encoding="utf-8")


def make_trackers(names: Sequence[str], folder: Path, run_name: str, project: str, resume_step: int) -> list[Any]:
    """accelerate tracker objects for ``names`` (for ``Accelerator(log_with=...)``), writing under ``folder``;
    a resumed run hides, in TensorBoard, what the killed attempt logged after its checkpoint."""
    from accelerate import tracking

    run_id = (folder / RUN_ID_FILE).read_text(encoding="utf-8").strip()
    makers = {
        "tensorboard": lambda: tracking.TensorBoardTracker(
            "", folder, **({"purge_step": resume_step + 1} if resume_step else {})
        ),
        "wandb": lambda: tracking.WandBTracker(
            project, name=run_name, id=run_id, resume="allow", dir=str(folder), group=run_name.rsplit("/", 1)[0]
        ),
        "trackio": lambda: tracking.TrackioTracker(project, name=run_name, resume="allow"),
        "mlflow": lambda: tracking.MLflowTracker(project, run_name=run_name),
    }
    return [makers[name]() for name in names]


def run_config(
    settings: Mapping[str, Any], dataset: Mapping[str, Any], validation: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The run's config as every tracker takes it: flat keys, scalar values."""
    nested = {"settings": dict(settings), "dataset": dict(dataset), "validation": dict(validation or {})}
    return flatten(nested)


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}``; lists as JSON text, None as "null" (TensorBoard's hparams
    take only numbers, text and booleans)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{name}.")
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = json.dumps(value, default=str)
    return flat


def manifest_beside(dataset_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The scalar fields of the experiment manifest beside a variant's training set, if there is one."""
    path = Path(dataset_path).with_name("manifest.json")
    if not path.is_file():
        return {}
    manifest = json.loads(path.read_text(encoding="utf-8"))
    keep = ("variant", "seed", "size", "rows", "tokens", "sha256", "styles", "teachers")
    return {f"manifest_{key}": manifest[key] for key in keep if key in manifest}


def copy_tensorboard(folder: Path, model_dir: Path) -> None:
    """The TensorBoard files of ``folder`` into ``model_dir/runs`` (other trackers' files stay behind)."""
    for event in folder.rglob("events.out.tfevents.*"):
        target = model_dir / "runs" / event.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(event, target)
