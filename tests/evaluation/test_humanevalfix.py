"""HumanEvalFix as a benchmark plug-in: loading, the harness's and our prompts, extraction, and the
reference check (every oracle passes, every anti-oracle fails) through the real sandbox."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from editforge.backend import Sampling
from editforge.edit_format import SYSTEM_PROMPT
from editforge.evaluation import sources
from editforge.evaluation.benchmarks.humanevalfix import (
    HARNESS_STOPS,
    IMPORT_HELPER,
    HumanEvalFix,
    harness_continuation,
)
from editforge.evaluation.sources import BenchmarkError
from editforge.hub import HubError
from editforge.sandbox import Limits, run_many, select_isolation
from helpers import SHARED

DATA = SHARED / "benchmarks/humanevalfix/humanevalfix.jsonl"
BENCH = HumanEvalFix()


@pytest.fixture(scope="module")
def problems() -> list[dict[str, Any]]:
    return BENCH.load(str(DATA))


@pytest.fixture(scope="module")
def by_id(problems: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in problems}




def test_loads_all_problems_in_order(problems: list[dict[str, Any]]) -> None:
    assert [p["id"] for p in problems] == [f"Python/{i}" for i in range(164)]
    assert [p["order"] for p in problems] == list(range(164))
    assert problems[0]["entry_point"] == "has_close_elements"
    assert all(isinstance(p[f], str) for p in problems for f in ("prompt", "declaration", "test", "buggy_solution"))


def test_env_var_overrides_the_configured_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = DATA.read_text(encoding="utf-8").splitlines()
    copy = tmp_path / "three.jsonl"
    copy.write_text("\n".join([lines[2], lines[0], lines[1]]) + "\n", encoding="utf-8")
    monkeypatch.setenv(BENCH.env_var, str(copy))
    assert BENCH.source("somewhere/else") == str(copy)
    assert [p["id"] for p in BENCH.load("somewhere/else")] == ["Python/0", "Python/1", "Python/2"]


def _broken_copy(tmp_path: Path, second: str) -> Path:
    path = tmp_path / "broken.jsonl"
    path.write_text(DATA.read_text(encoding="utf-8").splitlines()[0] + "\n" + second + "\n", encoding="utf-8")
    return path


def test_missing_field_names_the_line_and_field(tmp_path: Path) -> None:
    record = json.loads(DATA.read_text(encoding="utf-8").splitlines()[1])
    del record["buggy_solution"]
    path = _broken_copy(tmp_path, json.dumps(record))
    with pytest.raises(BenchmarkError, match=r"broken\.jsonl:2: missing field 'buggy_solution'"):
        BENCH.load(str(path))


def test_wrong_type_and_bad_id_name_the_field(tmp_path: Path) -> None:
    record = json.loads(DATA.read_text(encoding="utf-8").splitlines()[1])
    with pytest.raises(BenchmarkError, match=r"broken\.jsonl:2: field 'test' must be a string, got int"):
        BENCH.load(str(_broken_copy(tmp_path, json.dumps({**record, "test": 3}))))
    with pytest.raises(BenchmarkError, match=r"broken\.jsonl:2: field 'task_id' must look like 'Python/N'"):
        BENCH.load(str(_broken_copy(tmp_path, json.dumps({**record, "task_id": "HumanEval/1"}))))


def test_not_json_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match=r"broken\.jsonl:2: not JSON"):
        BENCH.load(str(_broken_copy(tmp_path, '{"task_id": "Python/1",')))


def test_repeated_ids_are_refused(tmp_path: Path) -> None:
    first = DATA.read_text(encoding="utf-8").splitlines()[0]
    with pytest.raises(BenchmarkError, match=r"problem id\(s\) \['Python/0'\] repeat"):
        BENCH.load(str(_broken_copy(tmp_path, first)))


def test_no_source_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BENCH.env_var, raising=False)

    class Nowhere(HumanEvalFix):
        default_source = None

    with pytest.raises(BenchmarkError, match="no source; set EDITFORGE_HUMANEVALFIX"):
        Nowhere().load()

    def offline(dataset_id: str, revision: str | None = None) -> list[str]:
        raise HubError("unreachable", OSError("offline"))

    monkeypatch.setattr(sources, "list_dataset_files", offline)
    with pytest.raises(BenchmarkError, match="bigcode/humanevalpack.*set EDITFORGE_HUMANEVALFIX to a local copy"):
        BENCH.load()



# Python/34 (unique), the shortest problem, as each variant shows it.
UNIQUE_TESTS_CODE = (
    "def unique(l: list):\n"
    "    return sorted(l)\n"
    "\n\n\n\n\n\n"
    "def check(unique):\n"
    "    assert unique([5, 3, 5, 2, 3, 3, 9, 0, 123]) == [0, 2, 3, 5, 9, 123]\n"
    "\n"
    "check(unique)"
)
UNIQUE_DOCS_FUNCTION = (
    "def unique(l: list):\n"
    '    """Return sorted unique elements in a list\n'
    "    >>> unique([5, 3, 5, 2, 3, 3, 9, 0, 123])\n"
    "    [0, 2, 3, 5, 9, 123]\n"
    '    """\n'
)


def test_harness_prompts_are_the_instruct_format(by_id: dict[str, dict[str, Any]]) -> None:
    unique = by_id["Python/34"]
    sampling = Sampling(temperature=0.2, top_p=0.95, max_tokens=512, stop=("\ndef", "STOP"))
    tests = BENCH.request(unique, "tests", "harness", sampling, 20)
    assert tests.prompt == UNIQUE_TESTS_CODE + "\nFix bugs in unique.\n\ndef unique(l: list):"
    assert tests.messages == [] and tests.n == 20
    docs = BENCH.request(unique, "docs", "harness", sampling, 1)
    assert docs.prompt == (
        UNIQUE_DOCS_FUNCTION + "    return sorted(l)\n\nFix bugs in unique.\n\n\n\n" + UNIQUE_DOCS_FUNCTION.rstrip()
    )
    # The harness's stops follow the caller's, each once.
    harness = ("\nclass", "\n#", "\n@", "\nprint", "\nif", "\nassert", "<|endoftext|>")  # "\ndef" was there
    assert docs.sampling.stop == ("\ndef", "STOP", *harness)
    assert docs.sampling.temperature == 0.2 and docs.sampling.max_tokens == 512


def test_editforge_requests_show_the_harness_code(by_id: dict[str, dict[str, Any]]) -> None:
    unique = by_id["Python/34"]
    sampling = Sampling(stop=("X",))
    tests = BENCH.request(unique, "tests", "editforge", sampling, 2)
    assert tests.prompt is None and tests.sampling == sampling and tests.n == 2
    assert tests.messages == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {
            "role": "user",
            "content": f"## Code Before:\n```python\n{UNIQUE_TESTS_CODE}\n```\n"
            "## Instruction:\nFix bugs in unique.\n## Code After:",
        },
    ]
    docs = BENCH.request(unique, "docs", "editforge", sampling, 1)
    assert docs.messages[1]["content"] == (
        f"## Code Before:\n```python\n{UNIQUE_DOCS_FUNCTION}    return sorted(l)\n```\n"
        "## Instruction:\nFix bugs in unique.\n## Code After:"
    )


def test_bad_kind_family_and_n_are_refused(by_id: dict[str, dict[str, Any]]) -> None:
    unique = by_id["Python/34"]
    with pytest.raises(BenchmarkError, match="instruction kind must be one of tests, docs"):
        BENCH.request(unique, "lazy", "harness", Sampling(), 1)
    with pytest.raises(BenchmarkError, match="prompt format must be one of editforge, harness"):
        BENCH.request(unique, "tests", "canitedit-chat", Sampling(), 1)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        BENCH.request(unique, "tests", "harness", Sampling(), 0)




def _candidate(source: str, problem: dict[str, Any]) -> str:
    """The candidate part of a program: between the import helper and the test."""
    helper = "\n".join(IMPORT_HELPER) + "\n"
    assert source.startswith(helper) and source.endswith("\n\n" + problem["test"])
    return source[len(helper) : -len("\n\n" + problem["test"])]


def test_harness_extraction_cuts_as_the_harness(by_id: dict[str, dict[str, Any]]) -> None:
    unique = by_id["Python/34"]
    # The earliest stop string wins ("\nprint" before "\ndef").
    continuation = "\n    return sorted(set(l))\n\nprint(unique([1]))\ndef other():\n    pass\n"
    program = BENCH.program(unique, "tests", "harness", continuation)
    assert program is not None and program.timeout_s == 10
    assert _candidate(program.source, unique) == "def unique(l: list):\n    return sorted(set(l))"
    # No stop string: cut before the first non-blank line at column 0 (blank lines before it stay,
    # until the assembly strips the candidate's end).
    continuation = "\n    return sorted(set(l))\n\n  \nunique([3])\n    x = 1\n"
    assert harness_continuation(continuation) == "\n    return sorted(set(l))\n\n  "
    assert harness_continuation("\n    return l\n\tx = 1\n    y = 2  \n\n") == "\n    return l\n\tx = 1\n    y = 2"
    program = BENCH.program(unique, "docs", "harness", continuation)
    assert program is not None
    assert _candidate(program.source, unique) == "\n\n" + UNIQUE_DOCS_FUNCTION + "    return sorted(set(l))"
    # Text on the prompt's last line counts as a column-0 line: nothing is kept.
    assert harness_continuation(" pass\n    return l") == " pass\n    return l"
    assert harness_continuation("pass\n    return l") == ""
    program = BENCH.program(unique, "tests", "harness", "pass\n    return l")
    assert program is not None and _candidate(program.source, unique) == "def unique(l: list):"
    assert "<|endoftext|>" in HARNESS_STOPS


def test_editforge_extraction(by_id: dict[str, dict[str, Any]]) -> None:
    unique = by_id["Python/34"]
    fixed = "def unique(l: list):\n    return sorted(list(set(l)))"
    program = BENCH.program(unique, "tests", "editforge", f"Here it is:\n```python\n{fixed}\n```\nDone.")
    assert program is not None and _candidate(program.source, unique) == fixed
    assert BENCH.program(unique, "tests", "editforge", fixed) is not None  # no fence, but Python
    assert BENCH.program(unique, "docs", "editforge", "I cannot fix this function, sorry.") is None
    assert BENCH.program(unique, "docs", "editforge", "```python\n```") is None
    # Code that does not define the entry point is not well formed.
    assert BENCH.program(unique, "docs", "editforge", "```python\ndef other(l):\n    return l\n```") is None
    assert BENCH.program(unique, "docs", "editforge", "```python\n    return sorted(set(l))\n```") is None
    # Code that does not parse but defines it is run (and fails).
    assert BENCH.program(unique, "docs", "editforge", "```python\ndef unique(l:\n```") is not None


def test_reference_texts(by_id: dict[str, dict[str, Any]]) -> None:
    unique = by_id["Python/34"]
    texts = BENCH.reference_texts(unique)
    assert texts["prompt+canonical_solution"] == unique["prompt"] + "    return sorted(list(set(l)))\n"
    assert texts["prompt+buggy_solution"] == unique["prompt"] + "    return sorted(l)\n"
    assert texts["declaration+canonical_solution"] == "def unique(l: list):\n    return sorted(list(set(l)))\n"
    assert texts["docstring"] == "Return sorted unique elements in a list"  # the prose, not the example
    assert set(texts) == {
        "prompt+canonical_solution", "prompt+buggy_solution", "declaration+canonical_solution", "test", "docstring"
    }
    assert BENCH.instruction_fields == ("docstring",)


def test_quoted_rows() -> None:
    rows = {row.model: row for row in BENCH.quoted}
    assert rows["Qwen2.5-Coder-7B-Instruct"].scores == {"overall": 73.8}
    assert rows["NextCoder-7B"].scores == {"overall": 81.1}
    assert "20168028" in rows["NextCoder-7B"].source and "not directly comparable" in rows["NextCoder-7B"].caveat




def _run(sources_: list[str]) -> list[str]:
    limits = Limits(timeout_s=BENCH.timeout_s, memory_mb=4096)
    return [r.outcome for r in run_many(sources_, 2, limits=limits, isolation=select_isolation("auto"))]


def test_reference_check(problems: list[dict[str, Any]]) -> None:
    """Every oracle passes and every anti-oracle fails, in both kinds (3 buggy bodies run past the limit)."""
    programs = [BENCH.reference_programs(p, kind) for kind in BENCH.kinds for p in problems]
    started = time.monotonic()
    outcomes = _run([program.source for pair in programs for program in pair])
    elapsed = time.monotonic() - started
    oracle, anti = outcomes[0::2], outcomes[1::2]
    for number, kind in enumerate(BENCH.kinds):
        part = slice(number * len(problems), (number + 1) * len(problems))
        print(
            f"\n{kind}: oracle passes {oracle[part].count('pass')}/{len(problems)}, "
            f"anti-oracle fails {len(problems) - anti[part].count('pass')}/{len(problems)} "
            f"({anti[part].count('timeout')} timeouts)"
        )
    print(f"reference check: {len(outcomes)} programs in {elapsed:.1f} s on 2 workers")
    labels = [f"{kind} {p['id']}" for kind in BENCH.kinds for p in problems]
    assert [label for label, o in zip(labels, oracle) if o != "pass"] == []
    assert [label for label, o in zip(labels, anti) if o == "pass"] == []
    # Three buggy bodies run past the limit in each kind. They are not the ones `failure_symptoms`
    # labels "infinite loop" (44 and 76 fail at once): 10 and 156 loop forever, and 160 builds an
    # expression that doubles with each operator (a fast machine might finish it; it still fails).
    for kind in BENCH.kinds:
        timed_out = {label.split("/")[1] for label, o in zip(labels, anti) if o == "timeout" and label.startswith(kind)}
        assert {"10", "156"} <= timed_out <= {"10", "156", "160"}, (kind, timed_out)


def test_model_answers_pass(by_id: dict[str, dict[str, Any]]) -> None:
    """The body alone continues a harness prompt; the whole fixed function is an editforge answer."""
    chosen = [by_id[i] for i in ("Python/0", "Python/10", "Python/34", "Python/142")]
    programs = []
    for problem in chosen:
        for kind in BENCH.kinds:
            programs.append(BENCH.program(problem, kind, "harness", "\n" + problem["canonical_solution"]))
            whole = BENCH.prompt_base(problem, kind).lstrip("\n") + problem["canonical_solution"]
            programs.append(BENCH.program(problem, kind, "editforge", f"```python\n{whole}```\n"))
    assert all(program is not None for program in programs)
    assert _run([program.source for program in programs if program is not None]) == ["pass"] * len(programs)
