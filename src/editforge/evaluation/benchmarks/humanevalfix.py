"""HumanEvalFix (HumanEvalPack, Python): fix the one hand-inserted bug in a HumanEval function.

Data: bigcode-project/octopack ``evaluation/create/humaneval-x/data/python/data/humanevalpack.jsonl``
(the hub's ``bigcode/humanevalpack``, config ``python``, split ``test``), 164 problems ``Python/0`` …
``Python/163``. Harness: bigcode-project/bigcode-evaluation-harness ``bigcode_eval/tasks/humanevalpack.py``
(tasks ``humanevalfixtests-python`` and ``humanevalfixdocs-python``), whose rules the ``harness``
family follows.

A sample's program is the harness's import helper, the candidate function and the hidden test (which
ends by calling ``check(<entry_point>)``); it passes when it exits 0.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

from editforge.backend import Request, Sampling
from editforge.edit_format import FENCE_CLOSE, FENCE_OPEN, edit_messages
from editforge.evaluation.benchmarks.base import Benchmark, BenchmarkProblem, Program, QuotedRow
from editforge.evaluation.prompts import cut_at_stops, postprocess
from editforge.evaluation.sources import BenchmarkError

# The record fields a problem uses; each must be a string.
PROBLEM_FIELDS = (
    "task_id", "prompt", "declaration", "canonical_solution", "buggy_solution", "test", "entry_point", "docstring"
)
TASK_ID = re.compile(r"Python/(0|[1-9][0-9]*)")

# The harness's Python stop strings (taken by it from CodeGeeX), then the end-of-text token it adds.
HARNESS_STOPS = ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\nassert", "<|endoftext|>")

# The harness's import helper for Python, one import a line, joined by newlines before the candidate.
IMPORT_HELPER = (
    "import math",
    "import re",
    "import sys",
    "import copy",
    "import datetime",
    "import itertools",
    "import collections",
    "import heapq",
    "import statistics",
    "import functools",
    "import hashlib",
    "import numpy",
    "import numpy as np",
    "import string",
    "from typing import *",
    "from collections import *",
)

_NEXTCODER = "microsoft/NextCoder README, commit 20168028"
_NEXTCODER_CAVEAT = "variant, prompt and n not stated: not directly comparable with a bigcode-harness run"


def _quoted(model: str, score: float) -> QuotedRow:
    # NextCoder reports one HumanEvalFix number per model, kept under "overall".
    return QuotedRow(model=model, scores={"overall": score}, source=_NEXTCODER, caveat=_NEXTCODER_CAVEAT)


class HumanEvalFix(Benchmark):
    """HumanEvalFix (Python), the tests and the docs variants as two instruction kinds.

    Two instruction kinds, both with the instruction ``Fix bugs in <entry_point>.``:

    * ``tests``: the code shown is ``declaration + buggy_solution + "\\n" + test`` (the function without
      its docstring, then the unit tests); the prompt base (the text the answer continues) is ``declaration``;
    * ``docs``: the code shown is ``prompt + buggy_solution`` (with the docstring, no tests); the prompt
      base is ``prompt``.
    """

    name: ClassVar[str] = "humanevalfix"
    title: ClassVar[str] = "HumanEvalFix (Python)"
    env_var: ClassVar[str] = "EDITFORGE_HUMANEVALFIX"
    # The hub copy keeps each language in its own folder, as JSON Lines: the Python file is read.
    default_source: ClassVar[str | None] = "bigcode/humanevalpack"
    hub_file: ClassVar[str | None] = "data/python/data/humanevalpack.jsonl"
    kinds: ClassVar[tuple[str, ...]] = ("tests", "docs")
    size: ClassVar[int] = 164
    timeout_s: ClassVar[int] = 10
    instruction_fields: ClassVar[tuple[str, ...]] = ("docstring",)
    quoted: ClassVar[tuple[QuotedRow, ...]] = (
        _quoted("Qwen2.5-Coder-3B-Instruct", 73.2),
        _quoted("NextCoder-3B", 75.6),
        _quoted("Qwen2.5-Coder-7B-Instruct", 73.8),
        _quoted("NextCoder-7B", 81.1),
        _quoted("Qwen2.5-Coder-14B-Instruct", 87.8),
        _quoted("NextCoder-14B", 89.8),
        _quoted("Qwen2.5-Coder-32B-Instruct", 90.2),
        _quoted("NextCoder-32B", 88.9),
    )

    def check(self, row: Any, where: str) -> dict[str, Any]:
        if not isinstance(row, Mapping):
            raise BenchmarkError(f"{where}: a HumanEvalFix record must be a JSON object, got {type(row).__name__}")
        for field in PROBLEM_FIELDS:
            if field not in row:
                raise BenchmarkError(f"{where}: missing field '{field}'")
            if not isinstance(row[field], str):
                raise BenchmarkError(f"{where}: field '{field}' must be a string, got {type(row[field]).__name__}")
        found = TASK_ID.fullmatch(row["task_id"])
        if not found:
            raise BenchmarkError(f"{where}: field 'task_id' must look like 'Python/N', got {row['task_id']!r}")
        if not row["entry_point"].isidentifier():
            raise BenchmarkError(f"{where}: field 'entry_point' must be a Python name, got {row['entry_point']!r}")
        for field in ("prompt", "declaration", "canonical_solution", "buggy_solution", "test"):
            if not row[field].strip():
                raise BenchmarkError(f"{where}: field '{field}' is empty")
        return {"id": row["task_id"], "order": int(found.group(1)), **{field: row[field] for field in PROBLEM_FIELDS}}


    def instruction(self, problem: BenchmarkProblem) -> str:
        return f"Fix bugs in {problem['entry_point']}."

    def prompt_base(self, problem: BenchmarkProblem, kind: str) -> str:
        """The text the harness's answer continues: ``declaration`` (tests) or ``prompt`` (docs)."""
        self.check_kind(kind)
        return problem["declaration"] if kind == "tests" else problem["prompt"]

    def shown_code(self, problem: BenchmarkProblem, kind: str) -> str:
        """The code to fix, as the harness shows it: the buggy function, and in the tests kind the tests."""
        code = self.prompt_base(problem, kind) + problem["buggy_solution"]
        return code + "\n" + problem["test"] if kind == "tests" else code

    def harness_prompt(self, problem: BenchmarkProblem, kind: str) -> str:
        """The harness's ``instruct`` prompt: code to fix, newline, instruction, blank line, prompt base;
        the whole stripped (the final newline goes, so the answer starts with the body's newline)."""
        text = f"{self.shown_code(problem, kind)}\n{self.instruction(problem)}\n\n{self.prompt_base(problem, kind)}"
        return text.strip()

    def request(self, problem: BenchmarkProblem, kind: str, family: str, sampling: Sampling, n: int) -> Request:
        self.check_kind(kind)
        self.check_family(family)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if family == "harness":
            # A plain completion; the harness's stops are appended to the caller's.
            stops = tuple(dict.fromkeys((*sampling.stop, *HARNESS_STOPS)))
            return Request(prompt=self.harness_prompt(problem, kind), sampling=replace(sampling, stop=stops), n=n)
        # editforge: the student edits the whole code it is shown, which is the harness's code to fix
        # (tests kind: the buggy function without docstring, then the tests; docs kind: the buggy
        # function with its docstring), leading blank lines dropped. Its answer is the whole edited
        # code (the tests too in the tests kind; they run before the hidden ones, which redefine check).
        before = self.shown_code(problem, kind).lstrip("\n")
        return Request(messages=edit_messages(before, self.instruction(problem)), sampling=sampling, n=n)


    def program(self, problem: BenchmarkProblem, kind: str, family: str, answer: str) -> Program | None:
        """The program testing ``answer``.

        ``harness`` (the answer is the continuation of the prompt; our backends return no prompt):
        the continuation right-stripped, cut before the earliest harness stop string, then cut before
        its first line that has non-blank text and starts with neither a space nor a tab (the first
        line counts too: the rest of the prompt's last line); the candidate is
        ``prompt_base.rstrip() + continuation``. A body that does not compile simply fails.

        ``editforge``: the first fenced block (``prompts.first_fenced_block``), else the whole answer
        if it parses as Python; None when that gives no code or code with no column-0
        ``def <entry_point>``: the answer is not well formed.
        """
        self.check_kind(kind)
        self.check_family(family)
        if family == "harness":
            candidate = self.prompt_base(problem, kind).rstrip() + harness_continuation(answer)
        else:
            candidate = postprocess(answer, "editforge")
            if not candidate.strip() or not defines(candidate, problem["entry_point"]):
                return None
        return self.assemble(problem, candidate)

    def assemble(self, problem: BenchmarkProblem, candidate: str) -> Program:
        """The harness's program: ``(helper + "\\n" + candidate).strip()``, a newline, then the test as
        the harness references it (``"\\n" + test``), plus a final ``check(<entry_point>)`` call
        where the test lacks one (every record of the shared copy has it)."""
        test = problem["test"]
        call = f"check({problem['entry_point']})"
        if not any(line.rstrip() == call for line in test.splitlines()):
            test = test.rstrip() + "\n\n" + call + "\n"
        code = ("\n".join(IMPORT_HELPER) + "\n" + candidate).strip()
        return Program(source=code + "\n" + "\n" + test, timeout_s=self.timeout_s)

    def reference_programs(self, problem: BenchmarkProblem, kind: str) -> tuple[Program, Program]:
        base = self.prompt_base(problem, kind)
        oracle = self.assemble(problem, base + problem["canonical_solution"])
        anti_oracle = self.assemble(problem, base + problem["buggy_solution"])
        return oracle, anti_oracle

    def reference_answers(self, problem: BenchmarkProblem, kind: str, family: str) -> tuple[str, str]:
        """The candidates of ``reference_programs`` (prompt base + canonical or buggy body) as answers.

        ``harness``: the continuation of the prompt, which ends with the prompt base right-stripped: the
        base's trailing blanks, then the body. ``editforge``: the candidate in a fenced block, as it is
        (in the tests kind without the shown tests: the hidden test runs the same checks).
        """
        self.check_family(family)
        base = self.prompt_base(problem, kind)
        bodies = (problem["canonical_solution"], problem["buggy_solution"])
        if family == "harness":
            blanks = base[len(base.rstrip()) :]
            oracle, anti_oracle = (blanks + body for body in bodies)
        else:
            oracle, anti_oracle = (FENCE_OPEN + base + body + FENCE_CLOSE for body in bodies)
        return oracle, anti_oracle

    def reference_texts(self, problem: BenchmarkProblem) -> dict[str, str]:
        """Four programs, and the docstring's prose as an instruction: a synthesized instruction paraphrasing
        HumanEval's wording is caught, a generic "check if a number is prime" is not (bench/decontamination.py)."""
        return {
            "prompt+canonical_solution": problem["prompt"] + problem["canonical_solution"],
            "prompt+buggy_solution": problem["prompt"] + problem["buggy_solution"],
            "declaration+canonical_solution": problem["declaration"] + problem["canonical_solution"],
            "test": problem["test"],
            "docstring": docstring_prose(problem["docstring"]),
        }


def docstring_prose(docstring: str) -> str:
    """A docstring's text up to its first example (a ``>>>`` line, "Example", "For example", "E.g.")."""
    lines = []
    for line in docstring.splitlines():
        if line.strip().lower().startswith((">>>", "example", "for example", "e.g.")):
            break
        lines.append(line)
    return "\n".join(lines).strip()


def harness_continuation(continuation: str) -> str:
    """The harness's cut of a continuation: right-strip, cut before the earliest stop string, then
    keep only the lines before the first one with non-blank text starting at column 0 (not a space
    or a tab)."""
    text = cut_at_stops(continuation.rstrip(), HARNESS_STOPS)
    lines = text.split("\n")
    for number, line in enumerate(lines):
        if line.strip() and line[0] not in " \t":
            return "\n".join(lines[:number])
    return text


def defines(code: str, name: str) -> bool:
    """Whether ``code`` defines the function ``name`` at its top level (a column-0 ``def`` when the
    code does not parse: it then fails when run, which is a fail, not a malformed answer)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return re.search(rf"(?m)^(async\s+)?def\s+{re.escape(name)}\s*\(", code) is not None
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name for node in tree.body)
