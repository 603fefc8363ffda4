"""What only watches a training run: the student settings that never change the weights, the
experiment trackers a student reports to (accelerate's) with the check that each can start, and the
log and summary a fine-tune leaves in its model folder (which the reports read).

Light on purpose (no torch): the workflow reads it when it loads the config, to keep these
settings out of the rules' params (changing one reruns no training) and to stop a run at start
whose tracker is missing or would ask for a key.
"""

from __future__ import annotations

import importlib.util
import json
import math
import netrc
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from editforge.records import PathLike, read_jsonl

# Student settings that change what is logged or watched, never the weights.
MONITORING_KEYS = frozenset({"report_to", "project", "eval_every", "loss_spike_factor", "peak_tflops"})

# What a fine-tune writes into its model folder besides the model: a line per optimizer step, and the summary.
TRAINING_LOG = "training_log.jsonl"
TRAINING_SUMMARY = "training_summary.json"

# The trackers a student may report to, and the package each needs.
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio", "mlflow": "mlflow"}


def read_training_log(model_dir: PathLike) -> list[dict[str, Any]]:
    """A model folder's training log in step order; empty where there is none."""
    path = Path(model_dir) / TRAINING_LOG
    return sorted(read_jsonl(path), key=lambda entry: entry["step"]) if path.is_file() else []


def read_training_summary(model_dir: PathLike) -> dict[str, Any]:
    """A model folder's training summary; empty where there is none."""
    path = Path(model_dir) / TRAINING_SUMMARY
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def finite_number(value: Any) -> float | None:
    """``value`` as a float where it is a finite number (not a boolean), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def log_series(log: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of the log lines holding a finite number under ``key``."""
    kept = [(entry["step"], value) for entry in log if (value := finite_number(entry.get(key))) is not None]
    return [step for step, _ in kept], [value for _, value in kept]


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def named_trackers(setting: str | Sequence[str] | None) -> str | list[str]:
    """``auto``, or the trackers a ``report_to`` setting names (``none`` and an empty list: none)."""
    if setting == "auto":
        return "auto"
    names = [] if setting in (None, "none") else [setting] if isinstance(setting, str) else list(setting)
    unknown = [name for name in names if name not in TRACKERS]
    if unknown:
        raise ValueError(
            f"report_to names unknown trackers {unknown}; use auto, none or a list of {', '.join(TRACKERS)}"
        )
    return list(dict.fromkeys(names))


def tracker_problem(names: Sequence[str], env: Mapping[str, str] | None = None) -> str | None:
    """Why one of ``names`` (known trackers) could not start here, in one line with the fix, or None."""
    env = os.environ if env is None else env
    for name in names:
        if not installed(TRACKERS[name]):
            return f"{name}: the {TRACKERS[name]} package is missing; pip install {TRACKERS[name]}"
    if "wandb" in names and not _wandb_ready(env):
        return (
            "wandb: no W&B key (WANDB_API_KEY, or `wandb login`); set WANDB_MODE=offline to log without one "
            "(`wandb sync` uploads later)"
        )
    return None


def tracker_problems(cfg: Mapping[str, Any], env: Mapping[str, str] | None = None) -> list[str]:
    """A line for each student whose named trackers could not start (``auto`` and ``none`` always can)."""
    lines = []
    for name, student in cfg["training"]["students"].items():
        asked = named_trackers(student.get("report_to", "auto"))
        if problem := tracker_problem([] if asked == "auto" else asked, env):
            lines.append(f"training.students.{name}.report_to: {problem}")
    return lines


def _wandb_ready(env: Mapping[str, str]) -> bool:
    """W&B starts without asking: offline or disabled, a key in the environment, or a netrc login."""
    if env.get("WANDB_MODE") in ("offline", "disabled", "dryrun") or env.get("WANDB_API_KEY"):
        return True
    try:
        hosts = netrc.netrc(env.get("NETRC")).hosts
    except (OSError, netrc.NetrcParseError):
        return False
    return any("wandb" in host for host in hosts)
