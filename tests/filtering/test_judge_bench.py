"""bench/judge.py, run as a user runs it (``--fake``): its labelled cases and the figures it reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sklearn.metrics import cohen_kappa_score

from editforge.records import write_jsonl
from helpers import REPO
from helpers.triplets import MATRIX, TEXT_STATS, triplet

VERDICTS = ("edit_needed", "edit_complete", "edit_focused")
# The brief's table: the verdicts each kind of case should fail.
FAILS = {
    "correct": set(),
    "post_unchanged": {"edit_complete"},
    "other_program": {"edit_complete", "edit_focused"},
    "other_instruction": {"edit_complete", "edit_focused"},
    "unrelated_change": {"edit_focused"},
    "already_done": {"edit_needed"},
}
JUDGES = ("scripted-strict", "scripted-lenient")

TEXT_STATS_AFTER = TEXT_STATS.replace("def word_counts(text):", "def word_counts(text, min_length=1):").replace(
    "        counts[word] = counts.get(word, 0) + 1",
    "        if len(word) >= min_length:\n            counts[word] = counts.get(word, 0) + 1",
)
MATRIX_AFTER = MATRIX + "\n\ndef identity(n):\n    return [[1 if i == j else 0 for j in range(n)] for i in range(n)]\n"
TEMPERATURE = """def celsius_to_fahrenheit(c):
    return c * 9 / 5 + 32


def fahrenheit_to_celsius(f):
    return (f - 32) * 5 / 9
"""
TEMPERATURE_AFTER = TEMPERATURE.replace("return c * 9 / 5 + 32", "return round(c * 9 / 5 + 32, 1)")

TRIPLETS = [
    triplet("inventory"),
    triplet(
        "text_stats",
        pre_code=TEXT_STATS,
        post_code=TEXT_STATS_AFTER,
        instruction_lazy="Let word_counts skip short words.",
        instruction_descriptive="Add a parameter `min_length` (default 1) to `word_counts` and count only the words "
        "of at least that many letters.",
    ),
    triplet(
        "matrix",
        pre_code=MATRIX,
        post_code=MATRIX_AFTER,
        instruction_lazy="Add an identity matrix helper.",
        instruction_descriptive="Add a function `identity(n)` that returns the n by n identity matrix as a list of "
        "lists of ints.",
    ),
    triplet(
        "temperature",
        pre_code=TEMPERATURE,
        post_code=TEMPERATURE_AFTER,
        instruction_lazy="Round the fahrenheit result to one decimal.",
        instruction_descriptive="In `celsius_to_fahrenheit`, round the result to one decimal place with `round`.",
    ),
    triplet("dropped", status="dropped", reason="exact_duplicate"),
]


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "bench/judge.py", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("judge_bench")
    write_jsonl(folder / "triplets.jsonl", TRIPLETS)
    result = run_bench(
        "--triplets", str(folder / "triplets.jsonl"), "--cases", "10", "--fake", "--json", str(folder / "bench.json")
    )
    assert result.returncode == 0, result.stderr
    assert "UNCERTAIN as FAIL" in result.stdout and "kappa" in result.stdout
    return json.loads((folder / "bench.json").read_text())


def answered(cases: Sequence[Mapping[str, Any]], judge: str) -> list[Mapping[str, Any]]:
    return [case for case in cases if isinstance(case["got"][judge], dict)]


def test_every_kind_and_style_of_every_kept_triplet_with_the_expected_labels(report: dict[str, Any]) -> None:
    cases = report["cases"]
    made = {(case["triplet"], case["kind"], case["style"]) for case in cases}
    kept = [t["id"] for t in TRIPLETS if t["status"] == "ok"]
    assert made == {(t, kind, style) for t in kept for kind in FAILS for style in ("lazy", "descriptive")}
    assert len(cases) == len(made)
    for case in cases:
        assert case["expected"] == {v: "FAIL" if v in FAILS[case["kind"]] else "PASS" for v in VERDICTS}
        assert set(case["got"]) == set(JUDGES)
        assert case["other"] is None or case["other"] in kept and case["other"] != case["triplet"]
    variants = {case["variant"] for case in cases if case["kind"] == "unrelated_change"}
    assert variants == {"changed_literal", "appended_function"}


@pytest.mark.parametrize("judge", JUDGES)
def test_precision_and_recall_are_those_of_the_cases(report: dict[str, Any], judge: str) -> None:
    cases, figures = report["cases"], report["figures"][judge]
    for verdict in VERDICTS:
        for uncertain_as in ("FAIL", "PASS"):
            said = [(c["got"][judge][verdict], c["expected"][verdict]) for c in answered(cases, judge)]
            said = [(uncertain_as if got == "UNCERTAIN" else got, expected) for got, expected in said]
            tp = sum(got == expected == "FAIL" for got, expected in said)
            fp = sum(got == "FAIL" != expected for got, expected in said)
            fn = sum(expected == "FAIL" != got for got, expected in said)
            row = figures["verdicts"][verdict][f"uncertain_as_{uncertain_as.lower()}"]
            assert (row["tp"], row["fp"], row["fn"], row["cases"]) == (tp, fp, fn, len(said))
            assert row["precision"] == (tp / (tp + fp) if tp + fp else None)
            assert row["recall"] == (tp / (tp + fn) if tp + fn else None)
    unparseable = sum(case["got"][judge] == "unparseable" for case in cases)
    assert figures["unparseable"] == unparseable and figures["errors"] == 0
    assert unparseable / len(cases) < 0.2  # a changed prompt layout would make every answer unparseable
    for kind in FAILS:
        of_kind = [case for case in cases if case["kind"] == kind]
        matching = sum(case["got"][judge] == case["expected"] for case in of_kind)
        assert figures["kinds"][kind] == {
            "cases": len(of_kind),
            "all_match": matching,
            "share": matching / len(of_kind),
        }


def test_the_strict_judge_catches_unchanged_and_foreign_programs(report: dict[str, Any]) -> None:
    strict = answered(report["cases"], "scripted-strict")
    unchanged = [case for case in strict if case["kind"] == "post_unchanged"]
    assert unchanged and all(case["got"]["scripted-strict"]["edit_complete"] == "FAIL" for case in unchanged)
    foreign = [case for case in strict if case["kind"] == "other_program"]
    assert foreign and all(case["got"]["scripted-strict"]["edit_focused"] == "FAIL" for case in foreign)
    fails = {
        judge: sum(
            value == "FAIL" for case in answered(report["cases"], judge) for value in case["got"][judge].values()
        )
        for judge in JUDGES
    }
    assert fails["scripted-strict"] > fails["scripted-lenient"]


def test_agreement_and_kappa_are_those_of_the_two_judges(report: dict[str, Any]) -> None:
    both = [case for case in report["cases"] if all(isinstance(case["got"][judge], dict) for judge in JUDGES)]
    for verdict in VERDICTS:
        strict = [case["got"]["scripted-strict"][verdict] for case in both]
        lenient = [case["got"]["scripted-lenient"][verdict] for case in both]
        row = report["agreement"][verdict]
        assert row["cases"] == len(both)
        assert row["agreement"] == sum(a == b for a, b in zip(strict, lenient)) / len(both)
        assert row["kappa"] is not None and -1 <= row["kappa"] <= 1
        kappa = cohen_kappa_score(strict, lenient, labels=["PASS", "FAIL", "UNCERTAIN"])
        assert row["kappa"] == pytest.approx(kappa)


def test_bad_input_ends_with_one_line(tmp_path: Path) -> None:
    missing = run_bench("--triplets", str(tmp_path / "none.jsonl"), "--fake")
    assert missing.returncode != 0 and missing.stderr.strip().count("\n") == 0
    assert "none.jsonl: no such file" in missing.stderr
    write_jsonl(tmp_path / "dropped.jsonl", [TRIPLETS[-1]])
    nothing_kept = run_bench("--triplets", str(tmp_path / "dropped.jsonl"), "--fake")
    assert nothing_kept.returncode != 0 and nothing_kept.stderr.strip().count("\n") == 0
    assert "0 kept (status 'ok') triplets" in nothing_kept.stderr
    no_judge = run_bench("--triplets", str(tmp_path / "dropped.jsonl"), "--config", "config/config.yaml")
    assert no_judge.returncode != 0 and no_judge.stderr.strip().count("\n") == 0
    assert "--config needs --judge NAME" in no_judge.stderr
