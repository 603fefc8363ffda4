"""Whole dialogue records into triplets: decided by the turns and the text; commit dialogues."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from editforge.parsing import run_parse
from editforge.records import RecordError, read_jsonl

PROGRAM = "def add(a, b):\n    return a - b"
AFTER = "def add(a, b):\n    return a + b"
DESC = "Fix `add` so that it returns the sum `a + b` instead of the difference."
LAZY = "add() subtracts, make it add."


def dialogue(
    round1: dict[str, tuple[str, str]],
    answer1: str,
    round2: dict[str, tuple[str, str]] | None = None,
    answer2: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """A dialogue record; turns given as section -> (text, finish_reason)."""

    def turns(spec: dict[str, tuple[str, str]]) -> dict[str, Any]:
        return {
            k: {"text": t, "finish_reason": f, "usage": {"prompt_tokens": 1, "completion_tokens": 1}, "error": None}
            for k, (t, f) in spec.items()
        }

    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": answer1},
    ]
    record = {
        "id": "p000001",
        "shard": "000",
        "model": "m",
        "pair": {"fewshot_id": "fs"},
        "messages": messages,
        "round1": turns(round1),
        "status": "ok",
        **extra,
    }
    if round2 is not None:
        record["round2"] = turns(round2)
        messages += [{"role": "user", "content": "u2"}, {"role": "assistant", "content": answer2}]
    return record


FULL = f"[Program Before Edit]\n```python\n{PROGRAM}\n```\n\n[Descriptive]\n{DESC}\n\n[Lazy]\n{LAZY}"
AFTER_ANSWER = f"[Program After Edit]\n```python\n{AFTER}\n```"
SECTIONS = {"program_before": ("", "stop"), "descriptive": ("", "stop"), "lazy": ("", "stop")}


def test_run_parse_decides_by_turns_and_text(tmp_path: Path) -> None:
    records = [
        dialogue({"answer": ("", "stop")}, FULL, {"answer": ("", "stop")}, AFTER_ANSWER),
        # a free-form answer cut off after every section was complete is kept
        dialogue({"answer": ("", "length")}, FULL + "\n\nNow the edit:", {"answer": ("", "stop")}, AFTER_ANSWER),
        # a section call that hit the limit is incomplete, however the text looks
        dialogue({**SECTIONS, "lazy": ("", "length")}, FULL, {"program_after": ("", "stop")}, AFTER_ANSWER),
        dialogue(SECTIONS, FULL, {"program_after": ("", "length")}, AFTER_ANSWER),
        dialogue({"answer": ("", "stop")}, FULL, {"answer": ("", "stop")}, "<UNREASONABLE>"),
        dialogue({"answer": ("", "stop")}, FULL, {"answer": ("", None)}, "", status="dropped", reason="round2_error"),
        dialogue({"answer": ("", None)}, "", status="dropped", reason="round1_error"),
        dialogue({"answer": ("", "stop")}, "No.", None),
    ]
    source = tmp_path / "r2.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    counts = run_parse(source, tmp_path / "t.jsonl", tmp_path / "c.json")
    triplets = list(read_jsonl(tmp_path / "t.jsonl"))
    assert [t.get("reason") for t in triplets] == [
        None,
        None,
        "truncated",
        "truncated",
        "unreasonable",
        "call_error",
        "call_error",
        "missing_program_before",
    ]
    assert (
        counts
        == json.loads((tmp_path / "c.json").read_text())
        == {
            "call_error": 2,
            "missing_program_before": 1,
            "ok": 2,
            "truncated": 2,
            "unreasonable": 1,
        }
    )
    assert triplets[0] == {
        "id": "m:p000001",
        "model": "m",
        "shard": "000",
        "pair_id": "p000001",
        "fewshot_id": "fs",
        "pre_code": PROGRAM,
        "post_code": AFTER,
        "instruction_lazy": LAZY,
        "instruction_descriptive": DESC,
        "status": "ok",
    }
    assert triplets[4]["pre_code"] == PROGRAM and triplets[4]["post_code"] == ""


def test_run_parse_rejects_records_that_are_not_dialogues(tmp_path: Path) -> None:
    source = tmp_path / "r2.jsonl"
    source.write_text(json.dumps({"id": "p1", "model": "m"}) + "\n")
    with pytest.raises(RecordError, match="record 1: .*missing 'shard'"):
        run_parse(source, tmp_path / "t.jsonl", tmp_path / "c.json")
    source.write_text("{broken\n")
    with pytest.raises(RecordError, match="not JSON"):
        run_parse(source, tmp_path / "t.jsonl", tmp_path / "c.json")


def commit_dialogue(turns: dict[str, tuple[str, str]], answer: str, **extra: Any) -> dict[str, Any]:
    record = dialogue(turns, answer, **extra)
    record["id"] = "c000001"
    record["pair"] = {
        "id": "c000001",
        "shard": "000",
        "kind": "commit",
        "commit": {"commit": "abc123", "path": "m.py", "message": "fix add", "old_code": PROGRAM, "new_code": AFTER},
        "fewshot_id": "fs",
    }
    return record


def test_run_parse_commit_records(tmp_path: Path) -> None:
    text = f"[Descriptive]\n{DESC}\n\n[Lazy]\n{LAZY}"
    records = [
        commit_dialogue({"answer": ("", "stop")}, text),
        commit_dialogue({"descriptive": ("", "stop"), "lazy": ("", "stop")}, text),
        commit_dialogue({"descriptive": ("", "stop"), "lazy": ("", "length")}, text),  # a cut-off section call
        commit_dialogue({"answer": ("", "stop")}, f"[Descriptive]\n{DESC}"),
        commit_dialogue({"answer": ("", None)}, "", status="dropped", reason="round1_error"),
        dialogue({"answer": ("", "stop")}, FULL, {"answer": ("", "stop")}, AFTER_ANSWER),  # a pair beside them
    ]
    source = tmp_path / "r2.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    counts = run_parse(source, tmp_path / "t.jsonl", tmp_path / "c.json")
    triplets = list(read_jsonl(tmp_path / "t.jsonl"))
    assert [t.get("reason") for t in triplets] == [None, None, "truncated", "missing_lazy", "call_error", None]
    assert counts == {"call_error": 1, "missing_lazy": 1, "ok": 3, "truncated": 1}
    assert triplets[0] == {
        "id": "m:c000001",
        "model": "m",
        "shard": "000",
        "pair_id": "c000001",
        "fewshot_id": "fs",
        "pre_code": PROGRAM,
        "post_code": AFTER,
        "instruction_lazy": LAZY,
        "instruction_descriptive": DESC,
        "status": "ok",
        "kind": "commit",
        "commit": "abc123",
    }
    assert all((t["pre_code"], t["post_code"]) == (PROGRAM, AFTER) for t in triplets)  # drops keep the commit's code
    assert "kind" not in triplets[5]
    broken = commit_dialogue({"answer": ("", "stop")}, text)
    del broken["pair"]["commit"]
    source.write_text(json.dumps(broken) + "\n")
    with pytest.raises(RecordError, match="record 1: .*commit record without 'commit' code"):
        run_parse(source, tmp_path / "t.jsonl", tmp_path / "c.json")
