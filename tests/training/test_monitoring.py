"""Watching a fine-tune: the trackers (TensorBoard read back, W&B offline), the validation loss, the
per-step throughput and MFU estimate, and divergence stopping the run with a resumable checkpoint."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: nothing here may use the network

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import AutoModelForCausalLM

from editforge import config as efconfig
from editforge import monitoring
from editforge.edit_format import training_messages
from editforge.records import read_jsonl, write_jsonl
from editforge.training import TrainingDiverged, TrainingError, run_finetune, step, throughput
from editforge.training.step import DivergenceGuard
from editforge.training.tracking import flatten, run_config
from helpers import REPO

SETTINGS: dict[str, Any] = {
    "method": "full",
    "max_steps": 5,
    "batch_size": 2,
    "grad_accum": 1,
    "learning_rate": 3e-3,
    "warmup_ratio": 0.2,
    "max_seq_len": 512,
    "gradient_checkpointing": False,
    "seed": 0,
    "checkpoint_every": 0,
}
PRE = "def area(w, h):\n    return w * h\n"
POST = "def area(w, h):\n    if w < 0 or h < 0:\n        raise ValueError('negative side')\n    return w * h\n"


def samples(path: Path, count: int, first: int = 0) -> Path:
    write_jsonl(
        path,
        [
            {
                "id": f"t{i}:lazy",
                "triplet_id": f"t{i}",
                "style": "lazy",
                "model": "m1",
                "messages": training_messages(PRE, "Reject negative sides.", POST + "# note\n" * (3 * i)),
            }
            for i in range(first, first + count)
        ],
    )
    return path


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_the_tensorboard_run_reads_back_with_loss_validation_loss_and_throughput(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    train, held_out = samples(tmp_path / "train.jsonl", 4), samples(tmp_path / "validation.jsonl", 2, first=10)
    settings = SETTINGS | {"eval_every": 2, "report_to": "tensorboard"}
    out = tmp_path / "student/model"
    summary = run_finetune(train, str(tiny_model_dir), settings, out, validation_path=held_out, run_name="demo/s")
    log = list(read_jsonl(out / "training_log.jsonl"))
    assert [e["step"] for e in log if "val_loss" in e] == [2, 4, 5]  # every 2 steps and at the end
    assert all("mfu" not in e and "memory_gib" not in e for e in log)  # on the CPU: left out, not guessed

    curves = scalars(out / "runs")  # copied into the model folder, where the Hub shows it
    assert curves["train/loss"] == [(e["step"], pytest.approx(e["loss"], rel=1e-5)) for e in log]
    assert curves["eval/loss"] == [(e["step"], pytest.approx(e["val_loss"], rel=1e-5)) for e in log if "val_loss" in e]
    assert [s for s, _ in curves["train/tokens_per_second"]] == [1, 2, 3, 4, 5]
    assert {"train/learning_rate", "train/grad_norm", "train/padding_share"} <= set(curves)
    assert scalars(tmp_path / "student/runs") == curves  # the live run, beside the checkpoints

    validation = summary["validation"]
    assert (validation["samples"], validation["every"], validation["final_loss"]) == (2, 2, log[-1]["val_loss"])
    best = min((e["val_loss"], e["step"]) for e in log if "val_loss" in e)
    assert (validation["best_loss"], validation["best_step"]) == best
    assert summary["run_name"] == "demo/s" and summary["trackers"] == ["tensorboard"]
    assert summary["throughput"]["mfu"] is None and summary["throughput"]["device"] == "cpu"

    # The run's config: the settings and the dataset, flat, as TensorBoard's hparams take them.
    [hparams] = (tmp_path / "student/runs").glob("*/hparams.yml")
    config = yaml.safe_load(hparams.read_text())
    assert config["settings.learning_rate"] == 3e-3 and config["settings.run_name"] == "demo/s"
    assert config["dataset.rows"] == 4 and len(config["dataset.sha256"]) == 64
    assert config["validation.samples"] == 2
    card = (out / "README.md").read_text()
    assert "validation loss" in card and str(validation["final_loss"]) in card


def test_without_held_out_samples_there_is_no_validation_loss(tiny_model_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "validation.jsonl"
    empty.write_text("")
    summary = run_finetune(
        samples(tmp_path / "train.jsonl", 2), str(tiny_model_dir), SETTINGS, tmp_path / "m/model", validation_path=empty
    )
    assert summary["validation"] is None
    assert "eval/loss" not in scalars(tmp_path / "m/model/runs")
    assert "no samples were held out" in (tmp_path / "m/model/README.md").read_text()


def test_the_mfu_estimate_is_the_model_flops_over_the_time_and_the_given_peak(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    train = samples(tmp_path / "train.jsonl", 2)
    summary = run_finetune(train, str(tiny_model_dir), SETTINGS | {"peak_tflops": 0.5}, tmp_path / "m/model")
    log = list(read_jsonl(tmp_path / "m/model/training_log.jsonl"))
    shape = throughput.model_shape(AutoModelForCausalLM.from_pretrained(tiny_model_dir), lora=False)
    config = json.loads((tiny_model_dir / "config.json").read_text())
    embedding = config["vocab_size"] * config["hidden_size"]  # tied: the output projection counts once
    assert shape.parameters == sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_model_dir).parameters())
    assert shape.parameters > embedding and (shape.layers, shape.hidden, shape.weight_flops) == (2, 64, 6)
    # each step trains on both samples (batch 2): T (6 N + 12 L d T) per sample of T tokens
    lengths = [t for t in _lengths(tiny_model_dir, train)]
    flops = sum(t * (6 * shape.parameters + 12 * 2 * 64 * t) for t in lengths)
    for entry in log:
        assert entry["mfu"] == pytest.approx(flops / entry["seconds"] / 0.5e12, rel=0.02, abs=1e-4)
    assert summary["throughput"]["peak_tflops"] == 0.5 and summary["throughput"]["mfu"] is not None


def _lengths(model_dir: Path, train: Path) -> list[int]:
    from transformers import AutoTokenizer

    from editforge.training import tokenize_example

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return [len(tokenize_example(tokenizer, r["messages"], 512, True)["input_ids"]) for r in read_jsonl(train)]


def test_flops_and_peaks_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    shape = throughput.ModelShape(parameters=1000, layers=2, hidden=8, weight_flops=4)
    assert throughput.step_flops(shape, [3, 5]) == 3 * (4000 + 12 * 2 * 8 * 3) + 5 * (4000 + 12 * 2 * 8 * 5)
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert throughput.peak_tflops(cpu, None) is None and throughput.peak_tflops(cpu, 2.0) == 2.0
    for name, peak in (
        ("NVIDIA H100 80GB HBM3", 989.4),
        ("NVIDIA H100 PCIe", 756.5),
        ("NVIDIA H200", 989.4),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L40S", 362.1),
        ("NVIDIA L4", 121.0),
        ("Some Future GPU", None),
    ):
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None, name=name: name)
        assert throughput.peak_tflops(gpu, None) == peak, name


def test_the_run_config_is_flat_and_scalar() -> None:
    config = run_config(
        {"lr": 1e-4, "lora": {"r": 16, "target_modules": ["q", "v"]}, "max_steps": None}, {"rows": 3}, None
    )
    assert config == {
        "settings.lr": 1e-4,
        "settings.lora.r": 16,
        "settings.lora.target_modules": '["q", "v"]',
        "settings.max_steps": "null",
        "dataset.rows": 3,
    }
    assert flatten({"a": {"b": {"c": True}}}) == {"a.b.c": True}


def test_wandb_logs_offline_under_the_run_name_and_no_key_is_written(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "wandb-key-that-must-not-leak-0123456789"
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_API_KEY", secret)
    monkeypatch.setenv("WANDB_SILENT", "true")
    held_out = samples(tmp_path / "validation.jsonl", 1, first=7)
    settings = SETTINGS | {"report_to": ["tensorboard", "wandb"], "project": "editforge-test", "max_steps": 2}
    out = tmp_path / "cell/model"
    train = samples(tmp_path / "train.jsonl", 2)
    run_finetune(train, str(tiny_model_dir), settings, out, validation_path=held_out, run_name="exp/v/s/s1")
    run_id = (tmp_path / "cell/runs/run_id").read_text()
    [offline] = (tmp_path / "cell/runs/wandb").glob(f"offline-run-*-{run_id}")
    # an offline run is one file of protobuf records for `wandb sync`: its strings are there as written
    records = (offline / f"run-{run_id}.wandb").read_bytes()
    for text in ("exp/v/s/s1", "editforge-test", "settings.learning_rate", "dataset.sha256", "eval/loss"):
        assert text.encode() in records, text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_a_tracker_that_cannot_start_stops_before_training(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = samples(tmp_path / "train.jsonl", 2)
    monkeypatch.setattr(monitoring, "installed", lambda module: module != "mlflow")
    with pytest.raises(TrainingError, match="report_to mlflow: the mlflow package is missing; pip install mlflow"):
        run_finetune(train, str(tiny_model_dir), SETTINGS | {"report_to": ["tensorboard", "mlflow"]}, tmp_path / "a/m")
    for key in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    with pytest.raises(TrainingError, match="no W&B key .* set WANDB_MODE=offline"):
        run_finetune(train, str(tiny_model_dir), SETTINGS | {"report_to": "wandb"}, tmp_path / "b/m")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(TrainingError, match="report_to names unknown trackers"):
        run_finetune(train, str(tiny_model_dir), SETTINGS | {"report_to": ["tensorbored"]}, tmp_path / "c/m")

    # The workflow stops at start, naming the student's key; a dry run warns instead.
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["training"]["students"]["smollm2-edit"]["report_to"] = ["wandb"]
    with pytest.raises(efconfig.ConfigError, match=r"training\.students\.smollm2-edit\.report_to: wandb: no W&B key"):
        efconfig.validate(cfg)
    assert efconfig.validate(cfg, check_env=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert efconfig.validate(cfg)


def _nan_at(step_number: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loss of optimizer step ``step_number`` (one micro-batch a step) turns NaN."""
    real, calls = step.summed_loss, {"n": 0}

    def loss(model: Any, batch: Any) -> torch.Tensor:
        calls["n"] += 1
        value = real(model, batch)
        return value * float("nan") if calls["n"] == step_number else value

    monkeypatch.setattr(step, "summed_loss", loss)


def test_a_nan_loss_stops_the_run_naming_the_step_and_a_rerun_resumes_from_the_last_good_checkpoint(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = samples(tmp_path / "train.jsonl", 2)
    settings = SETTINGS | {"max_steps": 6, "checkpoint_every": 2, "keep_checkpoints": 3}
    _nan_at(5, monkeypatch)
    with pytest.raises(TrainingDiverged) as caught:
        run_finetune(train, str(tiny_model_dir), settings, tmp_path / "run/model")
    message = str(caught.value)
    assert message.startswith("training diverged at step 5: loss nan, learning rate ")
    assert "last finite loss" in message and "at step 4" in message
    assert "rerunning resumes from the checkpoint of step 4" in message and "tensorboard --logdir" in message
    assert "\n" not in message
    assert (tmp_path / "run/checkpoints/step-000004/trainer_state.json").is_file()
    assert not (tmp_path / "run/model").exists()

    monkeypatch.undo()
    summary = run_finetune(train, str(tiny_model_dir), settings, tmp_path / "run/model")
    assert summary["resumed_from_step"] == 4
    # each step once; TensorBoard orders event files by name, which within one second and one process
    # need not follow the order they were written in
    assert sorted(s for s, _ in scalars(tmp_path / "run/model/runs")["train/loss"]) == [1, 2, 3, 4, 5, 6]


def test_the_guard_stops_a_lasting_explosion_not_one_hard_batch() -> None:
    guard = DivergenceGuard(4.0, [], "the log")
    for number, loss in enumerate([1.0, 0.8, 0.6, 0.5, 4.5, 0.5, 0.01, 0.005, 0.9], start=1):
        guard.check(number, loss, 1.0, 1e-4)  # one spike, then a memorised set meeting a harder batch
    guard.check(10, 4.1, 1.0, 1e-4)
    guard.check(11, 5.0, 1.0, 1e-4)
    with pytest.raises(TrainingDiverged, match=r"step 12: loss 9, above 4 x 1 for 3 steps .* at step 11"):
        guard.check(12, 9.0, 1.0, 1e-4)
    with pytest.raises(TrainingDiverged, match=r"step 2: gradient norm inf \(loss 0\.5\)"):
        DivergenceGuard(None, [0.6], "the log").check(2, 0.5, float("inf"), 1e-4)
    DivergenceGuard(None, [0.6], "the log").check(2, 1e6, 1.0, 1e-4)  # no spike check without a factor
