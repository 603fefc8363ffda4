"""Scoring: execution records to per-problem scores, pass@k and the report files.

Scores are percentages (0-100), as the paper reports them. A problem is one
(problem, instruction kind) pair, as in the harness, where each results file is
one problem. As in the harness's ``benchmark/pass_k.py``, every sample counts in
``n`` and every outcome but ``pass`` is a failure (the estimator and ExcessCode:
``harness.py``; the tables: ``frames.py``; ``summary.md`` and the chart: ``summary.py``).

Two pass rules stand side by side: *official* (exit status 0, as the harness; the
headline) and *strict* (exit status 0 and ``tests_finished``: the tests reached
their end). Samples that pass officially but not strictly are listed, and their
target is flagged. Problems that the preflight left out before generation (their
reference program fails in this environment) are named in every table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from editforge.evaluation.frames import harness_frame, per_problem_frame, summary_frame
from editforge.evaluation.harness import excess_fraction
from editforge.evaluation.summary import plot_pass_at_1, summary_markdown
from editforge.records import STYLES, TYPE_NAMES, PathLike, RecordError, read_jsonl
from editforge.sandbox import OUTCOMES

PASS = "pass"

# The fields of an execution record that scoring reads, with their JSON types.
_SCORED: dict[str, tuple[type, ...]] = {
    "target": (str,),
    "problem_id": (int, str),
    "full_name": (str,),
    "kind": (str,),
    "change_kind": (str, type(None)),
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


@dataclass(frozen=True)
class Exclusion:
    """A problem the preflight left out before generation."""

    problem_id: int | str
    full_name: str
    reason: str


@dataclass(frozen=True)
class ProblemScore:
    """The samples of one (target, problem, instruction kind)."""

    target: str
    problem_id: int | str
    full_name: str
    kind: str
    change_kind: str | None  # CanItEdit's change kind; None for other benchmarks
    n: int  # every sample
    c: int  # official passes
    c_strict: int  # strict passes
    well_formed: int  # samples whose answer gave a program
    c_retry: int | None  # official passes on the first or the second try (None: no second try)
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


def read_preflight(path: PathLike) -> tuple[Exclusion, ...]:
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
        for key, kinds in (("problem_id", (int, str)), ("full_name", (str,)), ("reason", (str,))):
            if key not in entry:
                raise RecordError(f"{where} lacks {key}")
            if not isinstance(entry[key], kinds) or isinstance(entry[key], bool):
                names = " or ".join(TYPE_NAMES[kind] for kind in kinds)
                raise RecordError(f"{where}: {key} must be {names}, got {entry[key]!r}")
        exclusions.append(Exclusion(entry["problem_id"], entry["full_name"], entry["reason"]))
    return tuple(exclusions)


def score(
    executions: Iterable[Mapping[str, Any]],
    problems: Sequence[Mapping[str, Any]],
    ks: Sequence[int] = (1,),
    excluded: Sequence[Exclusion] = (),
    kinds: Sequence[str] = STYLES,
) -> Scores:
    """Per-problem and per-split scores of execution records.

    ``problems``: the benchmark problems (CanItEdit's ``before`` and ``tests`` give
    ExcessCode). Splits: each instruction kind of ``kinds`` (CanItEdit's: lazy and
    descriptive), overall (all problems of every kind) and, for CanItEdit, each
    change kind. ``excluded``: the preflight's exclusions; an excluded problem must
    have no records.
    """
    named = ((f"execution record {number}", record) for number, record in enumerate(executions, start=1))
    return _score(named, problems, ks, excluded, kinds, None)


def run_score(
    execution_paths: Sequence[PathLike],
    problems: Sequence[Mapping[str, Any]],
    out_dir: PathLike,
    ks: Sequence[int],
    preflight: PathLike | None = None,
) -> Scores:
    """Score CanItEdit's execution files (one per target) and write per_problem.csv,
    summary.csv, summary.md, harness_pass_k.csv and pass_at_1.png to ``out_dir``.

    ``preflight``: the preflight's ``preflight.json``, where there is one.
    """
    ks = check_ks([1, *ks])
    excluded = read_preflight(preflight) if preflight is not None else ()
    scores = score_files(execution_paths, problems, ks, excluded)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scores.per_problem.write_csv(out / "per_problem.csv")
    scores.summary.write_csv(out / "summary.csv")
    scores.harness.write_csv(out / "harness_pass_k.csv")
    (out / "summary.md").write_text(summary_markdown(scores, ks), encoding="utf-8")
    plot_pass_at_1(scores.summary, out / "pass_at_1.png")
    return scores


def score_files(
    execution_paths: Sequence[PathLike],
    problems: Sequence[Mapping[str, Any]],
    ks: Sequence[int],
    excluded: Sequence[Exclusion] = (),
    kinds: Sequence[str] = STYLES,
    retry_paths: Sequence[PathLike] | None = None,
) -> Scores:
    """``score`` of the records of execution files (one per target), errors naming file and record;
    ``retry_paths``: the second try of each sample whose first failed (Aider's pass_rate_2), where there was one."""
    retries = None if retry_paths is None else named_records(retry_paths)
    return _score(named_records(execution_paths), problems, ks, excluded, kinds, retries)


def named_records(paths: Sequence[PathLike]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every record of ``paths``, each named by its file and number (for messages)."""
    for path in paths:
        for number, record in enumerate(read_jsonl(path), start=1):
            yield f"{path}: record {number}", record


@dataclass(frozen=True)
class _Sample:
    target: str
    problem_id: int | str
    full_name: str
    kind: str
    change_kind: str | None
    sample_index: int
    official: bool
    strict: bool
    well_formed: bool
    excess: float | None  # set for official passes with coverage
    uncovered: int | None  # 100 - coverage, likewise
    isolation: str  # the sandbox's description of the isolation the sample ran under


def _score(
    records: Iterable[tuple[str, Mapping[str, Any]]],
    problems: Sequence[Mapping[str, Any]],
    ks: Sequence[int],
    excluded: Sequence[Exclusion],
    kinds: Sequence[str],
    retries: Iterable[tuple[str, Mapping[str, Any]]] | None,
) -> Scores:
    ks = check_ks(ks)
    by_id = {problem["id"]: problem for problem in problems}
    _check_exclusions(excluded, by_id)
    excluded_ids = {exclusion.problem_id for exclusion in excluded}
    groups: dict[tuple[str, int | str, str], list[_Sample]] = {}
    for where, record in records:
        sample = _sample(record, where, by_id, excluded_ids, kinds)
        groups.setdefault((sample.target, sample.problem_id, sample.kind), []).append(sample)
    if not groups:
        raise ValueError("no execution records to score")
    second = None if retries is None else _second_passes(retries, groups, by_id, excluded_ids, kinds)
    kind_order: dict[str, int] = {kind: i for i, kind in enumerate(kinds)}
    order = _problem_order(by_id)
    excluded = tuple(sorted(excluded, key=lambda e: order[e.problem_id]))
    keys = sorted(groups, key=lambda key: (key[0], order[key[1]], kind_order[key[2]]))
    scored = [_problem_score(groups[key], None if second is None else second.get(key, 0)) for key in keys]
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
        per_problem=per_problem_frame(scored, ks),
        summary=summary_frame(
            scored, ks, excluded, by_id, {t: "; ".join(sorted(i)) for t, i in isolation.items()}, kinds
        ),
        harness=harness_frame(scored, ks, kinds),
        early_exits=pl.DataFrame(
            early,
            schema={"target": pl.String, "problem_id": _id_type(by_id), "full_name": pl.String, "kind": pl.String,
                    "sample_index": pl.Int64},
        ),
        excluded=excluded,
    )


def _id_type(by_id: Mapping[Any, Any]) -> type[pl.DataType]:
    """Problem ids as the benchmark has them: CanItEdit's are integers, the others' strings."""
    return pl.Int64 if all(isinstance(i, int) for i in by_id) else pl.String


def _problem_order(by_id: Mapping[Any, Any]) -> dict[Any, int]:
    """Each problem's place: CanItEdit's by id, the others' in the benchmark's order (as loaded)."""
    ids = sorted(by_id) if all(isinstance(i, int) for i in by_id) else list(by_id)
    return {problem_id: place for place, problem_id in enumerate(ids)}


def full_name(problem: Mapping[str, Any]) -> str:
    """How tables name a problem: CanItEdit's ``full_name`` (``<id>_<name>``), else its id."""
    return str(problem.get("full_name", problem["id"]))


def _second_passes(
    retries: Iterable[tuple[str, Mapping[str, Any]]],
    groups: Mapping[tuple[str, int | str, str], Sequence[_Sample]],
    by_id: Mapping[Any, Mapping[str, Any]],
    excluded_ids: set[Any],
    kinds: Sequence[str],
) -> dict[tuple[str, int | str, str], int]:
    """Per (target, problem, kind): first-try passes plus the second tries that pass. A second try
    belongs to a sample whose first try failed."""
    failed = {(s.target, s.problem_id, s.kind, s.sample_index) for group in groups.values() for s in group
              if not s.official}
    counts = {key: sum(s.official for s in group) for key, group in groups.items()}
    seen: set[tuple[str, int | str, str, int]] = set()
    for where, record in retries:
        sample = _sample(record, where, by_id, excluded_ids, kinds)
        key = (sample.target, sample.problem_id, sample.kind, sample.sample_index)
        if key not in failed or key in seen:
            raise RecordError(f"{where} is a second try of {sample.full_name} ({sample.kind}) sample "
                              f"{sample.sample_index}, whose first try did not fail once")
        seen.add(key)
        counts[key[:3]] += sample.official
    return counts


def _sample(
    record: Mapping[str, Any],
    where: str,
    by_id: Mapping[Any, Mapping[str, Any]],
    excluded_ids: set[Any],
    kinds: Sequence[str],
) -> _Sample:
    missing = [key for key in _SCORED if key not in record]
    if missing:
        newer = set(missing) & set(_NEWER)
        hint = " (written by an older version: run eval_execute again)" if newer else ""
        raise RecordError(f"{where} lacks {', '.join(missing)}{hint}")
    for key, types in _SCORED.items():
        value = record[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise RecordError(f"{where}: {key} must be {' or '.join(TYPE_NAMES[t] for t in types)}, got {value!r}")
    outcome, coverage, lines = record["outcome"], record["coverage"], record["coverage_missing"]
    if outcome not in OUTCOMES:
        raise RecordError(f"{where} has outcome {outcome!r}, expected one of {', '.join(OUTCOMES)}")
    if record["kind"] not in kinds:
        raise RecordError(f"{where} has kind {record['kind']!r}, expected one of {', '.join(kinds)}")
    problem = by_id.get(record["problem_id"])
    if problem is None or full_name(problem) != record["full_name"]:
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
    before, tests = problem.get("before", ""), problem.get("tests", "")
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
        # Plug-in records say whether the answer gave a program; a CanItEdit answer does when its code is not empty.
        well_formed=bool(record.get("well_formed", record["completion"].strip())),
        excess=excess,
        uncovered=None if coverage is None else 100 - coverage,
        isolation=record["isolation"],
    )


def _problem_score(samples: Sequence[_Sample], c_retry: int | None) -> ProblemScore:
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
        well_formed=sum(s.well_formed for s in samples),
        c_retry=c_retry,
        excess=tuple(s.excess for s in samples if s.excess is not None),
        uncovered=tuple(s.uncovered for s in samples if s.uncovered is not None),
    )


def _check_exclusions(excluded: Sequence[Exclusion], by_id: Mapping[Any, Mapping[str, Any]]) -> None:
    seen: set[int | str] = set()
    for exclusion in excluded:
        problem = by_id.get(exclusion.problem_id)
        if problem is None or full_name(problem) != exclusion.full_name:
            raise RecordError(f"the preflight excludes {exclusion.full_name}, which the benchmark file lacks")
        if exclusion.problem_id in seen:
            raise RecordError(f"the preflight excludes {exclusion.full_name} twice")
        seen.add(exclusion.problem_id)


def check_ks(ks: Sequence[int]) -> list[int]:
    bad = [k for k in ks if isinstance(k, bool) or not isinstance(k, int) or k < 1]
    if bad or not ks:
        raise ValueError(f"k must be a list of positive integers, got {list(ks)!r}")
    return sorted(set(ks))


