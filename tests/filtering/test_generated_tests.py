"""Generated tests, the third round: the request, reading the answer, and running the tests on both programs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from editforge.backend import Backend, Completion, Request
from editforge.filtering import run_filter_shard
from editforge.filtering.generated_tests import check_generated_tests, parse_tests_answer
from editforge.records import write_jsonl
from helpers.triplets import SETTINGS, triplet

ADD_BEFORE = "def add(a, b):\n    return a - b\n"
ADD_AFTER = "def add(a, b):\n    return a + b\n"


class ScriptedBackend(Backend):
    """Answers each request with the text that ``answers`` gives for the marker in its prompt."""

    kind = "scripted"

    def __init__(self, answers: dict[str, Completion]) -> None:
        super().__init__("scripted", "scripted", None, None)
        self.answers = answers
        self.requests: list[Request] = []
        self.closed = False

    def generate(self, requests: Sequence[Request], *, desc: str = "generate") -> list[list[Completion]]:
        self.requests += requests
        prompts = [request.messages[-1]["content"] for request in requests]
        return [[next(a for marker, a in self.answers.items() if f"[{marker}]" in p)] for p in prompts]

    def close(self) -> None:
        self.closed = True


def answer(kind: str | None, tests: str | None, error: str | None = None) -> Completion:
    text = (f"Kind: {kind}\n" if kind else "") + (f"```python\n{tests}\n```\n" if tests is not None else "")
    return Completion(text=text, finish_reason="stop" if error is None else None, error=error)


def add_triplet(marker: str) -> dict[str, Any]:
    return triplet(
        marker,
        pre_code=ADD_BEFORE,
        post_code=ADD_AFTER,
        instruction_lazy="add() subtracts.",
        instruction_descriptive=f"Fix `add` so that it returns `a + b` instead of `a - b`. [{marker}]",
    )


# marker -> (the model's answer, the expected outcome)
GENERATED_CASES: dict[str, tuple[Completion, str]] = {
    "good": (answer("bug fix", "assert add(2, 3) == 5"), "ok"),
    "wrong_on_post": (answer("bug fix", "assert add(2, 3) == -1"), "generated_tests_fail_on_post"),
    "crashes_on_post": (answer("new feature", "assert add(2, 3, 4) == 9"), "generated_tests_fail_on_post"),
    "blind": (answer("bug fix", "assert add(0, 0) == 0"), "generated_tests_pass_on_pre"),
    "blind_feature": (answer("new feature", "assert add(0, 0) == 0"), "generated_tests_pass_on_pre"),
    "blind_refactor": (answer("refactor", "assert add(0, 0) == 0"), "ok"),  # behaviour is meant to stay
    "blind_unlabelled": (answer(None, "assert add(0, 0) == 0"), "ok"),  # no kind: only the post check
    "no_fence": (Completion(text="Kind: bug fix\nassert add(2, 3) == 5", finish_reason="stop"), "no_tests"),
    "no_assert": (answer("bug fix", "print(add(2, 3))"), "no_tests"),
    "not_python": (answer("bug fix", "assert add(2, 3) ==="), "no_tests"),
    "call_failed": (answer(None, None, error="HTTP 500"), "no_tests"),
}


def test_parse_tests_answer_reads_kind_and_first_fence() -> None:
    assert parse_tests_answer("**Kind:** Bug-fix\n```python\nassert f() == 1\n```\n```python\nx\n```") == (
        "bug fix",
        "assert f() == 1",
    )
    assert parse_tests_answer("kind: New feature\n```\nassert g()\n```") == ("new feature", "assert g()")
    assert parse_tests_answer("Kind: refactoring") == ("refactor", None)
    assert parse_tests_answer("```py\nassert True\n```") == (None, "assert True")


def test_generated_tests_must_pass_after_and_fail_before() -> None:
    backend = ScriptedBackend({marker: completion for marker, (completion, _) in GENERATED_CASES.items()})
    records = [add_triplet(marker) for marker in GENERATED_CASES]
    counts = check_generated_tests(records, backend, timeout_s=10, max_tokens=256)
    outcome = {r["id"]: r["reason"] if r["status"] == "dropped" else "ok" for r in records}
    assert outcome == {marker: expected for marker, (_, expected) in GENERATED_CASES.items()}
    assert counts == dict(Counter(outcome.values()))
    by_id = {r["id"]: r for r in records}
    assert (by_id["good"]["change_kind"], by_id["good"]["generated_tests"]) == ("bug fix", "assert add(2, 3) == 5")
    assert by_id["blind_unlabelled"]["change_kind"] is None
    # One fresh request per triplet, greedy, showing both programs and the descriptive instruction.
    assert len(backend.requests) == len(records)
    request = backend.requests[0]
    assert request.sampling.temperature == 0 and request.sampling.max_tokens == 256
    prompt = request.messages[-1]["content"]
    assert ADD_BEFORE.strip() in prompt and ADD_AFTER.strip() in prompt


def test_run_filter_shard_asks_the_tests_model_only_when_enabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = ScriptedBackend({"good": GENERATED_CASES["good"][0], "blind": GENERATED_CASES["blind"][0]})
    opened: list[tuple[str, Any, Any]] = []

    def fake_open(name: str, spec: dict[str, Any], cache_dir: Any) -> ScriptedBackend:
        opened.append((name, spec, cache_dir))
        return backend

    monkeypatch.setattr("editforge.backend.open_backend", fake_open)  # imported at the call, from the package
    records = [add_triplet("good"), add_triplet("blind"), triplet("bad", pre_code="def (:")]
    write_jsonl(tmp_path / "in.jsonl", records)
    counts = run_filter_shard(tmp_path / "in.jsonl", tmp_path / "off.jsonl", SETTINGS)
    assert counts == {"ok": 2, "pre_code_syntax": 1} and not opened

    settings = SETTINGS | {"generated_tests": True}
    with pytest.raises(ValueError, match="no model to write the tests"):
        run_filter_shard(tmp_path / "in.jsonl", tmp_path / "on.jsonl", settings)
    spec = {"backend": "openai", "model": "m"}
    counts = run_filter_shard(
        tmp_path / "in.jsonl", tmp_path / "on.jsonl", settings, tests_model=("m1", spec), cache_dir=tmp_path / "c"
    )
    assert counts == {"ok": 1, "generated_tests_pass_on_pre": 1, "pre_code_syntax": 1}
    assert opened == [("m1", spec, tmp_path / "c")] and backend.closed
    assert len(backend.requests) == 2  # the syntax failure is not asked about
