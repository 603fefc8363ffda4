"""The experiment table: pass@1 per variant with intervals, Δ against the baseline, Holm families, files."""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from editforge.experiments import statistics as stats
from editforge.experiments.forest import forest_figure
from editforge.experiments.table import (
    DELTA_SCHEMA,
    ExperimentTables,
    experiment_tables,
    table_latex,
    write_experiment_tables,
)

PNG = b"\x89PNG\r\n\x1a\n"
N = 10
PROBLEMS = [f"p{i:02d}" for i in range(12)]
FIXES = [f"Python/{i}" for i in range(8)]
STUDENTS = ("qwen", "deepseek")  # qwen's rows come first in the frame
SEEDS = (0, 1)
SAMPLES = {"canitedit": 10, "humanevalfix": 5}
MANIFESTS = {
    "base": {"rows": 1200, "tokens": 345678, "licences": ["MIT", "Apache-2.0"], "sources": ["the_stack"]},
    "better": {"rows": 1500, "tokens": 400000, "licences": ["MIT"], "sources": ["commits_a", "the_stack"]},
    "noisy": {"rows": 900, "tokens": 120000, "licences": [], "sources": ["synthetic"]},
}
RESAMPLES = 2000


def base_c(problem: int, kind: int, seed: int) -> int:
    """The baseline's passes: 1..6 on seed 0, one more on odd problems with seed 1."""
    return 1 + (problem * 3 + kind * 2) % 6 + (problem % 2) * seed


def passes(variant: str, problem: int, kind: int, seed: int) -> int:
    c = base_c(problem, kind, seed)
    if variant == "better":  # better by 2 of 10 samples on every item
        return c + 2
    if variant == "noisy":  # much better on even problems, worse on odd ones: +5 points on average
        return c + (2 if problem % 2 == 0 else -1)
    return c


def frame(
    variants: tuple[str, ...] = ("base", "better", "noisy"), students: tuple[str, ...] = STUDENTS
) -> pl.DataFrame:
    rows: list[dict[str, Any]] = []
    for student in students:
        for variant in variants:
            for seed in SEEDS:
                cell = f"{variant}-{student}-s{seed}"
                common = {"cell": cell, "variant": variant, "student": student, "seed": seed}
                for p, problem in enumerate(PROBLEMS):
                    for k, kind in enumerate(("lazy", "descriptive")):
                        rows.append(
                            common
                            | {
                                "benchmark": "canitedit",
                                "problem": problem,
                                "kind": kind,
                                "n": N,
                                "c": passes(variant, p, k, seed),
                            }
                        )
                for p, problem in enumerate(FIXES):
                    rows.append(
                        common
                        | {
                            "benchmark": "humanevalfix",
                            "problem": problem,
                            "kind": "fix",
                            "n": N,
                            "c": passes(variant, p, 0, seed),
                        }
                    )
    return pl.DataFrame(rows)


def tables_of(data: pl.DataFrame, variants: tuple[str, ...] = ("better", "base", "noisy")) -> ExperimentTables:
    return experiment_tables(
        data,
        MANIFESTS,
        baseline="base",
        variants=variants,
        benchmarks=["canitedit", "humanevalfix"],
        samples=SAMPLES,
        seeds=list(SEEDS),
        resamples=RESAMPLES,
        seed=0,
    )


@pytest.fixture(scope="module")
def tables() -> ExperimentTables:
    return tables_of(frame())


def hand_mean(variant: str, kinds: tuple[int, ...] = (0, 1)) -> float:
    """CanItEdit pass@1 in %: the mean over items of c / n averaged over the seeds."""
    scores = [statistics.mean(passes(variant, p, k, s) / N for s in SEEDS) for p in range(12) for k in kinds]
    return 100 * statistics.mean(scores)


def row_of(tables: ExperimentTables, student: str, variant: str) -> dict[str, Any]:
    return tables.rows.filter((pl.col("student") == student) & (pl.col("variant") == variant)).row(0, named=True)


def test_rows_baseline_first_then_config_order_students_as_they_appear(tables: ExperimentTables) -> None:
    assert tables.rows.select("student", "variant").rows() == [
        ("qwen", "base"),
        ("qwen", "better"),
        ("qwen", "noisy"),
        ("deepseek", "base"),
        ("deepseek", "better"),
        ("deepseek", "noisy"),
    ]
    assert tables.splits == {"canitedit": ("lazy", "descriptive", "overall"), "humanevalfix": ("overall",)}
    assert tables.rows["seeds"].to_list() == [2] * 6


def test_means_equal_the_hand_computed_values(tables: ExperimentTables) -> None:
    for variant in ("base", "better", "noisy"):
        row = row_of(tables, "deepseek", variant)
        assert row["canitedit_overall_mean"] == pytest.approx(hand_mean(variant))
        assert row["canitedit_lazy_mean"] == pytest.approx(hand_mean(variant, (0,)))
        assert row["canitedit_descriptive_mean"] == pytest.approx(hand_mean(variant, (1,)))
        assert row["canitedit_overall_low"] <= row["canitedit_overall_mean"] <= row["canitedit_overall_high"]
        assert (row["rows"], row["tokens"]) == (MANIFESTS[variant]["rows"], MANIFESTS[variant]["tokens"])


def test_delta_is_the_hand_computed_difference_and_a_consistent_gain_excludes_zero(tables: ExperimentTables) -> None:
    better, noisy, base = (row_of(tables, "qwen", v) for v in ("better", "noisy", "base"))
    assert better["canitedit_delta"] == pytest.approx(20.0)
    assert better["canitedit_delta_low"] > 0
    assert better["humanevalfix_delta"] == pytest.approx(20.0)
    assert noisy["canitedit_delta"] == pytest.approx(hand_mean("noisy") - hand_mean("base"))
    assert noisy["canitedit_delta"] == pytest.approx(5.0)
    assert noisy["canitedit_delta_low"] < 0 < noisy["canitedit_delta_high"]  # +1/-1 by problem: not a real gain
    assert base["canitedit_delta"] is None and base["canitedit_p_holm"] is None
    assert better["canitedit_p_holm"] < 0.05


def test_holm_families(tables: ExperimentTables) -> None:
    deltas = tables.deltas
    sizes = dict(deltas.group_by("family").len().iter_rows())
    # shown: 2 variants × 2 students × 2 benchmarks; per kind: HumanEvalFix has one kind, so none of its own
    assert sizes == {"shown": 8, "split:canitedit:lazy": 4, "split:canitedit:descriptive": 4}
    assert (deltas["p_holm"] >= deltas["p_value"]).all()
    for family in sizes:
        members = deltas.filter(pl.col("family") == family)
        assert members["p_holm"].to_list() == pytest.approx(stats.holm(members["p_value"].to_list()))
    shown = deltas.filter(pl.col("family") == "shown")
    # by hand: the two CanItEdit gains have the smallest p (ranks 1-2 of 8), HumanEvalFix's next (ranks 3-4)
    better = shown.filter(pl.col("variant") == "better")
    for row in better.iter_rows(named=True):
        factor = 8 if row["benchmark"] == "canitedit" else 6
        assert row["p_holm"] == pytest.approx(factor * row["p_value"])
    assert set(shown["split"]) == {"overall"}
    # the table's p is the shown family's
    better = row_of(tables, "deepseek", "better")
    p = shown.filter(
        (pl.col("student") == "deepseek") & (pl.col("variant") == "better") & (pl.col("benchmark") == "canitedit")
    )["p_holm"].item()
    assert better["canitedit_p_holm"] == p


def test_deltas_csv_lists_every_contrast_in_proportions(tables: ExperimentTables, tmp_path: Path) -> None:
    write_experiment_tables(tables, tmp_path)
    deltas = pl.read_csv(tmp_path / "deltas.csv")
    assert deltas.columns == list(DELTA_SCHEMA)
    splits = {(r["benchmark"], r["split"]) for r in deltas.iter_rows(named=True)}
    assert splits == {
        ("canitedit", "lazy"),
        ("canitedit", "descriptive"),
        ("canitedit", "overall"),
        ("humanevalfix", "overall"),
    }
    assert deltas.height == 2 * 2 * 4
    assert set(deltas["baseline"]) == {"base"}
    better = deltas.filter((pl.col("variant") == "better") & (pl.col("split") == "lazy"))
    assert better["delta"].to_list() == pytest.approx([0.2, 0.2])
    assert better["problems"].to_list() == [12, 12]


def test_seed_sd_matches_a_hand_computation(tables: ExperimentTables) -> None:
    per_seed = [statistics.mean(passes("base", p, k, s) / N for p in range(12) for k in (0, 1)) for s in SEEDS]
    assert row_of(tables, "qwen", "base")["seed_sd"] == pytest.approx(100 * statistics.stdev(per_seed))
    assert row_of(tables, "qwen", "base")["seed_sd"] > 0


def test_one_seed_shows_a_dash(tmp_path: Path) -> None:
    data = frame(students=("qwen",)).filter(pl.col("seed") == 0)
    tables = tables_of(data)
    assert tables.rows["seed_sd"].to_list() == [None, None, None]
    write_experiment_tables(tables, tmp_path)
    line = next(line for line in (tmp_path / "table.md").read_text().splitlines() if line.startswith("| qwen | base"))
    assert line.endswith("| — | — | — | 1,200 | 345,678 |")


def test_table_md_cells_and_footnotes(tables: ExperimentTables, tmp_path: Path) -> None:
    write_experiment_tables(tables, tmp_path)
    markdown = (tmp_path / "table.md").read_text(encoding="utf-8")
    lines = markdown.splitlines()
    header = next(line for line in lines if line.startswith("| student"))
    assert header == (
        "| student | variant | canitedit lazy | canitedit descriptive | canitedit overall | canitedit Δ "
        "| canitedit p | humanevalfix overall | humanevalfix Δ | humanevalfix p | seed sd | rows | tokens |"
    )
    rows = [line for line in lines if line.startswith(("| qwen", "| deepseek"))]
    assert len(rows) == 6
    base = rows[0].split(" | ")
    assert (
        base[4] == f"{hand_mean('base'):.1f} [{row_of(tables, 'qwen', 'base')['canitedit_overall_low']:.1f}, "
        f"{row_of(tables, 'qwen', 'base')['canitedit_overall_high']:.1f}]"
    )
    assert base[5:7] == ["—", "—"]
    assert " | +20.0 [20.0, 20.0] | p" in rows[1]
    assert "Samples per item: canitedit 10; humanevalfix 5." in markdown
    assert "Training seeds: 0, 1;" in markdown
    assert f"95% cluster bootstrap over problems, {RESAMPLES} resamples" in markdown
    assert "Holm-adjusted over the 8 contrasts shown" in markdown
    mde = stats.minimum_detectable_difference(items=24, samples=10, seeds=2)
    assert f"Minimum detectable difference of this design: {100 * mde:.1f} points" in markdown
    assert "Licences of base (sources: the_stack): MIT, Apache-2.0." in lines
    assert "Licences of better (sources: commits_a, the_stack): MIT." in lines
    assert "Licences of noisy (sources: synthetic): none stated." in lines


def test_table_csv_has_a_column_per_number(tables: ExperimentTables, tmp_path: Path) -> None:
    write_experiment_tables(tables, tmp_path)
    table = pl.read_csv(tmp_path / "table.csv")
    for column in (
        "student",
        "variant",
        "seeds",
        "canitedit_overall_mean",
        "canitedit_overall_low",
        "canitedit_overall_high",
        "canitedit_lazy_mean",
        "canitedit_delta",
        "canitedit_delta_low",
        "canitedit_delta_high",
        "canitedit_p_holm",
        "humanevalfix_overall_mean",
        "humanevalfix_delta",
        "seed_sd",
        "rows",
        "tokens",
    ):
        assert column in table.columns
    assert "humanevalfix_fix_mean" not in table.columns  # one kind: overall alone
    assert table["canitedit_overall_mean"].to_list() == pytest.approx(tables.rows["canitedit_overall_mean"].to_list())


def _unescaped(text: str, char: str) -> list[str]:
    return re.findall(r"(?<!\\)" + re.escape(char), text)


def test_table_tex_is_well_formed(tables: ExperimentTables) -> None:
    tex = table_latex(tables)
    unescaped = re.sub(r"\\[{}]", "", tex)
    assert unescaped.count("{") == unescaped.count("}")
    depth = 0
    for char in unescaped:
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1
    assert (
        tex.index(r"\begin{tabular}") < tex.index(r"\toprule") < tex.index(r"\bottomrule") < tex.index(r"\end{tabular}")
    )
    body = tex[tex.index(r"\begin{tabular}") : tex.index(r"\end{tabular}")]
    assert len([line for line in body.splitlines() if line.endswith(r"\\")]) == 1 + 6  # the header and the rows
    assert all(line.count("&") - line.count(r"\&") == 12 for line in body.splitlines() if line.endswith(r"\\"))
    columns = re.search(r"\\begin\{tabular\}\{(\w+)\}", tex)
    assert columns is not None and len(columns.group(1)) == 13
    for char in ("_", "%", "&", "#"):
        assert not [m for m in _unescaped(tex.replace(" & ", " "), char)], char
    assert "Δ" not in tex and "—" not in tex
    assert r"the\_stack" in tex and r"95\%" in tex


def test_forest_png_and_panels(tables: ExperimentTables, tmp_path: Path) -> None:
    write_experiment_tables(tables, tmp_path)
    assert (tmp_path / "forest.png").read_bytes().startswith(PNG)
    figure = forest_figure(tables.deltas, list(tables.splits), "base")
    axes = figure.get_axes()
    assert [ax.get_title() for ax in axes] == [
        "canitedit: variant minus baseline",
        "humanevalfix: variant minus baseline",
    ]
    assert all(len(ax.lines) == 4 + 1 for ax in axes)  # a dot per contrast and the line at 0
    assert "points" in axes[0].get_xlabel()


def test_baseline_only_writes_tables_and_a_figure_that_says_so(tmp_path: Path) -> None:
    tables = tables_of(frame(variants=("base",)), variants=("base",))
    assert tables.deltas.is_empty() and tables.rows.height == 2
    write_experiment_tables(tables, tmp_path)
    for name in ("table.md", "table.csv", "table.tex", "deltas.csv"):
        assert (tmp_path / name).is_file()
    assert (tmp_path / "forest.png").read_bytes().startswith(PNG)
    assert pl.read_csv(tmp_path / "deltas.csv").columns == list(DELTA_SCHEMA)
    assert "Holm-adjusted over the 0 contrasts shown" in (tmp_path / "table.md").read_text(encoding="utf-8")
    figure = forest_figure(tables.deltas, list(tables.splits), "base")
    assert any("only the baseline" in text.get_text() for text in figure.get_axes()[0].texts)


def test_a_missing_baseline_raises_naming_it() -> None:
    with pytest.raises(ValueError, match="baseline variant 'base' has no rows"):
        tables_of(frame(variants=("better", "noisy")))
    data = frame().filter(~((pl.col("student") == "deepseek") & (pl.col("variant") == "base")))
    with pytest.raises(ValueError, match="'base'.*'canitedit'.*'deepseek'"):
        tables_of(data)


def test_a_variant_without_rows_for_a_benchmark_raises_naming_both() -> None:
    data = frame().filter(~((pl.col("variant") == "noisy") & (pl.col("benchmark") == "humanevalfix")))
    with pytest.raises(ValueError, match="variant 'noisy' has no rows for benchmark 'humanevalfix'"):
        tables_of(data)
    with pytest.raises(ValueError, match="variant 'extra' has no rows for benchmark 'canitedit'"):
        tables_of(frame(), variants=("better", "noisy", "extra"))


def test_a_variant_excluded_for_one_student_has_no_row_or_contrast_there() -> None:
    data = frame().filter(~((pl.col("student") == "deepseek") & (pl.col("variant") == "noisy")))
    result = tables_of(data)
    assert result.rows.select("student", "variant").rows() == [
        ("qwen", "base"),
        ("qwen", "better"),
        ("qwen", "noisy"),
        ("deepseek", "base"),
        ("deepseek", "better"),
    ]
    shown = result.deltas.filter(pl.col("family") == "shown")
    assert shown.height == 3 * 2  # (qwen: better, noisy; deepseek: better) x 2 benchmarks
    assert "deepseek" not in shown.filter(pl.col("variant") == "noisy")["student"].to_list()
