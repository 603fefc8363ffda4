"""What the workflow tests share: running Snakemake on a config, the fake teacher's dialogues,
the tiny config, reading a dry run's plan."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from editforge.templates import template
from helpers import REPO, SHARED

SNAKEMAKE = [sys.executable, "-m", "snakemake"]

WORDS = (
    "alpha bravo delta gamma omega kappa sigma tango rocket falcon orbit prism ledger "
    "parcel harbor summit meadow cinder lantern quartz velvet willow zephyr ember"
).split()


def synthesis_responder(body: dict[str, Any], index: int) -> str:
    """Well-formed dialogue answers, different for every prompt; a judge's verdicts to a judge's prompt."""
    if body["messages"][0]["content"] == template("judge_system"):
        return judge_answer(body["messages"][-1]["content"])
    user_turns = [m for m in body["messages"] if m["role"] == "user"]
    rng = random.Random(hashlib.sha256(user_turns[0]["content"].encode()).hexdigest())
    name, var, other = rng.sample(WORDS, 3)
    limit = rng.randint(2, 99)
    before = (
        f"def {name}_total({var}s):\n"
        f"    total = 0\n"
        f"    for {var} in {var}s:\n"
        f"        total += {var} * {limit}\n"
        f"    return total\n\n\n"
        f"def {other}_label({var}):\n"
        f"    return '{other}-' + str({var})\n"
    )
    if len(user_turns) == 1:
        return (
            f"[Program Before Edit]\n```python\n{before}```\n\n"
            f"[Descriptive]\nIn `{name}_total`, skip every element of `{var}s` that is negative before "
            f"multiplying it by {limit}, and leave `{other}_label` unchanged.\n\n"
            f"[Lazy]\nIgnore negative {var}s in {name}_total."
        )
    after = before.replace(
        f"    for {var} in {var}s:\n", f"    for {var} in {var}s:\n        if {var} < 0:\n            continue\n"
    )
    return f"[Program After Edit]\n```python\n{after}```"


def judge_answer(prompt: str) -> str:
    """The judge's verdicts on one prompt: every fourth (by a hash of the prompt) fails edit_complete."""
    incomplete = int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 4 == 0
    verdicts = {
        "edit_needed": {"verdict": "PASS", "reason": "the program does not do it yet"},
        "edit_complete": {"verdict": "FAIL" if incomplete else "PASS", "reason": "scripted"},
        "edit_focused": {"verdict": "PASS", "reason": "nothing else changes"},
    }
    return f"```json\n{json.dumps(verdicts)}\n```"


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """Snakemake on the checkout's workflow, in ``workdir`` with its ``config.yaml``, on 2 cores."""
    return [
        *SNAKEMAKE,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--cores",
        "2",
        *args,
    ]


def run_snakemake(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = snakemake_command(workdir, *args)
    return subprocess.run(command, capture_output=True, text=True, env=env or os.environ.copy(), timeout=900)


def planned_rules(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """Rule -> job count from a dry run's job table."""
    table = result.stdout.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def tiny_config(workdir: Path, code: Path, server_url: str, model_dir: str, benchmark: Path) -> dict[str, Any]:
    return {
        "run_name": "tiny",
        "cache_dir": str(workdir / "cache"),
        "models": {
            "fake": {
                "backend": "openai",
                "model": "fake",
                "base_url": server_url,
                "max_concurrency": 8,
                "timeout_s": 20,
                "retry_base_s": 0.05,
                "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
            },
            "tiny": {"backend": "transformers", "model": model_dir, "dtype": "float32", "batch_size": 8},
        },
        "seeds": {
            "sources": [{"name": "code", "type": "directory", "path": str(code)}],
            "num_prompts": 8,
            "num_shards": 2,
            "min_lines": 3,
            "max_lines": 15,
        },
        "synthesis": {"models": ["fake"], "mode": "dialogue"},
        "filtering": {
            "execution_check": True,
            "execution_timeout_s": 10,
            "decontamination": {"max_contaminated_share": 0.5},
        },
        # 16 samples (8 triplets): a quarter holds out a triplet or two (a tenth would hold out none)
        "dataset": {"size_per_style": 100, "validation": {"max_share": 0.25}},
        "training": {
            "students": {
                "tiny-edit": {
                    "base_model": "tiny",
                    "max_steps": 2,
                    "batch_size": 2,
                    "max_seq_len": 512,
                    "learning_rate": 1.0e-3,
                }
            }
        },
        "evaluation": {
            "benchmark": str(benchmark),
            "problems": 2,
            "targets": ["tiny", "tiny-edit"],
            "samples": 2,
            "sampling": {"temperature": 0.2, "top_p": 0.95, "max_tokens": 8},
            "workers": 2,
        },
    }


def write_code_tree(root: Path) -> Path:
    """A small source tree to cut seed snippets from, written under ``root``."""
    for i in range(6):
        functions = "\n\n".join(
            f"def step_{i}_{j}(values, scale={j + 2}):\n"
            f"    '''Scale and filter a list (file {i}, function {j}).'''\n"
            f"    result = []\n"
            f"    for value in values:\n"
            f"        if value % {j + 2} == {i % 2}:\n"
            f"            result.append(value * scale)\n"
            f"    return result\n"
            for j in range(3)
        )
        (root / f"module_{i}.py").write_text(functions + "\n")
    return root


HUMANEVALFIX = SHARED / "benchmarks/humanevalfix/humanevalfix.jsonl"
AIDER_EXERCISM = SHARED / "benchmarks/aider_exercism_python/aider_exercism_python.jsonl"


def every_benchmark(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` scoring on all three benchmarks: one problem of HumanEvalFix and one of Aider's set
    (with its second try), in as few tokens as the rest of the config asks for."""
    tokens = config["evaluation"].get("sampling", {}).get("max_tokens", 8)
    config["evaluation"]["benchmarks"] = {
        "canitedit": {},
        "humanevalfix": {"source": str(HUMANEVALFIX), "problems": 1},
        "aider_exercism": {
            "source": str(AIDER_EXERCISM),
            "problems": ["two-fer"],
            "tries": 2,
            "sampling": {"max_tokens": tokens},
        },
    }
    return config


def every_experiment_rule(config: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """``config`` with an experiments block whose cells need every experiment rule, in as few jobs as
    that takes: an external set (written to ``workdir``) as the baseline, and a variant with seeds of
    its own (so its synthesis, filtering, judge and mix); one student, one seed, CanItEdit; sets of up to
    4 rows. The run's LLM judge is on, so the judge rules run too."""
    config["filtering"]["judge"] = {"model": "fake"}
    external = workdir / "external.jsonl"
    rows = [
        {
            "pre_code": f"def {word}_area(width):\n    return width * {i + 2}\n",
            "instruction": f"Let {word}_area take a height too.",
            "post_code": f"def {word}_area(width, height):\n    return width * height * {i + 2}\n",
        }
        for i, word in enumerate(WORDS[:6])
    ]
    external.write_text("".join(json.dumps(row) + "\n" for row in rows))
    student = next(iter(config["training"]["students"]))
    config["experiments"] = {
        "name": "every-rule",
        "baseline": "external",
        "students": [student],
        "seeds": [7],
        "benchmarks": ["canitedit"],
        "size": {"n": 4, "mode": "at_most"},
        "variants": {
            "external": {"external": {"source": str(external), "licence": "CC0-1.0"}},
            "windows": {"overrides": {"seeds": {"snippet_mode": "window"}}},
        },
    }
    return config
