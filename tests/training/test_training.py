"""Fine-tuning: tokenisation and masking, batch layouts, the training loop on a tiny random model,
LoRA, checkpoints and resume after a kill, out-of-memory messages, the launcher and its configs."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: nothing here may use the network

import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerBase,
)

from editforge.edit_format import edit_answer, render_plain, training_messages
from editforge.records import read_jsonl, write_json, write_jsonl
from editforge.training import (
    IGNORE_INDEX,
    TrainingError,
    TrainingOutOfMemory,
    collate,
    collate_packed,
    launch,
    launch_command,
    run_finetune,
    select_config,
    step,
    summed_loss,
    tokenize_example,
    trainer,
)
from editforge.training.checkpoints import STATE_FILE
from editforge.training.data import pack_rows
from editforge.training.launcher import cli_args, config_file, default_configs_dir
from editforge.training.settings import resolve

SETTINGS: dict[str, Any] = {
    "method": "full",
    "max_steps": 8,
    "batch_size": 2,
    "grad_accum": 1,
    "learning_rate": 3e-3,
    "warmup_ratio": 0.25,
    "max_seq_len": 512,
    "gradient_checkpointing": False,
    "seed": 0,
}

PRE = "def area(w, h):\n    return w * h\n"
POST = "def area(w, h):\n    if w < 0 or h < 0:\n        raise ValueError('negative side')\n    return w * h\n"
MESSAGES = training_messages(PRE, "Reject negative sides.", POST)


@pytest.fixture(scope="module")
def tokenizer(embedded_dir: Path) -> PreTrainedTokenizerBase:
    """The embedded model's (SmolLM2) tokenizer: the only real one offline."""
    return AutoTokenizer.from_pretrained(embedded_dir)


@pytest.fixture(scope="module")
def tiny_student_dir(tiny_model_dir: Path) -> Path:
    """A tiny random Llama with that tokenizer (tests/conftest.py), as the base model."""
    return tiny_model_dir


def dataset(path: Path, count: int = 2, extra: list[dict[str, Any]] = ()) -> Path:
    """``count`` samples whose answers differ in length (sample i has 5 i more lines)."""
    records = [
        {
            "id": f"s{i}",
            "style": "lazy",
            "model": "m1",
            "messages": training_messages(PRE, "Reject negative sides.", POST + "# note\n" * (5 * i)),
        }
        for i in range(count)
    ]
    write_jsonl(path, [*records, *extra])
    return path


# ---------------------------------------------------------------- tokenisation and collation


def test_prompt_tokens_are_exactly_the_evaluation_prompt_and_carry_no_loss(tokenizer: PreTrainedTokenizerBase) -> None:
    example = tokenize_example(tokenizer, MESSAGES, 512, chat_template=True)
    prompt = tokenizer.apply_chat_template(MESSAGES[:2], add_generation_prompt=True)["input_ids"]
    n = len(prompt)
    assert example["input_ids"][:n] == prompt
    assert example["labels"][:n] == [IGNORE_INDEX] * n
    assert example["labels"][n:] == example["input_ids"][n:]  # the answer and the EOS are all labelled
    assert example["input_ids"][-1] == tokenizer.eos_token_id
    assert tokenizer.decode(example["input_ids"][n:-1]) == edit_answer(POST)


def test_without_chat_template_the_plain_layout_is_the_prompt(tokenizer: PreTrainedTokenizerBase) -> None:
    example = tokenize_example(tokenizer, MESSAGES, 512, chat_template=False)
    prompt = tokenizer(render_plain(MESSAGES[:2]))["input_ids"]
    assert example["input_ids"][: len(prompt)] == prompt
    assert example["labels"].count(IGNORE_INDEX) == len(prompt)


def test_too_long_sample_is_skipped_and_bad_roles_are_an_error(tokenizer: PreTrainedTokenizerBase) -> None:
    length = len(tokenize_example(tokenizer, MESSAGES, 512, chat_template=True)["input_ids"])
    assert tokenize_example(tokenizer, MESSAGES, length, chat_template=True) is not None
    assert tokenize_example(tokenizer, MESSAGES, length - 1, chat_template=True) is None
    message = "roles ['system', 'user', 'assistant'], got ['user', 'assistant']"
    with pytest.raises(TrainingError, match=re.escape(message)):
        tokenize_example(tokenizer, MESSAGES[1:], 512, chat_template=True)


def test_collate_pads_to_the_longest_and_masks_padding_by_length() -> None:
    eos = pad = 2  # as in the embedded tokenizer, padding uses the EOS id
    short = {"input_ids": [5, 6, eos], "labels": [IGNORE_INDEX, 6, eos]}
    long = {"input_ids": [5, 6, 7, 8, eos], "labels": [IGNORE_INDEX, IGNORE_INDEX, 7, 8, eos]}
    batch = collate([short, long], pad)
    assert batch["input_ids"].tolist() == [[5, 6, eos, pad, pad], [5, 6, 7, 8, eos]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, eos, IGNORE_INDEX, IGNORE_INDEX], long["labels"]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]


# ---------------------------------------------------------------- training


def test_training_lowers_the_loss_and_saves_a_loadable_model(tiny_student_dir: Path, tmp_path: Path) -> None:
    huge = {
        "id": "huge",
        "style": "descriptive",
        "model": "m2",
        "messages": training_messages(PRE * 200, "Reject negative sides.", POST),
    }
    data = dataset(tmp_path / "train.jsonl", extra=[huge])
    (tmp_path / "README.md").write_text("# data card\n")
    summary = run_finetune(data, str(tiny_student_dir), SETTINGS, tmp_path / "out")

    log = list(read_jsonl(tmp_path / "out/training_log.jsonl"))
    assert [entry["step"] for entry in log] == list(range(1, 9))
    assert log[-1]["loss"] < log[0]["loss"] - 0.5  # the same two samples every step
    assert log[0]["lr"] < log[2]["lr"] and log[-1]["lr"] < log[2]["lr"]  # warm-up, then cosine decay
    assert summary["skipped_too_long"] == 1 and summary["trained_samples"] == 2

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert model.config.num_hidden_layers == 2
    assert AutoTokenizer.from_pretrained(tmp_path / "out").eos_token == "<|im_end|>"
    card = (tmp_path / "out/README.md").read_text()
    assert str(tiny_student_dir) in card and "3 samples, 2 trained on" in card and "| learning_rate | 0.003 |" in card
    assert card.startswith(f"---\nbase_model: {json.dumps(str(tiny_student_dir))}\n")
    assert "([data card](../README.md))" in card
    assert not (tmp_path / "checkpoints").exists()  # removed once the model is saved


def test_accumulation_weighs_tokens_like_one_large_batch(tiny_student_dir: Path, tmp_path: Path) -> None:
    data = dataset(tmp_path / "train.jsonl")
    settings = SETTINGS | {"max_steps": 3}
    run_finetune(data, str(tiny_student_dir), settings, tmp_path / "big")
    run_finetune(data, str(tiny_student_dir), settings | {"batch_size": 1, "grad_accum": 2}, tmp_path / "accum")
    big = [e["loss"] for e in read_jsonl(tmp_path / "big/training_log.jsonl")]
    accum = [e["loss"] for e in read_jsonl(tmp_path / "accum/training_log.jsonl")]
    assert accum == pytest.approx(big, abs=1e-4)


def test_epochs_set_the_number_of_steps_and_max_steps_overrides_them(tiny_student_dir: Path, tmp_path: Path) -> None:
    data = dataset(tmp_path / "train.jsonl", count=3)
    settings = {k: v for k, v in SETTINGS.items() if k != "max_steps"} | {"num_epochs": 2}
    summary = run_finetune(data, str(tiny_student_dir), settings, tmp_path / "out")
    assert summary["steps"] == 4  # 2 batches of at most 2 samples, twice
    assert resolve(settings | {"max_steps": 3})["max_steps"] == 3  # as in transformers' TrainingArguments
    summary = run_finetune(data, str(tiny_student_dir), settings | {"max_steps": 1}, tmp_path / "out")
    assert summary["steps"] == 1


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (SETTINGS | {"method": "dpo"}, "unknown training method 'dpo'"),
        (SETTINGS | {"max_seq_len": 4096}, "max_seq_len 4096 is larger than the model's max_position_embeddings 2048"),
        ({k: v for k, v in SETTINGS.items() if k != "max_steps"} | {"num_epochs": 0}, "num_epochs must be a positive"),
        (SETTINGS | {"max_seq_len": 16}, "all 2 samples of"),
        (SETTINGS | {"batch_size": 0}, "batch_size must be a positive integer"),
    ],
)
def test_bad_settings_are_clear_errors(
    tiny_student_dir: Path, tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(TrainingError, match=re.escape(message)):
        run_finetune(dataset(tmp_path / "train.jsonl"), str(tiny_student_dir), settings, tmp_path / "out")


def test_empty_dataset_is_an_error(tiny_student_dir: Path, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "train.jsonl", [])
    with pytest.raises(TrainingError, match="holds no training samples"):
        run_finetune(tmp_path / "train.jsonl", str(tiny_student_dir), SETTINGS, tmp_path / "out")


def test_missing_base_model_names_the_offline_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(TrainingError, match=r"base model 'no-such-org/no-such-model' not found: .*HF_HUB_OFFLINE=1"):
        run_finetune(dataset(tmp_path / "train.jsonl"), "no-such-org/no-such-model", SETTINGS, tmp_path / "out")
    with pytest.raises(TrainingError, match="exists but holds no loadable model"):
        run_finetune(dataset(tmp_path / "train.jsonl"), str(tmp_path), SETTINGS, tmp_path / "out")


def test_saved_log_is_json_lines_with_the_documented_fields(
    tokenizer: PreTrainedTokenizerBase, tiny_student_dir: Path, tmp_path: Path
) -> None:
    data = dataset(tmp_path / "train.jsonl")
    run_finetune(data, str(tiny_student_dir), SETTINGS | {"max_steps": 1}, tmp_path / "out")
    [entry] = [json.loads(line) for line in (tmp_path / "out/training_log.jsonl").read_text().splitlines()]
    # no validation set, and on the CPU no MFU estimate and no accelerator memory
    assert set(entry) == {"step", "loss", "lr", "tokens", "grad_norm", "seconds", "tokens_per_second", "padding_share"}
    lengths = [len(tokenize_example(tokenizer, r["messages"], 512, True)["input_ids"]) for r in read_jsonl(data)]
    assert entry["tokens"] == sum(lengths)  # padding is not counted
    assert entry["tokens_per_second"] == pytest.approx(entry["tokens"] / entry["seconds"], rel=0.01)
    # packed into one row as wide as the longer sample: the shorter one leaves the rest as padding
    assert entry["padding_share"] == pytest.approx(1 - sum(lengths) / (2 * max(lengths)), abs=1e-4)


# ---------------------------------------------------------------- the loss and the batch layouts


def test_prompt_tokens_carry_no_loss(tokenizer: PreTrainedTokenizerBase, tiny_student_dir: Path) -> None:
    """The training loss is the cross-entropy of the answer tokens alone, whatever the prompt's logits say."""
    model = AutoModelForCausalLM.from_pretrained(tiny_student_dir)
    examples = [
        tokenize_example(tokenizer, training_messages(PRE, "Reject negative sides.", POST + "# n\n" * i), 512, True)
        for i in range(2)
    ]
    batch = collate(examples, tokenizer.pad_token_id)
    with torch.no_grad():
        loss = summed_loss(model, batch)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    per_token = F.cross_entropy(
        logits[:, :-1].transpose(1, 2), batch["input_ids"][:, 1:], reduction="none"
    )  # (batch, positions): the loss every next token would have
    answer = batch["labels"][:, 1:] != IGNORE_INDEX
    prompt = (batch["labels"][:, 1:] == IGNORE_INDEX) & (batch["attention_mask"][:, 1:] == 1)
    assert prompt.sum() > answer.sum() / 2  # the prompt is a real share of the tokens
    assert float(loss) == pytest.approx(float(per_token[answer].sum()), rel=1e-5)
    assert float(loss) < float(per_token[answer | prompt].sum()) - 1.0


def test_loss_is_the_same_where_transformers_cannot_mask_logits(
    tokenizer: PreTrainedTokenizerBase, tiny_student_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Older transformers releases (5.17, say) take no mask as logits_to_keep: all logits, then the mask."""
    model = AutoModelForCausalLM.from_pretrained(tiny_student_dir)
    examples = [tokenize_example(tokenizer, training_messages(PRE, "Reject negative sides.", POST), 512, True)] * 2
    batch = collate(examples, tokenizer.pad_token_id)
    with torch.no_grad():
        masked = summed_loss(model, batch)
        monkeypatch.setattr(step, "MASKED_LOGITS", False)
        unmasked = summed_loss(model, batch)
    assert step.MASKED_LOGITS is False and float(unmasked) == pytest.approx(float(masked), rel=1e-6)


def test_pack_rows_is_first_fit_decreasing() -> None:
    assert pack_rows([5, 3, 4, 2], capacity=8) == [[0, 1], [2, 3]]
    assert pack_rows([8, 1], capacity=8) == [[0], [1]]
    with pytest.raises(TrainingError, match="does not fit"):
        pack_rows([9], capacity=8)


def test_packed_rows_do_not_attend_across_samples(tokenizer: PreTrainedTokenizerBase, tiny_student_dir: Path) -> None:
    """SDPA with packed position ids gives every sample the logits it gets alone (a block-diagonal mask)."""
    model = AutoModelForCausalLM.from_pretrained(tiny_student_dir).eval()
    examples = [
        tokenize_example(tokenizer, training_messages(PRE * (i + 1), f"Edit {i}.", POST * (i + 1)), 512, True)
        for i in range(3)
    ]
    lengths = [len(e["input_ids"]) for e in examples]
    packed = collate_packed(examples, tokenizer.pad_token_id, capacity=sum(lengths) + 7)
    assert packed["input_ids"].shape == (1, sum(lengths)) and "attention_mask" not in packed
    with torch.no_grad():
        logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits[0]
        start = 0
        for i in sorted(range(3), key=lambda i: -lengths[i]):  # rows hold samples longest first
            alone = model(input_ids=torch.tensor([examples[i]["input_ids"]]), use_cache=False).logits[0]
            torch.testing.assert_close(logits[start : start + lengths[i]], alone, atol=2e-5, rtol=1e-4)
            assert packed["position_ids"][0, start] == 0 and packed["labels"][0, start] == IGNORE_INDEX
            start += lengths[i]
        # the same row without the position restarts lets later samples see earlier ones
        leaky = model(input_ids=packed["input_ids"], use_cache=False).logits[0]
    first = max(lengths)
    torch.testing.assert_close(leaky[:first], logits[:first])
    assert not torch.allclose(leaky[first:], logits[first:], atol=1e-3)


def test_packed_and_padded_training_give_the_same_losses(tiny_student_dir: Path, tmp_path: Path) -> None:
    data = dataset(tmp_path / "train.jsonl", count=3)
    settings = SETTINGS | {"max_steps": 3, "batch_size": 3}
    packed_settings = settings | {"packing": True, "gradient_checkpointing": True}  # recomputation sees the ids too
    packed = run_finetune(data, str(tiny_student_dir), packed_settings, tmp_path / "packed")
    padded = run_finetune(data, str(tiny_student_dir), settings | {"packing": False}, tmp_path / "padded")
    maxed = run_finetune(data, str(tiny_student_dir), settings, tmp_path / "max", padding="max_length")
    assert (packed["layout"], padded["layout"], maxed["layout"]) == ("packed", "longest", "max_length")
    losses = {
        name: [e["loss"] for e in read_jsonl(tmp_path / name / "training_log.jsonl")]
        for name in ("packed", "padded", "max")
    }
    assert losses["packed"] == pytest.approx(losses["padded"], abs=1e-4)
    assert losses["max"] == pytest.approx(losses["padded"], abs=1e-4)


# ---------------------------------------------------------------- LoRA


def test_lora_trains_and_saves_a_merged_model_that_loads_plainly(tiny_student_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    from peft import PeftModel

    data = dataset(tmp_path / "train.jsonl")
    settings = SETTINGS | {"method": "lora", "learning_rate": 2e-2, "lora": {"r": 4, "alpha": 8, "dropout": 0.0}}
    summary = run_finetune(data, str(tiny_student_dir), settings, tmp_path / "out")

    log = list(read_jsonl(tmp_path / "out/training_log.jsonl"))
    assert log[-1]["loss"] < log[0]["loss"] - 0.5
    base = AutoModelForCausalLM.from_pretrained(tiny_student_dir)
    assert 0 < summary["trainable_parameters"] < sum(p.numel() for p in base.parameters()) / 10
    assert (tmp_path / "out/adapter/adapter_config.json").is_file()
    assert not (tmp_path / "out/adapter_config.json").exists()  # the folder itself is a plain model

    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert type(merged) is type(base)
    ids = torch.tensor([[1, 5, 9, 42, 7]])
    with torch.no_grad():
        untrained = base(ids).logits
        adapted = PeftModel.from_pretrained(base, tmp_path / "out/adapter")  # the base with the adapter beside it
        torch.testing.assert_close(merged(ids).logits, adapted(ids).logits, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(merged(ids).logits, untrained, atol=1e-3)
    assert "LoRA (r 4, alpha 8, dropout 0.0" in (tmp_path / "out/README.md").read_text()


# ---------------------------------------------------------------- checkpoints and resume

KILL_AFTER_CHECKPOINT = """
import os, signal, sys
import editforge.training.checkpoints as checkpoints
finish = checkpoints.finish
def killed(root, step, state, keep):
    if step == {kill_step} and {during_save}:
        os.kill(os.getpid(), signal.SIGKILL)  # inside the save: only a .partial folder exists
    path = finish(root, step, state, keep)
    if step == {kill_step}:
        os.kill(os.getpid(), signal.SIGKILL)  # right after the checkpoint is complete
    return path
checkpoints.finish = killed
from editforge.training.launcher import main
sys.exit(main(sys.argv[1:]))
"""


def _cli(args: list[str], wrapper: str | None = None) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-c", wrapper, *args] if wrapper else [sys.executable, "-m", "editforge.training", *args]
    return subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    ("method", "steps", "kill_step", "during_save"),
    [("full", 4, 2, False), ("lora", 6, 4, True)],
    ids=["full-killed-after-checkpoint-2", "lora-killed-while-saving-checkpoint-4"],
)
def test_a_killed_run_resumes_from_its_last_checkpoint_and_ends_where_an_uninterrupted_one_does(
    tiny_student_dir: Path, tmp_path: Path, method: str, steps: int, kill_step: int, during_save: bool
) -> None:
    data = dataset(tmp_path / "train.jsonl", count=3)
    settings = SETTINGS | {"max_steps": steps, "checkpoint_every": 2, "method": method}
    if method == "lora":  # dropout makes the run depend on the restored RNG state
        settings |= {"learning_rate": 1e-2, "lora": {"r": 4, "alpha": 8, "dropout": 0.1}}
    write_json(tmp_path / "settings.json", settings)
    args = cli_args(data, str(tiny_student_dir), tmp_path / "settings.json", tmp_path / "run/model")

    killed = _cli(args, KILL_AFTER_CHECKPOINT.format(kill_step=kill_step, during_save=during_save))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    checkpoints = tmp_path / "run/checkpoints"
    assert (checkpoints / f"step-{2:06d}" / STATE_FILE).is_file()
    assert (checkpoints / f".partial-step-{kill_step:06d}").is_dir() == during_save
    assert not (tmp_path / "run/model").exists()

    resumed = _cli(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["resumed_from_step"] == 2
    assert not checkpoints.exists()

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same kernels as the subprocesses (OMP_NUM_THREADS=1)
    try:
        run_finetune(data, str(tiny_student_dir), settings, tmp_path / "straight/model")
    finally:
        torch.set_num_threads(torch_threads)

    def losses(folder: Path) -> list[tuple[int, float, float]]:
        return [(e["step"], e["loss"], e["lr"]) for e in read_jsonl(folder / "training_log.jsonl")]

    assert losses(tmp_path / "run/model") == losses(tmp_path / "straight/model")
    # the TensorBoard run goes on where the checkpoint left it: what the killed attempt logged after it is hidden
    events = EventAccumulator(str(tmp_path / "run/model/runs"))
    events.Reload()
    assert [(e.step, round(e.value, 4)) for e in events.Scalars("train/loss")] == [
        (step, round(loss, 4)) for step, loss, _ in losses(tmp_path / "straight/model")
    ]
    ours, theirs = (
        load_file(tmp_path / "run/model/model.safetensors"),
        load_file(tmp_path / "straight/model/model.safetensors"),
    )
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)


def test_stale_and_partial_checkpoints_are_removed_not_resumed(tiny_student_dir: Path, tmp_path: Path) -> None:
    data = dataset(tmp_path / "train.jsonl")
    checkpoints = tmp_path / "checkpoints"
    (checkpoints / ".partial-step-000004").mkdir(parents=True)
    write_json(checkpoints / "step-000002" / STATE_FILE, {"step": 2, "fingerprint": "another run", "log": []})
    (checkpoints / "step-000003").mkdir()  # no state file: incomplete
    summary = run_finetune(data, str(tiny_student_dir), SETTINGS | {"max_steps": 2}, tmp_path / "out")
    assert summary["resumed_from_step"] == 0 and summary["steps"] == 2
    assert not checkpoints.exists()


def test_checkpoints_default_to_once_per_epoch_and_keep_the_newest(
    tiny_student_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved: list[int] = []
    finish = trainer.checkpoints.finish

    def record(root: Path, step: int, state: dict[str, Any], keep: int) -> Path:
        path = finish(root, step, state, keep)
        saved.append(step)
        assert [p.name for p in sorted(root.glob("step-*"))] == [f"step-{step:06d}"]  # keep_checkpoints: 1
        return path

    monkeypatch.setattr(trainer.checkpoints, "finish", record)
    data = dataset(tmp_path / "train.jsonl", count=3)  # 2 micro-batches of 2 per epoch
    settings = {k: v for k, v in SETTINGS.items() if k != "max_steps"} | {"num_epochs": 3}
    run_finetune(data, str(tiny_student_dir), settings, tmp_path / "out")
    assert saved == [2, 4]  # not after the last step: the model itself is saved then


# ---------------------------------------------------------------- running out of memory


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried"),
    ],
    ids=["cuda", "cpu"],
)
def test_running_out_of_memory_names_the_settings_to_lower(
    tiny_student_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def out_of_memory(model: Any, batch: Any) -> None:
        raise error

    monkeypatch.setattr(step, "summed_loss", out_of_memory)
    with pytest.raises(TrainingOutOfMemory) as caught:
        run_finetune(dataset(tmp_path / "train.jsonl"), str(tiny_student_dir), SETTINGS, tmp_path / "out")
    message = str(caught.value)
    assert "ran out of memory training" in message and "at optimizer step 1" in message
    for advice in (
        "lower batch_size (now 2)",
        "set gradient_checkpointing: true",
        "lower max_seq_len (now 512",
        "method: lora",
    ):
        assert advice in message
    assert isinstance(caught.value, TrainingError)


def test_other_runtime_errors_are_not_reported_as_memory(
    tiny_student_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(model: Any, batch: Any) -> None:
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(step, "summed_loss", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_finetune(dataset(tmp_path / "train.jsonl"), str(tiny_student_dir), SETTINGS, tmp_path / "out")


# ---------------------------------------------------------------- launching


def test_accelerate_configs_load_and_match_their_names() -> None:
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    expected = {
        "cpu": (DistributedType.NO, 1, True),
        "single_gpu": (DistributedType.NO, 1, False),
        "fsdp_node": (DistributedType.FSDP, 1, False),
        "multi_node": (DistributedType.FSDP, 2, False),
    }
    assert sorted(p.stem for p in default_configs_dir().glob("*.yaml")) == sorted(expected)
    for name, (kind, machines, cpu) in expected.items():
        config = load_config_from_file(str(config_file(name)))
        assert (config.distributed_type, config.num_machines, config.use_cpu) == (kind, machines, cpu)
        if kind == DistributedType.FSDP:
            assert config.fsdp_config["fsdp_version"] == 2 and config.fsdp_config["fsdp_reshard_after_forward"]


def test_select_config_follows_the_gpu_and_node_counts() -> None:
    assert select_config(resolve({}), cuda=False) == "cpu"
    assert select_config(resolve({}), cuda=True) == "single_gpu"
    assert select_config(resolve({"num_gpus": 8}), cuda=True) == "fsdp_node"
    assert select_config(resolve({"num_gpus": 8, "num_nodes": 2}), cuda=True) == "multi_node"
    assert select_config(resolve({"accelerate_config": "single_gpu", "num_gpus": 8})) == "single_gpu"
    with pytest.raises(TrainingError, match="accelerate_config must be"):
        select_config(resolve({"accelerate_config": "zero3"}))


def test_launch_command_for_one_node_and_for_several_under_slurm() -> None:
    args = ["--dataset", "d.jsonl", "--base-model", "m", "--settings", "s.json", "--out", "o"]
    one = launch_command("accelerate_configs/fsdp_node.yaml", 8, 1, args, env={})
    assert one[1:] == [
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        "accelerate_configs/fsdp_node.yaml",
        "--num_processes",
        "8",
        "--num_machines",
        "1",
        "--module",
        "editforge.training",
        *args,
    ]
    slurm = launch_command("accelerate_configs/multi_node.yaml", 16, 2, args, env={"SLURM_JOB_ID": "7"})
    assert slurm[:4] == ["srun", "--nodes=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    assert '--machine_rank "$SLURM_NODEID"' in slurm[-1] and "--num_processes 16 --num_machines 2" in slurm[-1]
    manual = launch_command("multi_node.yaml", 16, 2, args, env={"MACHINE_RANK": "1", "MAIN_PROCESS_IP": "10.0.0.1"})
    assert manual[manual.index("--machine_rank") + 1] == "1" and "10.0.0.1" in manual
    with pytest.raises(TrainingError, match="needs a SLURM allocation of 2 nodes"):
        launch_command("multi_node.yaml", 16, 2, args, env={})


def test_launch_with_an_explicit_config_runs_accelerate_launch_and_the_module_entry_point(
    tiny_student_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    data = dataset(tmp_path / "train.jsonl")
    settings = SETTINGS | {"max_steps": 2, "accelerate_config": "cpu"}
    summary = launch(data, str(tiny_student_dir), settings, tmp_path / "run/model")
    assert summary["steps"] == 2 and summary["settings"]["accelerate_config"] == "cpu"
    assert json.loads((tmp_path / "run/launch_settings.json").read_text()) == settings
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "run/model").config.num_hidden_layers == 2

    failing = settings | {"max_seq_len": 4096}
    with pytest.raises(TrainingError, match="the fine-tuning processes failed"):
        launch(data, str(tiny_student_dir), failing, tmp_path / "again/model")
    write_json(tmp_path / "failing.json", failing)
    direct = _cli(cli_args(data, str(tiny_student_dir), tmp_path / "failing.json", tmp_path / "again/model"))
    assert direct.returncode == 1 and "max_seq_len 4096 is larger" in direct.stderr


def test_two_processes_train_like_one_with_twice_the_accumulation(tiny_student_dir: Path, tmp_path: Path) -> None:
    """DDP on CPU (gloo): each process takes its share of a step's micro-batches; losses, validation losses
    (three batches of held-out samples: one process runs a forward pass it does not count) and weights agree."""
    data = dataset(tmp_path / "train.jsonl", count=5)
    held_out = dataset(tmp_path / "validation.jsonl", count=5)
    settings = SETTINGS | {"max_steps": 3, "grad_accum": 1, "checkpoint_every": 2, "eval_every": 2}
    write_json(tmp_path / "settings.json", settings)
    env = os.environ | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "editforge.training",
        *cli_args(data, str(tiny_student_dir), tmp_path / "settings.json", tmp_path / "two", validation=held_out),
    ]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_finetune(
            data, str(tiny_student_dir), settings | {"grad_accum": 2}, tmp_path / "one", validation_path=held_out
        )
    finally:
        torch.set_num_threads(torch_threads)
    two = json.loads((tmp_path / "two/training_summary.json").read_text())
    assert (two["processes"], two["effective_batch"]) == (2, 4)
    logs = {name: list(read_jsonl(tmp_path / name / "training_log.jsonl")) for name in ("one", "two")}
    assert [e["tokens"] for e in logs["two"]] == [e["tokens"] for e in logs["one"]]
    assert [e["loss"] for e in logs["two"]] == pytest.approx([e["loss"] for e in logs["one"]], abs=1e-5)
    validation = {name: [(e["step"], e["val_loss"]) for e in log if "val_loss" in e] for name, log in logs.items()}
    assert [s for s, _ in validation["two"]] == [2, 3]
    assert [v for _, v in validation["two"]] == pytest.approx([v for _, v in validation["one"]], abs=1e-5)
    ours, theirs = load_file(tmp_path / "two/model.safetensors"), load_file(tmp_path / "one/model.safetensors")
    assert all(torch.allclose(ours[key], theirs[key], atol=1e-6) for key in ours)


def test_bf16_autocasts_on_request_and_auto_is_fp32_on_cpu(tiny_student_dir: Path, tmp_path: Path) -> None:
    data = dataset(tmp_path / "train.jsonl")
    forced = run_finetune(data, str(tiny_student_dir), SETTINGS | {"max_steps": 2, "bf16": True}, tmp_path / "bf16")
    assert forced["mixed_precision"] == "bf16"
    auto = run_finetune(data, str(tiny_student_dir), SETTINGS | {"max_steps": 2}, tmp_path / "auto")
    assert auto["mixed_precision"] == ("bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no")
