"""Aider's Exercism Python benchmark (the 2023 set of 133): loading, requests, extraction, and the
reference check through the real sandbox (every reference passes; only two unchanged stubs do)."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path
from typing import Any

import pytest

from editforge.backend import Sampling
from editforge.evaluation.benchmarks.aider_exercism import AiderExercism, second_turn
from editforge.evaluation.benchmarks.base import Program
from editforge.evaluation.sources import BenchmarkError
from editforge.sandbox import Limits, SandboxResult, run_many, run_program, select_isolation
from helpers import SHARED

DATA = SHARED / "benchmarks/aider_exercism_python/aider_exercism_python.jsonl"
BENCH = AiderExercism()
KIND = "instructions"
HIDDEN = (".meta/", ".approaches/", ".articles/")
FREE_PASSES = ["ledger", "markdown"]  # refactoring exercises: the unchanged stub already passes


@pytest.fixture(scope="module")
def problems() -> list[dict[str, Any]]:
    return BENCH.load(str(DATA))


@pytest.fixture(scope="module")
def by_slug(problems: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in problems}


def program_files(program: Program) -> dict[str, str]:
    """The files a folder program writes (its ``files = json.loads(...)`` line)."""
    for node in ast.parse(program.source).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "files":
            return json.loads(node.value.args[0].value)
    raise AssertionError("no files in the program")


def record(slug: str = "demo", **changes: Any) -> dict[str, Any]:
    files = {
        "demo.py": "def answer():\n    pass\n",
        "demo_test.py": "import unittest\n\nfrom demo import answer\n\n\nclass DemoTest(unittest.TestCase):\n"
        "    def test_answer(self):\n        self.assertEqual(answer(), 42)\n",
        ".docs/instructions.md": "# Instructions\n\nReturn 42.\n",
        ".meta/example.py": "def answer():\n    return 42\n",
    }
    files.update(changes)
    return {"slug": slug, "files": {k: v for k, v in files.items() if v is not None}}


def write_jsonl(path: Path, rows: list[Any]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


# Loading


def test_loads_the_133_exercises_sorted_by_slug(problems: list[dict[str, Any]]) -> None:
    slugs = [p["id"] for p in problems]
    assert len(slugs) == 133 == len(set(slugs))
    assert slugs == sorted(slugs)
    assert slugs[0] == "accumulate" and "parallel-letter-frequency" in slugs and "eliuds-eggs" not in slugs
    assert all(len(p["stubs"]) == 1 for p in problems)  # no multi-file exercise in the 2023 set
    assert sorted(p["id"] for p in problems if "test_utils.py" in p["tests"]) == ["error-handling", "paasio"]
    assert BENCH.name == "aider_exercism" and BENCH.kinds == (KIND,) and BENCH.timeout_s == 60
    assert BENCH.default_source is None
    assert [(q.model, dict(q.scores)) for q in BENCH.quoted] == [("Qwen2.5-Coder-7B-Instruct", {KIND: 51.9})]


def test_the_instructions_concatenate_introduction_instructions_and_append(by_slug: dict[str, Any]) -> None:
    files = by_slug["gigasecond"]["files"]  # has all three
    expected = files[".docs/introduction.md"] + files[".docs/instructions.md"] + files[".docs/instructions.append.md"]
    assert by_slug["gigasecond"]["instructions"] == expected
    assert by_slug["bowling"]["stubs"] == {"bowling.py": by_slug["bowling"]["files"]["bowling.py"]}  # .gitignore


def test_the_environment_variable_overrides_the_configured_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDITFORGE_AIDER_EXERCISM", write_jsonl(tmp_path / "one.jsonl", [record()]))
    assert [p["id"] for p in BENCH.load(str(DATA))] == ["demo"]


def test_no_source_names_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDITFORGE_AIDER_EXERCISM", raising=False)
    with pytest.raises(BenchmarkError, match="EDITFORGE_AIDER_EXERCISM"):
        BENCH.load()


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (record(**{".meta/example.py": None}), r"\.jsonl:2 \(demo\): missing \.meta/example\.py"),
        (record(**{".docs/instructions.md": None}), r"\.jsonl:2 \(demo\): missing \.docs/instructions\.md"),
        (record(**{"demo_test.py": None}), r"\.jsonl:2 \(demo\): missing a \*_test\.py file"),
        (record(**{"demo.py": None}), r"\.jsonl:2 \(demo\): missing a stub file"),
        ({"slug": "demo", "files": {"demo.py": 3}}, r"\.jsonl:2 \(demo\): 'files' must map"),
        ({"files": {}}, r"\.jsonl:2: 'slug' must be"),
        (["demo"], r"\.jsonl:2: not an object"),
    ],
)
def test_a_broken_record_is_a_named_error(
    row: Any, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EDITFORGE_AIDER_EXERCISM", raising=False)
    with pytest.raises(BenchmarkError, match=expected):
        BENCH.load(write_jsonl(tmp_path / "broken.jsonl", [record("first"), row]))


# Requests

REVERSE_TEXT = (
    '# Instructions\n\nReverse a string\n\nFor example:\ninput: "cool"\noutput: "looc"\n'
    "\n####\n\n"
    "Use the instructions above to modify the supplied files: reverse_string.py\n"
    "Keep the names of the existing functions and classes unchanged, as other code, such as unit tests, "
    "may refer to them.\n"
    "Use only the Python standard library; don't suggest installing any packages.\n"
)
WHOLE_SYSTEM = (
    "You are an expert software developer. You are given a task and the files it concerns; make the "
    "changes the task asks for.\n"
    "Return every file you change as a complete listing, in this format: the file's name alone on one "
    "line, then a fenced code block holding the whole new content of that file, from its first line to "
    'its last. Never leave out, shorten or summarise any part of a file (no "..." and no "rest of the '
    'code unchanged" comments). Do not return files you leave unchanged.\n'
    "For example:\n\npath/to/file.py\n```python\n# the whole content of the file\n```"
)


def test_the_harness_request_written_out(by_slug: dict[str, Any]) -> None:
    sampling = Sampling(max_tokens=4096)
    request = BENCH.request(by_slug["reverse-string"], KIND, "harness", sampling, 3)
    assert (request.prompt, request.prefill, request.sampling, request.n) == (None, "", sampling, 3)
    user = REVERSE_TEXT + "\nreverse_string.py\n```python\ndef reverse(text):\n    pass\n```\n"
    assert request.messages == [{"role": "system", "content": WHOLE_SYSTEM}, {"role": "user", "content": user}]


def test_the_editforge_request_written_out(by_slug: dict[str, Any]) -> None:
    request = BENCH.request(by_slug["reverse-string"], KIND, "editforge", Sampling(), 1)
    assert request.messages == [
        {
            "role": "system",
            "content": "You are a code editor. You will be provided the original code snippet and an instruction "
            "that specifies the changes you need to make. You will produce the changed code, based on the original "
            "code and the instruction given. Only produce the code, do not include any additional prose.",
        },
        {
            "role": "user",
            "content": "## Code Before:\n```python\ndef reverse(text):\n    pass\n```\n## Instruction:\n"
            + REVERSE_TEXT.strip()
            + "\n## Code After:",
        },
    ]


def test_unknown_kind_family_or_n_is_refused(by_slug: dict[str, Any]) -> None:
    problem = by_slug["reverse-string"]
    for kind, family, n in (("lazy", "harness", 1), (KIND, "canitedit-chat", 1), (KIND, "harness", 0)):
        with pytest.raises(BenchmarkError):
            BENCH.request(problem, kind, family, Sampling(), n)


def test_no_request_shows_tests_or_hidden_files(problems: list[dict[str, Any]]) -> None:
    """No text of a test file, of .meta/ (the example solution), .approaches/ or .articles/ appears in any
    request. No hidden file equals a stub (checked), so no exception is needed."""
    checked = 0
    for problem in problems:
        hidden = {
            path: text.strip()
            for path, text in problem["files"].items()
            if path.startswith(HIDDEN) or path in problem["tests"]
        }
        assert problem["files"][".meta/example.py"].strip() in hidden.values()
        assert not set(hidden.values()) & {text.strip() for text in problem["stubs"].values()}, problem["id"]
        for family in ("harness", "editforge"):
            shown = "\n".join(m["content"] for m in BENCH.request(problem, KIND, family, Sampling(), 1).messages)
            assert all(stub.strip() in shown for stub in problem["stubs"].values())
            leaked = [path for path, text in hidden.items() if text in shown]
            assert not leaked, f"{problem['id']} ({family}) shows {leaked}"
            checked += len(hidden)
    assert checked > 2 * 133 * 4


# Extraction

REVERSED = "def reverse(text):\n    return text[::-1]\n"


@pytest.mark.parametrize(
    "answer",
    [
        f"Here is the change.\n\nreverse_string.py\n```python\n{REVERSED}```\n",
        f"**reverse_string.py**\n\n```\n{REVERSED}```",
        f"### `exercism/reverse_string.py`:\n```py\n{REVERSED}```\nDone.",
        f"reverse_string.py\n```python\ndef reverse(text):\n    pass\n```\nBetter:\nreverse_string.py\n"
        f"```python\n{REVERSED}```",
        f"Sure:\n```python\n{REVERSED}```\n",  # one stub, one unnamed block
        f"reverse_string.py\n```python\n{REVERSED}",  # cut off before the closing fence
        "1. reverse_string.py\n\n   ```python\n   def reverse(text):\n       return text[::-1]\n   ```\n",  # indented
    ],
)
def test_a_whole_format_answer_gives_the_stub(by_slug: dict[str, Any], answer: str) -> None:
    problem = by_slug["reverse-string"]
    program = BENCH.program(problem, KIND, "harness", answer)
    assert program is not None and program.timeout_s == 60
    assert program_files(program) == {
        "reverse_string.py": REVERSED,
        "reverse_string_test.py": problem["files"]["reverse_string_test.py"],
    }


@pytest.mark.parametrize(
    "answer",
    [
        "You should slice the string backwards.",
        f"```python\n{REVERSED}```\nor\n```python\ndef reverse(text):\n    return ''.join(reversed(text))\n```",
        f"other.py\n```python\n{REVERSED}```\nand\nthird.py\n```python\nx = 1\n```",
    ],
)
def test_a_whole_format_answer_without_the_stub_is_not_well_formed(by_slug: dict[str, Any], answer: str) -> None:
    assert BENCH.program(by_slug["reverse-string"], KIND, "harness", answer) is None


def test_the_editforge_answer_is_its_first_fenced_block(by_slug: dict[str, Any]) -> None:
    problem = by_slug["paasio"]
    program = BENCH.program(problem, KIND, "editforge", "```python\nx = 1\n```\n```python\ny = 2\n```")
    assert program is not None
    assert program_files(program) == {
        "paasio.py": "x = 1",
        "paasio_test.py": problem["files"]["paasio_test.py"],
        "test_utils.py": problem["files"]["test_utils.py"],
    }
    assert BENCH.program(problem, KIND, "editforge", "I cannot do that.") is None


def test_reference_texts_name_every_part(by_slug: dict[str, Any]) -> None:
    files = by_slug["paasio"]["files"]
    assert BENCH.reference_texts(by_slug["paasio"]) == {
        "instructions": files[".docs/instructions.md"].strip(),  # with any introduction and append, blank lines between
        "example": files[".meta/example.py"],
        "stub:paasio.py": files["paasio.py"],
        "test:paasio_test.py": files["paasio_test.py"],
        "test:test_utils.py": files["test_utils.py"],
    }


def test_the_second_turn_shows_50_lines_of_test_output(by_slug: dict[str, Any]) -> None:
    problem = by_slug["reverse-string"]
    output = "".join(f"line {i}\n" for i in range(1, 61))
    messages = second_turn(problem, "first answer", output)
    assert messages[:2] == BENCH.request(problem, KIND, "harness", Sampling(), 1).messages
    assert messages[2] == {"role": "assistant", "content": "first answer"}
    expected = "".join(f"line {i}\n" for i in range(1, 51)) + (
        "\n####\n\nSee the testing errors above. The tests are correct, don't try and change them. "
        "Fix the code in reverse_string.py to resolve the errors."
    )
    assert messages[3] == {"role": "user", "content": expected}
    assert second_turn(problem, "a", "b", family="editforge")[0]["content"].startswith("You are a code editor.")


# The reference check, through the real sandbox


@pytest.fixture(scope="module")
def sandbox_results(problems: list[dict[str, Any]]) -> dict[str, Any]:
    """Every oracle and anti-oracle, and a few made-up candidates, in one sandbox run (2 workers)."""
    reverse = next(p for p in problems if p["id"] == "reverse-string")
    empty_tests = BENCH.check(record(**{"demo_test.py": "import unittest\n"}), "made-up")
    extra = {
        "syntax error": BENCH.program(reverse, KIND, "harness", "```python\ndef reverse(text)\n    return text\n```"),
        "wrong": BENCH.program(reverse, KIND, "harness", "```python\ndef reverse(text):\n    return text\n```"),
        "right": BENCH.program(reverse, KIND, "harness", f"```python\n{REVERSED}```"),
        "no tests found": BENCH.reference_programs(empty_tests, KIND)[0],
    }
    pairs = [BENCH.reference_programs(p, KIND) for p in problems]
    programs = [o for o, _ in pairs] + [a for _, a in pairs] + list(extra.values())
    assert {p.timeout_s for p in programs} == {60}
    start = time.monotonic()
    results = run_many(
        [p.source for p in programs],
        2,
        limits=Limits(timeout_s=60, memory_mb=4096),
        isolation=select_isolation("auto"),
    )
    seconds = time.monotonic() - start
    print(f"\naider_exercism reference check: {len(programs)} programs in {seconds:.1f} s (2 workers)")
    count = len(problems)
    return {
        "oracle": dict(zip((p["id"] for p in problems), results[:count])),
        "anti": dict(zip((p["id"] for p in problems), results[count : 2 * count])),
        "extra": dict(zip(extra, results[2 * count :])),
    }


def _why(result: SandboxResult) -> str:
    return f"{result.outcome}: {result.stderr_tail[-300:]}"


def test_every_oracle_passes(sandbox_results: dict[str, Any]) -> None:
    failing = {slug: _why(r) for slug, r in sandbox_results["oracle"].items() if r.outcome != "pass"}
    assert len(sandbox_results["oracle"]) == 133 and not failing
    assert all(r.tests_finished for r in sandbox_results["oracle"].values())


def test_only_ledger_and_markdown_pass_unchanged(sandbox_results: dict[str, Any]) -> None:
    passing = sorted(slug for slug, r in sandbox_results["anti"].items() if r.outcome == "pass")
    assert passing == FREE_PASSES


def test_a_syntax_error_or_zero_tests_fails(sandbox_results: dict[str, Any]) -> None:
    outcomes = {name: r.outcome for name, r in sandbox_results["extra"].items()}
    assert outcomes == {"syntax error": "fail", "wrong": "fail", "right": "pass", "no tests found": "fail"}
    assert "0 tests run; not a pass" in sandbox_results["extra"]["no tests found"].stderr_tail


def test_an_answer_that_exits_before_the_tests_run_is_told_apart_by_the_strict_rule(
    by_slug: dict[str, Any],
) -> None:
    """``os._exit(0)`` at import exits 0, which the harness's own rule counts as a pass; the runner's mark
    that the tests finished is missing, so the strict column (the shared scoring rule) fails it."""
    isolation = select_isolation("auto")
    limits = Limits(timeout_s=BENCH.timeout_s, memory_mb=4096)
    answers = {
        "exits": "import os\nos._exit(0)",
        "solves": "def two_fer(name='you'):\n    return f'One for {name}, one for me.'",
    }
    seen = {}
    for label, code in answers.items():
        program = BENCH.program(by_slug["two-fer"], "instructions", "editforge", f"```python\n{code}\n```")
        assert program is not None
        result = run_program(program.source, limits=limits, isolation=isolation)
        seen[label] = (result.outcome, result.tests_finished)
    assert seen == {"exits": ("pass", False), "solves": ("pass", True)}
