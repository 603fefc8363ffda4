"""Starting a fine-tune: in this process, or under ``accelerate launch`` on several GPUs or nodes.

``launch`` is what the workflow's rule calls; ``main`` is the command line of each launched process.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from editforge.records import write_json
from editforge.training.checkpoints import checkpoints_dir
from editforge.training.settings import TrainingError, resolve

CONFIG_NAMES = ("cpu", "single_gpu", "fsdp_node", "multi_node")
MAIN_PROCESS_PORT = 29500


def default_configs_dir() -> Path:
    """The repository's ``accelerate_configs/`` folder (beside ``src/``)."""
    return Path(__file__).resolve().parents[3] / "accelerate_configs"


def select_config(settings: Mapping[str, Any], cuda: bool | None = None) -> str:
    """The accelerate config name (or path) for these settings.

    The accelerate config is chosen by the ``accelerate_config`` setting:

    ==============  ========================================================
    ``auto``        ``multi_node`` when ``num_nodes > 1``, ``fsdp_node`` when
                    ``num_gpus > 1``, ``single_gpu`` with a GPU, else ``cpu``
    ``cpu``         one CPU process (the demo)
    ``single_gpu``  one GPU process (LoRA of a 7B model, or small models)
    ``fsdp_node``   FSDP (full sharding) over ``num_gpus`` GPUs of one node
    ``multi_node``  FSDP over ``num_nodes`` x ``num_gpus`` GPUs; needs SLURM
    a path          any accelerate YAML
    ==============  ========================================================
    """
    choice = settings["accelerate_config"]
    if choice != "auto":
        if choice not in CONFIG_NAMES and not str(choice).endswith((".yaml", ".yml")):
            raise TrainingError(
                f"accelerate_config must be auto, one of {list(CONFIG_NAMES)} or a YAML path, got {choice!r}"
            )
        return choice
    if settings["num_nodes"] > 1:
        return "multi_node"
    if settings["num_gpus"] > 1:
        return "fsdp_node"
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    return "single_gpu" if cuda else "cpu"


def config_file(choice: str, configs_dir: str | os.PathLike[str] | None = None) -> Path:
    path = Path(choice) if choice not in CONFIG_NAMES else Path(configs_dir or default_configs_dir()) / f"{choice}.yaml"
    if not path.is_file():
        raise TrainingError(f"accelerate config {path} not found")
    return path


def num_processes(choice: str, settings: Mapping[str, Any]) -> int:
    return 1 if choice in ("cpu", "single_gpu") else settings["num_gpus"] * settings["num_nodes"]


def cli_args(
    dataset: str | os.PathLike[str],
    base_model: str,
    settings_file: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    chat_template: bool = True,
    validation: str | os.PathLike[str] | None = None,
    run_name: str | None = None,
) -> list[str]:
    """The arguments of ``python -m editforge.training``."""
    args = [
        "--dataset",
        str(dataset),
        "--base-model",
        base_model,
        "--settings",
        str(settings_file),
        "--out",
        str(out_dir),
    ]
    if validation is not None:
        args += ["--validation", str(validation)]
    if run_name is not None:
        args += ["--run-name", run_name]
    return args if chat_template else [*args, "--no-chat-template"]


def launch_command(
    config: str | os.PathLike[str],
    processes: int,
    machines: int,
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """``accelerate launch`` of ``python -m editforge.training args`` with the config file.

    Several machines need one launcher per node: inside a SLURM allocation the
    command is ``srun`` with one task per node, each reading its rank from
    ``SLURM_NODEID`` and the head node from ``SLURM_JOB_NODELIST``; elsewhere set
    ``MACHINE_RANK`` and ``MAIN_PROCESS_IP`` on every node and run the command there.
    """
    env = os.environ if env is None else env
    launcher = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config),
        "--num_processes",
        str(processes),
        "--num_machines",
        str(machines),
    ]
    tail = ["--module", "editforge.training", *args]
    if machines == 1:
        return [*launcher, *tail]
    if "MACHINE_RANK" in env and "MAIN_PROCESS_IP" in env:
        rank = ["--machine_rank", env["MACHINE_RANK"], "--main_process_ip", env["MAIN_PROCESS_IP"]]
        return [*launcher, *rank, "--main_process_port", env.get("MAIN_PROCESS_PORT", str(MAIN_PROCESS_PORT)), *tail]
    if "SLURM_JOB_ID" not in env:
        raise TrainingError(
            f"num_nodes {machines} needs a SLURM allocation of {machines} nodes (or MACHINE_RANK and "
            "MAIN_PROCESS_IP set on every node)"
        )
    per_node = (
        shlex.join(launcher)
        + ' --machine_rank "$SLURM_NODEID"'
        + ' --main_process_ip "$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"'
        + f" --main_process_port {MAIN_PROCESS_PORT} "
        + shlex.join(tail)
    )
    return ["srun", f"--nodes={machines}", "--ntasks-per-node=1", "--kill-on-bad-exit=1", "bash", "-c", per_node]


def launch(
    dataset: str | os.PathLike[str],
    base_model: str,
    settings: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    chat_template: bool = True,
    configs_dir: str | os.PathLike[str] | None = None,
    validation: str | os.PathLike[str] | None = None,
    run_name: str | None = None,
) -> dict[str, Any]:
    """Fine-tune with the processes the settings ask for; return the run's summary.

    One process with ``accelerate_config: auto`` trains here; anything else runs
    ``accelerate launch`` with the chosen config file and waits for it.

    ``launch`` is what the workflow's rule calls. One process chosen by
    ``accelerate_config: auto`` (the CPU demo, one GPU) trains in the calling
    process; several GPUs on one node, several nodes, or a config named explicitly
    go through ``accelerate launch --config_file accelerate_configs/<name>.yaml -m
    editforge.training ...``, whose ``main`` is the command line below.
    """
    resolved = resolve(settings)
    choice = select_config(resolved)
    processes = num_processes(choice, resolved)
    if processes == 1 and resolved["accelerate_config"] == "auto":
        from editforge.training.trainer import run_finetune

        return run_finetune(
            dataset,
            base_model,
            settings,
            out_dir,
            chat_template=chat_template,
            validation_path=validation,
            run_name=run_name,
        )
    settings_file = checkpoints_dir(out_dir).parent / "launch_settings.json"
    write_json(settings_file, dict(settings))
    command = launch_command(
        config_file(choice, configs_dir),
        processes,
        resolved["num_nodes"] if choice not in ("cpu", "single_gpu") else 1,
        cli_args(dataset, base_model, settings_file, out_dir, chat_template, validation, run_name),
    )
    print("+ " + shlex.join(command), flush=True)
    returncode = subprocess.run(command, check=False).returncode
    if returncode != 0:
        raise TrainingError(f"the fine-tuning processes failed (exit status {returncode}); their errors are above")
    return json.loads((Path(out_dir) / "training_summary.json").read_text(encoding="utf-8"))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m editforge.training``: one process of a (possibly distributed) fine-tune."""
    parser = argparse.ArgumentParser(prog="python -m editforge.training", description=main.__doc__)
    parser.add_argument("--dataset", required=True, help="chat-format training set (results/dataset/train.jsonl)")
    parser.add_argument("--base-model", required=True, help="a local model folder or a hub id")
    parser.add_argument("--out", required=True, help="the folder the trained model is saved to")
    parser.add_argument("--settings", default="{}", help="the student's settings: a JSON file or JSON text")
    parser.add_argument("--validation", help="held-out samples for the validation loss (a JSON Lines file)")
    parser.add_argument("--run-name", help="the run's name in the trackers (default: the output folder's parent)")
    parser.add_argument("--no-chat-template", action="store_true", help="prompt with the plain layout")
    parser.add_argument("--padding", default="auto", choices=["auto", "longest", "max_length", "packed"])
    args = parser.parse_args(argv)
    text = args.settings
    if not text.lstrip().startswith("{"):
        text = Path(text).read_text(encoding="utf-8")
    from editforge.training.trainer import run_finetune

    try:
        summary = run_finetune(
            args.dataset,
            args.base_model,
            json.loads(text),
            args.out,
            chat_template=not args.no_chat_template,
            padding=args.padding,
            validation_path=args.validation,
            run_name=args.run_name,
        )
    except TrainingError as err:
        print(f"editforge.training: error: {err}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        keys = ("steps", "resumed_from_step", "first_loss", "final_loss", "validation", "train_seconds", "layout")
        print(json.dumps({key: summary[key] for key in keys}))
    return 0
