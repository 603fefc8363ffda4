"""The reference answers of the benchmark plug-ins: what a perfect model (the oracle) and one that
changes nothing (the anti-oracle) answer, in each format family. Their programs are the reference
programs exactly, for every problem of the shared data, every instruction kind and both families, so
an oracle run through the workflow tests what the reference check tests."""

from __future__ import annotations

from typing import Any

import pytest

from editforge.evaluation.benchmarks.aider_exercism import AiderExercism, whole_file
from editforge.evaluation.benchmarks.base import FORMAT_FAMILIES, Benchmark
from editforge.evaluation.benchmarks.humanevalfix import HumanEvalFix
from editforge.evaluation.sources import BenchmarkError
from helpers import SHARED

DATA = {
    "humanevalfix": SHARED / "benchmarks/humanevalfix/humanevalfix.jsonl",
    "aider_exercism": SHARED / "benchmarks/aider_exercism_python/aider_exercism_python.jsonl",
}
BENCHES: dict[str, Benchmark] = {"humanevalfix": HumanEvalFix(), "aider_exercism": AiderExercism()}


@pytest.fixture(scope="module")
def loaded() -> dict[str, list[dict[str, Any]]]:
    return {name: bench.load(str(DATA[name])) for name, bench in BENCHES.items()}


@pytest.mark.parametrize("name", sorted(BENCHES))
def test_the_programs_of_the_reference_answers_are_the_reference_programs(
    name: str, loaded: dict[str, list[dict[str, Any]]]
) -> None:
    bench = BENCHES[name]
    checked = 0
    for problem in loaded[name]:
        for kind in bench.kinds:
            expected = bench.reference_programs(problem, kind)
            for family in FORMAT_FAMILIES:
                answers = bench.reference_answers(problem, kind, family)
                got = tuple(bench.program(problem, kind, family, answer) for answer in answers)
                assert got == expected, (problem["id"], kind, family)
                checked += 1
    assert checked == {"humanevalfix": 164 * 2 * 2, "aider_exercism": 133 * 2}[name]


def test_humanevalfix_answers_written_out(loaded: dict[str, list[dict[str, Any]]]) -> None:
    bench = BENCHES["humanevalfix"]
    problem = loaded["humanevalfix"][0]
    canonical, buggy = problem["canonical_solution"], problem["buggy_solution"]
    # The harness continues its prompt, which ends with the declaration right-stripped (its "\n" goes).
    assert problem["declaration"].endswith(":\n")
    assert bench.reference_answers(problem, "tests", "harness") == ("\n" + canonical, "\n" + buggy)
    # Ours: the whole function in a fence; the docs kind keeps the docstring (the prompt base).
    oracle, anti_oracle = bench.reference_answers(problem, "docs", "editforge")
    assert oracle == f"```python\n{problem['prompt']}{canonical}\n```"
    assert anti_oracle == f"```python\n{problem['prompt']}{buggy}\n```"
    tests_oracle, _ = bench.reference_answers(problem, "tests", "editforge")
    assert tests_oracle == f"```python\n{problem['declaration']}{canonical}\n```"
    assert problem["test"] not in tests_oracle  # the shown tests are left out of the answer


def test_aider_answers_written_out(loaded: dict[str, list[dict[str, Any]]]) -> None:
    bench = BENCHES["aider_exercism"]
    problem = next(p for p in loaded["aider_exercism"] if p["id"] == "two-fer")
    example, stub = problem["example"], problem["stubs"]["two_fer.py"]
    oracle, anti_oracle = bench.reference_answers(problem, "instructions", "harness")
    assert oracle == f"two_fer.py\n```python\n{example.rstrip()}\n```\n"
    assert anti_oracle == f"two_fer.py\n```python\n{stub.rstrip()}\n```\n"
    oracle, anti_oracle = bench.reference_answers(problem, "instructions", "editforge")
    assert (oracle, anti_oracle) == (f"```python\n{example}\n```", f"```python\n{stub}\n```")


def test_a_whole_file_ends_with_one_newline(loaded: dict[str, list[dict[str, Any]]]) -> None:
    assert [whole_file(text) for text in ("a\n", "a", "a\n\n\n", "a\n    ")] == ["a\n", "a\n", "a\n", "a\n    \n"]
    # The files of the set that end otherwise, which the whole format rewrites (see reference_programs).
    odd = sorted(
        f"{problem['id']}:{path}"
        for problem in loaded["aider_exercism"]
        for path, text in (("example", problem["example"]), *problem["stubs"].items())
        if whole_file(text) != text
    )
    assert odd == ["ocr-numbers:ocr_numbers.py", "react:react.py", "roman-numerals:roman_numerals.py", "say:example"]


@pytest.mark.parametrize("name", sorted(BENCHES))
def test_an_unknown_kind_or_family_is_refused(name: str, loaded: dict[str, list[dict[str, Any]]]) -> None:
    bench, problem = BENCHES[name], loaded[name][0]
    with pytest.raises(BenchmarkError, match="instruction kind"):
        bench.reference_answers(problem, "lazy", "harness")
    with pytest.raises(BenchmarkError, match="prompt format"):
        bench.reference_answers(problem, bench.kinds[0], "canitedit-chat")
