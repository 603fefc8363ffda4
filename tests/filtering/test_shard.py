"""The filter_shard stage: every record written back, malformed records refused, the execution check."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any

import pytest

from editforge.filtering import run_filter_shard, shard, static_names
from editforge.records import RecordError, read_jsonl, write_jsonl
from editforge.sandbox import Limits, SandboxError
from helpers.triplets import INVENTORY, INVENTORY_AFTER, SETTINGS, triplet


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


def test_static_checks_drop_with_their_reasons_and_keep_why(tmp_path: Path) -> None:
    undefined = INVENTORY_AFTER.replace("return None", "return fallback(self)")
    fenced = "# ```python\n" + INVENTORY
    records = [triplet("ok"), triplet("undefined", post_code=undefined), triplet("fenced", pre_code=fenced),
               triplet("bad", pre_code="(", post_code=undefined)]  # fmt: skip
    write_jsonl(tmp_path / "in.jsonl", records)
    counts = run_filter_shard(tmp_path / "in.jsonl", tmp_path / "out.jsonl", SETTINGS)
    assert counts == {"ok": 1, "post_code_undefined_name": 1, "pre_code_leftover_markup": 1, "pre_code_syntax": 1}
    out = {r["id"]: r for r in read_jsonl(tmp_path / "out.jsonl")}
    assert out["undefined"]["static_issue"] == "post_code line 18: undefined name 'fallback'"
    assert out["fenced"]["static_issue"] == "pre_code line 1: leftover markup '# ```python'"
    assert "static_issue" not in out["ok"] and "static_issue" not in out["bad"]  # syntax came first
    # Each switch off keeps what it drops; all off, ruff is not even looked for.
    settings = SETTINGS | {"static_checks": {"undefined_names": False}}
    counts = run_filter_shard(tmp_path / "in.jsonl", tmp_path / "out.jsonl", settings)
    assert counts == {"ok": 2, "pre_code_leftover_markup": 1, "pre_code_syntax": 1}


def test_static_checks_off_run_no_analyzer_and_on_come_before_execution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_ruff() -> str:
        raise AssertionError("ruff was looked for")

    monkeypatch.setattr(static_names, "ruff_binary", no_ruff)
    undefined = INVENTORY_AFTER.replace("return None", "return fallback(self)")
    write_jsonl(tmp_path / "in.jsonl", [triplet("ok"), triplet("undefined", post_code=undefined)])
    off = dict.fromkeys(["undefined_names", "missing_imports", "leftover_markup", "truncated_code"], False)
    counts = run_filter_shard(tmp_path / "in.jsonl", tmp_path / "out.jsonl", SETTINGS | {"static_checks": off})
    assert counts == {"ok": 2}
    monkeypatch.undo()
    runs: list[str] = []

    def run_many(programs: list[str], workers: int, *, limits: Limits, isolation: Any) -> list[types.SimpleNamespace]:
        runs.extend(programs)
        return [types.SimpleNamespace(outcome="pass") for _ in programs]

    monkeypatch.setattr(shard, "run_many", run_many)
    monkeypatch.setattr(shard, "select_isolation", lambda setting: None)
    counts = run_filter_shard(tmp_path / "in.jsonl", tmp_path / "out.jsonl", SETTINGS | {"execution_check": True})
    assert counts == {"ok": 1, "post_code_undefined_name": 1}
    assert runs == [INVENTORY_AFTER]  # the dropped triplet is not run
