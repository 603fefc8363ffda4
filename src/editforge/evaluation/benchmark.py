"""Loading, checking and selecting CanItEdit problems (evaluation only: never train on them)."""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypedDict

from editforge.config import BENCHMARK_ENV
from editforge.evaluation.sources import BenchmarkError, benchmark_rows

HF_SPLIT = "test"
TESTS_MARKER = "### START TESTS ###"
CHANGE_KINDS = ("adaptive", "corrective", "perfective")
TEXT_FIELDS = (
    "name",
    "full_name",
    "before",
    "after",
    "tests",
    "instruction_descriptive",
    "instruction_lazy",
)
FIELDS = ("id", *TEXT_FIELDS, "taxonomy")


class Taxonomy(TypedDict):
    change_kind: str  # adaptive, corrective or perfective
    libraries: list[str]
    topic: str


class Problem(TypedDict):
    id: int
    name: str
    full_name: str  # f"{id}_{name}"
    before: str
    after: str
    tests: str  # starts with TESTS_MARKER; appended to the program
    instruction_descriptive: str
    instruction_lazy: str
    taxonomy: Taxonomy


def load_benchmark(source: str) -> list[Problem]:
    """All problems, sorted by id, from a .jsonl/.parquet file or a Hugging Face dataset id.

    The environment variable EDITFORGE_CANITEDIT, when set, replaces ``source``
    (a local copy where the hub is unreachable). Every record is checked; the
    first broken one is named (file line or row, and id) with what is wrong.
    Columns beyond the nine benchmark fields are dropped.
    """
    override = os.environ.get(BENCHMARK_ENV)
    chosen = override or source
    if chosen.endswith((".jsonl", ".parquet")) and not Path(chosen).is_file():
        raise BenchmarkError(f"{chosen}{f' (from {BENCHMARK_ENV})' if override else ''}: benchmark file not found")
    advice = f"set {BENCHMARK_ENV} to a local copy of the benchmark (a .jsonl or .parquet file)"
    rows = benchmark_rows(chosen, HF_SPLIT, advice)
    problems = [check_problem(row, where) for where, row in rows]
    if not problems:
        raise BenchmarkError(f"{chosen}: no problems")
    seen: dict[int, str] = {}
    for (where, _), problem in zip(rows, problems):
        if problem["id"] in seen:
            raise BenchmarkError(f"{where}: id {problem['id']} repeats the id of {seen[problem['id']]}")
        seen[problem["id"]] = where
    return sorted(problems, key=lambda p: p["id"])


def check_problem(row: Any, where: str) -> Problem:
    """``row`` as a Problem, or a BenchmarkError naming ``where`` and the fault."""
    if not isinstance(row, dict):
        raise BenchmarkError(f"{where}: expected an object, got {type(row).__name__}")
    if "id" in row:
        where = f"{where} (id {row['id']!r})"
    missing = [name for name in FIELDS if name not in row]
    if missing:
        raise BenchmarkError(f"{where}: missing field(s) {', '.join(missing)}")
    if isinstance(row["id"], bool) or not isinstance(row["id"], int) or row["id"] < 1:
        raise BenchmarkError(f"{where}: 'id' must be a positive integer, got {row['id']!r}")
    for name in TEXT_FIELDS:
        if not isinstance(row[name], str) or not row[name].strip():
            raise BenchmarkError(f"{where}: '{name}' must be a non-empty string, got {_show(row[name])}")
    if not row["tests"].startswith(TESTS_MARKER):
        raise BenchmarkError(f"{where}: 'tests' must start with {TESTS_MARKER!r}, got {row['tests'][:40]!r}")
    if row["full_name"] != f"{row['id']}_{row['name']}":
        raise BenchmarkError(
            f"{where}: 'full_name' must be '{row['id']}_{row['name']}' (id_name), got {row['full_name']!r}"
        )
    return Problem(
        id=row["id"],
        name=row["name"],
        full_name=row["full_name"],
        before=row["before"],
        after=row["after"],
        tests=row["tests"],
        instruction_descriptive=row["instruction_descriptive"],
        instruction_lazy=row["instruction_lazy"],
        taxonomy=_check_taxonomy(row["taxonomy"], where),
    )


def select_problems(problems: Sequence[Problem], spec: int | Sequence[int] | None) -> list[Problem]:
    """``None``: all; an int N: the first N by id; a list: exactly those ids (in id order)."""
    ordered = sorted(problems, key=lambda p: p["id"])
    if spec is None:
        return ordered
    if isinstance(spec, bool) or isinstance(spec, str):
        raise BenchmarkError(f"problems: expected null, a count or a list of ids, got {spec!r}")
    if isinstance(spec, int):
        if not 1 <= spec <= len(ordered):
            raise BenchmarkError(f"problems: a count must be between 1 and {len(ordered)}, got {spec}")
        return ordered[:spec]
    ids = list(spec)
    bad = [i for i in ids if isinstance(i, bool) or not isinstance(i, int)]
    if bad or not ids:
        raise BenchmarkError(f"problems: a list must hold problem ids (integers), got {ids!r}")
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise BenchmarkError(f"problems: ids listed more than once: {repeated}")
    known = {p["id"] for p in ordered}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise BenchmarkError(f"problems: no problem with id(s) {unknown}")
    wanted = set(ids)
    return [p for p in ordered if p["id"] in wanted]


def required_modules(problems: Iterable[Problem]) -> frozenset[str]:
    """Top-level third-party modules the reference programs and tests import.

    A program that stops on a missing one of these failed because of the
    environment; a missing module outside this set is the program's own fault.
    """
    found: set[str] = set()
    for problem in problems:
        tree = ast.parse(problem["after"] + "\n" + problem["tests"])
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return frozenset(name for name in found if name not in sys.stdlib_module_names and name != "__future__")


def _check_taxonomy(value: Any, where: str) -> Taxonomy:
    if not isinstance(value, dict):
        raise BenchmarkError(f"{where}: 'taxonomy' must be an object, got {_show(value)}")
    kind = value.get("change_kind")
    if kind not in CHANGE_KINDS:
        raise BenchmarkError(f"{where}: 'taxonomy.change_kind' must be one of {', '.join(CHANGE_KINDS)}, got {kind!r}")
    libraries = value.get("libraries")
    if not isinstance(libraries, list) or not all(isinstance(name, str) for name in libraries):
        raise BenchmarkError(f"{where}: 'taxonomy.libraries' must be a list of strings, got {_show(libraries)}")
    if not isinstance(value.get("topic"), str):
        raise BenchmarkError(f"{where}: 'taxonomy.topic' must be a string, got {_show(value.get('topic'))}")
    return Taxonomy(change_kind=kind, libraries=list(libraries), topic=value["topic"])


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
