"""The evaluation report across benchmarks (``results/report/``): each benchmark's folder
(``results/evaluation/{benchmark}/``) merged into one ``summary.csv`` and one ``per_problem.csv``
with a ``benchmark`` column, one ``summary.md`` with a section per benchmark and one pass@1 chart with
a panel per benchmark; and the ``summary.md`` of a plug-in benchmark (HumanEvalFix, Aider's set).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from editforge.evaluation.benchmarks.aider_exercism import RETRY_LINES
from editforge.evaluation.benchmarks.registry import benchmark
from editforge.evaluation.summary import excluded_sentence, isolation_sentence, unisolated_warning
from editforge.records import PathLike
from editforge.sandbox.types import TAIL_BYTES

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from editforge.evaluation.benchmarks.base import Benchmark, QuotedRow
    from editforge.evaluation.scoring import Scores

FOLDER_FILES = ("summary.csv", "per_problem.csv", "summary.md")
QUOTED_ROW = "quoted, not measured"
SECOND_TRY = "pass_rate_2"
_KIND_COLOURS = ("#4c72b0", "#dd8452", "#c44e52", "#8172b3", "#937860")  # then overall: green
_HEADING = re.compile(r"#{1,5} ")


def write_evaluation_report(folders: Mapping[str, PathLike], out_dir: PathLike) -> None:
    """Merge the benchmarks' folders (name -> folder, in report order) into ``out_dir``: summary.csv
    and per_problem.csv (``benchmark`` first), summary.md (a section each) and pass_at_1.png."""
    if not folders:
        raise ValueError("no benchmark to report")
    paths = {name: Path(folder) for name, folder in folders.items()}
    for name, folder in paths.items():
        for file in FOLDER_FILES:
            if not (folder / file).is_file():
                raise FileNotFoundError(f"{folder / file}: missing; it is written when benchmark {name} is scored")
    benches = {name: benchmark(name) for name in paths}
    summaries = {name: _read_csv(folder / "summary.csv") for name, folder in paths.items()}
    per_problem = {
        name: _read_csv(folder / "per_problem.csv").with_columns(pl.col("problem_id").cast(pl.String))
        for name, folder in paths.items()
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merge_frames(summaries).write_csv(out / "summary.csv")
    merge_frames(per_problem).write_csv(out / "per_problem.csv")
    sections = [demote_headings((folder / "summary.md").read_text(encoding="utf-8")) for folder in paths.values()]
    titles = "; ".join(bench.title for bench in benches.values())
    markdown = "\n".join([f"# Evaluation\n\nBenchmarks: {titles}.\n", *sections])
    (out / "summary.md").write_text(markdown, encoding="utf-8")
    figure = pass_at_1_figure([(benches[name], summaries[name]) for name in paths])
    import matplotlib.pyplot as plt

    figure.savefig(out / "pass_at_1.png", dpi=120)
    plt.close(figure)


def merge_frames(frames: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """The frames one under the other, ``benchmark`` (the key) first, then every column in the order
    first seen; a column a benchmark lacks is null in its rows."""
    columns = list(dict.fromkeys(column for frame in frames.values() for column in frame.columns))
    tagged = [frame.with_columns(benchmark=pl.lit(name)) for name, frame in frames.items()]
    return pl.concat(tagged, how="diagonal_relaxed").select("benchmark", *columns)


def demote_headings(markdown: str) -> str:
    """``markdown`` with every heading one level lower (outside fenced code)."""
    lines, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and _HEADING.match(line):
            line = "#" + line
        lines.append(line)
    return "\n".join(lines) + "\n"


def measured_wide(summary: pl.DataFrame, kinds: Sequence[str]) -> list[dict[str, Any]]:
    """One row per target: official and strict pass@1 of each kind and overall (None where not
    measured), and of the overall row its samples, well-formed answers, problems, early exits and
    ``pass_rate_2`` (None where a column is missing)."""
    rows = []
    for target in summary["target"].unique(maintain_order=True):
        mine = {r["split"]: r for r in summary.filter(pl.col("target") == target).iter_rows(named=True)}
        row: dict[str, Any] = {"target": target}
        for split in (*kinds, "overall"):
            row[split] = mine.get(split, {}).get("pass@1")
            row[f"{split}_strict"] = mine.get(split, {}).get("strict_pass@1")
        overall = mine.get("overall", {})
        row |= {key: overall.get(key) for key in ("samples", "well_formed", "problems", SECOND_TRY)}
        row["early_exits"] = overall.get("early_exits") or 0
        rows.append(row)
    return rows


def has_second_try(summary: pl.DataFrame) -> bool:
    """Whether ``summary`` holds a second try's pass rate (``pass_rate_2``) anywhere."""
    return SECOND_TRY in summary.columns and summary[SECOND_TRY].null_count() < summary.height


def well_formed_cell(row: Mapping[str, Any]) -> str:
    """A wide row's well-formed answers as "n/N" (a dash where not counted)."""
    return "–" if row.get("well_formed") is None else f"{row['well_formed']}/{row['samples']}"


def quoted_score(bench: Benchmark, row: QuotedRow, split: str) -> float | None:
    """A quoted row's pass@1 for ``split``; a benchmark of one kind has that kind's score as overall."""
    if split == "overall" and len(bench.kinds) == 1 and split not in row.scores:
        return row.scores.get(bench.kinds[0])
    return row.scores.get(split)


def quoted_sources(quoted: Sequence[QuotedRow]) -> list[str]:
    """One sentence per distinct source of quoted rows: the models, the source and its caveat."""
    groups: dict[tuple[str, str], list[str]] = {}
    for row in quoted:
        groups.setdefault((row.source, row.caveat), []).append(row.model)
    return [
        f"Quoted, not measured ({', '.join(models)}): from {source}." + (f" Caveat: {caveat}." if caveat else "")
        for (source, caveat), models in groups.items()
    ]


def plugin_summary_markdown(
    bench: Benchmark, scores: Scores, ks: Sequence[int], anti_oracle_passes: Sequence[Mapping[str, Any]]
) -> str:
    """A plug-in benchmark's summary.md: measured rows beside its quoted ones, official beside strict,
    every split, the exclusions, the isolation and what a model that changes nothing scores.
    ``anti_oracle_passes``: the reference check's ``{"problem_id", "kind"}`` whose unchanged input passes."""
    wide, retry = measured_wide(scores.summary, bench.kinds), has_second_try(scores.summary)
    warning = unisolated_warning(scores.summary)
    warn = [warning, ""] if warning else []
    splits = (*bench.kinds, "overall")
    lines = [f"# {bench.title} pass@1 (%)", "", *warn]
    lines += _table(["model", *splits, *([SECOND_TRY] if retry else []), "well-formed answers", "source"])
    for row in wide:
        flag = f"; flagged (early exits: {row['early_exits']})" if row["early_exits"] else ""
        retried = [_fmt(row[SECOND_TRY])] if retry else []
        lines.append(_cells([row["target"], *(_fmt(row[s]) for s in splits), *retried, well_formed_cell(row),
                             f"measured{flag}"]))
    for quoted in bench.quoted:
        values = [_fmt(quoted_score(bench, quoted, s)) for s in splits]
        lines.append(_cells([quoted.model, *values, *(["–"] if retry else []), "–", QUOTED_ROW]))
    lines += [""]
    for sentence in quoted_sources(bench.quoted):
        lines += [sentence, ""]
    lines += [
        "Measured rows: every sample counts, and a sample passes when its program (the answer with the hidden "
        "tests) exits with status 0. *Well-formed answers*: samples whose answer gave a program to run; the "
        "others fail.",
        "",
        anti_oracle_note(bench, scores, anti_oracle_passes),
        "",
    ]
    if retry:
        lines += [
            f"`{SECOND_TRY}`: pass@1 (%) after a second try, as Aider does: a sample whose answer fails is asked "
            f"again with its test output ({RETRY_LINES} lines at most, of the last {TAIL_BYTES // 1024} KB the "
            "sandbox keeps), and passes when either answer passes; `overall` is the first try (Aider's "
            "`pass_rate_1`).",
            "",
        ]
    lines += [excluded_sentence(scores.excluded), "", isolation_sentence(scores.summary), "",
              "## Official and strict pass@1 (%)", "", *warn]
    lines += _table(["target", *(f"{s}{x}" for s in splits for x in ("", " (strict)")), "early exits"])
    for row in wide:
        values = [_fmt(row[f"{s}{x}"]) for s in splits for x in ("", "_strict")]
        flag = f"{row['early_exits']} (flagged)" if row["early_exits"] else "0"
        lines.append(_cells([row["target"], *values, flag]))
    lines += [
        "",
        "*Official*: exit status 0 (the headline). *Strict*: exit status 0 and the tests reached their end. "
        "An early exit passes officially but not strictly (the program exited with status 0 before its tests "
        "were done); a target with any is flagged.",
        "",
        *_early_exit_lines(scores.early_exits),
        "",
        "## Measured, all splits",
        "",
        *warn,
    ]
    columns = ["target", "split", "problems", "samples", "well_formed", *[f"pass@{k}" for k in ks],
               *[f"strict_pass@{k}" for k in ks], "early_exits", *([SECOND_TRY] if retry else [])]
    columns = [c for c in columns if c in scores.summary.columns]
    lines += _table(columns)
    for row in scores.summary.iter_rows(named=True):
        lines.append(_cells([_fmt(row[c]) if isinstance(row[c], float) or row[c] is None else str(row[c])
                             for c in columns]))
    lines += ["", "A problem is one (problem, instruction kind) pair; `samples` counts every sample."]
    return "\n".join(lines) + "\n"


def anti_oracle_note(bench: Benchmark, scores: Scores, passes: Sequence[Mapping[str, Any]]) -> str:
    """What a model that changes nothing scores: the measured problems whose unchanged input passes."""
    measured = {(str(r["problem_id"]), r["kind"]) for r in scores.per_problem.iter_rows(named=True)}
    found = [p for p in passes if (str(p["problem_id"]), p["kind"]) in measured]
    problems = max((row["problems"] or 0 for row in measured_wide(scores.summary, bench.kinds)), default=0)
    score = f"so a model that changes nothing scores {len(found)}/{problems}"
    if not found:
        return f"No measured problem's unchanged input passes its tests (reference check), {score}."
    names = [str(p["problem_id"]) + (f" ({p['kind']})" if len(bench.kinds) > 1 else "") for p in found]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"
    verb = "passes its" if len(names) == 1 else "pass their"
    return f"The unchanged input of {listed} already {verb} tests (reference check), {score}."


def pass_at_1_figure(panels: Sequence[tuple[Benchmark, pl.DataFrame]]) -> Figure:
    """One panel per (benchmark, its summary): grouped bars (each kind and overall) per measured target,
    then the benchmark's quoted rows, hatched and pale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widest = max(len(summary["target"].unique()) + len(bench.quoted) for bench, summary in panels)
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(max(8.0, 0.75 * widest + 2), 5 * len(panels)), squeeze=False
    )
    for ax, (bench, summary) in zip(axes[:, 0], panels):
        _panel(ax, bench, summary)
    fig.tight_layout()
    return fig


def _panel(ax: Axes, bench: Benchmark, summary: pl.DataFrame) -> None:
    from matplotlib.patches import Patch

    splits = (*bench.kinds, "overall")
    groups = [(row["target"], [row[s] for s in splits], False) for row in measured_wide(summary, bench.kinds)]
    measured = len(groups)
    groups += [(f"{q.model} (quoted)", [quoted_score(bench, q, s) for s in splits], True) for q in bench.quoted]
    colours = [*(_KIND_COLOURS[j % len(_KIND_COLOURS)] for j in range(len(bench.kinds))), "#55a868"]
    width = min(0.27, 0.8 / len(splits))
    for i, (_, values, quoted) in enumerate(groups):
        for j, value in enumerate(values):
            if value is not None:
                colour = colours[j]
                ax.bar(i + (j - (len(splits) - 1) / 2) * width, value, width, color=colour,
                       alpha=0.45 if quoted else 1.0, hatch="//" if quoted else None,
                       edgecolor="#444444" if quoted else colour)
    if 0 < measured < len(groups):
        ax.axvline(measured - 0.5, color="#888888", linestyle=":")
    ax.set_xticks(range(len(groups)), [name for name, _, _ in groups], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("pass@1 (%), official rule")
    ax.set_ylim(0, 100)
    ax.set_title(f"{bench.title} pass@1: measured here, and quoted (hatched)")
    handles = [Patch(color=colour, label=split) for colour, split in zip(colours, splits)]
    handles.append(Patch(facecolor="white", edgecolor="#444444", hatch="//", label=QUOTED_ROW))
    ax.legend(handles=handles, fontsize=8, loc="upper left")


def _read_csv(path: Path) -> pl.DataFrame:
    frame = pl.read_csv(path, infer_schema_length=None, schema_overrides={"target": pl.String})
    # An empty column reads as text; as null it takes another benchmark's type in the merge.
    empty = [c for c in frame.columns if frame[c].null_count() == frame.height]
    return frame.with_columns(pl.lit(None).alias(c) for c in empty)


def _early_exit_lines(early_exits: pl.DataFrame) -> list[str]:
    if early_exits.is_empty():
        return ["No sample passes officially but not strictly."]
    lines = ["Samples that pass officially but not strictly:", "", *_table(["target", "problem", "kind", "samples"])]
    grouped = early_exits.group_by("target", "full_name", "kind", maintain_order=True).agg(pl.col("sample_index"))
    for row in grouped.iter_rows(named=True):
        samples = ", ".join(str(i) for i in row["sample_index"])
        lines.append(_cells([row["target"], row["full_name"], row["kind"], samples]))
    return lines


def _table(header: Sequence[str]) -> list[str]:
    return [_cells(header), "|" + "---|" * len(header)]


def _cells(values: Sequence[str]) -> str:
    return "| " + " | ".join(values) + " |"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
