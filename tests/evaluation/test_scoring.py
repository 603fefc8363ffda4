"""Scoring: the harness's pass@k, the strict rule, ExcessCode, the files, exclusions."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from editforge.evaluation.frames import HARNESS_COLUMNS
from editforge.evaluation.harness import pass_at_k, program_no_test
from editforge.evaluation.scoring import Exclusion, read_preflight, run_score, score
from editforge.records import RecordError, write_jsonl

TESTS = "### START TESTS ###\nassert True"


def problem(problem_id: int, name: str, before: str, change_kind: str) -> dict[str, Any]:
    return {
        "id": problem_id,
        "name": name,
        "full_name": f"{problem_id}_{name}",
        "before": before,
        "after": before,
        "tests": TESTS,
        "instruction_descriptive": "Do it.",
        "instruction_lazy": "it",
        "taxonomy": {"change_kind": change_kind, "libraries": [], "topic": "Misc"},
    }


PROBLEMS = [
    problem(1, "p", "a = 1\nb = 2\nc = 3", "adaptive"),
    problem(2, "q", "p = 0", "corrective"),
    problem(3, "r", "r = 0", "perfective"),
]

ISOLATED = "userns(user,mount,pid,net,ipc,uts) timeout=15s cpu=16s memory=4096MB"
UNISOLATED = "none (NOT isolated) timeout=15s cpu=16s memory=4096MB"


def execution(
    problem_id: int,
    kind: str,
    outcome: str,
    *,
    index: int = 0,
    finished: bool | None = None,
    completion: str = "",
    coverage: int | None = None,
    missing: list[int] | None = None,
    target: str = "m",
    stderr: str = "",
    isolation: str = ISOLATED,
) -> dict[str, Any]:
    found = next(p for p in PROBLEMS if p["id"] == problem_id)
    return {
        "target": target,
        "problem_id": problem_id,
        "full_name": found["full_name"],
        "kind": kind,
        "change_kind": found["taxonomy"]["change_kind"],
        "sample_index": index,
        "completion": completion,
        "raw": completion,
        "finish_reason": "stop",
        "error": None,
        "outcome": outcome,
        "exit_code": 0 if outcome == "pass" else 1,
        "stderr_tail": stderr,
        "duration_s": 0.1,
        "tests_finished": outcome == "pass" if finished is None else finished,
        "coverage": coverage,
        "coverage_missing": missing,
        "isolation": isolation,
    }


MISSING_NUMPY = "Traceback (most recent call last):\nModuleNotFoundError: No module named 'numpy'\n"

# Problem 1 lazy: two covered passes. The ndiff of ``before`` (3 lines) and each
# program without tests:
#   A: "  a = 1", "  b = 2", "  c = 3", "+ d = 4"                -> 4 lines, 1 uncovered
#   B: "  a = 1", "- b = 2", "+ b = 20", "?      +", "  c = 3"   -> 5 lines (the ? hint counts), 1 uncovered
# Problem 2 lazy: completion "p = 0\n\n"; without tests it is "p = 0\n\n\n", three
# lines: "  p = 0", "+ ", "+ " -> 3 lines, 1 uncovered.
HAND = [
    execution(1, "lazy", "pass", index=0, completion="a = 1\nb = 2\nc = 3\nd = 4", coverage=75, missing=[4]),
    execution(1, "lazy", "pass", index=1, completion="a = 1\nb = 20\nc = 3", coverage=67, missing=[2]),
    execution(1, "lazy", "fail", index=2),
    execution(1, "lazy", "timeout", index=3),
    execution(1, "descriptive", "pass", index=0, finished=False),  # exited 0 before its tests were done
    execution(1, "descriptive", "fail", index=1, stderr=MISSING_NUMPY),
    execution(1, "descriptive", "error", index=2),
    execution(1, "descriptive", "fail", index=3),
    execution(2, "lazy", "pass", index=0, completion="p = 0\n\n", coverage=50, missing=[1]),
    execution(2, "lazy", "fail", index=1),
    execution(2, "descriptive", "pass", index=0),  # passed, but coverage did not run
]
# Per-problem ExcessCode terms and 100 - coverage, by hand from the comment above.
P1_LAZY_EXCESS = (1 / 4 + 1 / 5) / 2
P2_LAZY_EXCESS = 1 / 3


def rows_by_split(scores_summary: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {row["split"]: row for row in scores_summary.iter_rows(named=True)}


# ---------------------------------------------------------------- pass@k


@pytest.mark.parametrize("k", [1, 5, 10])
def test_pass_at_k_is_one_minus_the_binomial_ratio(k: int) -> None:
    n = 20
    # One target per pass count, each with 20 samples of problem 1.
    records = [
        execution(1, "lazy", "pass" if i < c else "fail", index=i, target=f"c{c:02d}")
        for c in (0, 1, 3, 5, 12, 20)
        for i in range(n)
    ]
    per = score(records, PROBLEMS, ks=[k]).per_problem
    assert per.height == 6
    for row in per.iter_rows(named=True):
        c = row["c"]
        assert row["n"] == n
        assert row[f"pass@{k}"] == pytest.approx(100 * (1 - math.comb(n - c, k) / math.comb(n, k)))
        assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


def test_a_problem_with_fewer_than_k_samples_counts_as_solved() -> None:
    records = [
        *[execution(1, "lazy", "fail", index=i) for i in range(3)],  # n = 3 < k = 5, no pass at all
        *[execution(2, "lazy", "pass" if i == 0 else "fail", index=i) for i in range(10)],
    ]
    scores = score(records, PROBLEMS, ks=[1, 5])
    assert scores.per_problem["pass@5"].to_list() == [100.0, pytest.approx(50.0)]  # 1 - C(9,5)/C(10,5)
    lazy = rows_by_split(scores.summary)["lazy"]
    assert lazy["pass@5"] == pytest.approx(75.0)  # the short problem is in the mean, as solved
    assert lazy["pass@1"] == pytest.approx(5.0)  # (0 + 1/10) / 2
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(3, 4, 1)


def test_every_sample_counts_and_a_missing_module_is_a_failure() -> None:
    records = [
        execution(1, "lazy", "pass", index=0),
        *[execution(1, "lazy", "fail", index=i, stderr=MISSING_NUMPY) for i in (1, 2, 3)],
    ]
    scores = score(records, PROBLEMS)
    assert scores.per_problem.select("n", "c", "pass@1").row(0) == (4, 1, 25.0)
    assert rows_by_split(scores.summary)["overall"]["samples"] == 4


def test_unknown_outcomes_are_refused() -> None:
    with pytest.raises(RecordError, match="execution record 2 has outcome 'crashed'"):
        score([execution(1, "lazy", "pass"), execution(1, "lazy", "crashed", index=1)], PROBLEMS)


# ---------------------------------------------------------------- official and strict


def test_an_early_exit_moves_only_the_strict_column() -> None:
    scores = score(HAND, PROBLEMS)
    per = scores.per_problem.filter(pl.col("problem_id") == 1)
    assert per.select("kind", "n", "c", "c_strict").rows() == [("lazy", 4, 2, 2), ("descriptive", 4, 1, 0)]
    assert per["pass@1"].to_list() == [50.0, 25.0]
    assert per["strict_pass@1"].to_list() == [50.0, 0.0]
    split = rows_by_split(scores.summary)
    assert (split["descriptive"]["pass@1"], split["descriptive"]["strict_pass@1"]) == (62.5, 50.0)
    assert (split["lazy"]["pass@1"], split["lazy"]["strict_pass@1"]) == (50.0, 50.0)
    assert (split["overall"]["pass@1"], split["overall"]["strict_pass@1"]) == (56.25, 50.0)
    assert (split["overall"]["early_exits"], split["lazy"]["early_exits"]) == (1, 0)
    assert scores.early_exits.rows() == [("m", 1, "1_p", "descriptive", 0)]


def test_without_early_exits_both_rules_agree() -> None:
    records = [execution(1, "lazy", "pass"), execution(1, "lazy", "fail", index=1)]
    scores = score(records, PROBLEMS)
    overall = rows_by_split(scores.summary)["overall"]
    assert overall["pass@1"] == overall["strict_pass@1"] == 50.0 and overall["early_exits"] == 0
    assert scores.early_exits.is_empty()


# ---------------------------------------------------------------- ExcessCode


def test_program_no_test_is_cut_at_the_first_marker() -> None:
    assert program_no_test("x = 1", TESTS) == "x = 1\n"
    echoed = "x = 1\n### START TESTS ###\nassert x == 1"  # a completion that copied tests
    assert program_no_test(echoed, TESTS) == "x = 1\n"


def test_excess_code_and_mean_median_coverage_by_hand() -> None:
    scores = score(HAND, PROBLEMS)
    per = scores.per_problem
    assert per.select("covered", "excess_code", "median_uncovered").rows() == [
        (2, pytest.approx(100 * P1_LAZY_EXCESS), 29.0),  # median of 100 - 75 and 100 - 67
        (0, None, None),
        (1, pytest.approx(100 * P2_LAZY_EXCESS), 50.0),
        (0, None, None),  # a pass without coverage
    ]
    split = rows_by_split(scores.summary)
    # Only the problems with a covered pass count: problem 1 lazy and problem 2 lazy.
    for name in ("lazy", "overall"):
        row = split[name]
        assert row["covered_problems"] == 2
        assert row["excess_code"] == pytest.approx(100 * (P1_LAZY_EXCESS + P2_LAZY_EXCESS) / 2)
        # The population standard deviation of two values is half their distance.
        assert row["excess_code_se"] == pytest.approx(100 * abs(P1_LAZY_EXCESS - P2_LAZY_EXCESS) / 2 / math.sqrt(2))
        assert row["mean_median_coverage"] == pytest.approx((29 + 50) / 2)
    assert split["adaptive"]["excess_code"] == pytest.approx(100 * P1_LAZY_EXCESS)
    assert split["adaptive"]["excess_code_se"] == 0.0
    descriptive = split["descriptive"]
    assert descriptive["covered_problems"] == 0
    assert descriptive["excess_code"] is None and descriptive["mean_median_coverage"] is None


def test_the_harness_csv_has_its_columns_and_prints_as_it_does(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "m.jsonl", HAND)
    run_score([tmp_path / "m.jsonl"], PROBLEMS, tmp_path / "out", [5])
    lines = (tmp_path / "out" / "harness_pass_k.csv").read_text().splitlines()
    assert lines[0] == ",".join(HARNESS_COLUMNS)
    assert lines[0] == (
        "Name,Pass@k,Estimate,NumProblems,MinCompletions,MaxCompletions,ExcessCode,ExcessCodeSE,MeanMedianCoverage"
    )
    assert lines[1:] == [
        # pass@1 rows: the estimate to 1 decimal, the rest to 2; pass@k rows: rounded to 6 decimals.
        "m_lazy,1,50.0,2,2,4,27.92,3.83,39.50",
        "m_lazy,5,100.0,2,2,4,27.916667,3.830162,39.5",  # n - c < 5 everywhere: all solved
        "m_descriptive,1,62.5,2,1,4,NA,NA,NA",
        "m_descriptive,5,100.0,2,1,4,NA,NA,NA",
        "m,1,56.2,4,1,4,27.92,3.83,39.50",  # 56.25 printed with 1 decimal, as Python rounds it
        "m,5,100.0,4,1,4,27.916667,3.830162,39.5",
        "m_adaptive,1,37.5,2,4,4,22.50,0.00,29.00",
        "m_adaptive,5,100.0,2,4,4,22.5,0.0,29.0",
        "m_corrective,1,75.0,2,1,2,33.33,0.00,50.00",
        "m_corrective,5,100.0,2,1,2,33.333333,0.0,50.0",
    ]


# ---------------------------------------------------------------- bad input


def test_a_record_from_before_the_strict_rule_is_named_with_its_file(tmp_path: Path) -> None:
    old = {key: value for key, value in execution(1, "lazy", "fail").items() if key != "tests_finished"}
    write_jsonl(tmp_path / "e.jsonl", [execution(1, "lazy", "pass"), old])
    with pytest.raises(RecordError, match=r"e\.jsonl: record 2 lacks tests_finished \(written by an older version"):
        run_score([tmp_path / "e.jsonl"], PROBLEMS, tmp_path / "out", [1])
    older = {key: value for key, value in old.items() if not key.startswith("coverage")}
    write_jsonl(tmp_path / "e.jsonl", [older])
    with pytest.raises(RecordError, match="record 1 lacks tests_finished, coverage, coverage_missing"):
        run_score([tmp_path / "e.jsonl"], PROBLEMS, tmp_path / "out", [1])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tests_finished": "yes"}, "tests_finished must be true or false, got 'yes'"),
        ({"coverage": 80}, "coverage and coverage_missing must be both null or both set"),
        ({"outcome": "fail", "coverage": 80, "coverage_missing": []}, "has coverage but outcome 'fail'"),
        ({"coverage": 180, "coverage_missing": []}, "coverage must be a percentage"),
        ({"problem_id": 9}, r"is for problem 9 \(1_p\), which the benchmark file lacks"),
        ({"full_name": "1_other"}, r"is for problem 1 \(1_other\), which the benchmark file lacks"),
        ({"sample_index": True}, "sample_index must be an integer, got True"),
    ],
)
def test_bad_values_are_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(RecordError, match=message):
        score([{**execution(1, "lazy", "pass"), **change}], PROBLEMS)


# ---------------------------------------------------------------- exclusions and files


def write_preflight(path: Path, excluded: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"excluded": excluded, "checked": 3}), encoding="utf-8")
    return path


def test_preflight_exclusions_are_named_in_the_tables(tmp_path: Path) -> None:
    vllm = "ModuleNotFoundError: No module named 'vllm'"
    preflight = write_preflight(tmp_path / "preflight.json", [{"problem_id": 3, "full_name": "3_r", "reason": vllm}])
    assert read_preflight(preflight) == (Exclusion(3, "3_r", vllm),)
    write_jsonl(tmp_path / "m.jsonl", HAND)
    scores = run_score([tmp_path / "m.jsonl"], PROBLEMS, tmp_path / "out", [1], preflight)
    summary = pl.read_csv(tmp_path / "out" / "summary.csv")
    excluded = dict(summary.select("split", "excluded").iter_rows())
    assert excluded == {"lazy": "3_r", "descriptive": "3_r", "overall": "3_r", "adaptive": None, "corrective": None}
    assert rows_by_split(scores.summary)["overall"]["problems"] == 4  # problem 3 is in no mean
    markdown = (tmp_path / "out" / "summary.md").read_text()
    assert f"not counted in any row: 3_r ({vllm})." in markdown

    # Records of an excluded problem mean the executions are older than the list.
    write_jsonl(tmp_path / "m.jsonl", [execution(3, "lazy", "pass")])
    with pytest.raises(RecordError, match="m.jsonl: record 1 is for problem 3_r, which the preflight excludes"):
        run_score([tmp_path / "m.jsonl"], PROBLEMS, tmp_path / "out", [1], preflight)


def test_scoring_without_a_preflight_says_nothing_was_excluded(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "m.jsonl", HAND)
    run_score([tmp_path / "m.jsonl"], PROBLEMS, tmp_path / "out", [1])
    assert pl.read_csv(tmp_path / "out" / "summary.csv")["excluded"].null_count() == 5
    assert "No problem was excluded before generation." in (tmp_path / "out" / "summary.md").read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "expected an object with a list 'excluded'"),
        ('{"excluded": [{"problem_id": 3, "full_name": "3_r"}]}', "excluded entry 1 lacks reason"),
        ('{"excluded": [{"problem_id": 3.5, "full_name": "3_r", "reason": "x"}]}',
         "problem_id must be an integer or a string"),
        ("{", "not JSON"),
    ],
)
def test_a_broken_preflight_file_is_named(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "preflight.json").write_text(content)
    with pytest.raises(RecordError, match=message):
        read_preflight(tmp_path / "preflight.json")


def test_an_exclusion_must_name_a_benchmark_problem() -> None:
    with pytest.raises(RecordError, match="the preflight excludes 7_x, which the benchmark file lacks"):
        score(HAND, PROBLEMS, excluded=[Exclusion(7, "7_x", "?")])


def test_run_score_writes_tables_markdown_and_chart(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "m.jsonl", HAND)
    write_jsonl(tmp_path / "other.jsonl", [{**e, "target": "other", "outcome": "fail", "coverage": None,
                                            "coverage_missing": None, "tests_finished": False} for e in HAND])
    run_score([tmp_path / "m.jsonl", tmp_path / "other.jsonl"], PROBLEMS, tmp_path / "scores", [1])
    out = tmp_path / "scores"
    per = pl.read_csv(out / "per_problem.csv")
    assert per.columns == [
        "target", "problem_id", "full_name", "kind", "change_kind", "n", "c", "c_strict", "well_formed", "pass@1",
        "strict_pass@1", "covered", "excess_code", "median_uncovered",
    ]
    assert per.height == 8
    summary = pl.read_csv(out / "summary.csv")
    assert summary.columns == [
        "target", "split", "problems", "samples", "well_formed", "pass@1", "strict_pass@1", "early_exits",
        "covered_problems", "excess_code", "excess_code_se", "mean_median_coverage", "excluded", "isolation",
    ]
    assert summary.filter((pl.col("target") == "other") & (pl.col("split") == "overall"))["pass@1"].item() == 0.0
    markdown = (out / "summary.md").read_text()
    assert "| m | 50.00 | 62.50 | 56.25 | measured; flagged (early exits: 1) |" in markdown
    assert "| other | 0.00 | 0.00 | 0.00 | measured |" in markdown
    assert "| m | 50.00 | 50.00 | 62.50 | 50.00 | 56.25 | 50.00 | 1 (flagged) |" in markdown
    assert "| m | 1_p | descriptive | 0 |" in markdown  # the early exit, listed
    assert "| GPT-4 | 51.95 | 63.33 | 57.64 | quoted from the paper, not measured |" in markdown
    assert "| SelfCodeAlign-CQ-7B | – | – | 39.00 | quoted from the paper, not measured |" in markdown
    assert (out / "pass_at_1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- isolation


def test_the_isolation_in_force_is_in_the_summary_and_its_tables(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [execution(1, "lazy", "pass", target="a")])
    write_jsonl(tmp_path / "b.jsonl", [execution(1, "lazy", "pass", target="b", isolation=UNISOLATED)])
    scores = run_score([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], PROBLEMS, tmp_path / "out", [1])
    by_target = dict(scores.summary.filter(pl.col("split") == "overall").select("target", "isolation").rows())
    assert by_target == {"a": ISOLATED, "b": UNISOLATED}
    markdown = (tmp_path / "out" / "summary.md").read_text()
    assert f"Programs ran in the sandbox with: a: {ISOLATED}; b: {UNISOLATED}." in markdown
    # Every table of the summary carries the warning when a target ran without isolation.
    warning = "**Warning: the programs of b ran WITHOUT isolation (`sandbox: none`)"
    assert markdown.count(warning) == 3
    write_jsonl(tmp_path / "b.jsonl", [execution(1, "lazy", "pass", target="b")])
    run_score([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], PROBLEMS, tmp_path / "out", [1])
    assert "WITHOUT isolation" not in (tmp_path / "out" / "summary.md").read_text()
