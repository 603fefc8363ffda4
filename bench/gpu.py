"""The GPU paths of the GPU rules, run and measured on one CUDA device.

1. In-process generation (``TransformersBackend``, bf16, the rules eval_generate
   and synthesize_round1/2 with a transformers model): new tokens per second for
   a few batch sizes, and whether a batch gives the same text twice.
2. Fine-tuning (``run_finetune``, the rule finetune on one GPU, bf16): real
   tokens per second (median over the steps after the first) and peak GPU memory
   for the padded and packed layouts, full and LoRA.
3. The trained folder loads and generates on the GPU (what eval_generate does
   with a student).

The model is ``--model`` (a transformers folder; default the embedded
SmolLM2-135M-Instruct). ``--random-init`` keeps its config and tokenizer but
draws new weights, for machines the weights cannot travel to: the speeds are the
architecture's, the texts are noise.

    python bench/gpu.py [--model DIR] [--random-init] [--steps 30] [--max-new-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from finetune import stdlib_dataset  # noqa: E402  (the CPU benchmark's data)

from editforge.backend import Request, Sampling, TransformersBackend, TransformersSettings  # noqa: E402
from editforge.records import read_jsonl  # noqa: E402
from editforge.training import run_finetune  # noqa: E402


def materialise(model: Path, random_init: bool, scratch: Path) -> Path:
    """``model`` itself, or a copy of its config and tokenizer with fresh weights."""
    if not random_init:
        return model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    fresh = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model), dtype=torch.bfloat16)
    folder = scratch / "random-init"
    fresh.save_pretrained(folder)
    AutoTokenizer.from_pretrained(model).save_pretrained(folder)
    return folder


def prompts(count: int, max_new_tokens: int) -> list[Request]:
    sampling = Sampling(temperature=0.2, top_p=0.95, max_tokens=max_new_tokens)
    return [
        Request(
            messages=({"role": "user", "content": f"Write a Python function number {i} that sums a list."},),
            sampling=sampling,
        )
        for i in range(count)
    ]


def generation(model: Path, batch_sizes: list[int], max_new_tokens: int, device: str) -> list[dict[str, Any]]:
    rows = []
    for batch_size in batch_sizes:
        settings = TransformersSettings(model=str(model), dtype="bfloat16", device=device, batch_size=batch_size)
        requests = prompts(max(8, 2 * batch_size), max_new_tokens)
        with TransformersBackend(f"bench-b{batch_size}", settings, None, None) as backend:
            backend.generate(requests[:batch_size])  # warm-up: load, kernels
            before = backend.usage.completion_tokens
            start = time.perf_counter()
            first = backend.generate(requests)
            seconds = time.perf_counter() - start
            tokens = backend.usage.completion_tokens - before
            again = backend.generate(requests[:batch_size])
        same = [c[0].text for c in first[:batch_size]] == [c[0].text for c in again]
        rows.append({"batch_size": batch_size, "requests": len(requests), "new_tokens": tokens,
                     "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds), "repeatable": same})
        print(json.dumps({"generation": rows[-1]}), flush=True)
    return rows


def training(model: Path, dataset: Path, scratch: Path, steps: int) -> list[dict[str, Any]]:
    rows = []
    for method, padding in (("full", "longest"), ("full", "auto"), ("lora", "auto")):
        settings = {
            "method": method, "max_steps": steps, "batch_size": 16, "grad_accum": 1,
            "learning_rate": 2e-4 if method == "lora" else 5e-5, "warmup_ratio": 0.1, "max_seq_len": 1024,
            "gradient_checkpointing": False, "checkpoint_every": 0, "seed": 0, "bf16": True, "packing": True,
        }
        out = scratch / f"{method}-{padding}"
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        summary = run_finetune(dataset, str(model), settings, out / "model", padding=padding)
        wall = time.perf_counter() - start
        log = list(read_jsonl(out / "model/training_log.jsonl"))
        steady = log[1:] or log
        rows.append({
            "method": method, "layout": "packed" if padding == "auto" else "padded (longest)",
            "steps": len(log), "tokens_per_s": round(statistics.median(e["tokens"] / e["seconds"] for e in steady)),
            "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None,
            "wall_s": round(wall, 1),
            "first_loss": round(log[0]["loss"], 3), "last_loss": round(log[-1]["loss"], 3),
            "trained_samples": summary["trained_samples"], "folder": str(out / "model"),
        })
        print(json.dumps({"training": rows[-1]}), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a transformers folder (default: the embedded model)")
    parser.add_argument("--random-init", action="store_true", help="fresh weights for the model's architecture")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--samples", type=int, default=512, help="size of the training set")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-sizes", default="1,16,64")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cpu: a slow check of the script")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark checks the GPU paths (--device cpu to try it here)")
    if args.model is None:
        from editforge.backend.embedded import embedded_model_path

        args.model = embedded_model_path()
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        scratch = Path(tmp)
        model = materialise(args.model, args.random_init, scratch)
        gen = generation(model, [int(b) for b in args.batch_sizes.split(",")], args.max_new_tokens, args.device)
        dataset = stdlib_dataset(scratch / "train.jsonl", args.samples, seed=0)
        train = training(model, dataset, scratch, args.steps)
        trained = TransformersSettings(model=train[1]["folder"], dtype="bfloat16", device=args.device, batch_size=8)
        with TransformersBackend("student", trained, None, None) as backend:
            answers = backend.generate(prompts(8, 32))
        round_trip = {"answers": sum(1 for a in answers if a[0].error is None), "of": 8}
        print(json.dumps({"trained_model_generates": round_trip}), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"generation": gen, "training": train, "round_trip": round_trip}, indent=1))


if __name__ == "__main__":
    main()
