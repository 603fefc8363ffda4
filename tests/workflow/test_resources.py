"""Per-rule requests from the config: grown on each retry, capped to the largest partition
that could run the job (with one warning per rule and resource), or to --resources mem_mb."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from editforge.config import ConfigError
from editforge.workflow.resources import Planner, planner, read_partitions
from helpers import REPO

PARTITIONS = {
    "partitions": {
        "small": {"max_runtime": 120, "max_mem_mb": 16000, "max_threads": 4},
        "big": {"max_runtime": 1440, "max_mem_mb": 64000, "max_threads": 32},
        "gpu": {"max_gpu": 4, "max_runtime": 2880, "max_mem_mb": 256000, "max_threads": 64},
    }
}
RESOURCES = {
    "partitions": "partitions.yaml",
    "retry_growth": 2,
    "default": {"mem_mb": 8000, "runtime": 60},
    "dedup": {"mem_mb": 64000, "runtime": 240},
    "eval_execute": {"mem_mb": 300000, "cpus": 100},
    "finetune": {"mem_mb": 480000, "runtime": 2880},
}


@pytest.fixture
def plan(tmp_path: Path) -> Planner:
    (tmp_path / "partitions.yaml").write_text(yaml.safe_dump(PARTITIONS))
    made = planner({"resources": RESOURCES}, tmp_path)
    made.out = io.StringIO()
    return made


def test_a_rule_without_settings_gets_the_default_and_doubles_on_each_retry(plan: Planner) -> None:
    assert [plan.runtime("parse", attempt) for attempt in (1, 2, 3)] == [60, 120, 240]
    assert [plan.mem_mb("parse", attempt) for attempt in (1, 2, 3)] == [8000, 16000, 32000]


def test_retries_grow_up_to_the_largest_partition_and_no_further(plan: Planner) -> None:
    # A CPU job is held to the partitions without GPUs: the largest is "big".
    assert [plan.runtime("dedup", attempt) for attempt in (1, 2, 3, 4)] == [240, 480, 960, 1440]
    assert [plan.mem_mb("dedup", attempt) for attempt in (1, 2)] == [64000, 64000]
    assert plan.out.getvalue() == ""  # growing into the limit is no warning


def test_a_request_above_every_partition_is_capped_with_one_warning_naming_rule_request_and_limit(
    plan: Planner,
) -> None:
    assert plan.mem_mb("eval_execute", 1) == 64000
    assert plan.mem_mb("eval_execute", 1) == 64000
    assert plan.threads("eval_execute", 2) == 32
    lines = plan.out.getvalue().splitlines()
    assert lines == [
        "editforge warning: resources.eval_execute.mem_mb: 300000 is above the limit of every partition in "
        "partitions.yaml (64000); the job asks for 64000",
        "editforge warning: resources.eval_execute.cpus: 100 is above the limit of every partition in "
        "partitions.yaml (32); the job asks for 32",
    ]


def test_a_planner_that_does_not_warn_caps_the_same_in_silence(tmp_path: Path) -> None:
    (tmp_path / "partitions.yaml").write_text(yaml.safe_dump(PARTITIONS))
    silent = planner({"resources": RESOURCES}, tmp_path, warn=False)
    silent.out = io.StringIO()
    assert silent.mem_mb("eval_execute", 1) == 64000 and silent.out.getvalue() == ""


def test_a_gpu_job_is_capped_by_the_partitions_with_gpus_only(plan: Planner) -> None:
    assert plan.mem_mb("finetune", 1, gpus=4) == 256000
    assert plan.mem_mb("finetune", 1, gpus=0) == 64000  # a CPU student: the CPU partitions
    assert plan.runtime("finetune", 1, gpus=8) == 2880  # no partition has 8 GPUs: the executor says so
    assert "resources.finetune.mem_mb: 480000" in plan.out.getvalue()


def test_a_model_job_asks_for_its_model_unless_the_rule_names_a_memory(plan: Planner) -> None:
    assert plan.mem_mb("synthesize_round1", 1, model_mb=30000) == 30000
    assert plan.mem_mb("synthesize_round1", 2, model_mb=30000) == 60000
    assert plan.mem_mb("eval_execute", 1, model_mb=1000) == 64000  # its own setting, capped
    assert plan.threads("synthesize_round1", 2) == 2


def test_a_local_run_caps_memory_to_its_resources(tmp_path: Path) -> None:
    (tmp_path / "partitions.yaml").write_text(yaml.safe_dump(PARTITIONS))
    local = planner({"resources": RESOURCES}, tmp_path, local_mem_mb=16000)
    local.out = io.StringIO()
    assert local.mem_mb("dedup", 1) == 16000
    assert "resources.dedup.mem_mb: 64000 is above the limit of --resources mem_mb (16000)" in local.out.getvalue()


def test_no_partitions_file_means_no_caps(tmp_path: Path) -> None:
    free = planner({"resources": {**RESOURCES, "partitions": None}}, tmp_path)
    assert free.mem_mb("finetune", 2) == 960000


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "resources.partitions: no file"),
        ("partitions: [", "resources.partitions: cannot read"),
        ("cpu: {max_mem_mb: 1}", "has no 'partitions:' mapping"),
    ],
)
def test_a_bad_partitions_file_is_a_config_error_naming_the_key(tmp_path: Path, text: str | None, message: str) -> None:
    if text is not None:
        (tmp_path / "partitions.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        planner({"resources": RESOURCES}, tmp_path)


def test_the_shipped_partitions_file_reads(tmp_path: Path) -> None:
    repo = REPO
    names = {p.name: p.max_gpu for p in read_partitions(repo / "profiles/slurm/partitions.yaml")}
    assert names == {"cpu": 0, "gpu": 8}


def test_the_default_partitions_file_missing_means_no_caps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This workflow used as a module from a project without profiles/slurm: nothing is capped."""
    monkeypatch.chdir(tmp_path)
    free = planner({"resources": {**RESOURCES, "partitions": "profiles/slurm/partitions.yaml"}}, tmp_path)
    assert free.partitions == [] and free.mem_mb("finetune", 1) == 480000


def test_a_partitions_file_in_the_working_directory_comes_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "partitions.yaml").write_text(yaml.safe_dump(PARTITIONS))
    monkeypatch.chdir(tmp_path)
    found = planner({"resources": RESOURCES}, tmp_path / "elsewhere")
    assert found.partitions
