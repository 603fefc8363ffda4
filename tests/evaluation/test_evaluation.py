"""Evaluation: benchmark loading and checks, prompts, post-processing and the stages (scoring: test_scoring.py)."""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pytest

from editforge.backend import Backend, Completion, Request, Sampling
from editforge.edit_format import edit_messages
from editforge.evaluation import (
    BENCHMARK_ENV,
    BenchmarkError,
    Problem,
    build_request,
    load_benchmark,
    postprocess,
    required_modules,
    run_execute,
    run_generate,
    score,
    select_problems,
)
from editforge.records import read_jsonl, write_jsonl
from editforge.sandbox import run_program

SETTINGS = {"samples": 2, "sampling": {"temperature": 0.2, "top_p": 0.95, "max_tokens": 256}}


@pytest.fixture(scope="module")
def problems(benchmark_path: Path) -> list[Problem]:
    return load_benchmark(str(benchmark_path))


@pytest.fixture(autouse=True)
def _no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BENCHMARK_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def rows(benchmark_path: Path) -> list[dict[str, Any]]:
    """The benchmark file's first three rows, as written."""
    with benchmark_path.open(encoding="utf-8") as handle:
        return [json.loads(line) for _, line in zip(range(3), handle)]


def _write_rows(path: Path, rows: Sequence[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------- benchmark


def test_the_benchmark_loads_whole_and_sorted(problems: list[Problem]) -> None:
    assert len(problems) == 105
    assert [p["id"] for p in problems] == sorted({p["id"] for p in problems})
    assert Counter(p["taxonomy"]["change_kind"] for p in problems) == {
        "adaptive": 35,
        "corrective": 35,
        "perfective": 35,
    }
    assert all(p["full_name"] == f"{p['id']}_{p['name']}" for p in problems)


def test_env_variable_overrides_the_configured_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: list[dict[str, Any]]
) -> None:
    monkeypatch.setenv(BENCHMARK_ENV, str(_write_rows(tmp_path / "small.jsonl", rows[:2])))
    assert [p["id"] for p in load_benchmark("nuprl/CanItEdit")] == [rows[0]["id"], rows[1]["id"]]


def test_parquet_gives_the_same_problems(tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    path = tmp_path / "bench.parquet"
    pl.DataFrame(rows).write_parquet(path)
    assert load_benchmark(str(path)) == load_benchmark(str(_write_rows(tmp_path / "bench.jsonl", rows)))


def test_an_unreachable_hub_dataset_says_to_use_a_local_copy() -> None:
    with pytest.raises(BenchmarkError, match=BENCHMARK_ENV):
        load_benchmark("nuprl/CanItEdit")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="nothing.jsonl: benchmark file not found"):
        load_benchmark(str(tmp_path / "nothing.jsonl"))


def _set(path: str, value: Any) -> Any:
    def change(row: dict[str, Any]) -> None:
        *outer, last = path.split(".")
        target = row
        for key in outer:
            target = target[key]
        target[last] = value

    return change


def _drop(field: str) -> Any:
    return lambda row: row.pop(field)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_drop("tests"), "missing field(s) tests"),
        (_set("id", "2"), "'id' must be a positive integer, got '2'"),
        (_set("before", 17), "'before' must be a non-empty string, got 17"),
        (_set("instruction_lazy", "  "), "'instruction_lazy' must be a non-empty string"),
        (_set("tests", "assert True"), "'tests' must start with '### START TESTS ###'"),
        (_set("full_name", "2_wrong"), "'full_name' must be"),
        (
            _set("taxonomy.change_kind", "evolve"),
            "'taxonomy.change_kind' must be one of adaptive, corrective, perfective, got 'evolve'",
        ),
        (_set("taxonomy.libraries", "numpy"), "'taxonomy.libraries' must be a list of strings"),
        (_set("taxonomy", None), "'taxonomy' must be an object"),
    ],
)
def test_a_broken_record_is_named_with_its_fault(
    tmp_path: Path, change: Any, message: str, rows: list[dict[str, Any]]
) -> None:
    broken = copy.deepcopy(rows)
    change(broken[1])
    path = _write_rows(tmp_path / "broken.jsonl", broken)
    with pytest.raises(BenchmarkError) as caught:
        load_benchmark(str(path))
    text = str(caught.value)
    assert text.startswith(f"{path}:2")
    assert message in text


def test_bad_json_and_repeated_ids_are_named(tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(BenchmarkError, match=r"bad.jsonl:2: not JSON"):
        load_benchmark(str(path))
    _write_rows(path, [rows[0], rows[1], rows[0]])
    with pytest.raises(BenchmarkError, match=rf"bad.jsonl:3: id {rows[0]['id']} repeats the id of .*bad.jsonl:1$"):
        load_benchmark(str(path))


def test_select_problems(problems: list[Problem]) -> None:
    assert select_problems(problems, None) == problems
    assert [p["id"] for p in select_problems(problems, 3)] == [p["id"] for p in problems[:3]]
    assert [p["id"] for p in select_problems(problems, [120, 1, 60])] == [1, 60, 120]
    bad: list[tuple[Any, str]] = [
        (0, "between 1 and 105"),
        (106, "between 1 and 105"),
        ([1, 999], r"no problem with id\(s\) \[999\]"),
        ([1, 1], "more than once"),
        (True, "expected null, a count or a list"),
        (["1"], "must hold problem ids"),
    ]
    for spec, message in bad:
        with pytest.raises(BenchmarkError, match=message):
            select_problems(problems, spec)


def test_required_modules_are_the_benchmarks_third_party_imports(problems: list[Problem]) -> None:
    expected = {"numpy", "pandas", "scipy", "sklearn", "torch", "z3", "autograd", "flask", "vllm"}
    assert required_modules(problems) == expected


# ---------------------------------------------------------------- prompts


SAMPLING = Sampling(temperature=0.2, top_p=0.95, max_tokens=256)


def test_editforge_format_is_the_shared_training_prompt(problems: list[Problem]) -> None:
    problem = problems[0]
    request = build_request(problem, "lazy", "editforge", SAMPLING, 3)
    assert request.messages == edit_messages(problem["before"], problem["instruction_lazy"])
    assert (request.prompt, request.n, request.sampling) == (None, 3, SAMPLING)


def test_bad_format_kind_or_n_is_refused(problems: list[Problem]) -> None:
    with pytest.raises(ValueError, match="unknown prompt_format 'alpaca'"):
        build_request(problems[0], "lazy", "alpaca", SAMPLING, 1)
    with pytest.raises(ValueError, match="instruction kind must be one of lazy, descriptive"):
        build_request(problems[0], "terse", "editforge", SAMPLING, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must be a positive integer"):
        build_request(problems[0], "lazy", "editforge", SAMPLING, 0)


CODE = "import math\n\ndef area(r):\n    return math.pi * r * r"


# The CanItEdit formats follow the harness: see test_prompts.py.
@pytest.mark.parametrize(
    ("answer", "program"),
    [
        # the first fenced block anywhere
        (f"Here it is:\n```python\n{CODE}\n```\nDone.", CODE),
        (f"```Python3\n{CODE}\n```", CODE),
        # an untagged fence keeps its first code line
        (f"```\n{CODE}\n```", CODE),
        # text after the backticks that is not a Python tag is code
        ("```x = 1\ny = 2\n```", "x = 1\ny = 2"),
        # cut off before the closing fence: the rest of the answer
        (f"```python\n{CODE}", CODE),
        # an indented fence (inside a list item) gives top-level code
        ("1. Edited:\n   ```python\n   def f():\n       return 1\n   ```", "def f():\n    return 1"),
        ("```python\nfirst = 1\n```\nor\n```python\nsecond = 2\n```", "first = 1"),
        # no fence: bare code is kept, prose becomes an empty (failing) program
        (CODE, CODE),
        ("I would change the function so that it works.", ""),
        ("", ""),
        # a trailing example-usage section is kept
        (f"```python\n{CODE}\n\n# Example usage:\nprint(area(2))\n```", f"{CODE}\n\n# Example usage:\nprint(area(2))"),
    ],
)
def test_editforge_postprocess(answer: str, program: str) -> None:
    assert postprocess(answer, "editforge") == program


# ---------------------------------------------------------------- generation with a fake model


class CannedBackend(Backend):
    """Answers every request with a fenced program naming the sample; one call fails."""

    kind = "canned"

    def __init__(self) -> None:
        super().__init__("canned", "canned", None, None)
        self.seen: list[Request] = []
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def generate(self, requests: Sequence[Request], *, desc: str = "generate") -> list[list[Completion]]:
        self.seen.extend(requests)
        out = []
        for index, request in enumerate(requests):
            samples = []
            for sample in range(request.n):
                if index == 1 and sample == 1:
                    samples.append(Completion(text="", finish_reason=None, error="HTTP 500 after 6 retries"))
                else:
                    samples.append(
                        Completion(
                            text=f"Sure:\n```python\nresult = {index * 10 + sample}\n```",
                            finish_reason="stop",
                            prompt_tokens=10,
                            completion_tokens=5,
                        )
                    )
            out.append(samples)
        self._usage.calls += sum(r.n for r in requests)
        return out


def test_run_generate_writes_one_record_per_sample(problems: list[Problem], tmp_path: Path) -> None:
    backend = CannedBackend()
    chosen = problems[:2]
    out = tmp_path / "completions.jsonl"
    report = run_generate(
        "canned",
        {"backend": "canned", "prompt_format": "canitedit-direct"},
        chosen,
        SETTINGS,
        None,
        out,
        backend=backend,
    )
    records = list(read_jsonl(out))
    assert not backend.closed  # the caller's backend stays open
    assert len(backend.seen) == 4 and len(records) == 8  # 2 problems x 2 kinds x 2 samples
    assert all(r.prompt is not None and r.prompt.startswith("## Code Before:\n") for r in backend.seen)
    assert [(r["problem_id"], r["kind"], r["sample_index"]) for r in records[:4]] == [
        (chosen[0]["id"], "lazy", 0),
        (chosen[0]["id"], "lazy", 1),
        (chosen[0]["id"], "descriptive", 0),
        (chosen[0]["id"], "descriptive", 1),
    ]
    first = records[0]
    assert first["raw"] == "Sure:\n```python\nresult = 0\n```"
    assert first["completion"] == "Sure:\n```python\nresult = 0\n```"  # direct: no opening fence, raw text
    assert first["change_kind"] == chosen[0]["taxonomy"]["change_kind"] and first["full_name"] == chosen[0]["full_name"]
    failed = records[3]
    assert (failed["completion"], failed["error"], failed["finish_reason"]) == ("", "HTTP 500 after 6 retries", None)
    usage = json.loads((tmp_path / "completions.usage.json").read_text())
    assert usage == report
    assert (usage["prompt_format"], usage["samples"], usage["usage"]["calls"]) == ("canitedit-direct", 8, 8)
    assert usage["finish_reasons"] == {"stop": 7, "None": 1}


def test_run_generate_uses_the_settings_format_and_postprocesses(problems: list[Problem], tmp_path: Path) -> None:
    backend = CannedBackend()
    out = tmp_path / "completions.jsonl"
    run_generate("canned", {"backend": "canned"}, problems[:1], {**SETTINGS, "samples": 1}, None, out, backend=backend)
    assert backend.seen[0].messages == edit_messages(problems[0]["before"], problems[0]["instruction_lazy"])
    assert [r["completion"] for r in read_jsonl(out)] == ["result = 0", "result = 10"]
    with pytest.raises(ValueError, match="evaluation.samples must be a positive integer"):
        run_generate("canned", {}, problems[:1], {**SETTINGS, "samples": 0}, None, out, backend=backend)
    with pytest.raises(ValueError, match="unknown prompt_format 'alpaca'"):
        run_generate("canned", {"prompt_format": "alpaca"}, problems[:1], SETTINGS, None, out, backend=backend)
    with pytest.raises(ValueError, match="evaluation.sampling lacks max_tokens"):
        run_generate(
            "canned",
            {},
            problems[:1],
            {"samples": 1, "sampling": {"temperature": 0, "top_p": 1}},
            None,
            out,
            backend=backend,
        )


# ---------------------------------------------------------------- execution


def _completions(problems: Sequence[Problem], field: Literal["before", "after"], target: str) -> list[dict[str, Any]]:
    return [
        {
            "target": target,
            "problem_id": p["id"],
            "full_name": p["full_name"],
            "kind": kind,
            "change_kind": p["taxonomy"]["change_kind"],
            "sample_index": 0,
            "completion": p[field],
            "raw": p[field],
            "finish_reason": "stop",
            "error": None,
        }
        for p in problems
        for kind in ("lazy", "descriptive")
    ]


def _unrunnable_ids(problems: Sequence[Problem]) -> set[int]:
    """Problems whose reference needs a package that this environment lacks."""
    missing = {name for name in required_modules(problems) if find_spec(name) is None}
    return {p["id"] for p in problems if required_modules([p]) & missing}


def test_reference_programs_pass(problems: list[Problem], tmp_path: Path) -> None:
    unrunnable = _unrunnable_ids(problems)
    # Only vllm (problem 78) may be absent; the others belong to the evaluation setup.
    assert unrunnable <= {78}, f"install the evaluation packages; problems {sorted(unrunnable)} cannot run"
    write_jsonl(tmp_path / "after.jsonl", _completions(problems, "after", "reference-after"))
    counts = run_execute(
        tmp_path / "after.jsonl", problems, tmp_path / "after.exec.jsonl", {"timeout_s": 15, "workers": 2}
    )
    executions = list(read_jsonl(tmp_path / "after.exec.jsonl"))
    failed = {e["problem_id"] for e in executions if e["outcome"] != "pass"}
    print(f"reference after programs: {counts} (not passing: problems {sorted(failed)})")
    # A missing package is a failure like any other; the preflight keeps such problems out of a run.
    assert unrunnable <= failed
    # Two tests compare timings (47_merge_sort, 60_unique_number): on a busy machine they can lose, so
    # a reference that failed once must pass one of three more runs.
    by_id = {p["id"]: p for p in problems}
    for problem_id in failed - unrunnable:
        program = by_id[problem_id]["after"] + "\n" + by_id[problem_id]["tests"]
        outcomes = [run_program(program).outcome for _ in range(3)]
        assert "pass" in outcomes, (by_id[problem_id]["full_name"], outcomes)
    assert all(e["isolation"].startswith(("userns(", "bwrap(")) for e in executions)
    runnable = [e for e in executions if e["problem_id"] not in failed]
    summary = score(runnable, problems).summary
    overall = summary.filter(pl.col("split") == "overall").row(0, named=True)
    assert overall["pass@1"] == overall["strict_pass@1"] == 100.0
    # Measured as the harness does (its .coveragerc drops @abstractmethod bodies), every reference is fully covered.
    assert overall["covered_problems"] == overall["problems"] == 2 * (105 - len(failed))
    assert overall["excess_code"] == overall["mean_median_coverage"] == 0.0


def test_before_programs_fail(problems: list[Problem], tmp_path: Path) -> None:
    write_jsonl(tmp_path / "before.jsonl", _completions(problems, "before", "reference-before"))
    # 5 s instead of 15: only the three slow-on-purpose programs come near it, and they time out either way.
    counts = run_execute(
        tmp_path / "before.jsonl", problems, tmp_path / "before.exec.jsonl", {"timeout_s": 5, "workers": 2}
    )
    executions = list(read_jsonl(tmp_path / "before.exec.jsonl"))
    passed = {e["full_name"] for e in executions if e["outcome"] == "pass"}
    print(f"reference before programs: {counts}; passing: {sorted(passed)}")
    # 60_unique_number's test is a flaky timing comparison that the old code can win.
    assert passed <= {"60_unique_number"}
    timeouts = {e["full_name"] for e in executions if e["outcome"] == "timeout"}
    # The three slow-on-purpose programs always time out; on a busy machine a slow test of another
    # program (60_unique_number takes about 4 s alone) can reach the 5 s too, which is a failure as well.
    assert {"21_dijkstra_bellman", "53_minimax_to_alphabeta", "95_dbscan"} <= timeouts


def test_run_execute_skips_failed_generations_and_checks_records(problems: list[Problem], tmp_path: Path) -> None:
    records = _completions(problems[:1], "after", "t")
    records[1]["error"] = "HTTP 500 after 6 retries"
    records[1]["completion"] = ""
    write_jsonl(tmp_path / "c.jsonl", records)
    counts = run_execute(tmp_path / "c.jsonl", problems[:1], tmp_path / "e.jsonl", {"timeout_s": 15, "workers": 1})
    executions = list(read_jsonl(tmp_path / "e.jsonl"))
    assert counts == {"pass": 1, "error": 1}
    assert executions[1]["stderr_tail"] == "generation failed: HTTP 500 after 6 retries"
    assert {k: executions[0][k] for k in records[0]} == records[0]  # completion fields carried over
    with pytest.raises(ValueError, match=r"c.jsonl: record 1 is for problem \d+, which is not selected"):
        run_execute(tmp_path / "c.jsonl", problems[1:2], tmp_path / "e.jsonl", {"timeout_s": 15, "workers": 1})
