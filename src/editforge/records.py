"""The records written between stages, and how they are read and written.

Every stage file is JSON Lines: one JSON object per sample, UTF-8, in a stable
order. Records that a stage drops stay in its output with ``status: "dropped"``
and a ``reason`` naming the check that dropped them, so every sample can be
followed from seed to score. ``docs/records.md`` describes each file.
"""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from collections.abc import Container, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Literal, NotRequired, TypedDict

PathLike = str | os.PathLike[str]  # a path argument: a string or a path object
# What an error calls a value's expected type, in the words of a YAML or JSON file.
TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    type(None): "null",
}

Status = Literal["ok", "dropped"]
Style = Literal["lazy", "descriptive"]
STYLES: tuple[Style, Style] = ("lazy", "descriptive")


class Snippet(TypedDict):
    source: str  # the configured source name
    repository: str  # where the source's code comes from (its `repository` setting, a path, a dataset)
    path: str  # file path inside the source
    start_line: int  # 1-based, inclusive
    end_line: int
    kind: str  # "function", "class", "block", "window", ...
    licence: str | None  # SPDX header of the file, else its package's metadata or its row; None: not stated
    sha256: str  # of text
    text: str


class PairRecord(TypedDict):
    """results/seeds/pairs/{shard}.jsonl: one synthesis prompt's seed material."""

    id: str
    shard: str
    snippets: list[Snippet]  # two snippets from two different files
    fewshot_id: str  # which curated one-shot example the prompt shows


class CommitSeed(TypedDict):
    """The commit a commit record is about (``kind: commits``)."""

    source: str  # the configured source name
    row: str  # where in the source: "row 17", or "<file> row 17" for a source of several files
    commit: str  # the commit hash; "" when the source has none
    path: str  # the changed file's path (old_file/new_file); "" when the source has none
    message: str  # the commit message, stripped
    old_code: str  # the file before the commit: "\n" newlines, no trailing blank space
    new_code: str  # the file after the commit, likewise
    changed_lines: int  # as filtering counts them (pycode.diff.diff_stats): a replaced line once


class CommitRecord(TypedDict):
    """results/seeds/pairs/{shard}.jsonl with ``kind: commits``: one commit to rewrite into instructions."""

    id: str  # "c000017"
    shard: str
    kind: Literal["commit"]  # pair records have no ``kind``
    commit: CommitSeed
    fewshot_id: str  # the curated example whose two instructions the prompt shows


class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int


class Turn(TypedDict):
    """One model answer inside the synthesis dialogue."""

    text: str
    finish_reason: str | None
    usage: Usage
    error: str | None  # the last error after retries, else None


class DialogueRecord(TypedDict):
    """results/synthesis/{model}/round{1,2}/{shard}.jsonl."""

    id: str
    shard: str
    model: str
    pair: PairRecord | CommitRecord  # the seed record the dialogue started from
    messages: list[dict[str, str]]  # the conversation as sent, answers included
    round1: dict[str, Turn]  # section name -> answer
    round2: NotRequired[dict[str, Turn]]
    status: Status
    reason: NotRequired[str]


class TripletRecord(TypedDict):
    """results/triplets/{model}/{shard}.jsonl and the filtering stage's files."""

    id: str
    model: str
    shard: str
    pair_id: str
    fewshot_id: str
    pre_code: str
    post_code: str
    instruction_lazy: str
    instruction_descriptive: str
    status: Status
    reason: NotRequired[str]
    kind: NotRequired[Literal["commit"]]  # from a real commit (pre/post code are the commit's)
    change_kind: NotRequired[str | None]  # as labelled by the generated-tests round
    generated_tests: NotRequired[str | None]  # the tests that round wrote
    commit: NotRequired[str]  # that commit's hash, "" when the source has none
    duplicate_of: NotRequired[str]  # the kept triplet this one duplicates
    contaminated_by: NotRequired[str]  # the benchmark problem it overlaps


class TrainingRecord(TypedDict):
    """results/dataset/train.jsonl: one chat-format training sample."""

    id: str
    triplet_id: str
    model: str
    style: Style
    pre_code: str
    post_code: str
    instruction: str
    messages: list[dict[str, str]]  # system, user, assistant (edit_format.py)
    topic: NotRequired[int]  # the dominant topic it was balanced under; -1: none


class CompletionRecord(TypedDict):
    """results/evaluation/{benchmark}/{target}/completions.jsonl: one sampled edit."""

    target: str
    problem_id: int | str  # CanItEdit's ids are integers, the other benchmarks' strings
    full_name: str  # CanItEdit's <id>_<name>; the id elsewhere
    kind: str  # the instruction kind: CanItEdit's lazy or descriptive, a plug-in benchmark's own
    change_kind: str | None  # CanItEdit's change kind; null for the other benchmarks
    sample_index: int
    completion: str  # CanItEdit: the program after post-processing; a plug-in benchmark: the answer
    raw: str  # what the model wrote
    finish_reason: str | None
    error: str | None


class ExecutionRecord(CompletionRecord):
    """results/evaluation/{benchmark}/{target}/executions.jsonl: a completion's test run.

    CanItEdit's program is ``completion + "\\n" + tests``, as in its harness; a plug-in benchmark's is the
    one its ``program`` builds from the answer.
    """

    outcome: Literal["pass", "fail", "timeout", "error"]  # "pass": exit status 0 (the official rule)
    exit_code: int | None
    stderr_tail: str
    duration_s: float
    tests_finished: bool  # the tests ran to their end (the strict rule: outcome "pass" and this)
    # As the harness's coverage pass, null unless the outcome is "pass" and coverage ran:
    # the Cover column (%) of `coverage report` for the program run with its tests, and
    # the line numbers its Missing column names (ranges expanded; lines of the tests too).
    coverage: int | None
    coverage_missing: list[int] | None
    # The isolation in force (Isolation.describe: mechanism, namespaces, limits); "none (NOT isolated) ..."
    # where the config asked for `sandbox: none`.
    isolation: str
    well_formed: NotRequired[bool]  # plug-in benchmarks: the answer gave a program (else it is not run: a fail)


class RecordError(ValueError):
    """A stage file holds something that is not a valid record."""


class LineTooLong(ValueError):
    """A JSON Lines line longer than its reader allows, left unparsed."""


def _open_jsonl(path: PathLike, binary: bool) -> IO[Any]:
    if not binary:
        return open(path, encoding="utf-8")
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")


def jsonl_lines(path: PathLike, *, binary: bool = False) -> Iterator[tuple[int, Any]]:
    """The non-blank lines of a JSON Lines file as (line number, line), numbered from 1.

    Text is read as UTF-8; ``binary`` reads bytes instead, a ``.gz`` file
    decompressed (seed tables), and leaves decoding to the JSON parser.
    """
    with _open_jsonl(path, binary) as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def iter_jsonl_lines(
    path: PathLike, *, binary: bool = False, wanted: Container[int] | None = None, max_length: int | None = None
) -> Iterator[tuple[int, Any]]:
    """Each non-blank line of a JSON Lines file as (line number, its value or what is wrong with it).

    The one line loop of every JSON Lines reader; each caller keeps its own
    policy for a bad line. In place of a value comes the parser's error
    (``json.JSONDecodeError``, or ``UnicodeDecodeError`` for bytes that are not
    text), or ``LineTooLong``, unparsed, for a line over ``max_length`` (bytes
    or characters). ``wanted``: only those line numbers.
    """
    for number, line in jsonl_lines(path, binary=binary):
        if wanted is not None and number not in wanted:
            continue
        if max_length is not None and len(line) > max_length:
            yield number, LineTooLong(f"{len(line)} > {max_length}")
            continue
        try:
            value = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            value = err
        yield number, value


def read_jsonl(path: PathLike) -> Iterator[dict[str, Any]]:
    """Yield the objects of a JSON Lines file; a broken line names file and line."""
    for number, value in iter_jsonl_lines(path):
        if isinstance(value, json.JSONDecodeError):
            raise RecordError(f"{path}:{number}: not JSON ({value.msg})")
        if not isinstance(value, dict):
            raise RecordError(f"{path}:{number}: expected a JSON object, got {type(value).__name__}")
        yield value


def parquet_shape(path: PathLike) -> tuple[list[str], int]:
    """The column names and the row count of a parquet file, from its metadata."""
    import polars as pl

    scan = pl.scan_parquet(path)
    return list(scan.collect_schema()), int(scan.select(pl.len()).collect().item())


def read_parquet(
    path: PathLike, columns: Sequence[str] | None = None, wanted: Container[int] | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The rows of a parquet file as (row number from 1, row): only ``columns`` (default: all), only the
    rows ``wanted``. The one parquet reader; the file is read when this is called, the rows made as they
    are iterated."""
    import polars as pl

    scan = pl.scan_parquet(path)
    frame = (scan if columns is None else scan.select(list(columns))).collect()
    rows = enumerate(frame.iter_rows(named=True), start=1)
    return ((number, row) for number, row in rows if wanted is None or number in wanted)


def write_jsonl(path: PathLike, records: Iterable[dict[str, Any]]) -> int:
    """Write records atomically (a reader never sees half a file); return the count."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    count = 0
    with open(partial, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    os.replace(partial, target)
    return count


def write_json(path: PathLike, value: Any) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(partial, target)


def drop(record: dict[str, Any], reason: str) -> dict[str, Any]:
    """Mark a record as dropped by ``reason`` (keeps the first reason given)."""
    if record.get("status") != "dropped":
        record["status"] = "dropped"
        record["reason"] = reason
    return record


def status_counts(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Counts of kept records and of drops by reason: {"ok": n, "<reason>": m, ...}."""
    counts: Counter[str] = Counter()
    for record in records:
        counts["ok" if record.get("status") == "ok" else str(record.get("reason", "unknown"))] += 1
    return dict(sorted(counts.items()))
