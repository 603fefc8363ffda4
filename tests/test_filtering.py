"""Per-triplet checks, the shard stage, dedup and decontamination."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from editforge.filtering import (
    ContaminationError,
    code_tokens,
    count_sentences,
    diff_stats,
    filter_triplet,
    run_dedup,
    run_filter_shard,
)
from editforge.records import RecordError, read_jsonl, write_jsonl

SETTINGS: dict[str, Any] = {
    "min_changed_lines": 1,
    "max_changed_lines": 70,
    "max_hunks": 7,
    "lazy_max_sentences": 3,
    "minhash": {"num_perm": 128, "threshold": 0.8, "shingle_words": 5},
    "decontamination": {"ngram": 13, "minhash_threshold": 0.8, "max_contaminated_share": 0.5},
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

    def run_many(programs: list[str], workers: int, *, timeout_s: float) -> list[types.SimpleNamespace]:
        runs.extend((program, timeout_s) for program in programs)
        return [types.SimpleNamespace(outcome="error" if "1 / 0" in p else "pass") for p in programs]

    monkeypatch.setitem(sys.modules, "editforge.sandbox", types.SimpleNamespace(run_many=run_many))
    crashing = INVENTORY_AFTER + "\nprint(1 / 0)\n"
    records = [triplet("runs"), triplet("crashes", post_code=crashing), triplet("bad", pre_code="(")]
    write_jsonl(tmp_path / "in.jsonl", records)
    settings = SETTINGS | {"execution_check": True, "execution_timeout_s": 3}
    counts = run_filter_shard(tmp_path / "in.jsonl", tmp_path / "out.jsonl", settings)
    assert counts == {"ok": 1, "post_code_fails_to_run": 1, "pre_code_syntax": 1}
    # Only the triplets that passed the other checks are run.
    assert runs == [(INVENTORY_AFTER, 3), (crashing, 3)]


@pytest.mark.skipif(importlib.util.find_spec("editforge.sandbox") is None, reason="no sandbox module")
def test_execution_check_with_the_real_sandbox(tmp_path: Path) -> None:
    crashing = INVENTORY_AFTER + "\nInventory().remove('apples', 1)\n"
    write_jsonl(tmp_path / "in.jsonl", [triplet("runs"), triplet("crashes", post_code=crashing)])
    settings = SETTINGS | {"execution_check": True, "execution_timeout_s": 10}
    counts = run_filter_shard(tmp_path / "in.jsonl", tmp_path / "out.jsonl", settings)
    assert counts == {"ok": 1, "post_code_fails_to_run": 1}


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
    assert (match["id"], match["problem"], match["method"]) == ("planted", "7_words", "minhash")


def test_too_much_contamination_is_an_error(tmp_path: Path) -> None:
    records = distinct_triplets()
    benchmark = [problem_like(f"{i}_p", r["pre_code"], r["post_code"]) for i, r in enumerate(records[:2])]
    with pytest.raises(ContaminationError, match=r"2 of 3 kept triplets \(66\.7%\).*max_contaminated_share = 0\.5"):
        dedup(tmp_path, [records], benchmark=benchmark)
    assert not (tmp_path / "dedup.jsonl").exists()


def test_benchmark_problem_without_a_field_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'1_x' lacks the text field 'after'"):
        dedup(tmp_path, [distinct_triplets()], benchmark=[{"full_name": "1_x", "before": "x = 1"}])


def test_code_tokens_are_blind_to_consistent_renaming() -> None:
    renamed = "def g(items):  # x\n    return len(items) + 1\n"
    assert code_tokens("def f(a):\n    return len(a) + 1\n") == code_tokens(renamed)
    assert code_tokens("def f(a):\n    return a + 1\n") != code_tokens("def f(a):\n    return a - 1\n")


def canitedit_path() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared/canitedit/canitedit.jsonl"
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
