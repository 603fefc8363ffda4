"""What watching a fine-tune costs, on the embedded SmolLM2-135M (CPU).

Three arms train the same samples with the same seed through ``run_finetune``:

- ``none``: no tracker, no validation set,
- ``tensorboard``: the default tracker (a scalar per key and step, flushed each step),
- ``tensorboard+validation``: and a validation loss on ``--validation`` held-out samples every
  ``--eval-every`` steps and at the end.

Reported per arm, over ``--rounds`` interleaved rounds: the median seconds of a training step
(steps after the first; the validation pass is not part of a step), the median wall time of the
whole loop (``train_seconds``), and the ratios to ``none``. The validation loss's cost is the
difference in loop time, which the defaults (256 samples about ten times a run) keep to a few
per cent of a real run.

    python bench/monitoring.py [--steps 8] [--rounds 3] [--validation 16] [--eval-every 2] [--batch-size 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from finetune import stdlib_dataset  # noqa: E402  (the CPU benchmark's data)

from editforge.backend.embedded import embedded_model_path  # noqa: E402
from editforge.records import read_jsonl, write_jsonl  # noqa: E402
from editforge.training import run_finetune  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=64, help="training samples")
    parser.add_argument("--validation", type=int, default=16, help="held-out samples")
    parser.add_argument("--eval-every", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = embedded_model_path()
    settings = {
        "max_steps": args.steps,
        "batch_size": args.batch_size,
        "grad_accum": 1,
        "learning_rate": 1e-5,
        "max_seq_len": 1024,
        "gradient_checkpointing": False,
        "checkpoint_every": 0,
        "seed": 0,
        "eval_every": args.eval_every,
    }
    arms = {
        "none": ("none", False),
        "tensorboard": ("tensorboard", False),
        "tensorboard+validation": ("tensorboard", True),
    }
    results: dict[str, dict[str, list[float]]] = {arm: {"step": [], "loop": []} for arm in arms}
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-monitoring-") as tmp:
        scratch = Path(tmp)
        rows = list(read_jsonl(stdlib_dataset(scratch / "all.jsonl", args.samples + args.validation, seed=0)))
        write_jsonl(scratch / "train.jsonl", rows[: args.samples])
        write_jsonl(scratch / "validation.jsonl", rows[args.samples :])
        for round_number in range(args.rounds):
            order = list(arms) if round_number % 2 == 0 else list(reversed(arms))
            for arm in order:
                report_to, validate = arms[arm]
                out = scratch / f"{arm}-{round_number}/model"
                summary = run_finetune(
                    scratch / "train.jsonl",
                    str(model),
                    settings | {"report_to": report_to},
                    out,
                    validation_path=scratch / "validation.jsonl" if validate else None,
                )
                log = list(read_jsonl(out / "training_log.jsonl"))
                results[arm]["step"].append(statistics.median(entry["seconds"] for entry in log[1:]))
                results[arm]["loop"].append(summary["train_seconds"])
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    base = {key: statistics.median(results["none"][key]) for key in ("step", "loop")}
    print("| arm | step s (median) | loop s (median) | step ratio | loop ratio |")
    print("|---|---|---|---|---|")
    for arm, figures in results.items():
        step, loop = statistics.median(figures["step"]), statistics.median(figures["loop"])
        print(f"| {arm} | {step:.3f} | {loop:.1f} | {step / base['step']:.3f} | {loop / base['loop']:.3f} |")
    print(json.dumps({arm: {key: values for key, values in figures.items()} for arm, figures in results.items()}))


if __name__ == "__main__":
    main()
