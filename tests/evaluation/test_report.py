"""The evaluation report across benchmarks, and a plug-in benchmark's summary.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from matplotlib.patches import Rectangle

from editforge.evaluation.benchmarks.registry import benchmark
from editforge.evaluation.report import (
    QUOTED_ROW,
    demote_headings,
    merge_frames,
    pass_at_1_figure,
    plugin_summary_markdown,
    write_evaluation_report,
)
from editforge.evaluation.scoring import Exclusion, Scores
from editforge.evaluation.sources import BenchmarkError

PNG = b"\x89PNG\r\n\x1a\n"
ISOLATED = "userns(user,mount,pid,net,ipc,uts) timeout=60s memory=4096MB"
UNISOLATED = "none (NOT isolated) timeout=60s memory=4096MB"


def summary_row(target: str, split: str, pass_1: float, **more: Any) -> dict[str, Any]:
    row = {
        "target": target, "split": split, "problems": 3, "samples": 6, "well_formed": 5, "pass@1": pass_1,
        "strict_pass@1": pass_1, "early_exits": 0, "covered_problems": 0, "excess_code": None,
        "excess_code_se": None, "mean_median_coverage": None, "excluded": None, "isolation": ISOLATED,
    }
    return row | more


def summary_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, infer_schema_length=None)


HEF_SUMMARY = summary_frame([
    summary_row("base", "tests", 40.0),
    summary_row("base", "docs", 20.0),
    summary_row("base", "overall", 30.0, problems=6, samples=12, well_formed=11),
])
AIDER_SUMMARY = summary_frame([
    summary_row("base", "instructions", 100 / 3, pass_rate_2=None),
    summary_row("base", "overall", 100 / 3, pass_rate_2=200 / 3, early_exits=1, **{"strict_pass@1": 0.0}),
])


def per_problem(ids: list[Any], kind: str) -> pl.DataFrame:
    return pl.DataFrame({
        "target": ["base"] * len(ids), "problem_id": ids, "full_name": [str(i) for i in ids],
        "kind": [kind] * len(ids), "n": [2] * len(ids), "c": [1] * len(ids), "pass@1": [50.0] * len(ids),
    })


def folder(path: Path, summary: pl.DataFrame, problems: pl.DataFrame, markdown: str) -> Path:
    path.mkdir(parents=True)
    summary.write_csv(path / "summary.csv")
    problems.write_csv(path / "per_problem.csv")
    (path / "summary.md").write_text(markdown)
    return path


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    # HumanEvalFix's ids are written as numbers here, so that the merge must make them text.
    hef = folder(tmp_path / "humanevalfix", HEF_SUMMARY, per_problem([0, 1, 2], "tests"),
                 "# HumanEvalFix (Python) pass@1 (%)\n\n| a |\n|---|\n\n## Official and strict\n\ntext\n")
    aider = folder(tmp_path / "aider_exercism", AIDER_SUMMARY, per_problem(["ledger", "markdown"], "instructions"),
                   "# Aider pass@1 (%)\n\n```\n# not a heading\n```\n")
    return {"humanevalfix": hef, "aider_exercism": aider}


def test_the_merged_summary_has_the_benchmark_first_every_column_and_the_rows_in_order(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    write_evaluation_report(folders, tmp_path / "report")
    merged = pl.read_csv(tmp_path / "report/summary.csv", infer_schema_length=None)
    assert merged.columns == ["benchmark", *HEF_SUMMARY.columns, "pass_rate_2"]
    assert merged["benchmark"].to_list() == ["humanevalfix"] * 3 + ["aider_exercism"] * 2
    assert merged["split"].to_list() == ["tests", "docs", "overall", "instructions", "overall"]
    # A column one benchmark lacks is empty in its rows; the other's values stay numbers.
    assert merged["pass_rate_2"].to_list() == [None, None, None, None, pytest.approx(200 / 3)]
    assert merged["early_exits"].to_list() == [0, 0, 0, 0, 1]


def test_the_merged_per_problem_table_holds_problem_ids_as_text(folders: dict[str, Path], tmp_path: Path) -> None:
    write_evaluation_report(folders, tmp_path / "report")
    merged = pl.read_csv(tmp_path / "report/per_problem.csv", schema_overrides={"problem_id": pl.String})
    assert merged.columns[:3] == ["benchmark", "target", "problem_id"]
    assert merged["problem_id"].to_list() == ["0", "1", "2", "ledger", "markdown"]
    assert merged["benchmark"].to_list() == ["humanevalfix"] * 3 + ["aider_exercism"] * 2


def test_merge_frames_takes_the_other_benchmarks_type_for_an_empty_column() -> None:
    empty = pl.DataFrame({"target": ["a"], "excess_code": [None]}).with_columns(pl.lit(None).alias("excess_code"))
    full = pl.DataFrame({"target": ["b"], "excess_code": [1.5], "extra": ["x"]})
    merged = merge_frames({"one": empty, "two": full})
    assert merged.columns == ["benchmark", "target", "excess_code", "extra"]
    assert merged.schema["excess_code"] == pl.Float64
    assert merged.rows() == [("one", "a", None, None), ("two", "b", 1.5, "x")]


def test_the_summary_has_a_section_per_benchmark_with_its_headings_one_level_down(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    write_evaluation_report(folders, tmp_path / "report")
    lines = (tmp_path / "report/summary.md").read_text().splitlines()
    assert lines[0] == "# Evaluation"
    assert lines[2] == "Benchmarks: HumanEvalFix (Python); Aider code editing (Exercism Python, 2023 set)."
    headings = [line for line in lines if line.startswith("#")]
    assert headings == [
        "# Evaluation", "## HumanEvalFix (Python) pass@1 (%)", "### Official and strict", "## Aider pass@1 (%)",
        "# not a heading",  # inside a code fence
    ]


def test_demote_headings_leaves_code_and_the_deepest_level_alone() -> None:
    text = "# A\n###### six\n~~~\n## code\n~~~\n#tag\n"
    assert demote_headings(text) == "## A\n###### six\n~~~\n## code\n~~~\n#tag\n"


def test_the_chart_has_a_panel_per_benchmark_with_its_quoted_rows_hatched(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    write_evaluation_report(folders, tmp_path / "report")
    assert (tmp_path / "report/pass_at_1.png").read_bytes()[:8] == PNG
    hef, aider = benchmark("humanevalfix"), benchmark("aider_exercism")
    fig = pass_at_1_figure([(hef, HEF_SUMMARY), (aider, AIDER_SUMMARY)])
    top, bottom = fig.axes[:2]
    assert top.get_title().startswith("HumanEvalFix (Python) pass@1") and len(fig.axes) == 2
    bars = [patch for patch in top.patches if isinstance(patch, Rectangle)]
    measured = [bar.get_height() for bar in bars if not bar.get_hatch()]
    quoted = [bar.get_height() for bar in bars if bar.get_hatch()]
    assert measured == [40.0, 20.0, 30.0]  # tests, docs, overall
    assert quoted == [row.scores["overall"] for row in hef.quoted]  # NextCoder's one number each
    labels = [label.get_text() for label in top.get_xticklabels()]
    assert labels == ["base", *(f"{row.model} (quoted)" for row in hef.quoted)]
    aider_quoted = [bar.get_height() for bar in bottom.patches if isinstance(bar, Rectangle) and bar.get_hatch()]
    assert aider_quoted == [aider.quoted[0].scores["instructions"]] * 2  # its one kind, and so overall
    assert QUOTED_ROW in [text.get_text() for text in bottom.get_legend().get_texts()]


def test_the_canitedit_panel_shows_its_kinds_and_the_papers_rows_only_where_they_have_numbers() -> None:
    canitedit = benchmark("canitedit")
    summary = summary_frame([
        summary_row("base", "lazy", 10.0),
        summary_row("base", "descriptive", 30.0),
        summary_row("base", "overall", 20.0),
        summary_row("base", "adaptive", 90.0),  # a change kind: not a bar
    ])
    (ax,) = pass_at_1_figure([(canitedit, summary)]).axes
    bars = [patch for patch in ax.patches if isinstance(patch, Rectangle)]
    assert [bar.get_height() for bar in bars if not bar.get_hatch()] == [10.0, 30.0, 20.0]
    expected = [score for row in canitedit.quoted for split in ("lazy", "descriptive", "overall")
                if (score := row.scores.get(split)) is not None]
    assert [bar.get_height() for bar in bars if bar.get_hatch()] == expected
    assert len(expected) < 3 * len(canitedit.quoted)  # a quoted row without every split has fewer bars


def test_a_missing_file_of_a_folder_is_named(folders: dict[str, Path], tmp_path: Path) -> None:
    (folders["aider_exercism"] / "per_problem.csv").unlink()
    missing = folders["aider_exercism"] / "per_problem.csv"
    with pytest.raises(FileNotFoundError, match=f"{missing}: missing; .*benchmark aider_exercism"):
        write_evaluation_report(folders, tmp_path / "report")
    assert not (tmp_path / "report").exists()


def test_an_unknown_benchmark_is_refused(folders: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="unknown benchmark 'other'"):
        write_evaluation_report({"other": folders["humanevalfix"]}, tmp_path / "report")


# ---------------------------------------------------------------- a plug-in's summary.md


def scores(summary: pl.DataFrame, ids: list[str], kind: str, excluded: tuple[Exclusion, ...] = (),
           early: list[dict[str, Any]] | None = None) -> Scores:
    early_exits = pl.DataFrame(
        early or [], schema={"target": pl.String, "problem_id": pl.String, "full_name": pl.String, "kind": pl.String,
                             "sample_index": pl.Int64},
    )
    return Scores(per_problem=per_problem(ids, kind), summary=summary, harness=pl.DataFrame(),
                  early_exits=early_exits, excluded=excluded)


def test_an_aider_summary_has_measured_and_quoted_rows_the_second_try_and_the_unchanged_stubs() -> None:
    aider = benchmark("aider_exercism")
    early = [{"target": "base", "problem_id": "ledger", "full_name": "ledger", "kind": "instructions",
              "sample_index": 1}]
    markdown = plugin_summary_markdown(aider, scores(AIDER_SUMMARY, ["ledger", "markdown", "bob"], "instructions",
                                                     early=early), [1], [
        {"problem_id": "ledger", "kind": "instructions"},
        {"problem_id": "markdown", "kind": "instructions"},
        {"problem_id": "zipper", "kind": "instructions"},  # not measured here: not counted
    ])
    lines = markdown.splitlines()
    assert lines[0] == "# Aider code editing (Exercism Python, 2023 set) pass@1 (%)"
    assert "| model | instructions | overall | pass_rate_2 | well-formed answers | source |" in lines
    assert "| base | 33.33 | 33.33 | 66.67 | 5/6 | measured; flagged (early exits: 1) |" in lines
    quoted = aider.quoted[0]
    first_try = f"{quoted.scores['instructions']:.2f}"  # one kind: its score is the overall one too
    assert f"| {quoted.model} | {first_try} | {first_try} | – | – | {QUOTED_ROW} |" in lines
    assert f"Quoted, not measured ({quoted.model}): from {quoted.source}. Caveat: {quoted.caveat}." in lines
    assert ("The unchanged input of ledger and markdown already pass their tests (reference check), "
            "so a model that changes nothing scores 2/3.") in lines
    assert any(line.startswith("`pass_rate_2`: pass@1 (%) after a second try") for line in lines)
    assert "No problem was excluded before generation." in lines
    assert f"Programs ran in the sandbox with: base: {ISOLATED}." in lines
    assert "## Official and strict pass@1 (%)" in lines
    assert "| base | 33.33 | 33.33 | 33.33 | 0.00 | 1 (flagged) |" in lines
    assert "| base | ledger | instructions | 1 |" in lines  # the early exit, by sample
    header = "| target | split | problems | samples | well_formed | pass@1 | strict_pass@1 | early_exits "
    assert f"{header}| pass_rate_2 |" in lines


def test_a_humanevalfix_summary_names_kinds_exclusions_and_an_unchanged_input_that_passes() -> None:
    hef = benchmark("humanevalfix")
    summary = HEF_SUMMARY.with_columns(
        pl.lit(UNISOLATED).alias("isolation"), pl.lit(50.0).alias("pass@10"), pl.lit(45.0).alias("strict_pass@10")
    )
    excluded = (Exclusion(problem_id=7, full_name="Python/7", reason="its reference program fails"),)
    markdown = plugin_summary_markdown(hef, scores(summary, ["Python/0", "Python/1"], "docs", excluded), [1, 10],
                                       [{"problem_id": "Python/1", "kind": "docs"}])
    lines = markdown.splitlines()
    assert lines[0] == "# HumanEvalFix (Python) pass@1 (%)"
    assert lines[2].startswith("**Warning: the programs of base ran WITHOUT isolation")
    assert "| model | tests | docs | overall | well-formed answers | source |" in lines  # no second try
    assert "| base | 40.00 | 20.00 | 30.00 | 11/12 | measured |" in lines
    assert sum(QUOTED_ROW in line for line in lines) == len(hef.quoted)
    assert "pass_rate_2" not in markdown and "No sample passes officially but not strictly." in lines
    assert ("The unchanged input of Python/1 (docs) already passes its tests (reference check), "
            "so a model that changes nothing scores 1/6.") in lines
    assert any(line.startswith("Excluded before generation") and "Python/7" in line for line in lines)
    # One sentence for the source all its quoted rows share.
    assert sum(line.startswith("Quoted, not measured (") for line in lines) == 1
    header = "| target | split | problems | samples | well_formed | pass@1 | pass@10 | strict_pass@1 | strict_pass@10 "
    assert f"{header}| early_exits |" in lines
    assert "| base | docs | 3 | 6 | 5 | 20.00 | 50.00 | 20.00 | 45.00 | 0 |" in lines


def test_no_unchanged_input_that_passes_is_said_with_the_score_of_changing_nothing() -> None:
    hef = benchmark("humanevalfix")
    markdown = plugin_summary_markdown(hef, scores(HEF_SUMMARY, ["Python/0"], "tests"), [1], [])
    assert ("No measured problem's unchanged input passes its tests (reference check), "
            "so a model that changes nothing scores 0/6.") in markdown.splitlines()
