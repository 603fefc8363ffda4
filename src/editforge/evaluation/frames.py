"""The tables of a scoring run, made from the per-problem scores: one row per
problem (``per_problem.csv``), one per target and split (``summary.csv``), and the
rows the harness's ``pass_k.py`` prints (``harness_pass_k.csv``).

ExcessCode and MeanMedianCoverage come from the samples that passed and have a
coverage measurement (see ``harness.excess_fraction``), over the problems that
have one, as in the harness.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from editforge.evaluation.benchmark import CHANGE_KINDS
from editforge.evaluation.harness import pass_at_k
from editforge.records import STYLES

if TYPE_CHECKING:
    from editforge.evaluation.scoring import Exclusion, ProblemScore



def splits(kinds: Sequence[str]) -> tuple[str, ...]:
    """The splits a score is reported by: each instruction kind, overall, then CanItEdit's change kinds
    (only CanItEdit's problems have one, so other benchmarks have no rows for them)."""
    return (*kinds, "overall", *CHANGE_KINDS)


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


def per_problem_frame(scored: Sequence[ProblemScore], ks: Sequence[int]) -> pl.DataFrame:
    """One row per problem (``per_problem.csv``): its counts, pass@k by both rules and its ExcessCode."""
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
            "well_formed": p.well_formed,
        }
        row |= {f"pass@{k}": 100 * pass_at_k(p.n, p.c, k) for k in ks}
        row |= {f"strict_pass@{k}": 100 * pass_at_k(p.n, p.c_strict, k) for k in ks}
        mean = p.excess_mean
        row |= {
            "covered": len(p.excess),
            "excess_code": None if mean is None else 100 * mean,
            "median_uncovered": p.uncovered_median,
        }
        if p.c_retry is not None:
            row["c_retry"] = p.c_retry
        rows.append(row)
    retried = any(p.c_retry is not None for p in scored)
    return pl.DataFrame(
        rows,
        schema={
            "target": pl.String,
            "problem_id": pl.Int64 if all(isinstance(p.problem_id, int) for p in scored) else pl.String,
            "full_name": pl.String,
            "kind": pl.String,
            "change_kind": pl.String,
            "n": pl.Int64,
            "c": pl.Int64,
            "c_strict": pl.Int64,
            "well_formed": pl.Int64,
            **{f"{rule}pass@{k}": pl.Float64 for rule in ("", "strict_") for k in ks},
            "covered": pl.Int64,
            "excess_code": pl.Float64,
            "median_uncovered": pl.Float64,
            **({"c_retry": pl.Int64} if retried else {}),
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


def _split(scored: Sequence[ProblemScore], split: str, kinds: Sequence[str]) -> list[ProblemScore]:
    if split in kinds:
        return [p for p in scored if p.kind == split]
    if split == "overall":
        return list(scored)
    return [p for p in scored if p.change_kind == split]


def _by_target(
    scored: Sequence[ProblemScore], kinds: Sequence[str]
) -> Iterable[tuple[str, str, list[ProblemScore]]]:
    """(target, split, its problems) for every split that has problems."""
    for target in dict.fromkeys(p.target for p in scored):
        mine = [p for p in scored if p.target == target]
        for split in splits(kinds):
            part = _split(mine, split, kinds)
            if part:
                yield target, split, part


def _mean_pass(part: Sequence[ProblemScore], k: int, strict: bool) -> float:
    return float(np.mean([pass_at_k(p.n, p.c_strict if strict else p.c, k) for p in part])) * 100


def summary_frame(
    scored: Sequence[ProblemScore],
    ks: Sequence[int],
    excluded: Sequence[Exclusion],
    by_id: Mapping[Any, Mapping[str, Any]],
    isolation: Mapping[str, str],
    kinds: Sequence[str] = STYLES,
) -> pl.DataFrame:
    """One row per target and split that has problems (``summary.csv``), with the problems the
    preflight excluded from that split (``excluded``, in the benchmark's order) and the isolation the
    target's programs ran under. Where samples had a second try, ``pass_rate_2``: pass@1 counting a
    pass on either try."""
    retried = any(p.c_retry is not None for p in scored)
    rows = []
    for target, split, part in _by_target(scored, kinds):
        excess = _excess(part)
        names = [
            e.full_name
            for e in excluded
            if split in (*kinds, "overall") or by_id[e.problem_id].get("taxonomy", {}).get("change_kind") == split
        ]
        rows.append({
            "target": target,
            "split": split,
            "problems": len(part),
            "samples": sum(p.n for p in part),
            "well_formed": sum(p.well_formed for p in part),
            **{f"pass@{k}": _mean_pass(part, k, strict=False) for k in ks},
            **{f"strict_pass@{k}": _mean_pass(part, k, strict=True) for k in ks},
            "early_exits": sum(p.c - p.c_strict for p in part),
            "covered_problems": excess.problems,
            "excess_code": excess.excess_code,
            "excess_code_se": excess.excess_code_se,
            "mean_median_coverage": excess.mean_median_coverage,
            "excluded": "; ".join(names) or None,
            "isolation": isolation[target],
            **({"pass_rate_2": _mean_retry(part)} if retried else {}),
        })
    return pl.DataFrame(
        rows,
        schema={
            "target": pl.String,
            "split": pl.String,
            "problems": pl.Int64,
            "samples": pl.Int64,
            "well_formed": pl.Int64,
            **{f"{rule}pass@{k}": pl.Float64 for rule in ("", "strict_") for k in ks},
            "early_exits": pl.Int64,
            "covered_problems": pl.Int64,
            "excess_code": pl.Float64,
            "excess_code_se": pl.Float64,
            "mean_median_coverage": pl.Float64,
            "excluded": pl.String,
            "isolation": pl.String,
            **({"pass_rate_2": pl.Float64} if retried else {}),
        },
    )


def _mean_retry(part: Sequence[ProblemScore]) -> float:
    return float(np.mean([pass_at_k(p.n, p.c_retry or 0, 1) for p in part])) * 100


def harness_frame(scored: Sequence[ProblemScore], ks: Sequence[int], kinds: Sequence[str] = STYLES) -> pl.DataFrame:
    """The rows ``pass_k.py`` prints for each split's folder (named as
    ``separate_results*.sh`` names them), one per k, as strings."""
    rows = []
    for target, split, part in _by_target(scored, kinds):
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
