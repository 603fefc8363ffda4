"""Dialogue record → triplet, and the parse stage (``run_parse``).

A commit dialogue (its ``pair`` is a commit record, ``kind: "commit"``) has one
answer holding only ``[Descriptive]`` and ``[Lazy]`` (``parse_instructions``,
read as in a round-1 answer); its triplet takes ``pre_code``/``post_code`` from
the commit and adds ``kind: "commit"`` and ``commit`` (the hash, or "").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from editforge.parsing.answers import (
    Instructions,
    ParseFailure,
    Round1Parsed,
    Unreasonable,
    parse_instructions,
    parse_round1,
    parse_round2,
)
from editforge.records import PathLike, RecordError, Turn, drop, read_jsonl, status_counts, write_json, write_jsonl

# The drop reasons synthesis gives a record whose call failed after its retries.
ROUND1_ERROR = "round1_error"
ROUND2_ERROR = "round2_error"
COMMIT_KIND = "commit"  # the ``kind`` of a commit seed record (pair records have none)


def _answers(record: dict[str, Any]) -> list[str]:
    return [m.get("content", "") for m in record.get("messages", []) if m.get("role") == "assistant"]


def _round_truncated(turns: dict[str, Turn]) -> tuple[bool, bool]:
    """(cut off, cut off in a way the text cannot show).

    A free-form answer (one ``answer`` turn) that hit the limit may still hold
    every section, which the text parser decides. A section produced by its own
    call (sectioned mode) that hit the limit is incomplete whatever the text.
    """
    cut = [t.get("finish_reason") == "length" for t in turns.values()]
    return any(cut), any(cut) and "answer" not in turns


def parse_round1_record(record: dict[str, Any]) -> Round1Parsed | ParseFailure:
    """Round 1 of a dialogue record, parsed: what synthesis checks before round 2."""
    return _parse_first_round(record, "missing_program_before", parse_round1)


def parse_commit_record(record: dict[str, Any]) -> Instructions | ParseFailure:
    """The answer of a commit dialogue record, parsed."""
    return _parse_first_round(record, "missing_descriptive", parse_instructions)


_Parsed = TypeVar("_Parsed")


def _parse_first_round(
    record: dict[str, Any], missing: str, parse: Callable[[str, bool], _Parsed | ParseFailure]
) -> _Parsed | ParseFailure:
    """The first round's answer through ``parse``, unless a call failed, nothing came
    back (``missing``) or a section was cut before its end."""
    turns: dict[str, Turn] = record.get("round1") or {}
    if record.get("reason") == ROUND1_ERROR or any(t.get("error") for t in turns.values()):
        return ParseFailure("call_error")
    answers = _answers(record)
    if not turns or not answers:
        return ParseFailure(missing)
    truncated, incomplete = _round_truncated(turns)
    if incomplete:
        return ParseFailure("truncated")
    return parse(answers[0], truncated)


def _round2_outcome(record: dict[str, Any]) -> str | Unreasonable | ParseFailure:
    turns: dict[str, Turn] = record.get("round2") or {}
    if record.get("reason") == ROUND2_ERROR or any(t.get("error") for t in turns.values()):
        return ParseFailure("call_error")
    answers = _answers(record)
    if not turns or len(answers) < 2:
        return ParseFailure("missing_program_after")
    truncated, incomplete = _round_truncated(turns)
    if incomplete:
        return ParseFailure("truncated")
    return parse_round2(answers[1], truncated)


def triplet_from_dialogue(record: dict[str, Any]) -> dict[str, Any]:
    """The TripletRecord of one dialogue record; ``status`` says whether it parsed.

    A drop keeps what did parse (a round-2 failure still has the round-1 parts).
    """
    for key in ("id", "model", "shard", "pair"):
        if key not in record:
            raise RecordError(f"dialogue record {record.get('id', '?')}: missing {key!r}")
    triplet: dict[str, Any] = {
        "id": f"{record['model']}:{record['id']}",
        "model": record["model"],
        "shard": record["shard"],
        "pair_id": record["id"],
        "fewshot_id": record["pair"].get("fewshot_id", ""),
        "pre_code": "",
        "post_code": "",
        "instruction_lazy": "",
        "instruction_descriptive": "",
        "status": "ok",
    }
    if record["pair"].get("kind") == COMMIT_KIND:
        return _commit_triplet(record, triplet)
    first = parse_round1_record(record)
    if isinstance(first, ParseFailure):
        return drop(triplet, first.reason)
    triplet.update(
        pre_code=first.program_before, instruction_descriptive=first.descriptive, instruction_lazy=first.lazy
    )
    second = _round2_outcome(record)
    if isinstance(second, Unreasonable):
        return drop(triplet, "unreasonable")
    if isinstance(second, ParseFailure):
        return drop(triplet, second.reason)
    triplet["post_code"] = second
    return triplet


def _commit_triplet(record: dict[str, Any], triplet: dict[str, Any]) -> dict[str, Any]:
    """A commit dialogue's triplet: the commit's code and the parsed instructions.

    It carries ``kind: "commit"`` and the commit's hash (``commit``, "" when
    unknown); the code is filled in even when the answer is dropped.
    """
    info = record["pair"].get("commit")
    if not isinstance(info, dict) or not all(isinstance(info.get(k), str) for k in ("old_code", "new_code")):
        raise RecordError(f"dialogue record {record['id']}: commit record without 'commit' code")
    triplet.update(kind=COMMIT_KIND, commit=info.get("commit") or "")
    triplet.update(pre_code=info["old_code"], post_code=info["new_code"])
    parsed = parse_commit_record(record)
    if isinstance(parsed, ParseFailure):
        return drop(triplet, parsed.reason)
    triplet.update(instruction_descriptive=parsed.descriptive, instruction_lazy=parsed.lazy)
    return triplet


def run_parse(round2_path: PathLike, out_path: PathLike, counts_path: PathLike) -> dict[str, int]:
    """Parse every dialogue of a round-2 file; write the triplets and the counts per outcome."""
    triplets: list[dict[str, Any]] = []
    for number, record in enumerate(read_jsonl(round2_path), start=1):
        try:
            triplets.append(triplet_from_dialogue(record))
        except RecordError as err:
            raise RecordError(f"{round2_path}: record {number}: {err}") from None
    write_jsonl(out_path, triplets)
    counts = status_counts(triplets)
    write_json(counts_path, counts)
    return counts
