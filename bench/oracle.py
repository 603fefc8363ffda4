"""The oracle and the anti-oracle through the workflow's own evaluation rules.

A fake OpenAI-compatible server answers every CanItEdit prompt with the problem's
reference ``after`` program (the oracle) or its ``before`` program (the
anti-oracle), in both harness prompt formats (``canitedit-chat`` and
``canitedit-direct``); Snakemake then runs ``eval_preflight``, ``eval_generate``,
``eval_execute`` and ``eval_score`` as a user's run would. Expected: the oracle
scores 100.0 under both rules on every problem the preflight keeps, the preflight
names 78_llm_inference where vllm is absent, and the anti-oracle passes at most 1
of 105 per instruction kind (60_unique_number's timing test is flaky).

    python bench/oracle.py [--problems N] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from editforge.backend.fake_server import FakeServer, reference_responder

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BENCHMARK = REPO.parent / "shared/canitedit/canitedit.jsonl"
# target -> (prompt format, the problem field it answers with)
TARGETS = {
    "oracle-chat": ("canitedit-chat", "after"),
    "oracle-direct": ("canitedit-direct", "after"),
    "anti-oracle-chat": ("canitedit-chat", "before"),
    "anti-oracle-direct": ("canitedit-direct", "before"),
}


def config(workdir: Path, base_url: str, benchmark: Path, problems: int | None) -> dict[str, Any]:
    models = {
        name: {"backend": "openai", "model": name, "base_url": base_url, "prompt_format": fmt, "max_concurrency": 16}
        for name, (fmt, _) in TARGETS.items()
    }
    return {
        "run_name": "oracle",
        "cache_dir": str(workdir / "cache"),
        "models": models,
        "seeds": {"sources": [{"name": "stdlib", "type": "stdlib"}]},
        "synthesis": {"models": ["oracle-chat"]},
        "evaluation": {
            "benchmark": str(benchmark),
            "problems": problems,
            "targets": list(TARGETS),
            "samples": 1,
            "workers": 2,
            "reference_failures": "exclude",
        },
    }


def run(workdir: Path, benchmark: Path, problems: int | None) -> dict[str, Any]:
    """Run the evaluation rules; return the preflight report and the summary rows."""
    rows = [json.loads(line) for line in benchmark.read_text(encoding="utf-8").splitlines() if line.strip()]
    fields = {name: field for name, (_, field) in TARGETS.items()}
    with FakeServer(responder=reference_responder(rows, fields)) as server:
        (workdir / "config.yaml").write_text(yaml.safe_dump(config(workdir, server.base_url, benchmark, problems)))
        command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                   str(workdir), "--configfile", str(workdir / "config.yaml"), "--cores", "2",
                   "results/report/summary.csv"]
        env = {**os.environ, "EDITFORGE_CANITEDIT": str(benchmark)}
        result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"snakemake failed:\n{result.stderr[-4000:]}")
    with open(workdir / "results/report/summary.csv", encoding="utf-8") as handle:
        summary = [row for row in csv.DictReader(handle) if row["split"] in ("lazy", "descriptive", "overall")]
    preflight = json.loads((workdir / "results/evaluation/preflight.json").read_text())
    executions = {
        target: [json.loads(line) for line in (workdir / f"results/evaluation/{target}/executions.jsonl").open()]
        for target in TARGETS
    }
    return {"preflight": preflight, "summary": summary, "executions": executions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=None, help="the first N problems (default: all 105)")
    parser.add_argument(
        "--benchmark", type=Path, default=Path(os.environ.get("EDITFORGE_CANITEDIT", DEFAULT_BENCHMARK))
    )
    parser.add_argument("--workdir", type=Path, help="keep the run here (default: a temporary folder)")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="editforge-oracle-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        outcome = run(workdir, args.benchmark, args.problems)
    preflight = outcome["preflight"]
    print(f"preflight: {preflight['checked']} references checked, isolation {preflight['isolation']}")
    for entry in preflight["excluded"]:
        print(f"  excluded: {entry['full_name']} ({entry['reason']})")
    print("\n| target | split | problems | samples | pass@1 (official) | pass@1 (strict) | early exits |")
    print("|---|---|---|---|---|---|---|")
    for row in outcome["summary"]:
        print(
            f"| {row['target']} | {row['split']} | {row['problems']} | {row['samples']} | "
            f"{float(row['pass@1']):.1f} | {float(row['strict_pass@1']):.1f} | {row['early_exits']} |"
        )
    for target, records in outcome["executions"].items():
        if target.startswith("anti"):
            passing = sorted({f"{r['full_name']} ({r['kind']})" for r in records if r["outcome"] == "pass"})
            print(f"{target} passes: {', '.join(passing) or 'none'}")
    print(f"\n{time.monotonic() - started:.0f} s; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
