"""pass@k, the strict pass rule, ExcessCode, the report files and the bar chart.

Scores are percentages (0-100), as the paper reports them. A problem is one
(problem, instruction kind) pair, as in the harness, where each results file is
one problem. The rules are those of the harness's ``benchmark/pass_k.py``:

* every sample counts in ``n`` and every outcome but ``pass`` is a failure;
* pass@k is the unbiased estimator, 1.0 when ``n - c < k``, so a problem with
  fewer than k samples counts as solved;
* ExcessCode and MeanMedianCoverage come from the samples that passed and have a
  coverage measurement (see ``excess_fraction``), over the problems that have one.

Two pass rules stand side by side: *official* (exit status 0, as the harness; the
headline) and *strict* (exit status 0 and ``tests_finished``: the tests reached
their end). Samples that pass officially but not strictly are listed, and their
target is flagged. Problems that the preflight left out before generation (their
reference program fails in this environment) are named in every table.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from editforge.evaluation.benchmark import CHANGE_KINDS, TESTS_MARKER
from editforge.records import STYLES, RecordError, read_jsonl
from editforge.sandbox import OUTCOMES

SPLITS = (*STYLES, "overall", *CHANGE_KINDS)
PASS = "pass"
QUOTED_SOURCE = (
    "OpenCodeEdit (Zhang et al., arXiv 2509.25203), results table; "
    "its GPT-4, GPT-3.5-Turbo, DeepSeekCoder-Instr, CodeLlama-Instruct and EditCoder rows are cited there "
    "from Cassano et al. (COLM 2024), the SelfCodeAlign row from Wei et al. (NeurIPS 2024)"
)
# (model, lazy, descriptive, overall) pass@1 in %, as printed in that table.
PAPER_ROWS: tuple[tuple[str, float | None, float | None, float], ...] = (
    ("GPT-4", 51.95, 63.33, 57.64),
    ("GPT-3.5-Turbo", 42.71, 48.14, 45.43),
    ("DeepSeekCoder-Instr-33B", 42.33, 55.90, 49.12),
    ("CodeLlama-Instruct-7B", 23.49, 32.83, 28.16),
    ("SelfCodeAlign-CQ-7B", None, None, 39.00),
    ("DeepSeekCoder-Instr-6.7B", 31.65, 41.03, 36.34),
    ("EditCoder-6.7B", 39.29, 48.33, 43.81),
    ("OpenCodeEdit-DSC-6.7B", 43.90, 52.81, 48.36),
    ("Qwen2.5-Coder-7B-Instr", 43.00, 51.43, 47.21),
    ("OpenCodeEdit-Qwen2.5-7B", 47.19, 56.24, 51.71),
    ("Qwen3-8B-Instr", 32.81, 33.81, 33.31),
    ("OpenCodeEdit-Qwen3-8B", 48.14, 60.05, 54.10),
)
HARNESS_COLUMNS = (
    "Name",
    "Pass@k",
    "Estimate",
    "NumProblems",
    "MinCompletions",
    "MaxCompletions",
    "ExcessCode",
    "ExcessCodeSE",
    "MeanMedianCoverage",
)

# The fields of an execution record that scoring reads, with their JSON types.
_SCORED: dict[str, tuple[type, ...]] = {
    "target": (str,),
    "problem_id": (int,),
    "full_name": (str,),
    "kind": (str,),
    "change_kind": (str,),
    "sample_index": (int,),
    "completion": (str,),
    "outcome": (str,),
    "tests_finished": (bool,),
    "coverage": (int, type(None)),
    "coverage_missing": (list, type(None)),
    "isolation": (str,),
}
# Fields that records written before the strict rule, the coverage pass and the isolation record lack.
_NEWER = ("tests_finished", "coverage", "coverage_missing", "isolation")
_JSON_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list", type(None): "null"}


@dataclass(frozen=True)
class Exclusion:
    """A problem the preflight left out before generation."""

    problem_id: int
    full_name: str
    reason: str


@dataclass(frozen=True)
class ProblemScore:
    """The samples of one (target, problem, instruction kind)."""

    target: str
    problem_id: int
    full_name: str
    kind: str
    change_kind: str
    n: int  # every sample
    c: int  # official passes
    c_strict: int  # strict passes
    excess: tuple[float, ...]  # excess_fraction of each official pass with coverage
    uncovered: tuple[int, ...]  # 100 - coverage of the same samples

    @property
    def excess_mean(self) -> float | None:
        return float(np.mean(self.excess)) if self.excess else None

    @property
    def uncovered_median(self) -> float | None:
        return float(np.median(self.uncovered)) if self.uncovered else None


@dataclass(frozen=True)
class Scores:
    per_problem: pl.DataFrame  # one row per (target, problem, kind)
    summary: pl.DataFrame  # one row per (target, split)
    harness: pl.DataFrame  # harness_pass_k.csv: the harness's columns, values as it prints them
    early_exits: pl.DataFrame  # one row per sample that passes officially but not strictly
    excluded: tuple[Exclusion, ...]


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimator 1 - C(n-c, k) / C(n, k), as a fraction.

    1.0 when n - c < k (every draw of k holds a pass), which includes n < k, as
    the harness computes it. Needs 0 <= c <= n, n >= 1 and k >= 1.
    """
    if not 0 <= c <= n or n < 1:
        raise ValueError(f"pass@k needs 0 <= c <= n and n >= 1, got n={n}, c={c}")
    if k < 1:
        raise ValueError(f"pass@k needs k >= 1, got k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def program_no_test(completion: str, tests: str) -> str:
    """The harness's ``program_no_test``: the executed program (completion, a
    newline, the tests) up to the first ``### START TESTS ###`` line."""
    return (completion + "\n" + tests).partition(TESTS_MARKER + "\n")[0]


def excess_fraction(before: str, completion: str, tests: str, coverage_missing: Sequence[int]) -> float:
    """A passing sample's ExcessCode term: uncovered lines / ndiff lines.

    As in the harness, the denominator is every line of the ndiff of ``before``
    and ``program_no_test`` (split without line ends), unchanged lines and ``?``
    hints included, although the metric is described as per changed line.
    """
    diff = difflib.Differ().compare(before.splitlines(), program_no_test(completion, tests).splitlines())
    return len(coverage_missing) / len(list(diff))


def read_preflight(path: str | os.PathLike[str]) -> tuple[Exclusion, ...]:
    """The problems that ``preflight.json`` excludes: ``{"excluded": [{"problem_id",
    "full_name", "reason"}, ...], ...}``; other keys are ignored."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RecordError(f"{path}: not JSON ({err.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("excluded"), list):
        raise RecordError(f"{path}: expected an object with a list 'excluded'")
    exclusions = []
    for number, entry in enumerate(data["excluded"], start=1):
        where = f"{path}: excluded entry {number}"
        if not isinstance(entry, dict):
            raise RecordError(f"{where} is not an object")
        for key, kind in (("problem_id", int), ("full_name", str), ("reason", str)):
            if key not in entry:
                raise RecordError(f"{where} lacks {key}")
            if not isinstance(entry[key], kind) or isinstance(entry[key], bool):
                raise RecordError(f"{where}: {key} must be {_JSON_NAMES[kind]}, got {entry[key]!r}")
        exclusions.append(Exclusion(entry["problem_id"], entry["full_name"], entry["reason"]))
    return tuple(exclusions)


def score(
    executions: Iterable[Mapping[str, Any]],
    problems: Sequence[Mapping[str, Any]],
    ks: Sequence[int] = (1,),
    excluded: Sequence[Exclusion] = (),
) -> Scores:
    """Per-problem and per-split scores of execution records.

    ``problems``: the benchmark problems (their ``before`` and ``tests`` give
    ExcessCode). Splits: lazy, descriptive, overall (all problems of both kinds)
    and each change kind (both instruction kinds). ``excluded``: the preflight's
    exclusions; an excluded problem must have no records.
    """
    named = ((f"execution record {number}", record) for number, record in enumerate(executions, start=1))
    return _score(named, problems, ks, excluded)


def run_score(
    execution_paths: Sequence[str | os.PathLike[str]],
    problems: Sequence[Mapping[str, Any]],
    out_dir: str | os.PathLike[str],
    ks: Sequence[int],
    preflight: str | os.PathLike[str] | None = None,
) -> Scores:
    """Score execution files (one per target) and write per_problem.csv,
    summary.csv, summary.md, harness_pass_k.csv and pass_at_1.png to ``out_dir``.

    ``preflight``: the preflight's ``preflight.json``, where there is one.
    """
    ks = _check_ks([1, *ks])
    excluded = read_preflight(preflight) if preflight is not None else ()
    named = (
        (f"{path}: record {number}", record)
        for path in execution_paths
        for number, record in enumerate(read_jsonl(path), start=1)
    )
    scores = _score(named, problems, ks, excluded)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scores.per_problem.write_csv(out / "per_problem.csv")
    scores.summary.write_csv(out / "summary.csv")
    scores.harness.write_csv(out / "harness_pass_k.csv")
    (out / "summary.md").write_text(summary_markdown(scores, ks), encoding="utf-8")
    plot_pass_at_1(scores.summary, out / "pass_at_1.png")
    return scores


def summary_markdown(scores: Scores, ks: Sequence[int]) -> str:
    """The headline (measured rows, then the paper's, marked as quoted), official
    beside strict with the samples where they differ, every split, the exclusions."""
    wide = wide_pass_at_1(scores.summary)
    warning = unisolated_warning(scores.summary)
    lines = [
        "# CanItEdit pass@1 (%)",
        "",
        *([warning, ""] if warning else []),
        "| model | lazy | descriptive | overall | source |",
        "|---|---|---|---|---|",
    ]
    for row in wide.iter_rows(named=True):
        flag = f"; flagged (early exits: {row['early_exits']})" if row["early_exits"] else ""
        lines.append(
            f"| {row['target']} | {_fmt(row['lazy'])} | {_fmt(row['descriptive'])} | {_fmt(row['overall'])} "
            f"| measured{flag} |"
        )
    for model, lazy, descriptive, overall in PAPER_ROWS:
        lines.append(
            f"| {model} | {_fmt(lazy)} | {_fmt(descriptive)} | {_fmt(overall)} | quoted from the paper, not measured |"
        )
    lines += [
        "",
        f"Rows marked *quoted from the paper, not measured* are copied from {QUOTED_SOURCE}. "
        "They cover all 105 problems with 20 samples each; measured rows cover the problems counted below. "
        "Measured rows follow the harness: every sample counts, and a sample passes when its program "
        "(with the tests) exits with status 0.",
        "",
        excluded_sentence(scores.excluded),
        "",
        isolation_sentence(scores.summary),
        "",
        "## Official and strict pass@1 (%)",
        "",
        *([warning, ""] if warning else []),
        "| target | lazy | lazy (strict) | descriptive | descriptive (strict) | overall | overall (strict) "
        "| early exits |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in wide.iter_rows(named=True):
        values = [row[c] for c in ("lazy", "lazy_strict", "descriptive", "descriptive_strict", "overall",
                                   "overall_strict")]
        flag = f"{row['early_exits']} (flagged)" if row["early_exits"] else "0"
        lines.append(f"| {row['target']} | " + " | ".join(_fmt(v) for v in values) + f" | {flag} |")
    lines += [
        "",
        "*Official*: exit status 0, as the harness (the headline). *Strict*: exit status 0 and the tests "
        "reached their end. An early exit passes officially but not strictly (the program exited with "
        "status 0 before its tests were done); a target with any is flagged.",
        "",
    ]
    if scores.early_exits.is_empty():
        lines.append("No sample passes officially but not strictly.")
    else:
        lines += ["Samples that pass officially but not strictly:", "", "| target | problem | kind | samples |",
                  "|---|---|---|---|"]
        grouped = scores.early_exits.group_by("target", "problem_id", "full_name", "kind", maintain_order=True).agg(
            pl.col("sample_index")
        )
        for row in grouped.iter_rows(named=True):
            samples = ", ".join(str(i) for i in row["sample_index"])
            lines.append(f"| {row['target']} | {row['full_name']} | {row['kind']} | {samples} |")
    columns = [
        "target",
        "split",
        "problems",
        "samples",
        *[f"pass@{k}" for k in ks],
        *[f"strict_pass@{k}" for k in ks],
        "early_exits",
        "covered_problems",
        "excess_code",
        "excess_code_se",
        "mean_median_coverage",
    ]
    lines += ["", "## Measured, all splits", "", *([warning, ""] if warning else [])]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in scores.summary.iter_rows(named=True):
        lines.append("| " + " | ".join(_fmt(row[c]) if isinstance(row[c], float) or row[c] is None
                                       else str(row[c]) for c in columns) + " |")
    lines += [
        "",
        "A problem is one (problem, instruction kind) pair; `samples` counts every sample. "
        "`excess_code` is the harness's ExcessCode (uncovered lines per line of the ndiff between `before` "
        "and the edited program, the mean over a problem's passing samples with coverage, then the mean over "
        "problems, in %), `excess_code_se` its standard error, `mean_median_coverage` the mean over problems of "
        "the median of 100 - coverage; all three over the `covered_problems` that have a passing sample with "
        "coverage. `harness_pass_k.csv` gives them as the harness prints them.",
    ]
    return "\n".join(lines) + "\n"


def isolation_sentence(summary: pl.DataFrame) -> str:
    """Which isolation each target's programs ran under (``summary.csv``'s ``isolation``)."""
    rows = summary.filter(pl.col("split") == "overall").select("target", "isolation").iter_rows()
    return "Programs ran in the sandbox with: " + "; ".join(f"{target}: {how}" for target, how in rows) + "."


def unisolated_warning(summary: pl.DataFrame) -> str | None:
    """A warning for the tables when any target's programs ran without isolation (``sandbox: none``)."""
    targets = summary.filter(pl.col("isolation").str.contains("NOT isolated"))["target"].unique(maintain_order=True)
    if targets.is_empty():
        return None
    return (
        f"**Warning: the programs of {', '.join(targets.to_list())} ran WITHOUT isolation (`sandbox: none`): "
        "a program could have read the hidden tests or changed its own results.**"
    )


def excluded_sentence(excluded: Sequence[Exclusion]) -> str:
    """What the tables say about the problems the preflight left out."""
    if not excluded:
        return "No problem was excluded before generation."
    names = "; ".join(f"{e.full_name} ({e.reason})" for e in excluded)
    return (
        f"Excluded before generation, because their reference program fails in this environment, and not "
        f"counted in any row: {names}."
    )


def plot_pass_at_1(summary: pl.DataFrame, path: str | os.PathLike[str]) -> None:
    """Grouped bars (lazy, descriptive, overall) per model; quoted rows hatched and pale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    wide = wide_pass_at_1(summary)
    models: list[tuple[str, Sequence[float | None], bool]] = [
        (row["target"], (row["lazy"], row["descriptive"], row["overall"]), False) for row in wide.iter_rows(named=True)
    ]
    models += [(f"{name} (paper)", values, True) for name, *values in PAPER_ROWS]
    colours = ("#4c72b0", "#dd8452", "#55a868")
    fig, ax = plt.subplots(figsize=(max(8.0, 0.75 * len(models) + 2), 5))
    width = 0.27
    for i, (_, values, quoted) in enumerate(models):
        for j, value in enumerate(values):
            if value is not None:
                ax.bar(
                    i + (j - 1) * width,
                    value,
                    width,
                    color=colours[j],
                    alpha=0.45 if quoted else 1.0,
                    hatch="//" if quoted else None,
                    edgecolor="#444444" if quoted else colours[j],
                )
    measured = wide.height
    if 0 < measured < len(models):
        ax.axvline(measured - 0.5, color="#888888", linestyle=":")
    ax.set_xticks(range(len(models)), [name for name, _, _ in models], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("pass@1 (%), official rule")
    ax.set_ylim(0, 100)
    ax.set_title("CanItEdit pass@1: measured here, and quoted from the paper (hatched)")
    handles = [Patch(color=colour, label=label) for colour, label in zip(colours, ("lazy", "descriptive", "overall"))]
    handles.append(
        Patch(facecolor="white", edgecolor="#444444", hatch="//", label="quoted from the paper, not measured")
    )
    ax.legend(handles=handles, fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def wide_pass_at_1(summary: pl.DataFrame) -> pl.DataFrame:
    """One row per target: official and strict pass@1 of lazy, descriptive and
    overall (null where not measured), and the overall ExcessCode and early exits."""
    rows = []
    for target in summary["target"].unique(maintain_order=True):
        mine = {r["split"]: r for r in summary.filter(pl.col("target") == target).iter_rows(named=True)}
        row: dict[str, Any] = {"target": target}
        for split in (*STYLES, "overall"):
            row[split] = mine[split]["pass@1"] if split in mine else None
            row[f"{split}_strict"] = mine[split]["strict_pass@1"] if split in mine else None
        overall = mine.get("overall", {})
        row |= {key: overall.get(key) for key in ("excess_code", "excess_code_se")}
        row["early_exits"] = overall.get("early_exits", 0)
        rows.append(row)
    return pl.DataFrame(
        rows,
        schema={
            "target": pl.String,
            **{f"{split}{suffix}": pl.Float64 for split in (*STYLES, "overall") for suffix in ("", "_strict")},
            "excess_code": pl.Float64,
            "excess_code_se": pl.Float64,
            "early_exits": pl.Int64,
        },
    )


@dataclass(frozen=True)
class _Sample:
    target: str
    problem_id: int
    full_name: str
    kind: str
    change_kind: str
    sample_index: int
    official: bool
    strict: bool
    excess: float | None  # set for official passes with coverage
    uncovered: int | None  # 100 - coverage, likewise
    isolation: str  # the sandbox's description of the isolation the sample ran under


def _score(
    records: Iterable[tuple[str, Mapping[str, Any]]],
    problems: Sequence[Mapping[str, Any]],
    ks: Sequence[int],
    excluded: Sequence[Exclusion],
) -> Scores:
    ks = _check_ks(ks)
    by_id = {problem["id"]: problem for problem in problems}
    _check_exclusions(excluded, by_id)
    excluded_ids = {exclusion.problem_id for exclusion in excluded}
    groups: dict[tuple[str, int, str], list[_Sample]] = {}
    for where, record in records:
        sample = _sample(record, where, by_id, excluded_ids)
        groups.setdefault((sample.target, sample.problem_id, sample.kind), []).append(sample)
    if not groups:
        raise ValueError("no execution records to score")
    kind_order: dict[str, int] = {kind: i for i, kind in enumerate(STYLES)}
    keys = sorted(groups, key=lambda key: (key[0], key[1], kind_order[key[2]]))
    scored = [_problem_score(groups[key]) for key in keys]
    isolation: dict[str, set[str]] = {}
    for key in keys:
        isolation.setdefault(key[0], set()).update(s.isolation for s in groups[key])
    early = [
        {"target": s.target, "problem_id": s.problem_id, "full_name": s.full_name, "kind": s.kind,
         "sample_index": s.sample_index}
        for key in keys
        for s in sorted(groups[key], key=lambda s: s.sample_index)
        if s.official and not s.strict
    ]
    return Scores(
        per_problem=_per_problem(scored, ks),
        summary=_summary(scored, ks, excluded, by_id, {t: "; ".join(sorted(i)) for t, i in isolation.items()}),
        harness=_harness(scored, ks),
        early_exits=pl.DataFrame(
            early,
            schema={"target": pl.String, "problem_id": pl.Int64, "full_name": pl.String, "kind": pl.String,
                    "sample_index": pl.Int64},
        ),
        excluded=tuple(sorted(excluded, key=lambda e: e.problem_id)),
    )


def _sample(
    record: Mapping[str, Any], where: str, by_id: Mapping[int, Mapping[str, Any]], excluded_ids: set[int]
) -> _Sample:
    missing = [key for key in _SCORED if key not in record]
    if missing:
        newer = set(missing) & set(_NEWER)
        hint = " (written by an older version: run eval_execute again)" if newer else ""
        raise RecordError(f"{where} lacks {', '.join(missing)}{hint}")
    for key, types in _SCORED.items():
        value = record[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise RecordError(f"{where}: {key} must be {' or '.join(_JSON_NAMES[t] for t in types)}, got {value!r}")
    outcome, coverage, lines = record["outcome"], record["coverage"], record["coverage_missing"]
    if outcome not in OUTCOMES:
        raise RecordError(f"{where} has outcome {outcome!r}, expected one of {', '.join(OUTCOMES)}")
    if record["kind"] not in STYLES:
        raise RecordError(f"{where} has kind {record['kind']!r}, expected one of {', '.join(STYLES)}")
    problem = by_id.get(record["problem_id"])
    if problem is None or problem["full_name"] != record["full_name"]:
        raise RecordError(
            f"{where} is for problem {record['problem_id']} ({record['full_name']}), which the benchmark file lacks"
        )
    if record["problem_id"] in excluded_ids:
        raise RecordError(
            f"{where} is for problem {record['full_name']}, which the preflight excludes: generate again"
        )
    if (coverage is None) != (lines is None):
        raise RecordError(f"{where}: coverage and coverage_missing must be both null or both set")
    if coverage is not None:
        if outcome != PASS:
            raise RecordError(f"{where} has coverage but outcome {outcome!r}: only passing samples have coverage")
        if not 0 <= coverage <= 100 or not all(isinstance(n, int) and not isinstance(n, bool) for n in lines):
            raise RecordError(
                f"{where}: coverage must be a percentage and coverage_missing line numbers, "
                f"got {coverage!r} and {lines!r}"
            )
    official = outcome == PASS
    before, tests = problem["before"], problem["tests"]
    excess = None if lines is None else excess_fraction(before, record["completion"], tests, lines)
    return _Sample(
        target=record["target"],
        problem_id=record["problem_id"],
        full_name=record["full_name"],
        kind=record["kind"],
        change_kind=record["change_kind"],
        sample_index=record["sample_index"],
        official=official,
        strict=official and record["tests_finished"],
        excess=excess,
        uncovered=None if coverage is None else 100 - coverage,
        isolation=record["isolation"],
    )



def _problem_score(samples: Sequence[_Sample]) -> ProblemScore:
    first = samples[0]
    return ProblemScore(
        target=first.target,
        problem_id=first.problem_id,
        full_name=first.full_name,
        kind=first.kind,
        change_kind=first.change_kind,
        n=len(samples),
        c=sum(s.official for s in samples),
        c_strict=sum(s.strict for s in samples),
        excess=tuple(s.excess for s in samples if s.excess is not None),
        uncovered=tuple(s.uncovered for s in samples if s.uncovered is not None),
    )


def _per_problem(scored: Sequence[ProblemScore], ks: Sequence[int]) -> pl.DataFrame:
    rows = []
    for p in scored:
        row: dict[str, Any] = {
            "target": p.target,
            "problem_id": p.problem_id,
            "full_name": p.full_name,
            "kind": p.kind,
            "change_kind": p.change_kind,
            "n": p.n,
            "c": p.c,
            "c_strict": p.c_strict,
        }
        row |= {f"pass@{k}": 100 * pass_at_k(p.n, p.c, k) for k in ks}
        row |= {f"strict_pass@{k}": 100 * pass_at_k(p.n, p.c_strict, k) for k in ks}
        mean = p.excess_mean
        row |= {
            "covered": len(p.excess),
            "excess_code": None if mean is None else 100 * mean,
            "median_uncovered": p.uncovered_median,
        }
        rows.append(row)
    return pl.DataFrame(
        rows,
        schema={
            "target": pl.String,
            "problem_id": pl.Int64,
            "full_name": pl.String,
            "kind": pl.String,
            "change_kind": pl.String,
            "n": pl.Int64,
            "c": pl.Int64,
            "c_strict": pl.Int64,
            **{f"{rule}pass@{k}": pl.Float64 for rule in ("", "strict_") for k in ks},
            "covered": pl.Int64,
            "excess_code": pl.Float64,
            "median_uncovered": pl.Float64,
        },
    )


@dataclass(frozen=True)
class _Excess:
    """The harness's ExcessCode (%), its SE and MeanMedianCoverage over ``problems``."""

    problems: int
    excess_code: float | None
    excess_code_se: float | None
    mean_median_coverage: float | None


def _excess(part: Sequence[ProblemScore]) -> _Excess:
    # Only problems with a passing sample that has coverage count, as in the harness.
    covered = [p for p in part if p.excess]
    if not covered:
        return _Excess(0, None, None, None)
    means = [float(np.mean(p.excess)) for p in covered]
    return _Excess(
        problems=len(covered),
        excess_code=float(np.mean(means)) * 100,
        excess_code_se=float(np.std(means) / np.sqrt(len(means))) * 100,  # population std
        mean_median_coverage=float(np.mean([np.median(p.uncovered) for p in covered])),
    )


def _split(scored: Sequence[ProblemScore], split: str) -> list[ProblemScore]:
    if split in STYLES:
        return [p for p in scored if p.kind == split]
    if split == "overall":
        return list(scored)
    return [p for p in scored if p.change_kind == split]


def _by_target(scored: Sequence[ProblemScore]) -> Iterable[tuple[str, str, list[ProblemScore]]]:
    """(target, split, its problems) for every split that has problems."""
    for target in dict.fromkeys(p.target for p in scored):
        mine = [p for p in scored if p.target == target]
        for split in SPLITS:
            part = _split(mine, split)
            if part:
                yield target, split, part


def _mean_pass(part: Sequence[ProblemScore], k: int, strict: bool) -> float:
    return float(np.mean([pass_at_k(p.n, p.c_strict if strict else p.c, k) for p in part])) * 100


def _summary(
    scored: Sequence[ProblemScore],
    ks: Sequence[int],
    excluded: Sequence[Exclusion],
    by_id: Mapping[int, Mapping[str, Any]],
    isolation: Mapping[str, str],
) -> pl.DataFrame:
    rows = []
    for target, split, part in _by_target(scored):
        excess = _excess(part)
        names = [
            e.full_name
            for e in sorted(excluded, key=lambda e: e.problem_id)
            if split in (*STYLES, "overall") or by_id[e.problem_id]["taxonomy"]["change_kind"] == split
        ]
        rows.append({
            "target": target,
            "split": split,
            "problems": len(part),
            "samples": sum(p.n for p in part),
            **{f"pass@{k}": _mean_pass(part, k, strict=False) for k in ks},
            **{f"strict_pass@{k}": _mean_pass(part, k, strict=True) for k in ks},
            "early_exits": sum(p.c - p.c_strict for p in part),
            "covered_problems": excess.problems,
            "excess_code": excess.excess_code,
            "excess_code_se": excess.excess_code_se,
            "mean_median_coverage": excess.mean_median_coverage,
            "excluded": "; ".join(names) or None,
            "isolation": isolation[target],
        })
    return pl.DataFrame(
        rows,
        schema={
            "target": pl.String,
            "split": pl.String,
            "problems": pl.Int64,
            "samples": pl.Int64,
            **{f"{rule}pass@{k}": pl.Float64 for rule in ("", "strict_") for k in ks},
            "early_exits": pl.Int64,
            "covered_problems": pl.Int64,
            "excess_code": pl.Float64,
            "excess_code_se": pl.Float64,
            "mean_median_coverage": pl.Float64,
            "excluded": pl.String,
            "isolation": pl.String,
        },
    )


def _harness(scored: Sequence[ProblemScore], ks: Sequence[int]) -> pl.DataFrame:
    """The rows ``pass_k.py`` prints for each split's folder (named as
    ``separate_results*.sh`` names them), one per k, as strings."""
    rows = []
    for target, split, part in _by_target(scored):
        excess = _excess(part)
        counts = [p.n for p in part]
        for k in ks:
            rows.append({
                "Name": target if split == "overall" else f"{target}_{split}",
                "Pass@k": str(k),
                "Estimate": _harness_number(_mean_pass(part, k, strict=False), k, 1),
                "NumProblems": str(len(part)),
                "MinCompletions": str(min(counts)),
                "MaxCompletions": str(max(counts)),
                "ExcessCode": _harness_number(excess.excess_code, k, 2),
                "ExcessCodeSE": _harness_number(excess.excess_code_se, k, 2),
                "MeanMedianCoverage": _harness_number(excess.mean_median_coverage, k, 2),
            })
    return pl.DataFrame(rows, schema=dict.fromkeys(HARNESS_COLUMNS, pl.String))


def _harness_number(value: float | None, k: int, decimals: int) -> str:
    """As pass_k.py prints a value: rounded to 6 decimals, then in its pass@1 row
    to ``decimals``; NA where there is none (where its pass@1 row would crash)."""
    if value is None:
        return "NA"
    rounded = float(np.round(value, 6))
    return f"{rounded:.{decimals}f}" if k == 1 else repr(rounded)


def _check_exclusions(excluded: Sequence[Exclusion], by_id: Mapping[int, Mapping[str, Any]]) -> None:
    seen: set[int] = set()
    for exclusion in excluded:
        problem = by_id.get(exclusion.problem_id)
        if problem is None or problem["full_name"] != exclusion.full_name:
            raise RecordError(f"the preflight excludes {exclusion.full_name}, which the benchmark file lacks")
        if exclusion.problem_id in seen:
            raise RecordError(f"the preflight excludes {exclusion.full_name} twice")
        seen.add(exclusion.problem_id)


def _check_ks(ks: Sequence[int]) -> list[int]:
    bad = [k for k in ks if isinstance(k, bool) or not isinstance(k, int) or k < 1]
    if bad or not ks:
        raise ValueError(f"k must be a list of positive integers, got {list(ks)!r}")
    return sorted(set(ks))


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
