"""The screen a finished run prints."""

from __future__ import annotations

import json
from pathlib import Path

from editforge.workflow.run_summary import end_of_run

SUMMARY = """# Evaluation

Benchmarks: CanItEdit; Aider code editing (Exercism Python, 2023 set).

## CanItEdit pass@1 (%)

| model | lazy | descriptive | overall | source |
|---|---|---|---|---|
| mine | 10.00 | 20.00 | 15.00 | measured |
| other | 30.00 | 20.00 | 25.00 | measured; flagged (early exits: 2) |
| GPT-4 | 51.95 | 63.33 | 57.64 | quoted from the paper, not measured |

**Warning: the programs of mine ran WITHOUT isolation (`sandbox: none`): a program could have read the tests.**

### Official and strict pass@1 (%)

| target | lazy |
|---|---|
| mine | 10.00 |

## Aider code editing (Exercism Python, 2023 set) pass@1 (%)

**Warning: the programs of mine ran WITHOUT isolation (`sandbox: none`): a program could have read the tests.**

| model | instructions | overall | well-formed answers | source |
|---|---|---|---|---|
| mine | 40.00 | 40.00 | 5/6 | measured |
| Qwen2.5-Coder-7B-Instruct | 51.90 | 51.90 | – | quoted, not measured |

### Official and strict pass@1 (%)

| target | instructions |
|---|---|
| mine | 40.00 |
"""


def test_the_end_screen_holds_measured_rows_stages_errors_and_where_things_are(tmp_path: Path) -> None:
    (tmp_path / "summary.md").write_text(SUMMARY)
    funnel = {
        "stages": [{"stage": "synthesized", "remaining": 10}, {"stage": "parsed", "remaining": 7}],
        "synthesis": {"org/m": {"usage": {"errors": 3}}, "other": {"usage": {"errors": 0}}},
        "dataset": {"total": 12, "per_style": {"lazy": 6}},
    }
    (tmp_path / "funnel.json").write_text(json.dumps(funnel))
    text = end_of_run(tmp_path, tmp_path / "dataset")
    lines = text.splitlines()
    assert "| mine | 10.00 | 20.00 | 15.00 | measured |" in lines and "GPT-4" not in text
    assert "| other | 30.00 | 20.00 | 25.00 | measured; flagged (early exits: 2) |" in lines
    assert "| target | lazy |" not in text and "| target | instructions |" not in text  # only the first tables
    assert [line.startswith("Warning: the programs of mine") for line in lines].count(True) == 1
    assert "Triplets: synthesized 10 -> parsed 7" in lines and "Training samples: 12" in lines
    assert "Failed calls: org/m 3" in lines
    assert f"Tables: {tmp_path / 'summary.md'} (pass@k per benchmark, all splits, the quoted rows)" in lines
    assert len(lines) < 30


def test_the_end_screen_has_a_section_per_benchmark_with_its_title_and_measured_rows(tmp_path: Path) -> None:
    (tmp_path / "summary.md").write_text(SUMMARY)
    lines = end_of_run(tmp_path, tmp_path / "dataset").splitlines()
    canitedit = lines.index("CanItEdit pass@1 (%), measured:")
    aider = lines.index("Aider code editing (Exercism Python, 2023 set) pass@1 (%), measured:")
    assert canitedit < aider
    assert lines[canitedit + 1:canitedit + 5] == [
        "| model | lazy | descriptive | overall | source |",
        "|---|---|---|---|---|",
        "| mine | 10.00 | 20.00 | 15.00 | measured |",
        "| other | 30.00 | 20.00 | 25.00 | measured; flagged (early exits: 2) |",
    ]
    assert lines[aider + 1:aider + 5] == [
        "| model | instructions | overall | well-formed answers | source |",
        "|---|---|---|---|---|",
        "| mine | 40.00 | 40.00 | 5/6 | measured |",
        "",
    ]
    assert "Qwen2.5-Coder-7B-Instruct" not in "\n".join(lines) and "Evaluation, measured:" not in lines


def test_a_summary_of_one_benchmark_alone_still_gives_its_measured_rows(tmp_path: Path) -> None:
    alone = SUMMARY.split("## Aider")[0].split("## CanItEdit")[1]
    (tmp_path / "summary.md").write_text("# CanItEdit" + alone.replace("### ", "## "))
    lines = end_of_run(tmp_path, tmp_path / "dataset").splitlines()
    assert "CanItEdit pass@1 (%), measured:" in lines and "| mine | 10.00 | 20.00 | 15.00 | measured |" in lines
    assert "Official and strict pass@1 (%), measured:" not in lines


def test_a_run_of_part_of_the_workflow_prints_only_what_it_made(tmp_path: Path) -> None:
    text = end_of_run(tmp_path / "missing", tmp_path / "dataset")
    assert "pass@1" not in text and "Triplets" not in text and "Tables" not in text and "Dataset" not in text
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset/README.md").write_text("card")
    text = end_of_run(tmp_path / "missing", tmp_path / "dataset")
    assert f"Dataset: {tmp_path / 'dataset'}/ (README.md is its card)" in text


def test_the_end_screen_gives_each_experiments_shown_contrasts(tmp_path: Path) -> None:
    grid = tmp_path / "experiments/small"
    grid.mkdir(parents=True)
    header = "student,variant,baseline,benchmark,split,delta,low,high,p_value,p_holm,problems,family"
    (grid / "deltas.csv").write_text(
        f"{header}\n"
        "tiny,lazy_only,paper,canitedit,lazy,0.05,0.01,0.09,0.02,0.04,105,split:canitedit:lazy\n"
        "tiny,lazy_only,paper,canitedit,overall,-0.0125,-0.03,0.005,0.2,0.4,105,shown\n"
    )
    text = end_of_run(tmp_path / "report", tmp_path / "dataset", tmp_path / "experiments")
    assert "Experiment small, paired differences with the baseline (points):" in text
    assert "  lazy_only (tiny, canitedit): -1.2 [-3.0, 0.5], Holm p 0.400" in text
    assert "+5.0" not in text  # a per-kind split is in deltas.csv, not on the screen
    assert f"table: {grid / 'table.md'}" in text
