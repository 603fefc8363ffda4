"""The filter_shard stage: every record written back, malformed records refused, the execution check."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any

import pytest

from editforge.filtering import run_filter_shard, shard
from editforge.records import RecordError, read_jsonl, write_jsonl
from editforge.sandbox import Limits, SandboxError
from helpers.triplets import INVENTORY_AFTER, SETTINGS, triplet


def test_run_filter_shard_keeps_earlier_drops_and_writes_every_record(tmp_path: Path) -> None:
    records = [
        triplet("ok"),
        triplet("bad", pre_code="def (:"),
        {"id": "early", "model": "m1", "shard": "0", "status": "dropped", "reason": "missing_section"},
    ]
    write_jsonl(tmp_path / "in.jsonl", records)
    counts = run_filter_shard(tmp_path / "in.jsonl", tmp_path / "out.jsonl", SETTINGS)
    assert counts == {"ok": 1, "pre_code_syntax": 1, "missing_section": 1}
    out = {r["id"]: r for r in read_jsonl(tmp_path / "out.jsonl")}
    assert [out[i]["status"] for i in ("ok", "bad", "early")] == ["ok", "dropped", "dropped"]
    assert out["early"]["reason"] == "missing_section"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (triplet(status="maybe"), "has status 'maybe'"),
        ({k: v for k, v in triplet().items() if k != "post_code"}, "lacks the text field 'post_code'"),
    ],
)
def test_run_filter_shard_rejects_malformed_records(tmp_path: Path, record: dict[str, Any], message: str) -> None:
    write_jsonl(tmp_path / "in.jsonl", [record])
    with pytest.raises(RecordError, match=re.escape(message)):
        run_filter_shard(tmp_path / "in.jsonl", tmp_path / "out.jsonl", SETTINGS)


def test_execution_check_drops_programs_that_do_not_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[tuple[str, float]] = []

    def run_many(programs: list[str], workers: int, *, limits: Limits, isolation: Any) -> list[types.SimpleNamespace]:
        assert isolation == "the isolation checked at start"
        runs.extend((program, limits.timeout_s) for program in programs)
        return [types.SimpleNamespace(outcome="error" if "1 / 0" in p else "pass") for p in programs]

    monkeypatch.setattr(shard, "run_many", run_many)
    monkeypatch.setattr(shard, "select_isolation", lambda setting: "the isolation checked at start")
    crashing = INVENTORY_AFTER + "\nprint(1 / 0)\n"
    records = [triplet("runs"), triplet("crashes", post_code=crashing), triplet("bad", pre_code="(")]
    write_jsonl(tmp_path / "in.jsonl", records)
    settings = SETTINGS | {"execution_check": True, "execution_timeout_s": 3}
    counts = run_filter_shard(tmp_path / "in.jsonl", tmp_path / "out.jsonl", settings)
    assert counts == {"ok": 1, "post_code_fails_to_run": 1, "pre_code_syntax": 1}
    # Only the triplets that passed the other checks are run.
    assert runs == [(INVENTORY_AFTER, 3), (crashing, 3)]


def test_execution_check_with_the_real_sandbox(tmp_path: Path) -> None:
    crashing = INVENTORY_AFTER + "\nInventory().remove('apples', 1)\n"
    write_jsonl(tmp_path / "in.jsonl", [triplet("runs"), triplet("crashes", post_code=crashing)])
    settings = SETTINGS | {"execution_check": True, "execution_timeout_s": 10}
    counts = run_filter_shard(tmp_path / "in.jsonl", tmp_path / "out.jsonl", settings)
    assert counts == {"ok": 1, "post_code_fails_to_run": 1}


def test_execution_check_refuses_before_reading_when_isolation_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(setting: str) -> None:
        raise SandboxError(f"cannot isolate untrusted programs here ({setting})")

    monkeypatch.setattr(shard, "select_isolation", unavailable)
    settings = SETTINGS | {"execution_check": True}
    with pytest.raises(SandboxError, match=r"cannot isolate untrusted programs here \(bwrap\)"):
        run_filter_shard(tmp_path / "absent.jsonl", tmp_path / "out.jsonl", settings, sandbox="bwrap")
    assert not (tmp_path / "out.jsonl").exists()
