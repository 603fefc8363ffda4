"""The report's histograms and HTML tables (rules report_figures and report_tables)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle

from editforge.evaluation.benchmarks.registry import benchmark
from editforge.evaluation.report import QUOTED_ROW, merge_frames
from editforge.evaluation.summary import PAPER_ROWS
from editforge.funnel import stage_counts
from editforge.records import write_jsonl
from editforge.reporting.figures import (
    MAX_NAMED_TOPICS,
    diff_size_figure,
    diff_sizes,
    integer_bins,
    topic_figure,
    write_figures,
)
from editforge.reporting.tables import (
    QUOTED,
    html_table,
    pass_at_1_table,
    plugin_table,
    stage_frame,
    write_tables,
)

PNG = b"\x89PNG\r\n\x1a\n"


def bar_heights(ax: Axes) -> list[float]:
    return [patch.get_height() for patch in ax.patches if isinstance(patch, Rectangle)]


def triplet(pre: str, post: str, status: str = "ok") -> dict[str, str]:
    return {"pre_code": pre, "post_code": post, "status": status, "model": "m"}


def topic(number: int, kept: int, selected: int, words: list[str]) -> dict[str, object]:
    return {"topic": number, "kept": kept, "selected": selected, "top_words": words}


# ---------------------------------------------------------------- diff sizes


def test_diff_sizes_count_changed_lines_of_kept_triplets_only() -> None:
    pre = "a = 1\nb = 2\nc = 3\n"
    records = [
        triplet(pre, "a = 1\nb = 2\nc = 3\nd = 4\ne = 5\n"),  # two added
        triplet(pre, "a = 1\nb = 20\nc = 3\n"),  # one modified
        triplet(pre, "a = 1\n"),  # two removed
        triplet(pre, "x = 0\n" * 9, status="dropped"),
    ]
    assert diff_sizes(records) == [2, 1, 2]


def test_integer_bins_give_one_bin_per_whole_number_in_range() -> None:
    assert integer_bins([1, 2, 2, 5], max_bins=40) == [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]
    assert integer_bins([7], max_bins=40) == [6.5, 7.5]


def test_integer_bins_widen_to_stay_under_the_limit_and_cover_the_range() -> None:
    edges = integer_bins(list(range(1, 101)), max_bins=30)
    widths = {edges[i + 1] - edges[i] for i in range(len(edges) - 1)}
    assert widths == {4} and len(edges) - 1 == 25
    assert edges[0] == 0.5 and edges[-1] == 100.5


def test_integer_bins_refuse_empty_input() -> None:
    with pytest.raises(ValueError, match="needs values"):
        integer_bins([], max_bins=10)


def test_diff_size_histogram_has_a_bar_per_line_count_holding_its_triplets() -> None:
    fig = diff_size_figure([1, 2, 2, 5], max_bins=40)
    (ax,) = fig.axes
    assert bar_heights(ax) == [1, 2, 0, 0, 1]
    assert "4 kept triplets" in ax.get_title() and "median 2 lines" in ax.get_title()


def test_diff_size_histogram_of_nothing_says_so(tmp_path: Path) -> None:
    fig = diff_size_figure([], max_bins=40)
    (ax,) = fig.axes
    assert bar_heights(ax) == [] and not ax.axison
    assert [text.get_text() for text in ax.texts] == ["No kept triplets: no diff sizes to show"]
    fig.savefig(tmp_path / "empty.png")
    assert (tmp_path / "empty.png").read_bytes()[:8] == PNG


# ---------------------------------------------------------------- topics


def test_topic_histogram_has_a_panel_per_style_with_sizes_before_and_after_balancing() -> None:
    topics = {
        "lazy": {"method": "lda", "selected": 6, "topics": [topic(0, 8, 4, ["sort", "list"]), topic(1, 2, 2, [])]},
        "descriptive": {"method": "lda", "selected": 3, "topics": [topic(3, 5, 3, ["parse", "json", "file"])]},
    }
    fig = topic_figure(topics)
    lazy, descriptive = fig.axes
    assert bar_heights(lazy) == [8, 2, 4, 2]  # kept, then selected
    assert bar_heights(descriptive) == [5, 3]
    assert [label.get_text() for label in lazy.get_xticklabels()] == ["0: sort list", "1"]
    assert lazy.get_title() == "lazy: 6 samples over 2 topics"


def test_topic_histogram_stops_naming_bars_when_there_are_many_topics() -> None:
    many = [topic(i, 10, 1, ["word"]) for i in range(MAX_NAMED_TOPICS + 1)]
    fig = topic_figure({"lazy": {"method": "hdp", "selected": len(many), "topics": many}})
    (ax,) = fig.axes
    assert len(bar_heights(ax)) == 2 * len(many) and list(ax.get_xticks()) == []


def test_topic_histogram_without_topics_says_so() -> None:
    (ax,) = topic_figure({"lazy": {"method": "none", "topics": []}}).axes
    assert [text.get_text() for text in ax.texts] == ["No topics recorded: no topic sizes to show"]


def test_write_figures_reads_the_stage_files(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "triplets.jsonl", [triplet("a = 1\n", "a = 2\n"), triplet("a", "a", status="dropped")])
    (tmp_path / "topics.json").write_text(json.dumps({"lazy": {"selected": 1, "topics": [topic(0, 1, 1, ["a"])]}}))
    write_figures(tmp_path / "triplets.jsonl", tmp_path / "topics.json", tmp_path / "d.png", tmp_path / "t.png", 40)
    assert (tmp_path / "d.png").read_bytes()[:8] == PNG and (tmp_path / "t.png").read_bytes()[:8] == PNG


# ---------------------------------------------------------------- tables


SUMMARY = pl.DataFrame({
    "target": ["base", "base", "base", "base", "tuned", "tuned"],
    "split": ["lazy", "descriptive", "overall", "bugfix", "lazy", "overall"],
    "problems": [2, 2, 4, 1, 2, 2],
    "pass@1": [10.0, 30.0, 20.0, 0.0, 50.0, 50.0],
    "strict_pass@1": [10.0, 20.0, 15.0, 0.0, 50.0, 50.0],
    "early_exits": [0, 2, 2, 0, 0, 0],
    "excess_code": [1.5, None, 1.5, None, None, None],
    "excess_code_se": [0.5, None, 0.5, None, None, None],
    "excluded": ["78_x", "78_x", "78_x", None, "78_x", "78_x"],
    "isolation": ["userns(user,mount,pid,net,ipc,uts) memory=4096MB"] * 4 + ["none (NOT isolated) memory=4096MB"] * 2,
})


def test_pass_at_1_table_puts_measured_rows_before_the_papers() -> None:
    table = pass_at_1_table(SUMMARY)
    assert table.columns == [
        "model", "lazy", "descriptive", "overall", "lazy (strict)", "descriptive (strict)", "overall (strict)",
        "ExcessCode", "ExcessCode SE", "source", "check",
    ]
    assert table.height == 2 + len(PAPER_ROWS)
    flag = "flagged: 2 samples pass officially but not strictly"
    assert table.row(0) == ("base", 10.0, 30.0, 20.0, 10.0, 20.0, 15.0, 1.5, 0.5, "measured", flag)
    # The split it lacks stays empty; no early exit, no flag.
    assert table.row(1) == ("tuned", 50.0, None, 50.0, 50.0, None, 50.0, None, None, "measured", None)
    assert table.row(2) == (*PAPER_ROWS[0], None, None, None, None, None, QUOTED, None)


def test_stage_frame_has_a_column_per_model_and_the_drops_by_reason() -> None:
    stages = stage_counts({"a": {"kept": 3, "no_change": 1}, "b": {"kept": 1, "truncated": 2}})
    frame = stage_frame(stages)
    assert frame.columns == ["stage", "remaining", "a", "b", "dropped (by reason)"]
    diff = frame.filter(pl.col("stage") == "diff").row(0, named=True)
    assert diff == {"stage": "diff", "remaining": 4, "a": 3, "b": 1, "dropped (by reason)": "no_change: 1"}
    assert frame.filter(pl.col("stage") == "valid")["dropped (by reason)"].item() == "-"


def test_html_table_is_a_page_with_escaped_cells_formatted_numbers_and_grey_paper_rows() -> None:
    frame = pl.DataFrame(
        {"model": ["<mine>", "theirs"], "overall": [12.345, None], "source": ["measured", QUOTED]}
    )
    page = html_table(frame, "pass@1 & more", note="a <note>")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<title>pass@1 &amp; more</title>" in page and "a &lt;note&gt;" in page
    assert "<td>&lt;mine&gt;</td>" in page and "<mine>" not in page
    assert '<td class="number">12.35</td>' in page and '<td class="number">–</td>' in page
    assert page.count('<tr class="quoted">') == 1


AIDER = pl.DataFrame({
    "target": ["base", "base"],
    "split": ["instructions", "overall"],
    "problems": [3, 3],
    "samples": [6, 6],
    "well_formed": [5, 5],
    "pass@1": [50.0, 50.0],
    "strict_pass@1": [50.0, 40.0],
    "early_exits": [0, 1],
    "excluded": [None, None],
    "isolation": ["userns(user,mount,pid,net,ipc,uts) memory=4096MB"] * 2,
    "pass_rate_2": [None, 75.0],
})


def test_plugin_table_puts_measured_rows_before_the_benchmarks_quoted_ones() -> None:
    aider = benchmark("aider_exercism")
    table = plugin_table(AIDER, aider)
    assert table.columns == [
        "model", "instructions", "overall", "instructions (strict)", "overall (strict)", "pass_rate_2",
        "well-formed answers", "source", "check",
    ]
    flag = "flagged: 1 samples pass officially but not strictly"
    assert table.row(0) == ("base", 50.0, 50.0, 50.0, 40.0, 75.0, "5/6", "measured", flag)
    first_try = aider.quoted[0].scores["instructions"]  # one kind: its score is the overall one too
    assert table.row(1) == (aider.quoted[0].model, first_try, first_try, None, None, None, None, QUOTED_ROW, None)
    hef = plugin_table(AIDER.drop("pass_rate_2"), benchmark("humanevalfix"))
    assert "pass_rate_2" not in hef.columns and hef.height == 1 + len(benchmark("humanevalfix").quoted)
    assert hef.row(0)[:4] == ("base", None, None, 50.0)  # no tests or docs split measured in this frame


def test_write_tables_reads_summary_csv_and_funnel_json(tmp_path: Path) -> None:
    merge_frames({"canitedit": SUMMARY}).write_csv(tmp_path / "summary.csv")
    stages = stage_counts({"a": {"kept": 2, "no_change": 1}})
    (tmp_path / "funnel.json").write_text(json.dumps({"stages": stages}))
    write_tables(tmp_path / "summary.csv", tmp_path / "funnel.json", tmp_path / "p.html", tmp_path / "f.html")
    pass_at_1 = (tmp_path / "p.html").read_text()
    assert "<td>tuned</td>" in pass_at_1 and pass_at_1.count('<tr class="quoted">') == len(PAPER_ROWS)
    assert "Excluded before generation (the reference program fails in this environment): 78_x." in pass_at_1
    assert "Warning: the programs of tuned ran WITHOUT isolation (sandbox: none)" in pass_at_1
    assert "base: userns(user,mount,pid,net,ipc,uts) memory=4096MB; tuned: none (NOT isolated)" in pass_at_1
    merge_frames({"canitedit": SUMMARY.with_columns(excluded=None)}).write_csv(tmp_path / "summary.csv")
    write_tables(tmp_path / "summary.csv", tmp_path / "funnel.json", tmp_path / "p.html", tmp_path / "f.html")
    assert "No problem was excluded before generation." in (tmp_path / "p.html").read_text()
    funnel = (tmp_path / "f.html").read_text()
    assert "<td>deduplicated</td>" in funnel and "no_change: 1" in funnel


def test_the_pass_at_1_page_has_a_table_per_benchmark_each_with_its_quoted_rows(tmp_path: Path) -> None:
    merge_frames({"canitedit": SUMMARY, "aider_exercism": AIDER}).write_csv(tmp_path / "summary.csv")
    (tmp_path / "funnel.json").write_text(json.dumps({"stages": stage_counts({"a": {"kept": 1}})}))
    write_tables(tmp_path / "summary.csv", tmp_path / "funnel.json", tmp_path / "p.html", tmp_path / "f.html")
    page = (tmp_path / "p.html").read_text()
    aider = benchmark("aider_exercism")
    titles = ["<h3>CanItEdit pass@1 (%)</h3>", f"<h3>{aider.title} pass@1 (%)</h3>"]
    assert all(title in page for title in titles) and page.index(titles[0]) < page.index(titles[1])
    # CanItEdit's table is the one it had alone; the other benchmark's rows are not in it.
    alone = html_table(pass_at_1_table(SUMMARY), "t")
    canitedit_table = alone[alone.index("<table>"):alone.index("</table>") + len("</table>")]
    assert canitedit_table in page
    assert page.count('<tr class="quoted">') == len(PAPER_ROWS) + len(aider.quoted)
    assert f"<td>{QUOTED_ROW}</td>" in page and "<td>5/6</td>" in page
    assert aider.quoted[0].source in page and "second try with the first 50 lines of the test output" in page


def test_a_summary_csv_without_benchmarks_is_refused(tmp_path: Path) -> None:
    SUMMARY.write_csv(tmp_path / "summary.csv")
    (tmp_path / "funnel.json").write_text(json.dumps({"stages": []}))
    with pytest.raises(ValueError, match="no benchmark column"):
        write_tables(tmp_path / "summary.csv", tmp_path / "funnel.json", tmp_path / "p.html", tmp_path / "f.html")
