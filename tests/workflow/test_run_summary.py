"""The screen a finished run prints."""

from __future__ import annotations

import json
from pathlib import Path

from editforge.workflow.run_summary import end_of_run

SUMMARY = """# CanItEdit pass@1 (%)

| model | lazy | descriptive | overall | source |
|---|---|---|---|---|
| mine | 10.00 | 20.00 | 15.00 | measured |
| GPT-4 | 51.95 | 63.33 | 57.64 | quoted from the paper, not measured |

**Warning: the programs of mine ran WITHOUT isolation (`sandbox: none`): a program could have read the tests.**

## Official and strict pass@1 (%)

| target | lazy |
|---|---|
| mine | 10.00 |
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
    assert "| target | lazy |" not in text  # only the first table
    assert any(line.startswith("Warning: the programs of mine ran WITHOUT isolation") for line in lines)
    assert "Triplets: synthesized 10 -> parsed 7" in lines and "Training samples: 12" in lines
    assert "Failed calls: org/m 3" in lines
    assert f"Tables: {tmp_path / 'summary.md'} (pass@k, all splits, the paper's rows)" in lines
    assert len(lines) < 25


def test_a_run_of_part_of_the_workflow_prints_only_what_it_made(tmp_path: Path) -> None:
    text = end_of_run(tmp_path / "missing", tmp_path / "dataset")
    assert "pass@1" not in text and "Triplets" not in text and "Tables" not in text and "Dataset" not in text
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset/README.md").write_text("card")
    text = end_of_run(tmp_path / "missing", tmp_path / "dataset")
    assert f"Dataset: {tmp_path / 'dataset'}/ (README.md is its card)" in text
