"""The whole workflow in a temp dir: a fake OpenAI-compatible server synthesizes,
tiny random models are trained and evaluated, and Snakemake reruns only what a
change invalidates. One slow test runs the embedded model end to end."""

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

import pytest
import yaml

from editforge.fakeserver import FakeServer
from editforge.records import read_jsonl

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

WORDS = (
    "alpha bravo delta gamma omega kappa sigma tango rocket falcon orbit prism ledger "
    "parcel harbor summit meadow cinder lantern quartz velvet willow zephyr ember"
).split()


def synthesis_responder(body: dict[str, Any], index: int) -> str:
    """Well-formed dialogue answers, different for every prompt."""
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


def run_snakemake(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [
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
    return subprocess.run(command, capture_output=True, text=True, env=env or os.environ.copy(), timeout=900)


def planned_rules(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """Rule -> job count from a dry run's job table."""
    table = result.stdout.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


@pytest.fixture()
def code_dir(tmp_path: Path) -> Path:
    """A small source tree to cut seed snippets from."""
    root = tmp_path / "code"
    root.mkdir()
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
        "dataset": {"size_per_style": 100},
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


def test_lint_is_clean() -> None:
    result = subprocess.run(
        [*SNAKEMAKE, "--lint", "--snakefile", str(REPO / "Snakefile")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_slurm_profile_plans_the_paper_run_without_a_cluster(tmp_path: Path, benchmark_path: Path) -> None:
    env = dict(os.environ, DASHSCOPE_API_KEY="unused", DEEPSEEK_API_KEY="unused", EDITFORGE_CANITEDIT=str(benchmark_path))
    result = subprocess.run(
        [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--configfile",
         str(REPO / "config/paper.yaml"), "--workflow-profile", str(REPO / "profiles/slurm"), "--dry-run", "--cores", "16"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    planned = planned_rules(result)
    assert planned["synthesize_round1"] == 200 and planned["finetune"] == 3 and planned["eval_generate"] == 6
    assert "slurm_partition=gpu" in result.stdout and "gpu=8" in result.stdout  # GPU rules are placed on GPUs


def test_bad_config_stops_at_start_naming_the_key(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["filtering"]["max_hunkz"] = 7
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path, "--dry-run")
    assert result.returncode != 0
    assert "max_hunkz" in result.stdout + result.stderr


def test_tiny_workflow_end_to_end_and_partial_reruns(
    tmp_path: Path, code_dir: Path, tiny_model_dir: Path, benchmark_path: Path
) -> None:
    workdir = tmp_path / "run"
    workdir.mkdir()
    with FakeServer(responder=synthesis_responder) as server:
        config = tiny_config(workdir, code_dir, server.base_url, str(tiny_model_dir), benchmark_path)
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        result = run_snakemake(workdir)
        assert result.returncode == 0, result.stderr[-4000:]
        calls_after_first_run = sum(server.calls.values())
        assert calls_after_first_run == 16  # 8 prompts x 2 rounds, each asked once

        results = workdir / "results"
        triplets = list(read_jsonl(results / "filtered/triplets.jsonl"))
        assert len(triplets) == 8 and all(t["status"] in {"ok", "dropped"} for t in triplets)
        assert any(t["status"] == "ok" for t in triplets)
        assert all(t["reason"] for t in triplets if t["status"] == "dropped")
        train = list(read_jsonl(results / "dataset/train.jsonl"))
        assert {r["style"] for r in train} == {"lazy", "descriptive"}
        assert (results / "training/tiny-edit/model/config.json").exists()
        executions = list(read_jsonl(results / "evaluation/tiny-edit/executions.jsonl"))
        assert len(executions) == 2 * 2 * 2  # problems x kinds x samples
        summary = (results / "report/summary.md").read_text()
        assert "tiny-edit" in summary and "tiny" in summary
        funnel = json.loads((results / "report/funnel.json").read_text())
        usage = funnel["synthesis"]["fake"]["usage"]
        assert usage["calls"] == 16 and usage["cost"] > 0
        assert "funnel" in result.stdout.lower()  # printed at the end

        # Nothing changed: nothing to do.
        assert "Nothing to be done" in run_snakemake(workdir, "--dry-run").stdout

        # A filter threshold reruns filtering and what follows, not synthesis.
        config["filtering"]["max_hunks"] = 3
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        planned = planned_rules(run_snakemake(workdir, "--dry-run"))
        assert planned.get("filter_shard") == 2 and "dataset" in planned and "finetune" in planned
        assert not {"seeds", "synthesize_round1", "synthesize_round2", "parse"} & set(planned)

        # More evaluation samples rerun evaluation only.
        config["filtering"]["max_hunks"] = 7
        config["evaluation"]["samples"] = 3
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        planned = planned_rules(run_snakemake(workdir, "--dry-run"))
        assert set(planned) == {"eval_generate", "eval_execute", "eval_score", "all"}
        config["evaluation"]["samples"] = 2
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))

        # A second synthesis model runs its own branch only.
        config["models"]["fake2"] = dict(config["models"]["fake"], model="fake2")
        config["synthesis"]["models"] = ["fake", "fake2"]
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        planned = planned_rules(run_snakemake(workdir, "--dry-run"))
        assert planned["synthesize_round1"] == planned["synthesize_round2"] == planned["parse"] == 2
        assert planned["filter_shard"] == 2 and "seeds" not in planned
        config["synthesis"]["models"] = ["fake"]
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))

        # An edited prompt template reruns synthesis.
        template = REPO / "src/editforge/templates/round2_v1.txt"
        original = template.read_bytes()
        try:
            template.write_bytes(original + b"\n")
            planned = planned_rules(run_snakemake(workdir, "--dry-run"))
        finally:
            template.write_bytes(original)
        assert planned["synthesize_round1"] == planned["synthesize_round2"] == 2 and "seeds" not in planned
        assert "Nothing to be done" in run_snakemake(workdir, "--dry-run").stdout

        # A deleted shard is rebuilt from the cache: no new calls to the server.
        shard = results / "synthesis/fake/round1/000.jsonl"
        before = shard.read_text()
        shard.unlink()
        rebuilt = run_snakemake(workdir, "results/synthesis/fake/round1/000.jsonl")
        assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
        assert shard.read_text() == before
        assert sum(server.calls.values()) == calls_after_first_run


COMMITS = [
    ("def area(w, h):\n    return w * h\n",
     "def area(w, h):\n    if w < 0 or h < 0:\n        raise ValueError('negative size')\n    return w * h\n",
     "Reject negative sizes in area"),
    ("def greet(name):\n    print('Hello ' + name)\n",
     "def greet(name, greeting='Hello'):\n    print(greeting + ' ' + name)\n",
     "Let callers choose the greeting"),
    ("def mean(xs):\n    return sum(xs) / len(xs)\n",
     "def mean(xs):\n    if not xs:\n        return 0.0\n    return sum(xs) / len(xs)\n",
     "Return 0 for an empty list in mean"),
    ("def last(items):\n    return items[len(items)]\n",
     "def last(items):\n    return items[len(items) - 1]\n",
     "Fix off-by-one in last"),
    ("def shout(text):\n    return text + '!'\n",
     "def shout(text):\n    return text.upper() + '!'\n",
     "Upper-case the text in shout"),
    ("def count_words(text):\n    return len(text.split(' '))\n",
     "def count_words(text):\n    return len(text.split())\n",
     "Count words separated by any whitespace"),
]


@pytest.mark.slow
def test_embedded_model_end_to_end(tmp_path: Path, benchmark_path: Path) -> None:
    """The embedded model writes instructions for real commits, is fine-tuned on
    them and is scored beside its base model. (The README's demo does the same
    from standard-library snippets, with more prompts than a test can afford.)"""
    commits = tmp_path / "commits.jsonl"
    commits.write_text("".join(
        json.dumps({"old_contents": old, "new_contents": new, "message": message}) + "\n"
        for old, new, message in COMMITS
    ))
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["cache_dir"] = str(tmp_path / "cache")
    config["seeds"] = {"kind": "commits", "sources": [{"name": "commits", "type": "jsonl", "path": str(commits)}],
                       "num_prompts": 6, "num_shards": 1}
    config["synthesis"]["sampling"]["max_tokens"] = 256
    config["training"]["students"]["smollm2-edit"].update(max_steps=2, checkpoint_every=0)
    config["evaluation"].update(problems=2, samples=1, benchmark=str(benchmark_path))
    config["evaluation"]["sampling"]["max_tokens"] = 96
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    train = list(read_jsonl(tmp_path / "results/dataset/train.jsonl"))
    assert train, "the embedded model produced no training sample"
    assert all(sample["instruction"].strip() for sample in train)
    summary = (tmp_path / "results/report/summary.md").read_text()
    assert "smollm2-edit" in summary and "smollm2" in summary
