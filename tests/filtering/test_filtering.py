"""Per-triplet checks, the shard stage, dedup and decontamination."""

from __future__ import annotations

import json
import os
import random
import re
import types
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from editforge.filtering import core as filtering
from editforge.backend.core import Backend, Completion, Request
from editforge.filtering.decontamination import code_shingles
from editforge.filtering.core import (
    _NEAR_TOKENS,
    LSH_RECALL_AT_THRESHOLD,
    ContaminationError,
    _Bands,
    _exact_key,
    _Sketcher,
    check_generated_tests,
    count_sentences,
    diff_stats,
    filter_triplet,
    jaccard,
    parse_tests_answer,
    run_dedup,
    run_filter_shard,
)
from editforge.records import RecordError, read_jsonl, write_jsonl
from editforge.sandbox.core import Limits, SandboxError
from helpers import SHARED

SETTINGS: dict[str, Any] = {
    "min_changed_lines": 1,
    "max_changed_lines": 70,
    "max_hunks": 7,
    "lazy_max_sentences": 3,
    "minhash": {"num_perm": 128, "threshold": 0.8, "shingle_words": 5},
    "decontamination": {"code_containment": 0.25, "instruction_containment": 0.6, "max_contaminated_share": 0.5},
    "execution_check": False,
    "execution_timeout_s": 10,
}

INVENTORY = """class Inventory:
    def __init__(self):
        self.items = {}

    def add(self, name, count):
        self.items[name] = self.items.get(name, 0) + count

    def remove(self, name, count):
        if self.items.get(name, 0) < count:
            raise ValueError("not enough " + name)
        self.items[name] -= count

    def total(self):
        return sum(self.items.values())
"""

INVENTORY_AFTER = (
    INVENTORY
    + """
    def most_common(self):
        if not self.items:
            return None
        return max(self.items, key=self.items.get)
"""
)

TEXT_STATS = """import re


def word_counts(text):
    counts = {}
    for word in re.findall(r"[a-z']+", text.lower()):
        counts[word] = counts.get(word, 0) + 1
    return counts


def longest_word(text):
    words = re.findall(r"[a-z']+", text.lower())
    return max(words, key=len) if words else ""
"""

MATRIX = """def transpose(matrix):
    return [list(row) for row in zip(*matrix)]


def multiply(a, b):
    rows, cols, inner = len(a), len(b[0]), len(b)
    result = [[0] * cols for _ in range(rows)]
    for i in range(rows):
        for j in range(cols):
            for k in range(inner):
                result[i][j] += a[i][k] * b[k][j]
    return result
"""


def triplet(id_: str = "t0", **fields: Any) -> dict[str, Any]:
    record = {
        "id": id_,
        "model": "m1",
        "shard": "0",
        "pair_id": "p0",
        "fewshot_id": "f0",
        "pre_code": INVENTORY,
        "post_code": INVENTORY_AFTER,
        "instruction_lazy": "Add a method that returns the most stocked item.",
        "instruction_descriptive": (
            "Add a method `most_common` to `Inventory` that returns the name with the largest count, "
            "or None when the inventory is empty, ending with `return max(self.items, key=self.items.get)`."
        ),
        "status": "ok",
    }
    return record | fields


def numbered_functions(count: int, changed: set[int] = frozenset()) -> str:
    """``count`` three-line functions; those in ``changed`` return a different value."""
    return "".join(
        f"def f{i}(x):\n    y = x * {i}\n    return y{' + 1' if i in changed else ''}\n\n" for i in range(count)
    )


# ---------------------------------------------------------------- filter_triplet


def test_valid_triplet_passes() -> None:
    assert filter_triplet(triplet(), SETTINGS) is None


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"pre_code": "def broken(:\n    pass\n"}, "pre_code_syntax"),
        ({"pre_code": "  \n"}, "pre_code_syntax"),
        ({"post_code": INVENTORY_AFTER + "    return )\n"}, "post_code_syntax"),
        ({"instruction_lazy": " \n"}, "empty_instruction"),
        ({"instruction_descriptive": ""}, "empty_instruction"),
        (
            # Comments, blank lines, spacing and quoting only.
            {
                "post_code": "# inventory\n"
                + INVENTORY.replace('"not enough "', "'not enough '")
                .replace("\n\n", "\n    # why\n\n\n")
                .replace("(self,", "( self ,")
            },
            "no_change",
        ),
        ({"instruction_lazy": "Add a method. It returns the top item. Name it most_common. Do it."}, "lazy_too_long"),
        ({"instruction_lazy": "Add:\n- a method\n- for the top item\n- named most_common"}, "lazy_too_long"),
        (
            {"instruction_descriptive": f"Rewrite the program as:\n```python\n{INVENTORY_AFTER}```"},
            "descriptive_leaks_post_code",
        ),
        (
            {
                "instruction_descriptive": "Add this method to the class:\n    def most_common(self):\n"
                "        if not self.items:\n            return None\n"
                "        return max(self.items, key=self.items.get)"
            },
            "descriptive_leaks_post_code",
        ),
        ({"post_code": INVENTORY + "\n" + numbered_functions(25)}, "too_many_changed_lines"),
        (
            {"pre_code": numbered_functions(40), "post_code": numbered_functions(40, {0, 5, 10, 15, 20, 25, 30, 35})},
            "too_many_hunks",
        ),
    ],
)
def test_each_check_drops_with_its_reason(fields: dict[str, Any], reason: str) -> None:
    assert filter_triplet(triplet(**fields), SETTINGS) == reason


def test_the_syntax_check_knows_the_current_grammar_whatever_python_runs_it() -> None:
    """3.12 generics and 3.14's unparenthesised except pass on any interpreter; Python 2 does not."""
    modern = "class Box[T]:\n    def get(self) -> T:\n        try:\n            return self.item\n" \
             "        except AttributeError, KeyError:\n            return None\n"
    edited = modern.replace("return None", "raise LookupError('empty box') from None")
    fields = {"pre_code": modern, "post_code": edited, "instruction_descriptive": "Raise LookupError when empty."}
    assert filter_triplet(triplet(**fields), SETTINGS | {"min_changed_lines": 1}) is None
    assert filter_triplet(triplet(pre_code="print 'total'\n"), SETTINGS) == "pre_code_syntax"


def test_too_few_changed_lines() -> None:
    assert filter_triplet(triplet(), SETTINGS | {"min_changed_lines": 6}) == "too_few_changed_lines"
    assert filter_triplet(triplet(), SETTINGS | {"min_changed_lines": 5}) is None


def test_seven_hunks_pass_and_a_docstring_change_is_a_change() -> None:
    seven = numbered_functions(40, {0, 5, 10, 15, 20, 25, 30})
    assert filter_triplet(triplet(pre_code=numbered_functions(40), post_code=seven), SETTINGS) is None
    documented = INVENTORY.replace("    def total(self):\n", '    def total(self):\n        """Sum of counts."""\n')
    assert filter_triplet(triplet(post_code=documented), SETTINGS) is None


def test_diff_stats_counts_replace_as_its_longer_side_and_splits_hunks_after_six_equal_lines() -> None:
    pre = "a\nb\nc\n"
    assert diff_stats(pre, "a\nB1\nB2\nB3\nc\n").changed_lines == 3  # 1 line replaced by 3
    assert diff_stats(pre, "a\nb\nc\nd\n").added == 1
    assert diff_stats(pre, "a\nc\n").removed == 1
    assert diff_stats(pre, "a \nb\nc\n").changed_lines == 0  # trailing whitespace is ignored
    middle = "".join(f"m{i}\n" for i in range(6))
    assert diff_stats(f"x\n{middle}y\n", f"X\n{middle}Y\n").hunks == 1  # six equal lines join
    middle += "m6\n"
    assert diff_stats(f"x\n{middle}y\n", f"X\n{middle}Y\n").hunks == 2  # seven split


def test_count_sentences_ignores_code_abbreviations_and_decimals() -> None:
    assert count_sentences("Use `self.items.get()` instead, e.g. for counts above 3.5 items. Then stop!") == 2
    assert count_sentences("Fix it") == 1


def test_quoting_one_new_line_is_not_a_leak() -> None:
    # The default triplet's descriptive instruction quotes one of the four new lines.
    assert "return max(self.items, key=self.items.get)" in triplet()["instruction_descriptive"]
    assert filter_triplet(triplet(), SETTINGS) is None


# ---------------------------------------------------------------- run_filter_shard


def test_run_filter_shard_keeps_earlier_drops_and_writes_every_record(tmp_path: Path) -> None:
    records = [
        triplet("ok"),
        triplet("bad", pre_code="def (:"),
        {"id": "early", "model": "m1", "shard": "0", "status": "dropped", "reason": "missing_section"},
    ]
    write_jsonl(tmp_path / "in.jsonl", records)
    counts = run_filter_shard(tmp_path / "in.jsonl", tmp_path / "out.jsonl", SETTINGS)
    assert counts == {"ok": 1, "pre_code_syntax": 1, "missing_section": 1}
    out = {r["id"]: r for r in read_jsonl(tmp_path / "out.jsonl")}
    assert [out[i]["status"] for i in ("ok", "bad", "early")] == ["ok", "dropped", "dropped"]
    assert out["early"]["reason"] == "missing_section"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (triplet(status="maybe"), "has status 'maybe'"),
        ({k: v for k, v in triplet().items() if k != "post_code"}, "lacks the text field 'post_code'"),
    ],
)
def test_run_filter_shard_rejects_malformed_records(tmp_path: Path, record: dict[str, Any], message: str) -> None:
    write_jsonl(tmp_path / "in.jsonl", [record])
    with pytest.raises(RecordError, match=re.escape(message)):
        run_filter_shard(tmp_path / "in.jsonl", tmp_path / "out.jsonl", SETTINGS)


def test_execution_check_drops_programs_that_do_not_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[tuple[str, float]] = []

    def run_many(programs: list[str], workers: int, *, limits: Limits, isolation: Any) -> list[types.SimpleNamespace]:
        assert isolation == "the isolation checked at start"
        runs.extend((program, limits.timeout_s) for program in programs)
        return [types.SimpleNamespace(outcome="error" if "1 / 0" in p else "pass") for p in programs]

    monkeypatch.setattr(filtering, "run_many", run_many)
    monkeypatch.setattr(filtering, "select_isolation", lambda setting: "the isolation checked at start")
    crashing = INVENTORY_AFTER + "\nprint(1 / 0)\n"
    records = [triplet("runs"), triplet("crashes", post_code=crashing), triplet("bad", pre_code="(")]
    write_jsonl(tmp_path / "in.jsonl", records)
    settings = SETTINGS | {"execution_check": True, "execution_timeout_s": 3}
    counts = run_filter_shard(tmp_path / "in.jsonl", tmp_path / "out.jsonl", settings)
    assert counts == {"ok": 1, "post_code_fails_to_run": 1, "pre_code_syntax": 1}
    # Only the triplets that passed the other checks are run.
    assert runs == [(INVENTORY_AFTER, 3), (crashing, 3)]


def test_execution_check_with_the_real_sandbox(tmp_path: Path) -> None:
    crashing = INVENTORY_AFTER + "\nInventory().remove('apples', 1)\n"
    write_jsonl(tmp_path / "in.jsonl", [triplet("runs"), triplet("crashes", post_code=crashing)])
    settings = SETTINGS | {"execution_check": True, "execution_timeout_s": 10}
    counts = run_filter_shard(tmp_path / "in.jsonl", tmp_path / "out.jsonl", settings)
    assert counts == {"ok": 1, "post_code_fails_to_run": 1}


def test_execution_check_refuses_before_reading_when_isolation_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(setting: str) -> None:
        raise SandboxError(f"cannot isolate untrusted programs here ({setting})")

    monkeypatch.setattr(filtering, "select_isolation", unavailable)
    settings = SETTINGS | {"execution_check": True}
    with pytest.raises(SandboxError, match=r"cannot isolate untrusted programs here \(bwrap\)"):
        run_filter_shard(tmp_path / "absent.jsonl", tmp_path / "out.jsonl", settings, sandbox="bwrap")
    assert not (tmp_path / "out.jsonl").exists()


# ---------------------------------------------------------------- run_dedup


def dedup(
    tmp_path: Path,
    shards: list[list[dict[str, Any]]],
    benchmark: list[dict[str, Any]] | None = None,
    settings: dict[str, Any] = SETTINGS,
) -> tuple[dict[str, int], dict[str, dict[str, Any]], dict[str, Any]]:
    paths = []
    for number, records in enumerate(shards):
        paths.append(tmp_path / f"shard{number}.jsonl")
        write_jsonl(paths[-1], records)
    counts = run_dedup(paths, tmp_path / "dedup.jsonl", tmp_path / "report.json", settings, benchmark)
    out = {r["id"]: r for r in read_jsonl(tmp_path / "dedup.jsonl")}
    return counts, out, json.loads((tmp_path / "report.json").read_text())


def distinct_triplets() -> list[dict[str, Any]]:
    return [
        triplet("inventory"),
        triplet(
            "text",
            pre_code=TEXT_STATS,
            post_code=TEXT_STATS.replace("max(words, key=len)", "max(sorted(words), key=len)"),
            instruction_lazy="Break ties between longest words alphabetically.",
            instruction_descriptive="In `longest_word`, when several words share the greatest length, "
            "return the alphabetically first one by sorting the words before taking the maximum.",
        ),
        triplet(
            "matrix",
            pre_code=MATRIX,
            post_code=MATRIX.replace(
                "    rows, cols",
                '    if len(a[0]) != len(b):\n        raise ValueError("shape mismatch")\n    rows, cols',
            ),
            instruction_lazy="Check the matrix shapes before multiplying.",
            instruction_descriptive="At the start of `multiply`, raise a ValueError with the message "
            "'shape mismatch' when the column count of `a` differs from the row count of `b`.",
        ),
    ]


def test_dedup_keeps_distinct_triplets_and_first_of_each_duplicate(tmp_path: Path) -> None:
    first, text, matrix = distinct_triplets()
    reformatted = INVENTORY.replace("class Inventory:", "# stock\nclass Inventory:")
    reformatted = reformatted.replace('"not enough "', "'not enough '")
    exact = triplet(
        "exact",
        pre_code=reformatted,
        instruction_lazy=first["instruction_lazy"].upper(),
        instruction_descriptive="  " + first["instruction_descriptive"].replace(" ", "  "),
    )
    same_code = triplet(
        "same_code",
        post_code=INVENTORY.replace("sum(self.items.values())", "sum(max(v, 0) for v in self.items.values())"),
        instruction_lazy="Ignore negative counts in the total.",
        instruction_descriptive="Make `total` skip negative counts by clamping each count at zero before summing.",
    )
    same_instruction = triplet(
        "same_instruction",
        pre_code=MATRIX.replace("multiply", "matmul").replace("transpose", "flip"),
        post_code=MATRIX.replace("multiply", "matmul").replace("transpose", "flip") + "\n\nI = [[1, 0], [0, 1]]\n",
    )
    # The inventory's edit, with its 3 lines of context, in a different program.
    stranger = TEXT_STATS + "\n\n" + INVENTORY
    same_diff = triplet(
        "same_diff",
        pre_code=stranger,
        post_code=TEXT_STATS + "\n\n" + INVENTORY_AFTER,
        instruction_lazy="Report the largest stock.",
        instruction_descriptive="Give the stock class a way to find which product has the highest quantity.",
    )
    earlier_drop = {"id": "gone", "model": "m1", "status": "dropped", "reason": "post_code_syntax"}
    shards = [[first, text, exact, earlier_drop], [same_code, same_instruction, matrix, same_diff]]
    counts, out, report = dedup(tmp_path, shards, benchmark=None)

    assert counts == {
        "exact_duplicate": 1,
        "near_duplicate_code": 1,
        "near_duplicate_diff": 1,
        "near_duplicate_instruction": 1,
        "ok": 3,
        "post_code_syntax": 1,
    }
    assert {i for i, r in out.items() if r["status"] == "ok"} == {"inventory", "text", "matrix"}
    assert out["exact"]["reason"] == "exact_duplicate"
    assert out["same_code"]["reason"] == "near_duplicate_code"
    assert out["same_instruction"]["reason"] == "near_duplicate_instruction"
    assert out["same_diff"]["reason"] == "near_duplicate_diff"
    assert all(out[i]["duplicate_of"] == "inventory" for i in ("exact", "same_code", "same_instruction", "same_diff"))
    assert len(out) == 8  # every input record, dropped ones too
    assert {d["id"] for d in report["duplicates"]} == {"exact", "same_code", "same_instruction", "same_diff"}
    assert report["decontamination"].startswith("skipped")


def test_dedup_keeps_the_first_in_input_order(tmp_path: Path) -> None:
    a, b = triplet("a"), triplet("b")
    _, out, _ = dedup(tmp_path, [[b], [a]])
    assert (out["b"]["status"], out["a"]["reason"]) == ("ok", "exact_duplicate")


# ---------------------------------------------------------------- decontamination


def problem_like(name: str, before: str, after: str) -> dict[str, Any]:
    return {
        "full_name": name,
        "before": before,
        "after": after,
        "instruction_lazy": "Make it better.",
        "instruction_descriptive": "Change the program so that it does what the tests expect of it in every case.",
    }


def test_renamed_copy_of_a_benchmark_problem_is_contaminated(tmp_path: Path) -> None:
    benchmark = [problem_like("7_words", TEXT_STATS, TEXT_STATS.replace("[a-z']+", "[a-z0-9']+"))]
    # Every identifier renamed: no 13-word run survives, the name-blind sketch still matches.
    renamed = (
        TEXT_STATS.replace("word_counts", "tally")
        .replace("longest_word", "widest")
        .replace("counts", "seen")
        .replace("words", "tokens")
        .replace("word", "tok")
        .replace("text", "body")
    )
    planted = triplet("planted", pre_code=renamed, post_code=renamed + "\n\nSEP = ' '\n")
    others = [r for r in distinct_triplets() if r["id"] != "text"]  # "text" is that very problem
    counts, out, report = dedup(tmp_path, [[*others, planted]], benchmark=benchmark)
    assert counts == {"contaminated": 1, "ok": 2}
    assert out["planted"]["contaminated_by"] == "7_words"
    [match] = report["contaminated"]
    assert (match["id"], match["problem"], match["method"], match["field"]) == ("planted", "7_words", "code", "pre_code")


def test_too_much_contamination_is_an_error(tmp_path: Path) -> None:
    records = distinct_triplets()
    benchmark = [problem_like(f"{i}_p", r["pre_code"], r["post_code"]) for i, r in enumerate(records[:2])]
    with pytest.raises(ContaminationError, match=r"2 of 3 kept triplets \(66\.7%\).*max_contaminated_share = 0\.5"):
        dedup(tmp_path, [records], benchmark=benchmark)
    assert not (tmp_path / "dedup.jsonl").exists()


def test_benchmark_problem_without_a_field_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'1_x' lacks the text field 'after'"):
        dedup(tmp_path, [distinct_triplets()], benchmark=[{"full_name": "1_x", "before": "x = 1"}])


def canitedit_path() -> Path:
    default = SHARED / "canitedit/canitedit.jsonl"
    return Path(os.environ.get("EDITFORGE_CANITEDIT") or default)


@pytest.mark.skipif(
    not canitedit_path().is_file(), reason="no CanItEdit copy (set EDITFORGE_CANITEDIT or add ../shared/canitedit)"
)
def test_planted_canitedit_problem_is_caught_and_distinct_triplets_are_not(tmp_path: Path) -> None:
    benchmark = list(read_jsonl(canitedit_path()))
    problem = next(p for p in benchmark if p["full_name"] == "1_cipher")
    # Light renaming, as a synthesis model paraphrasing a memorised problem might do.
    rename = {"Cipher": "Codebook", "translate": "encode", "add_cipher": "register", "dic": "table"}
    pattern = re.compile(r"\b(" + "|".join(rename) + r")\b")
    planted = triplet(
        "planted",
        pre_code=pattern.sub(lambda m: rename[m.group()], problem["before"]),
        post_code=pattern.sub(lambda m: rename[m.group()], problem["after"]),
    )
    counts, out, report = dedup(tmp_path, [[*distinct_triplets(), planted]], benchmark=benchmark)
    assert counts == {"contaminated": 1, "ok": 3}
    assert out["planted"]["contaminated_by"] == "1_cipher"
    assert report["contaminated"][0]["problem"] == "1_cipher"


# ---------------------------------------------------------------- generated tests (third round)

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
    assert ADD_BEFORE.strip() in request.messages[-1]["content"] and ADD_AFTER.strip() in request.messages[-1]["content"]


def test_run_filter_shard_asks_the_tests_model_only_when_enabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = ScriptedBackend({"good": GENERATED_CASES["good"][0], "blind": GENERATED_CASES["blind"][0]})
    opened: list[tuple[str, Any, Any]] = []

    def fake_open(name: str, spec: dict[str, Any], cache_dir: Any) -> ScriptedBackend:
        opened.append((name, spec, cache_dir))
        return backend

    monkeypatch.setattr("editforge.backend.core.open_backend", fake_open)
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


# ---------------------------------------------------------------- MinHash, LSH and the exact key


def test_lsh_bands_propose_pairs_at_the_threshold_with_high_probability() -> None:
    bands = _Bands(0.8, 128)
    assert (bands.bands, bands.rows) == (18, 7)
    at_threshold = 1 - (1 - 0.8**bands.rows) ** bands.bands
    far = 1 - (1 - 0.3**bands.rows) ** bands.bands
    assert at_threshold >= LSH_RECALL_AT_THRESHOLD and far < 0.005


def test_signatures_estimate_jaccard_and_batches_agree_with_single_lists() -> None:
    sketcher = _Sketcher(256, 1)
    a = [f"w{i}" for i in range(300)]
    b = [f"w{i}" for i in range(100, 400)]  # Jaccard 200 / 400 = 0.5
    sketches = sketcher.sketch([a, b, a[:3], ["x"]], batch_tokens=50)
    estimate = float(np.mean(sketches.signatures[0] == sketches.signatures[1]))
    assert abs(estimate - 0.5) < 0.1
    assert jaccard(sketches.shingle_set(0), sketches.shingle_set(1)) == 0.5
    for row, tokens in enumerate([a, b, a[:3], ["x"]]):
        assert (sketcher(tokens).signatures[0] == sketches.signatures[row]).all()
    with pytest.raises(ValueError, match="empty token list"):
        sketcher.sketch([a, []])


def test_shingles_shorter_than_a_shingle_are_one_shingle() -> None:
    sketcher = _Sketcher(64, 5)
    assert len(sketcher.sketch([["a", "b"]]).shingle_set(0)) == 1
    assert sketcher.sketch([["a", "b"]]).shingle_set(0) != sketcher.sketch([["a", "b", "c"]]).shingle_set(0)
    assert len(sketcher.sketch([list("abcdefg")]).shingle_set(0)) == 3


def test_exact_key_ignores_layout_comments_and_quotes_but_not_behaviour() -> None:
    base = triplet()
    same = triplet(pre_code="# header\n" + INVENTORY.replace('"not enough "', "'not enough '").replace("):", ") :"))
    assert _exact_key(base) == _exact_key(same)
    assert _exact_key(base) != _exact_key(triplet(pre_code=INVENTORY.replace("0) < count", "0) <= count")))
    assert _exact_key(base) != _exact_key(triplet(instruction_lazy="Something else."))
    # Parses but does not compile: keyed by its AST, still blind to layout.
    outside = "return  1\n"
    assert _exact_key(triplet(pre_code=outside)) == _exact_key(triplet(pre_code="return 1  # x\n"))


def random_triplets(count: int, seed: int) -> list[dict[str, Any]]:
    """Varied small triplets with planted near copies (renamed, extended, reworded)."""
    rng = random.Random(seed)
    nouns = ["price", "total", "order", "item", "stock", "user", "name", "path", "line", "word", "count", "value"]
    records: list[dict[str, Any]] = []
    for number in range(count):
        if records and rng.random() < 0.3:
            source = rng.choice(records)
            kind = rng.randrange(3)
            pre, post = source["pre_code"], source["post_code"]
            lazy, desc = source["instruction_lazy"], source["instruction_descriptive"]
            if kind == 0:
                pre, post = pre + f"\n{rng.choice(nouns)}_x = {number}\n", post + f"\n{rng.choice(nouns)}_x = 1\n"
            elif kind == 1:
                lazy, desc = lazy + " Thanks.", desc + " Keep the rest."
            else:
                pre, post = pre.replace("def ", "def my_"), post.replace("def ", "def my_")
                lazy = f"{rng.choice(nouns)} {lazy}"
            records.append(triplet(f"t{number:04d}", pre_code=pre, post_code=post, instruction_lazy=lazy,
                                   instruction_descriptive=desc))
            continue
        names = rng.sample(nouns, 4)
        body = "\n".join(f"    {n} = {rng.choice(names)} + {rng.randrange(99)}" for n in names)
        pre = f"def {names[0]}_{names[1]}({names[2]}, {names[3]}):\n{body}\n    return {names[0]}\n"
        post = pre.replace(f"return {names[0]}", f"return {names[1]} * {rng.randrange(2, 9)}")
        lazy = f"Return the {names[1]} scaled instead, please {rng.choice(nouns)}."
        desc = f"In `{names[0]}_{names[1]}`, return {names[1]} times a factor and not {names[0]} ({number})."
        records.append(triplet(f"t{number:04d}", pre_code=pre, post_code=post, instruction_lazy=lazy,
                               instruction_descriptive=desc))
    return records


def greedy_exact(records: list[dict[str, Any]], threshold: float, shingle_words: int) -> dict[str, str]:
    """The dedup decisions with exact Jaccard over all earlier kept records (the reference for LSH)."""
    def shingles(tokens: list[str]) -> set[Any]:
        k = shingle_words
        return {" ".join(tokens[i : i + k]) for i in range(max(1, len(tokens) - k + 1))}

    kept: list[dict[str, set[Any]]] = []
    seen: set[bytes] = set()
    decisions: dict[str, str] = {}
    for record in records:
        key = _exact_key(record)
        if key in seen:
            decisions[record["id"]] = "exact_duplicate"
            continue
        seen.add(key)
        hashes, offsets = code_shingles([record["pre_code"]])
        tokens = {reason: tokens_of(record) for reason, tokens_of in _NEAR_TOKENS.items()}
        own = {"near_duplicate_code": set(hashes.tolist())} if len(hashes) else {}
        own |= {reason: shingles(t) for reason, t in tokens.items() if t}
        hit = next(
            (r for r in own if any(r in k and jaccard(own[r], k[r]) >= threshold for k in kept)), None  # type: ignore[arg-type]
        )
        if hit:
            decisions[record["id"]] = hit
        else:
            kept.append(own)
            decisions[record["id"]] = "ok"
    return decisions


def test_lsh_dedup_matches_the_exact_pairwise_check(tmp_path: Path) -> None:
    records = random_triplets(400, seed=3)
    expected = greedy_exact(records, SETTINGS["minhash"]["threshold"], SETTINGS["minhash"]["shingle_words"])
    assert 50 < sum(d != "ok" for d in expected.values()) < 200  # the planted copies make a real test
    _, out, _ = dedup(tmp_path, [records])
    assert {i: r["reason"] if r["status"] == "dropped" else "ok" for i, r in out.items()} == expected
    # Every drop names a kept triplet.
    assert all(out[r["duplicate_of"]]["status"] == "ok" for r in out.values() if "duplicate_of" in r)


def test_an_exact_copy_of_a_near_duplicate_names_the_kept_triplet(tmp_path: Path) -> None:
    first = triplet("first")
    near = triplet("near", post_code=INVENTORY_AFTER + "\n\nLIMIT = 10\n")  # same pre-edit code: near_duplicate_code
    near["instruction_lazy"] = "Add a method for the top item."
    copy = dict(near, id="copy", pre_code="# again\n" + INVENTORY)
    _, out, _ = dedup(tmp_path, [[first, near, copy]])
    assert (out["near"]["reason"], out["near"]["duplicate_of"]) == ("near_duplicate_code", "first")
    assert (out["copy"]["reason"], out["copy"]["duplicate_of"]) == ("exact_duplicate", "first")


def test_planted_problem_among_many_distinct_triplets_is_the_only_match(tmp_path: Path) -> None:
    benchmark = [problem_like("7_words", TEXT_STATS, TEXT_STATS.replace("[a-z']+", "[a-z0-9']+"))]
    renamed = TEXT_STATS.replace("word_counts", "tally").replace("longest_word", "widest").replace("text", "body")
    records = random_triplets(300, seed=5)
    records.insert(150, triplet("planted", pre_code=renamed, post_code=renamed + "\nSEP = ' '\n"))
    settings = SETTINGS | {"decontamination": SETTINGS["decontamination"] | {"max_contaminated_share": 0.05}}
    counts, out, report = dedup(tmp_path, [records], benchmark=benchmark, settings=settings)
    assert counts["contaminated"] == 1 and out["planted"]["contaminated_by"] == "7_words"
    assert [m["id"] for m in report["contaminated"]] == ["planted"]
