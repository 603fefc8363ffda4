"""The plug-in benchmarks' stages end to end on real problems: the reference check, generation,
execution in the sandbox, Aider's second try, and the scores."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from editforge.backend import Completion, Request, Sampling
from editforge.backend.fake_answers import request_key
from editforge.evaluation.benchmarks import benchmark
from editforge.evaluation.benchmarks.base import Benchmark
from editforge.evaluation.plugin_stages import (
    NOT_WELL_FORMED,
    run_benchmark_execute,
    run_benchmark_generate,
    run_benchmark_preflight,
    run_benchmark_retry,
    run_benchmark_score,
)
from editforge.evaluation.preflight import EvalPreflightError
from editforge.evaluation.sources import BenchmarkError
from editforge.records import read_jsonl
from helpers import SHARED
from helpers.scripted import ScriptedBackend, ok

SOURCES = {
    "humanevalfix": SHARED / "benchmarks/humanevalfix/humanevalfix.jsonl",
    "aider_exercism": SHARED / "benchmarks/aider_exercism_python/aider_exercism_python.jsonl",
}
SAMPLING = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 64}
RUN = {"timeout_s": 60, "workers": 2, "sandbox": "auto"}
HUMANEVALFIX_RUN = {**RUN, "timeout_s": 10}  # its harness's limit


def load(name: str, ids: list[Any]) -> tuple[Benchmark, list[dict[str, Any]]]:
    bench = benchmark(name)
    return bench, bench.select(bench.load(str(SOURCES[name])), ids)


def answering(
    bench: Benchmark, problems: list[dict[str, Any]], family: str, pick: Callable[..., str]
) -> ScriptedBackend:
    """A backend answering each first-try request with ``pick(problem, oracle, anti_oracle)``."""
    sampling = Sampling(**SAMPLING)
    answers = {}
    for problem in problems:
        for kind in bench.kinds:
            oracle, anti = bench.reference_answers(problem, kind, family)
            answers[request_key(bench.request(problem, kind, family, sampling, 1))] = pick(problem, oracle, anti)
    return ScriptedBackend(lambda request: ok(answers.get(request_key(request), "no idea")))


def generate_and_run(
    bench: Benchmark, problems: list[dict[str, Any]], family: str, backend: ScriptedBackend, folder: Path
) -> Path:
    spec = {"backend": "scripted", "prompt_format": "editforge" if family == "editforge" else "canitedit-chat"}
    completions, executions = folder / "t/completions.jsonl", folder / "t/executions.jsonl"
    settings = {"samples": 1, "sampling": SAMPLING}
    run_benchmark_generate(bench, "t", spec, problems, settings, None, completions, backend=backend)
    limits = HUMANEVALFIX_RUN if bench.name == "humanevalfix" else RUN
    run_benchmark_execute(bench, completions, problems, executions, {**limits, "family": family})
    return executions


@pytest.mark.parametrize("family", ["editforge", "harness"])
def test_humanevalfix_oracle_passes_and_the_buggy_code_fails(tmp_path: Path, family: str) -> None:
    bench, problems = load("humanevalfix", ["Python/0", "Python/2", "Python/4"])
    report = run_benchmark_preflight(bench, problems, tmp_path / "pre.json", tmp_path / "ex.json", HUMANEVALFIX_RUN)
    assert (report["checked"], report["failing"], report["anti_oracle_passes"]) == (3, [], [])
    oracle = generate_and_run(bench, problems, family, answering(bench, problems, family, lambda p, o, a: o), tmp_path)
    records = list(read_jsonl(oracle))
    assert len(records) == 6 and {r["outcome"] for r in records} == {"pass"}
    assert all(r["well_formed"] and r["tests_finished"] for r in records)
    anti = generate_and_run(
        bench, problems, family, answering(bench, problems, family, lambda p, o, a: a), tmp_path / "anti"
    )
    assert {r["outcome"] for r in read_jsonl(anti)} == {"fail"}
    scores = run_benchmark_score(bench, problems, [oracle], [], tmp_path / "pre.json", tmp_path / "out", [1])
    overall = scores.summary.filter(pl.col("split") == "overall").row(0, named=True)
    assert (overall["pass@1"], overall["strict_pass@1"], overall["well_formed"], overall["problems"]) == (
        100.0,
        100.0,
        6,
        6,
    )
    assert scores.summary["split"].to_list() == ["tests", "docs", "overall"]
    assert (tmp_path / "out/summary.md").read_text().startswith("# HumanEvalFix")


def test_an_answer_without_a_program_fails_unrun_and_counts_as_not_well_formed(tmp_path: Path) -> None:
    bench, problems = load("humanevalfix", ["Python/0"])
    executions = generate_and_run(
        bench, problems, "editforge", ScriptedBackend(lambda request: ok("I cannot help with that.")), tmp_path
    )
    records = list(read_jsonl(executions))
    assert [(r["outcome"], r["well_formed"], r["stderr_tail"], r["duration_s"]) for r in records] == [
        ("fail", False, NOT_WELL_FORMED, 0.0)
    ] * 2
    failed = ScriptedBackend(lambda request: Completion("", None, error="HTTP 500 after 6 retries"))
    errors = list(read_jsonl(generate_and_run(bench, problems, "editforge", failed, tmp_path / "e")))
    assert {(r["outcome"], r["well_formed"]) for r in errors} == {("error", False)}


def test_aider_reference_check_names_the_stubs_that_already_pass(tmp_path: Path) -> None:
    bench, problems = load("aider_exercism", ["ledger", "markdown", "two-fer"])
    report = run_benchmark_preflight(bench, problems, tmp_path / "pre.json", tmp_path / "ex.json", RUN)
    assert (report["checked"], report["failing"], report["excluded"]) == (3, [], [])
    assert report["anti_oracle_passes"] == [
        {"problem_id": "ledger", "kind": "instructions"},
        {"problem_id": "markdown", "kind": "instructions"},
    ]


def test_a_failing_reference_stops_the_run_or_is_excluded(tmp_path: Path) -> None:
    bench, problems = load("humanevalfix", ["Python/0", "Python/1"])
    broken = [problems[0], {**problems[1], "canonical_solution": problems[1]["buggy_solution"]}]
    with pytest.raises(EvalPreflightError, match=r"humanevalfix reference check: .* 1 of 2 problems .*Python/1"):
        run_benchmark_preflight(bench, broken, tmp_path / "pre.json", tmp_path / "ex.json", RUN)
    report = run_benchmark_preflight(
        bench, broken, tmp_path / "pre.json", tmp_path / "ex.json", {**RUN, "reference_failures": "exclude"}
    )
    assert [e["problem_id"] for e in report["excluded"]] == ["Python/1"]
    assert json.loads((tmp_path / "ex.json").read_text())["excluded"] == report["excluded"]


def test_aider_second_try_sees_the_test_output_and_counts_in_pass_rate_2(tmp_path: Path) -> None:
    bench, problems = load("aider_exercism", ["two-fer", "leap"])
    # First try: the unchanged stub of each (fails); second try: the example solution, but only for two-fer.
    first = answering(bench, problems, "harness", lambda p, o, a: a)
    executions = generate_and_run(bench, problems, "harness", first, tmp_path)
    assert {r["outcome"] for r in read_jsonl(executions)} == {"fail"}
    seen: list[Request] = []

    def second(request: Request) -> Completion:
        seen.append(request)
        oracle, _ = bench.reference_answers(problems[1], "instructions", "harness")  # two-fer sorts after leap
        return ok(oracle if "two_fer" in request.messages[1]["content"] else "no idea")

    retries = tmp_path / "t/retry_completions.jsonl"
    spec = {"backend": "scripted", "prompt_format": "canitedit-chat"}
    settings = {"samples": 1, "sampling": SAMPLING}
    run_benchmark_retry(
        bench, "t", spec, problems, executions, settings, None, retries, backend=ScriptedBackend(second)
    )
    assert len(seen) == 2 and all(
        len(r.messages) == 4 and "See the testing errors above" in r.messages[3]["content"] for r in seen
    )
    retry_executions = tmp_path / "t/retry_executions.jsonl"
    run_benchmark_execute(bench, retries, problems, retry_executions, {**RUN, "family": "harness"})
    (tmp_path / "pre.json").write_text(json.dumps({"excluded": [], "anti_oracle_passes": []}))
    scores = run_benchmark_score(
        bench, problems, [executions], [retry_executions], tmp_path / "pre.json", tmp_path / "out", [1]
    )
    overall = scores.summary.filter(pl.col("split") == "overall").row(0, named=True)
    assert (overall["pass@1"], overall["pass_rate_2"]) == (0.0, 50.0)
    assert "pass_rate_2" in (tmp_path / "out/summary.md").read_text()


def test_humanevalfix_reads_the_python_file_of_the_hub_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = []

    def download(dataset: str, path: str) -> Path:
        asked.append((dataset, path))
        return SOURCES["humanevalfix"]

    monkeypatch.delenv("EDITFORGE_HUMANEVALFIX", raising=False)
    monkeypatch.setattr("editforge.evaluation.sources.download_dataset_file", download)
    problems = benchmark("humanevalfix").load()
    assert asked == [("bigcode/humanevalpack", "data/python/data/humanevalpack.jsonl")]
    assert len(problems) == 164 and problems[0]["id"] == "Python/0" and problems[-1]["id"] == "Python/163"


def test_canitedit_behind_the_interface_gives_the_harness_programs(benchmark_path: Path) -> None:
    bench = benchmark("canitedit")
    problem = bench.load(str(benchmark_path))[0]
    references = [program.source for program in bench.reference_programs(problem, "lazy")]
    for family in ("editforge", "harness", "canitedit-direct"):
        answers = bench.reference_answers(problem, "lazy", family)
        programs = [bench.program(problem, "lazy", family, answer) for answer in answers]
        # The chat formats' extraction ends the code with a newline (as the harness's does): one blank line more.
        assert [p.source.replace("\n\n### START TESTS", "\n### START TESTS") for p in programs] == references
    assert bench.reference_programs(problem, "lazy")[0].source == problem["after"] + "\n" + problem["tests"]
    assert bench.program(problem, "lazy", "editforge", "no code here") is None
    assert {row.model for row in bench.quoted} >= {"GPT-4", "OpenCodeEdit-Qwen3-8B"}
    with pytest.raises(BenchmarkError, match="prompt format must be one of"):
        bench.request(problem, "lazy", "alpaca", Sampling(**SAMPLING), 1)
