"""The GPU paths of the GPU rules, run and measured on one CUDA device.

1. In-process generation (``TransformersBackend``, bf16, the rules eval_generate
   and synthesize_round1/2 with a transformers model): new tokens per second for
   a few batch sizes, and whether a batch gives the same text twice.
2. Fine-tuning (``run_finetune``, the rule finetune on one GPU, bf16): tokens per
   second (median over the steps after the first), the MFU estimate (model FLOPs
   over the device's dense bf16 peak, as the trainer logs it) and peak GPU memory,
   for the packed layout full and LoRA, and the padded layout full for comparison.
3. The trained folder loads and generates on the GPU (what eval_generate does
   with a student).

The model is ``--model`` (a transformers folder; default the embedded
SmolLM2-135M-Instruct). ``--random-init`` keeps its config and tokenizer but
draws new weights, for machines the weights cannot travel to: the speeds are the
architecture's, the texts are noise. ``--arch`` draws random weights for a larger
architecture instead (the model's tokenizer, the named model's shapes): the MFU of a
1-7B model, where the weights cannot be downloaded.

    python bench/gpu.py [--model DIR] [--random-init | --arch qwen2.5-coder-1.5b] [--steps 30]
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
from editforge.training import TrainingOutOfMemory, run_finetune  # noqa: E402

# Shapes of public 1-7B code models (their config.json), for random weights of that size.
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "qwen2.5-coder-1.5b": {"model_type": "qwen2", "hidden_size": 1536, "intermediate_size": 8960,
                           "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
                           "vocab_size": 151936, "tie_word_embeddings": True},
    "qwen2.5-coder-3b": {"model_type": "qwen2", "hidden_size": 2048, "intermediate_size": 11008,
                         "num_hidden_layers": 36, "num_attention_heads": 16, "num_key_value_heads": 2,
                         "vocab_size": 151936, "tie_word_embeddings": True},
    "qwen2.5-coder-7b": {"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944,
                         "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
                         "vocab_size": 152064, "tie_word_embeddings": False},
    "llama-3.2-1b": {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192,
                     "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
                     "vocab_size": 128256, "tie_word_embeddings": True, "head_dim": 64},
}


def materialise(model: Path, random_init: bool, scratch: Path, arch: str | None = None) -> Path:
    """``model`` itself, or a copy of its tokenizer with fresh weights of its own or ``arch``'s shapes."""
    if not random_init and arch is None:
        return model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(model)
    if arch is not None:
        tokenizer = AutoTokenizer.from_pretrained(model)
        shape = dict(ARCHITECTURES[arch])
        config = AutoConfig.for_model(
            shape.pop("model_type"), **shape, max_position_embeddings=4096, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        )
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
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


def training(model: Path, dataset: Path, scratch: Path, steps: int, batch_size: int) -> list[dict[str, Any]]:
    rows = []
    for method, padding in (("full", "auto"), ("lora", "auto"), ("full", "longest")):
        settings = {
            "method": method, "max_steps": steps, "batch_size": batch_size, "grad_accum": 1,
            "learning_rate": 2e-4 if method == "lora" else 5e-5, "warmup_ratio": 0.1, "max_seq_len": 1024,
            "gradient_checkpointing": True, "checkpoint_every": 0, "seed": 0, "bf16": True, "packing": True,
            "report_to": "none",
        }
        out = scratch / f"{method}-{padding}"
        layout = "packed" if padding == "auto" else "padded (longest)"
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        try:
            summary = run_finetune(dataset, str(model), settings, out / "model", padding=padding)
        except TrainingOutOfMemory as err:  # a full fine-tune of 7B needs more than one GPU's memory
            rows.append({"method": method, "layout": layout, "error": str(err).split(";")[0]})
            print(json.dumps({"training": rows[-1]}), flush=True)
            continue
        wall = time.perf_counter() - start
        log = list(read_jsonl(out / "model/training_log.jsonl"))
        figures = summary["throughput"]
        rows.append({
            "method": method, "layout": layout, "steps": len(log),
            "tokens_per_s": figures["tokens_per_second"], "mfu": figures["mfu"],
            "peak_tflops": figures["peak_tflops"], "device": figures["device"],
            "padding_share": round(statistics.median(e["padding_share"] for e in log), 3),
            "peak_gpu_gib": figures["memory_gib"], "wall_s": round(wall, 1),
            "first_loss": round(log[0]["loss"], 3), "last_loss": round(log[-1]["loss"], 3),
            "trained_samples": summary["trained_samples"], "folder": str(out / "model"),
        })
        print(json.dumps({"training": rows[-1]}), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a transformers folder (default: the embedded model)")
    parser.add_argument("--random-init", action="store_true", help="fresh weights for the model's architecture")
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), help="fresh weights of this model's shapes")
    parser.add_argument("--train-batch-size", type=int, default=16, help="sequences per training micro-batch")
    parser.add_argument("--skip-generation", action="store_true", help="only the training paths")
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
        model = materialise(args.model, args.random_init, scratch, args.arch)
        batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
        gen = [] if args.skip_generation else generation(model, batch_sizes, args.max_new_tokens, args.device)
        dataset = stdlib_dataset(scratch / "train.jsonl", args.samples, seed=0)
        train = training(model, dataset, scratch, args.steps, args.train_batch_size)
        trained_folder = next((row["folder"] for row in train if "folder" in row), None)
        round_trip = None
        if trained_folder and not args.skip_generation:
            trained = TransformersSettings(model=trained_folder, dtype="bfloat16", device=args.device, batch_size=8)
            with TransformersBackend("student", trained, None, None) as backend:
                answers = backend.generate(prompts(8, 32))
            round_trip = {"answers": sum(1 for a in answers if a[0].error is None), "of": 8}
            print(json.dumps({"trained_model_generates": round_trip}), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"generation": gen, "training": train, "round_trip": round_trip}, indent=1))


if __name__ == "__main__":
    main()
