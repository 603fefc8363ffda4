"""Fine-tuning throughput of the batch layouts on the embedded SmolLM2-135M (CPU).

Each layout trains the same micro-batches (same samples, same seed) for a few
optimizer steps through ``editforge.training.run_finetune``, each in its own
subprocess so that its peak memory (max RSS) is its own:

- ``max_length``: every micro-batch padded to ``max_seq_len`` (the naive recipe),
- ``longest``: dynamic padding to the longest sample of the micro-batch,
- ``packed``: samples end to end in rows of at most ``max_seq_len`` tokens,
  per-sample position ids, no cross-sample attention.

Reported per layout, over the steps after each run's first (warm-up): the
median of real tokens per second per step (padding not counted), the median
seconds per step, the overall rate (all those steps' real tokens over their
summed time: steps differ in length, and the overall rate weighs them by it), and
the peak RSS. Target: ``longest`` or ``packed`` at least 1.5x the tokens/s of
``max_length``. The machine is shared: the layouts run in ``--rounds`` rounds,
in reverse order every other round (so drift in the load hits them alike), and
the load average before and after the runs is printed.

The training set is ``--dataset`` (a chat-format ``train.jsonl``) or, by default,
edits of functions of this Python's standard library (5-40 lines; the answer
adds a comment line), whose lengths spread like the demo's snippets.

    python bench/finetune.py [--steps 4] [--rounds 2] [--batch-size 4] [--max-seq-len 1024] [--threads 1]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

LAYOUTS = ("max_length", "longest", "packed")


def stdlib_dataset(path: Path, count: int, seed: int) -> Path:
    """``count`` edit samples made from standard-library functions of 5-40 lines."""
    from editforge.edit_format import training_messages
    from editforge.records import write_jsonl

    functions = []
    for file in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        try:
            source = file.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and 5 <= node.end_lineno - node.lineno + 1 <= 40:
                functions.append(ast.get_source_segment(source, node))
    rng = random.Random(seed)
    chosen = rng.sample([f for f in functions if f], count)
    records = []
    for index, code in enumerate(chosen):
        lines = code.splitlines()
        after = "\n".join([lines[0], "    # Checked by the caller.", *lines[1:]])
        records.append(
            {
                "id": f"bench-{index}",
                "style": "lazy",
                "model": "stdlib",
                "messages": training_messages(code, "Add a comment saying the input is checked by the caller.", after),
            }
        )
    write_jsonl(path, records)
    return path


def worker(args: argparse.Namespace) -> None:
    """One layout's run; prints a JSON line with its steps and peak RSS."""
    import torch

    from editforge.backend.embedded import embedded_model_path
    from editforge.records import read_jsonl
    from editforge.training import run_finetune

    torch.set_num_threads(args.threads)
    settings = {
        "method": args.method,
        "max_steps": args.steps,
        "batch_size": args.batch_size,
        "grad_accum": 1,
        "learning_rate": 2e-4 if args.method == "lora" else 5e-5,
        "warmup_ratio": 0.1,
        "max_seq_len": args.max_seq_len,
        "gradient_checkpointing": args.gradient_checkpointing,
        "checkpoint_every": 0,
        "seed": 0,
        "bf16": args.bf16,
    }
    out = Path(args.out)
    summary = run_finetune(args.dataset, str(embedded_model_path()), settings, out / "model", padding=args.worker)
    log = list(read_jsonl(out / "model/training_log.jsonl"))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"log": log, "peak_rss_mb": round(peak_mb), "trained_samples": summary["trained_samples"]}))


def run_layout(layout: str, args: argparse.Namespace, dataset: Path, scratch: Path) -> dict[str, Any]:
    """One subprocess run of ``layout``: its log, peak RSS and the load average around it."""
    command = [
        sys.executable, __file__, "--worker", layout, "--dataset", str(dataset), "--out", str(scratch / layout),
        "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--max-seq-len", str(args.max_seq_len),
        "--threads", str(args.threads), "--method", args.method, "--bf16", json.dumps(args.bf16),
        *(["--gradient-checkpointing"] if args.gradient_checkpointing else []),
    ]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    load_before = os.getloadavg()[0]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    load_after = os.getloadavg()[0]
    if done.returncode != 0:
        raise SystemExit(f"{layout} failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result | {"layout": layout, "load": (round(load_before, 2), round(load_after, 2))}


def summarise(layout: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over every run's steps after its first (warm-up) step."""
    steady = [entry for run in runs for entry in run["log"][1:]] or [e for run in runs for e in run["log"]]
    return {
        "layout": layout,
        "tokens_per_s": statistics.median(e["tokens"] / e["seconds"] for e in steady),
        "overall_tokens_per_s": sum(e["tokens"] for e in steady) / sum(e["seconds"] for e in steady),
        "s_per_step": statistics.median(e["seconds"] for e in steady),
        "first_step_s": statistics.median(run["log"][0]["seconds"] for run in runs),
        "tokens_per_step": statistics.median(e["tokens"] for run in runs for e in run["log"]),
        "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
        "loads": [run["load"] for run in runs],
        "losses": runs[0]["log"] and [e["loss"] for e in runs[0]["log"]],
        "runs": runs,
    }


def table(results: list[dict[str, Any]]) -> str:
    baseline = next((r for r in results if r["layout"] == "max_length"), None)
    lines = [
        (
            "| layout | real tokens/step | tokens/s, median | speed-up | tokens/s, overall | speed-up | s/step, median "
            "| first step s | peak RSS MB | load (1 min) before/after each run |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        median_up = f"{r['tokens_per_s'] / baseline['tokens_per_s']:.2f}x" if baseline else "-"
        overall_up = f"{r['overall_tokens_per_s'] / baseline['overall_tokens_per_s']:.2f}x" if baseline else "-"
        loads = ", ".join(f"{before}/{after}" for before, after in r["loads"])
        lines.append(
            f"| {r['layout']} | {r['tokens_per_step']:.0f} | {r['tokens_per_s']:.0f} | {median_up} | "
            f"{r['overall_tokens_per_s']:.0f} | {overall_up} | {r['s_per_step']:.2f} | {r['first_step_s']:.2f} | "
            f"{r['peak_rss_mb']} | {loads} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per run (the first is warm-up)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each layout, interleaved")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-seq-len", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 holds up best on a shared machine)")
    parser.add_argument("--method", choices=["full", "lora"], default="full")
    parser.add_argument("--bf16", type=json.loads, default=False, help="false (default) or true: CPU bf16 autocast")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations (off by default)")
    parser.add_argument("--dataset", type=Path, help="a chat-format train.jsonl (default: standard-library edits)")
    parser.add_argument("--samples", type=int, default=64, help="size of the default dataset")
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--worker", choices=LAYOUTS, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as scratch:
        dataset = args.dataset or stdlib_dataset(Path(scratch) / "train.jsonl", args.samples, seed=0)
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()}; {args.method}, batch {args.batch_size}, "
              f"max_seq_len {args.max_seq_len}, {args.steps} steps x {args.rounds} rounds, {args.threads} torch "
              f"thread(s), bf16 {args.bf16}, gradient checkpointing {args.gradient_checkpointing}")
        layouts = args.layouts.split(",")
        runs: dict[str, list[dict[str, Any]]] = {layout: [] for layout in layouts}
        for round_index in range(args.rounds):
            for layout in layouts if round_index % 2 == 0 else layouts[::-1]:
                runs[layout].append(run_layout(layout, args, dataset, Path(scratch)))
                print(f"round {round_index + 1}: {layout} done, load {runs[layout][-1]['load']}", flush=True)
    results = [summarise(layout, runs[layout]) for layout in layouts]
    print()
    print(table(results))
    losses = {r["layout"]: r["losses"] for r in results}
    print(f"\nlosses per step (the same samples, so they should agree): {json.dumps(losses)}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
