"""Generated tests, a third round: a model writes tests for each edit, which the programs must pass or fail.

``tests_request`` asks for tests of one triplet (prompt files ``generated_tests`` and
``generated_tests_system`` in ``editforge.templates``), ``parse_tests_answer`` reads the kind of edit
and the test script from the answer, and ``check_generated_tests`` runs the scripts in the sandbox
and drops the triplets whose tests do not hold.
"""

from __future__ import annotations

import ast
import os
import re
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from string import Template
from typing import Any

from editforge.records import drop
from editforge.sandbox import Isolation, Limits, run_many
from editforge.templates import template

# Kinds of edit a model may name; the pre-edit program must fail the tests of the first two.
EDIT_KINDS = ("bug fix", "new feature", "refactor", "other")
MUST_FAIL_BEFORE = ("bug fix", "new feature")
GENERATED_TEST_REASONS = ("no_tests", "generated_tests_fail_on_post", "generated_tests_pass_on_pre")

_KIND = re.compile(
    r"^[\W_]*kind[\W_]*:\W*(bug[\s_-]*fix|new[\s_-]*feature|feature|refactor\w*|other)", re.IGNORECASE | re.MULTILINE
)
_FENCE = re.compile(r"^```[ \t]*(?:python|py)?[ \t]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def tests_request(record: Mapping[str, Any]) -> list[dict[str, str]]:
    """The conversation asking for tests of one triplet's edit (a fresh one: any model can answer it)."""
    user = Template(template("generated_tests")).substitute(
        pre=record["pre_code"].rstrip(),
        instruction=record["instruction_descriptive"].strip(),
        post=record["post_code"].rstrip(),
    )
    return [{"role": "system", "content": template("generated_tests_system")}, {"role": "user", "content": user}]


def parse_tests_answer(text: str) -> tuple[str | None, str | None]:
    """(change kind, test script) from a model's answer; None for what it lacks.

    The script is the first fenced block, kept only when it parses and holds an
    ``assert``. The kind is one of EDIT_KINDS, read from a ``Kind:`` line.
    """
    kind_match = _KIND.search(text)
    kind = None
    if kind_match:
        word = kind_match.group(1).lower()
        kind = next(k for k in EDIT_KINDS if word.startswith(k.split()[0]) or k.split()[-1] in word)
    fence = _FENCE.search(text)
    script = fence.group(1).strip("\n") if fence else None
    if script is not None:
        tree = _parse(script)
        if tree is None or not any(isinstance(node, ast.Assert) for node in ast.walk(tree)):
            script = None
    return kind, script


def check_generated_tests(
    records: Sequence[dict[str, Any]],
    backend: Any,
    *,
    timeout_s: float = 10,
    max_tokens: int = 1024,
    isolation: Isolation | None = None,
) -> dict[str, int]:
    """Ask ``backend`` for tests of each record's edit and keep the records whose tests hold.

    The tests are appended to the post-edit program, which must pass them; for a
    change the model labels a bug fix or a new feature, the pre-edit program
    must not pass them (a test that cannot tell the programs apart checks
    nothing). When the model names no kind (or refactor, other) only the first
    condition applies: a refactor is meant to keep behaviour. Drops with
    ``no_tests`` (no fenced script with an assert), ``generated_tests_fail_on_post``
    or ``generated_tests_pass_on_pre``. Each record gets ``change_kind`` and
    ``generated_tests``. Returns the count of each outcome.
    """
    from editforge.backend import Request, Sampling

    sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=max_tokens)
    answers = backend.generate([Request(messages=tests_request(r), sampling=sampling) for r in records], desc="tests")
    with_tests: list[tuple[dict[str, Any], str]] = []
    for record, completions in zip(records, answers):
        kind, script = parse_tests_answer(completions[0].text if completions and not completions[0].error else "")
        record["change_kind"] = kind
        record["generated_tests"] = script
        if script is None:
            drop(record, "no_tests")
        else:
            with_tests.append((record, script))
    workers = os.cpu_count() or 1
    limits = Limits(timeout_s=timeout_s)
    post = run_many(
        [_with_tests(r["post_code"], s) for r, s in with_tests], workers, limits=limits, isolation=isolation
    )
    passing = [(r, s) for (r, s), result in zip(with_tests, post) if result.outcome == "pass"]
    for (record, _), result in zip(with_tests, post):
        if result.outcome != "pass":
            drop(record, "generated_tests_fail_on_post")
    must_fail = [(r, s) for r, s in passing if r["change_kind"] in MUST_FAIL_BEFORE]
    pre = run_many([_with_tests(r["pre_code"], s) for r, s in must_fail], workers, limits=limits, isolation=isolation)
    for (record, _), result in zip(must_fail, pre):
        if result.outcome == "pass":
            drop(record, "generated_tests_pass_on_pre")
    return dict(Counter(r["reason"] if r["status"] == "dropped" else "ok" for r in records))


def _with_tests(program: str, tests: str) -> str:
    return f"{program.rstrip()}\n\n\n# Generated tests\n{tests}\n"


def _parse(source: str) -> ast.Module | None:
    """The module's AST for the running interpreter (which runs the generated tests), or None
    when the code is blank or not valid Python there."""
    if not source.strip():
        return None
    try:
        with warnings.catch_warnings():  # invalid escape sequences etc. are the model's business
            warnings.simplefilter("ignore")
            return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):  # ValueError: null bytes
        return None
