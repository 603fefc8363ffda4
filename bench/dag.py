"""How fast Snakemake plans a paper-scale run: 100,000 prompts in 1,000 shards and
two synthesis models, dry-run through the SLURM profile (no cluster needed).

    python bench/dag.py [--shards 1000] [--repeats 3]

Prints the median wall time of `snakemake --dry-run` (target: under 30 s on
2 cores) and the job list the SLURM executor would submit.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def paper_scale_config(shards: int, benchmark: Path) -> dict:
    config = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    config["seeds"].update(num_prompts=100_000, num_shards=shards)
    config["evaluation"]["benchmark"] = str(benchmark)
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env = dict(os.environ, DASHSCOPE_API_KEY="unused", DEEPSEEK_API_KEY="unused", HF_HUB_OFFLINE="1")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        benchmark = workdir / "canitedit.jsonl"
        benchmark.write_text("")  # the dry run only needs the path to exist
        env.pop("EDITFORGE_CANITEDIT", None)
        (workdir / "config.yaml").write_text(yaml.safe_dump(paper_scale_config(args.shards, benchmark)))
        command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", tmp,
                   "--configfile", str(workdir / "config.yaml"), "--workflow-profile", str(REPO / "profiles/slurm"),
                   "--dry-run", "--quiet", "rules", "--cores", "16"]
        times, output = [], ""
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = subprocess.run(command, capture_output=True, text=True, env=env)
            times.append(time.perf_counter() - start)
            if result.returncode != 0:
                sys.exit(f"dry run failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
            output = result.stdout
    jobs = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", output, re.M)}
    print(f"shards: {args.shards} x 2 synthesis models, 100,000 prompts")
    print(f"dry-run wall time: median {statistics.median(times):.1f} s over {len(times)} runs "
          f"({', '.join(f'{t:.1f}' for t in times)}); target < 30 s")
    print("SLURM jobs the run would submit:")
    for rule, count in jobs.items():
        print(f"  {rule:<20} {count:>6}")


if __name__ == "__main__":
    main()
