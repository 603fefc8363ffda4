"""The evaluation preflight: reference programs judge the environment before any generation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from editforge.evaluation import load_benchmark, select_problems
from editforge.evaluation import preflight as preflight_module
from editforge.evaluation.preflight import EvalPreflightError, run_preflight
from editforge.evaluation.scoring import read_preflight
from editforge.sandbox import Limits, SandboxResult

SETTINGS = {"timeout_s": 15, "workers": 2}


@pytest.fixture(scope="module")
def problems(benchmark_path: Path) -> list[dict[str, Any]]:
    return [dict(p) for p in select_problems(load_benchmark(str(benchmark_path)), 4)]


def _broken(problem: dict[str, Any], after: str) -> dict[str, Any]:
    return {**problem, "after": after}


def test_passing_references_exclude_nothing(problems: list[dict[str, Any]], tmp_path: Path) -> None:
    report = run_preflight(problems, tmp_path / "p.json", tmp_path / "x.json", SETTINGS)
    assert (report["checked"], report["failing"], report["excluded"]) == (4, [], [])
    assert report["isolation"].startswith(("userns(", "bwrap("))
    assert json.loads((tmp_path / "x.json").read_text()) == {"excluded": []}
    assert read_preflight(tmp_path / "p.json") == ()


def test_a_failing_reference_stops_the_run_naming_problem_and_cause(
    problems: list[dict[str, Any]], tmp_path: Path
) -> None:
    broken = [_broken(problems[0], "import vllm_that_is_not_installed\n"), *problems[1:]]
    with pytest.raises(EvalPreflightError) as caught:
        run_preflight(broken, tmp_path / "p.json", tmp_path / "x.json", SETTINGS)
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert f"1 of 4 problems fail in this environment: {problems[0]['full_name']} " in message
    assert "(ModuleNotFoundError: No module named 'vllm_that_is_not_installed')" in message
    assert "evaluation.reference_failures: exclude" in message


def test_exclude_leaves_failing_problems_out_for_every_target(problems: list[dict[str, Any]], tmp_path: Path) -> None:
    broken = [problems[0], _broken(problems[1], "while True:\n    pass\n"), *problems[2:]]
    settings = {**SETTINGS, "timeout_s": 1, "reference_failures": "exclude"}
    report = run_preflight(broken, tmp_path / "p.json", tmp_path / "x.json", settings)
    expected = [
        {"problem_id": problems[1]["id"], "full_name": problems[1]["full_name"], "reason": "timed out after 1 s"}
    ]
    assert report["excluded"] == report["failing"] == expected
    assert json.loads((tmp_path / "x.json").read_text()) == {"excluded": expected}
    assert [e.problem_id for e in read_preflight(tmp_path / "x.json")] == [problems[1]["id"]]


def test_a_reference_that_passes_on_a_retry_is_kept(
    problems: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timing test that loses once on a busy machine is not an environment problem."""
    calls: list[int] = []

    def run_many(programs: list[str], workers: int, **_: Any) -> list[SandboxResult]:
        calls.append(len(programs))
        lose = len(calls) == 1
        return [
            SandboxResult("fail" if lose and i == 0 else "pass", 1 if lose and i == 0 else 0, "", "", 0.1, True)
            for i in range(len(programs))
        ]

    monkeypatch.setattr(preflight_module, "run_many", run_many)
    report = run_preflight(problems, tmp_path / "p.json", tmp_path / "x.json", SETTINGS)
    assert report["failing"] == [] and calls == [4, 1]


def test_bad_setting_is_refused(problems: list[dict[str, Any]], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reference_failures must be stop or exclude, got 'skip'"):
        run_preflight(problems, tmp_path / "p.json", tmp_path / "x.json", {**SETTINGS, "reference_failures": "skip"})


def test_failure_causes_are_short() -> None:
    limits = Limits(timeout_s=15)
    assert preflight_module.failure_cause(SandboxResult("timeout", None, "", "", 15.0, False), limits) == (
        "timed out after 15 s"
    )
    assert preflight_module.failure_cause(SandboxResult("error", -11, "", "", 0.1, False), limits) == (
        "killed by signal 11"
    )
    traceback = "Traceback (most recent call last):\n  ...\nAssertionError: nope\n\n"
    assert preflight_module.failure_cause(SandboxResult("fail", 1, traceback, "", 0.1, False), limits) == (
        "AssertionError: nope"
    )
