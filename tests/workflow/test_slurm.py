"""The cluster path for real: a one-node SLURM cluster on this machine (tests/helpers/slurm_cluster.py),
the README's command through profiles/slurm with only its placeholders filled (the account,
the partitions file), the tiny workflow with the fake OpenAI-compatible server. sacct must
show every rule that is not a localrule as a job in the partition the executor chose. The
run is cut three times: one job is cancelled with scancel (the profile's retries resubmit it),
the Snakemake process is killed (the README's steps: cancel what it left, the same command),
and slurmd stops during a job (a node failure: the retry waits for the node, then runs). One
rule asks for less memory than it uses: SLURM kills it, and the retry asks for twice as much.

Skipped where SLURM cannot start (the reason is given); EDITFORGE_REQUIRE_SLURM=1 (CI) fails
instead."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from editforge.backend.fake_server import FakeServer
from helpers import REPO
from helpers.slurm_cluster import ACCOUNT, MAX_TIME_MIN, PARTITION, Cluster, ClusterUnavailable, one_node_cluster
from helpers.workflow import every_benchmark, every_experiment_rule, synthesis_responder, tiny_config

LOCAL_RULES = {
    "all", "preflight", "report", "report_figures", "report_tables", "report_training", "experiment", "experiment_plan"
}
# The status checks start 2 s after a submission instead of the plugin's 40: the chain of
# jobs is long and each job short here; a cluster keeps the default.
FAST_STATUS = ["--slurm-init-seconds-before-status-checks", "2"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with contextlib.ExitStack() as stack:
        try:
            started = stack.enter_context(one_node_cluster(tmp_path_factory.mktemp("slurm")))
        except ClusterUnavailable as err:
            if os.environ.get("EDITFORGE_REQUIRE_SLURM") == "1":
                pytest.fail(f"EDITFORGE_REQUIRE_SLURM=1 but SLURM cannot start: {err}")
            pytest.skip(f"SLURM cannot start here: {err}")
        yield started


def filled_profile(cluster: Cluster, folder: Path) -> Path:
    """profiles/slurm with its placeholders filled for this cluster, as the README's step 2 says."""
    folder.mkdir()
    text = (REPO / "profiles/slurm/profile.yaml").read_text()
    assert text.count('"YOUR_ACCOUNT"') == 1
    (folder / "profile.yaml").write_text(text.replace('"YOUR_ACCOUNT"', f'"{ACCOUNT}"'))
    limits = {"max_runtime": MAX_TIME_MIN, "max_mem_mb": cluster.mem_mb, "max_threads": cluster.cpus}
    (folder / "partitions.yaml").write_text(yaml.safe_dump({"partitions": {PARTITION: limits}}))
    return folder


def wait_for(check, what: str, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def running(cluster: Cluster, rule: str) -> list[str]:
    """Ids of the running jobs of ``rule`` (the plugin puts the rule in each job's comment)."""
    out = cluster.run("squeue", "-h", "-t", "RUNNING", "-o", "%i %k")
    return [line.split()[0] for line in out.splitlines() if f"rule_{rule}_" in line]


def test_the_readme_command_runs_every_rule_as_a_slurm_job_and_resumes(
    cluster: Cluster, tmp_path: Path, code_dir: Path, tiny_model_dir: Path, benchmark_path: Path  # noqa: F811 (the fixture imported above)
) -> None:
    started = time.monotonic()
    profile = filled_profile(cluster, tmp_path / "profile")
    workdir = tmp_path / "run"
    workdir.mkdir()
    with FakeServer(responder=synthesis_responder, latency_s=0.2) as server:
        # Every benchmark and an experiment grid, so that every rule runs as a job.
        config = every_benchmark(tiny_config(workdir, code_dir, server.base_url, str(tiny_model_dir), benchmark_path))
        config = every_experiment_rule(config, workdir)
        config["seeds"]["num_shards"] = 1
        config["models"]["fake"]["max_concurrency"] = 1  # synthesis runs long enough to be cut
        config["models"]["tiny"]["device"] = "cpu"  # a CPU-only cluster: no job may ask for a GPU
        # dataset's job peaks at about 360 MB here (sacct's MaxRSS): asked for 250 MB, it is killed for
        # its memory (OverMemoryKill), and the retry asks for twice as much.
        config["resources"] = {"partitions": str(profile / "partitions.yaml"), "dataset": {"mem_mb": 250}}
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        # The README's command, from the workflow's folder: here --snakefile and --directory say where.
        command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                   str(workdir), "--workflow-profile", str(profile), "--configfile", str(workdir / "config.yaml"),
                   *FAST_STATUS]
        log = open(tmp_path / "first.log", "w")
        first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=cluster.env,
                                 start_new_session=True)
        try:
            # 1. scancel of one running job: the profile's retries resubmit it.
            wait_for(lambda: running(cluster, "synthesize_round1") or first.poll() is not None, "round 1 to run")
            cancelled = running(cluster, "synthesize_round1")
            assert cancelled, (tmp_path / "first.log").read_text()[-3000:]
            cluster.run("scancel", cancelled[0])
            # 2. The Snakemake process killed while fine-tuning runs; the README says to cancel what it left.
            # (the experiment's jobs queue beside the run's, on the one node)
            wait_for(lambda: running(cluster, "finetune") or first.poll() is not None, "fine-tuning to run", 480)
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        left = cluster.run("squeue", "--me", "-h", "-o", "%j").split()
        assert left, "the killed run left no job behind"
        cluster.run("scancel", f"--name={left[0]}")
        # 3. The same command; slurmd stops during fine-tuning (a node failure) and starts again.
        second_log = tmp_path / "second.log"
        second = subprocess.Popen(command, stdout=open(second_log, "w"), stderr=subprocess.STDOUT, env=cluster.env,
                                  start_new_session=True)
        try:
            wait_for(lambda: running(cluster, "finetune") or second.poll() is not None, "fine-tuning to run again")
            failed = running(cluster, "finetune")
            assert failed, second_log.read_text()[-3000:]
            cluster.stop("slurmd")  # the job's srun loses its node: the job fails, the node goes down
            wait_for(lambda: cluster.jobs("-j", failed[0])[0]["State"] in ("FAILED", "NODE_FAIL"), "the job to fail")
            wait_for(lambda: cluster.node_state().startswith("down"), "the node to be down", 120)
            cluster.start_node()  # back: the retry, pending meanwhile, runs
            second.wait(timeout=480)
        finally:
            if second.poll() is None:
                os.killpg(second.pid, signal.SIGINT)
                second.wait(timeout=60)
        assert second.returncode == 0, second_log.read_text()[-3000:]
    assert "removed the lock left by a run that was killed" in second_log.read_text()
    assert (workdir / "results/report/summary.md").exists() and (workdir / "results/training/tiny-edit/model").is_dir()
    assert (workdir / "results/experiments/every-rule/table.md").exists()

    jobs = cluster.jobs()
    print(cluster.table())
    print("\n".join(line for line in second_log.read_text().splitlines() if re.search("NODE_FAIL|rror|exclud", line)))
    print(f"SLURM test: {time.monotonic() - started:.0f} s")
    by_rule: dict[str, list[dict[str, str]]] = {}
    for job in jobs:
        rule = re.fullmatch(r"rule_(\w+?)(_wildcards_.*)?", job["Comment"])  # the plugin's comment
        assert rule, job
        by_rule.setdefault(rule.group(1), []).append(job)
    planned = subprocess.run([*command, "--list-rules"], capture_output=True, text=True, env=cluster.env)
    rules = set(planned.stdout.split()) - LOCAL_RULES
    assert rules and rules == set(by_rule), (sorted(rules), sorted(by_rule))
    for rule, runs in by_rule.items():
        assert {job["Partition"] for job in runs} == {PARTITION}, rule
        assert {job["Account"] for job in runs} == {ACCOUNT}, rule
        assert runs[-1]["State"] == "COMPLETED", (rule, runs)
    assert [job["State"] for job in by_rule["finetune"]][-2:] in (["FAILED", "COMPLETED"], ["NODE_FAIL", "COMPLETED"])
    # Killed for its memory, then retried with retry_growth (2) times as much. Killed by the accounting
    # poll (no cgroups here), the job ends FAILED rather than OUT_OF_MEMORY; its log, which Snakemake
    # names in the error, says why.
    oom, retried = by_rule["dataset"]
    assert (oom["State"], oom["ReqMem"], retried["State"], retried["ReqMem"]) == ("FAILED", "250M", "COMPLETED", "500M")
    oom_log = workdir / f".snakemake/slurm_logs/rule_dataset/{oom['JobID']}.log"
    assert "exceeded memory limit" in oom_log.read_text()
    # The job planned itself again on the node without repeating the run's cap warnings.
    assert "editforge warning" not in oom_log.read_text()
    # The cancelled job, then its resubmission by the profile's retries.
    states = [job["State"] for job in jobs if job["JobID"] == cancelled[0]]
    assert states and states[0].startswith("CANCELLED")
    assert [job["State"] for job in by_rule["synthesize_round1"]][-1] == "COMPLETED"
    # Requests above the partition are capped to it, with a warning that names the rule.
    first_output = (tmp_path / "first.log").read_text()
    assert "resources.dedup.mem_mb: 64000 is above the limit of every partition" in first_output
    assert all(int(job["AllocCPUS"]) <= cluster.cpus for job in jobs)
