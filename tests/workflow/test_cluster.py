"""The SLURM profile plans the paper run without a cluster, and each planned job
lands on the partition its resources need (the executor plugin's own choice,
from profiles/slurm/partitions.yaml)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from snakemake_executor_plugin_slurm.partitions import get_best_partition, read_partition_file

from helpers import REPO
from helpers.workflow import AIDER_EXERCISM

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


class Resources(dict[str, Any]):
    """Job resources as the executor reads them: mapping and attribute access."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class PlannedJob:
    name: str
    wildcards: str
    threads: int
    resources: Resources


def _value(text: str) -> Any:
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def planned_jobs(output: str) -> list[PlannedJob]:
    """The jobs of a dry run, from its printed job list."""
    jobs = []
    for block in re.split(r"\n(?=rule \S+:\n)", output)[1:]:
        name = block.split(":", 1)[0].removeprefix("rule ")
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, flags=re.M))
        pairs = (item.split("=", 1) for item in fields.get("resources", "").split(", ") if "=" in item)
        resources = Resources({key: _value(value) for key, value in pairs})
        jobs.append(PlannedJob(name, fields.get("wildcards", ""), int(fields.get("threads", 1)), resources))
    return jobs


def dry_run(tmp_path: Path, benchmark_path: Path, *configfiles: str) -> list[PlannedJob]:
    keys = {"DASHSCOPE_API_KEY": "unused", "DEEPSEEK_API_KEY": "unused"}
    copies = {"EDITFORGE_CANITEDIT": str(benchmark_path), "EDITFORGE_AIDER_EXERCISM": str(AIDER_EXERCISM)}
    env = dict(os.environ, **keys, **copies)
    result = subprocess.run(
        [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--configfile",
         *(str(REPO / name) for name in configfiles), "--workflow-profile", str(REPO / "profiles/slurm"),
         "--dry-run", "--cores", "128"],  # a dry run caps threads at --cores
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return planned_jobs(result.stdout)


def partition(job: PlannedJob) -> str | None:
    partitions = read_partition_file(REPO / "profiles/slurm/partitions.yaml")
    return get_best_partition(partitions, job, logging.getLogger("slurm"))  # type: ignore[arg-type]


def by_rule(jobs: list[PlannedJob], name: str) -> list[PlannedJob]:
    return [job for job in jobs if job.name == name]


def test_slurm_profile_plans_the_paper_run_and_places_every_job(tmp_path: Path, benchmark_path: Path) -> None:
    jobs = dry_run(tmp_path, benchmark_path, "config/paper.yaml")
    counts = {name: len(by_rule(jobs, name)) for name in {job.name for job in jobs}}
    assert counts["synthesize_round1"] == 200 and counts["finetune"] == 3 and counts["eval_generate"] == 6
    for job in jobs:
        assert job.resources["slurm_account"] == "YOUR_ACCOUNT"
        assert "cpus_per_task" not in job.resources  # it would override cpus_per_gpu
        wanted = "gpu" if job.resources.get("gpu", 0) > 0 else "cpu"
        assert partition(job) == wanted, f"{job.name} {job.wildcards}: {dict(job.resources)}"
    # API synthesis is a light CPU job; fine-tuning takes the node's 8 GPUs;
    # in-process evaluation of the base models and the students takes one GPU each.
    assert {(j.resources["gpu"], j.resources["mem_mb"]) for j in by_rule(jobs, "synthesize_round1")} == {(0, 4000)}
    assert {(j.resources["gpu"], j.threads) for j in by_rule(jobs, "finetune")} == {(8, 64)}
    assert {j.resources["gpu"] for j in by_rule(jobs, "eval_generate")} == {1}
    assert {partition(j) for j in by_rule(jobs, "eval_execute")} == {"cpu"}


def test_vllm_overlay_serves_every_evaluated_model_on_a_gpu(tmp_path: Path, benchmark_path: Path) -> None:
    jobs = dry_run(tmp_path, benchmark_path, "config/paper.yaml", "config/vllm.yaml")
    generate = by_rule(jobs, "eval_generate")
    assert sorted(j.wildcards.removeprefix("target=") for j in generate) == [
        "dsc-6.7b-base-vllm", "oce-dsc-6.7b", "oce-qwen2.5-coder-7b", "oce-qwen3-8b",
        "qwen2.5-coder-7b-vllm", "qwen3-8b-base-vllm",
    ]
    for job in generate:
        assert (job.resources["gpu"], job.resources["cpus_per_gpu"], job.threads) == (1, 8, 8)
        assert partition(job) == "gpu"


@pytest.mark.parametrize("gpus, expected", [(0, "cpu"), (1, "gpu"), (8, "gpu"), (9, None)])
def test_partition_limits_decide(gpus: int, expected: str | None) -> None:
    job = PlannedJob("any", "", 1, Resources(gpu=gpus, mem_mb=4000, runtime=60))
    assert partition(job) == expected  # None: no partition has 9 GPUs; the executor says so


def test_multi_node_fine_tuning_asks_for_gpus_per_node(tmp_path: Path, benchmark_path: Path) -> None:
    config = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    config["training"]["students"]["oce-qwen3-8b"]["num_nodes"] = 2
    path = tmp_path / "two-nodes.yaml"
    path.write_text(yaml.safe_dump(config))
    jobs = {j.wildcards: j for j in by_rule(dry_run(tmp_path, benchmark_path, str(path)), "finetune")}
    two = jobs["student=oce-qwen3-8b"].resources
    assert (two.get("gpu"), two["gres"], two["nodes"]) == (None, "gpu:8", 2)  # 8 on each node, not 8 in all
    one = jobs["student=oce-dsc-6.7b"].resources
    assert (one["gpu"], one.get("gres"), one["nodes"]) == (8, None, 1)
    assert partition(jobs["student=oce-qwen3-8b"]) == partition(jobs["student=oce-dsc-6.7b"]) == "gpu"


def test_the_demo_on_a_cluster_without_gpus_asks_for_none(tmp_path: Path, benchmark_path: Path) -> None:
    """The embedded model runs on the CPU, so no job of the demo, fine-tuning included, asks for a GPU."""
    jobs = dry_run(tmp_path, benchmark_path, "config/config.yaml")
    finetune = by_rule(jobs, "finetune")
    assert finetune and all((j.resources.get("gpu"), j.resources.get("gres")) == (0, None) for j in finetune)
    assert {partition(j) for j in jobs} == {"cpu"}
    # The paper's requests, from the config's resources; retries double them up to the partition's limit.
    assert {(j.resources["mem_mb"], j.resources["runtime"]) for j in by_rule(jobs, "dedup")} == {(64000, 240)}


def test_every_rule_takes_its_cpus_from_the_config(tmp_path: Path, benchmark_path: Path) -> None:
    """resources.<rule>.cpus sets the threads of any rule, not only of those with threads of their own."""
    cpus = {"seeds": 3, "eval_preflight": 5, "synthesize_round1": 6, "dedup": 7}
    (tmp_path / "cpus.yaml").write_text(yaml.safe_dump({"resources": {rule: {"cpus": n} for rule, n in cpus.items()}}))
    jobs = dry_run(tmp_path, benchmark_path, "config/config.yaml", str(tmp_path / "cpus.yaml"))
    assert {rule: {j.threads for j in by_rule(jobs, rule)} for rule in cpus} == {r: {n} for r, n in cpus.items()}
