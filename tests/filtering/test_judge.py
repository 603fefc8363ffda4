"""The LLM judge: its request, reading its answers, the per-style outcomes, the stage, its report and budget."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from editforge.backend.fake_server import OK, Behaviour, FakeServer, status
from editforge.filtering.judge import (
    DEFAULT_JUDGE,
    JUDGE_REASONS,
    JudgeError,
    JudgeSettingsError,
    judge_request,
    parse_verdicts,
    run_judge,
    style_outcome,
)
from editforge.records import RecordError, read_jsonl, write_jsonl
from editforge.verdicts import VERDICTS, judge_passed
from helpers.triplets import triplet

ALL_PASS = {name: {"verdict": "PASS", "reason": f"{name} ok"} for name in VERDICTS}
_MARKER = re.compile(r"\[(\w+)/(\w+)\]")


def answer(needed: str = "PASS", complete: str = "PASS", focused: str = "PASS") -> str:
    """A judge's answer as models write it: a sentence, then the object in a fence."""
    verdicts = {
        "edit_needed": {"verdict": needed, "reason": "the old code lacks it"},
        "edit_complete": {"verdict": complete, "reason": "all of it is done"},
        "edit_focused": {"verdict": focused, "reason": "nothing else changed"},
    }
    return f"Here is my review.\n```json\n{json.dumps(verdicts, indent=2)}\n```\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (answer(), {n: "PASS" for n in VERDICTS}),
        (f"The edit looks right. {json.dumps(ALL_PASS)} That is all.", {n: "PASS" for n in VERDICTS}),
        (
            '<think>edit_needed FAIL? {"edit_needed": "FAIL"}</think>\n' + answer(focused="FAIL"),
            {"edit_needed": "PASS", "edit_complete": "PASS", "edit_focused": "FAIL"},
        ),
        (
            '{"Edit_Needed": {"Verdict": "pass", "REASON": "x"}, "edit-complete": {"verdict": "uncertain"}, '
            '"EDIT FOCUSED": {"verdict": "Fail."}}',
            {"edit_needed": "PASS", "edit_complete": "UNCERTAIN", "edit_focused": "FAIL"},
        ),
        (
            '{"edit_needed": "PASS", "edit_complete": "fail", "edit_focused": "PASS", "confidence": 0.9}',
            {"edit_needed": "PASS", "edit_complete": "FAIL", "edit_focused": "PASS"},
        ),
        # A draft, then the corrected answer: the last object counts.
        (answer(complete="FAIL") + "\nOn reflection:\n" + answer(), {n: "PASS" for n in VERDICTS}),
    ],
)
def test_verdicts_are_read_through_the_ways_models_write_them(text: str, expected: dict[str, str]) -> None:
    verdicts = parse_verdicts(text)
    assert verdicts is not None
    assert {name: entry["verdict"] for name, entry in verdicts.items()} == expected


def test_reasons_are_kept_and_a_missing_reason_is_empty() -> None:
    verdicts = parse_verdicts(
        '{"edit_needed": "PASS", "edit_complete": {"verdict": "PASS", "reason": " all done "},'
        ' "edit_focused": {"verdict": "FAIL", "reason": "renames x", "extra": 1}}'
    )
    assert verdicts == {
        "edit_needed": {"verdict": "PASS", "reason": ""},
        "edit_complete": {"verdict": "PASS", "reason": "all done"},
        "edit_focused": {"verdict": "FAIL", "reason": "renames x"},
    }


@pytest.mark.parametrize(
    "text",
    [
        "",
        "PASS PASS PASS",
        '{"edit_needed": "PASS", "edit_complete": "PASS"}',  # one verdict missing
        '{"edit_needed": "PASS", "edit_complete": "PASS", "edit_focused": "MAYBE"}',
        '{"edit_needed": "PASS", "edit_complete": "PASS", "edit_focused": {"reason": "no verdict"}}',
        '{"edit_needed": "PASS", "edit_complete": "PASS", "edit_focused": "PASS",}',  # trailing comma
        "{'edit_needed': 'PASS', 'edit_complete': 'PASS', 'edit_focused': 'PASS'}",  # single quotes
        '{"edit_needed": {"verdict": "PASS, FAIL or UNCERTAIN", "reason": "..."}, "edit_complete": "PASS", '
        '"edit_focused": "PASS"}',  # the prompt's form copied back
        '<think>{"edit_needed": "PASS", "edit_complete": "PASS", "edit_focused": "PASS"}</think> I am not sure.',
        '{"edit_needed": "PASS", "edit_complete": "PASS", "edit_focused": ["PASS"]} {"unclosed": ',
    ],
)
def test_an_unreadable_answer_is_none_not_a_crash(text: str) -> None:
    assert parse_verdicts(text) is None


def verdicts_of(needed: str = "PASS", complete: str = "PASS", focused: str = "PASS") -> dict[str, dict[str, str]]:
    values = {"edit_needed": needed, "edit_complete": complete, "edit_focused": focused}
    return {name: {"verdict": value, "reason": ""} for name, value in values.items()}


@pytest.mark.parametrize(
    ("verdicts", "settings", "expected"),
    [
        (verdicts_of(), {}, None),
        (verdicts_of(complete="FAIL"), {}, "judge_edit_incomplete"),
        (verdicts_of(needed="FAIL", focused="FAIL"), {}, "judge_edit_not_needed"),  # the first in VERDICTS order
        (verdicts_of(focused="FAIL"), {}, "judge_unrelated_change"),
        (verdicts_of(focused="UNCERTAIN"), {}, "judge_unrelated_change"),  # uncertain: fail by default
        (verdicts_of(focused="UNCERTAIN"), {"uncertain": "pass"}, None),
        (verdicts_of(focused="FAIL"), {"uncertain": "pass"}, "judge_unrelated_change"),
        (verdicts_of(needed="FAIL"), {"verdicts": ["edit_complete", "edit_focused"]}, None),  # not required
        (None, {}, "judge_unparseable"),
    ],
)
def test_a_style_passes_when_every_required_verdict_does(
    verdicts: dict[str, dict[str, str]] | None, settings: dict[str, Any], expected: str | None
) -> None:
    assert style_outcome(verdicts, settings) == expected
    assert expected is None or expected in JUDGE_REASONS


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"verdicts": ["edit_needed", "edit_pretty"]}, "filtering.judge.verdicts: unknown ['edit_pretty']"),
        ({"verdicts": []}, "filtering.judge.verdicts: expected a non-empty list"),
        ({"styles": ["terse"]}, "filtering.judge.styles: unknown ['terse']; expected some of lazy, descriptive"),
        ({"uncertain": "skip"}, "filtering.judge.uncertain: expected fail or pass, got 'skip'"),
        ({"max_tokens": 0}, "filtering.judge.max_tokens: expected a whole number of at least 1, got 0"),
        ({"temperature": 0.2}, "filtering.judge: unknown key(s) temperature"),
    ],
)
def test_bad_settings_are_clear_errors(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(JudgeSettingsError, match=re.escape(message)):
        style_outcome(verdicts_of(), settings)


def test_the_request_shows_the_styles_instruction_both_programs_and_their_diff() -> None:
    record = triplet("t1", instruction_lazy="add most_common [t1/lazy]")
    request = judge_request(record, "lazy", max_tokens=300)
    system, user = request.messages
    assert system["role"] == "system" and "reviewer" in system["content"]
    prompt = user["content"]
    assert "add most_common [t1/lazy]" in prompt and record["instruction_descriptive"] not in prompt
    assert record["pre_code"].rstrip() in prompt and record["post_code"].rstrip() in prompt
    assert "+    def most_common(self):" in prompt  # the unified diff
    assert "lazy style" in prompt and "UNCERTAIN" in prompt and "$" not in prompt
    assert (request.sampling.temperature, request.sampling.top_p, request.sampling.max_tokens) == (0.0, 1.0, 300)
    assert judge_request(record, "descriptive").messages[1]["content"] != prompt


def test_judge_passed_is_false_only_for_a_judged_style_that_failed() -> None:
    record = triplet("t1", judge={"descriptive": {"passed": False}, "lazy": {"passed": True}})
    assert judge_passed(record, "lazy") and not judge_passed(record, "descriptive")
    assert judge_passed(triplet("t2"), "lazy")  # never judged
    assert judge_passed(triplet("t3", judge={"lazy": {"passed": False}}), "descriptive")  # that style not judged


# (record id, style) -> the judge's answer; each instruction carries its "[id/style]" marker.
ANSWERS = {
    ("good", "lazy"): answer(),
    ("good", "descriptive"): answer(),
    ("lazy_only", "lazy"): answer(),
    ("lazy_only", "descriptive"): answer(complete="FAIL"),
    ("not_needed", "lazy"): answer(needed="FAIL"),
    ("not_needed", "descriptive"): answer(needed="FAIL", complete="FAIL"),
    ("garbled", "lazy"): "I cannot review this.",
    ("garbled", "descriptive"): answer(focused="FAIL"),
    ("unsure", "lazy"): answer(focused="UNCERTAIN"),
    ("unsure", "descriptive"): answer(focused="UNCERTAIN"),
}


def marked(id_: str, model: str = "m1", **fields: Any) -> dict[str, Any]:
    instructions = {
        "instruction_lazy": f"Add most_common. [{id_}/lazy]",
        "instruction_descriptive": f"Add a method `most_common` returning the top item. [{id_}/descriptive]",
    }
    return triplet(id_, model=model, **(instructions | fields))


def respond(body: dict[str, Any], index: int) -> str:
    found = _MARKER.search(body["messages"][-1]["content"])
    assert found is not None
    return ANSWERS[(found.group(1), found.group(2))]


def spec(server: FakeServer) -> dict[str, Any]:
    return {
        "backend": "openai",
        "model": "fake",
        "base_url": server.base_url,
        "max_concurrency": 8,
        "timeout_s": 20,
        "retry_base_s": 0.05,
        "max_retries": 0,
    }


@pytest.fixture
def triplets(tmp_path: Path) -> Path:
    records = [marked("good"), marked("lazy_only"), marked("not_needed", model="m2"), marked("garbled")]
    records += [marked("unsure", model="m2"), marked("gone", status="dropped", reason="no_change")]
    path = tmp_path / "triplets.jsonl"
    write_jsonl(path, records)
    return path


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(responder=respond) as running:
        yield running


def judge(triplets: Path, out: Path, server: FakeServer, **settings: Any) -> dict[str, Any]:
    return run_judge(
        triplets,
        out / "judged.jsonl",
        out / "judge.json",
        out / "judge.usage.json",
        DEFAULT_JUDGE | {"model": "judge1"} | settings,
        model=("judge1", spec(server)),
        cache_dir=out.parent / "cache",
        max_error_share=0.05,
    )


def test_the_stage_judges_each_style_and_drops_a_triplet_that_passes_none(
    triplets: Path, tmp_path: Path, server: FakeServer
) -> None:
    report = judge(triplets, tmp_path / "a", server)
    records = {r["id"]: r for r in read_jsonl(tmp_path / "a/judged.jsonl")}
    outcome = {i: r["reason"] if r["status"] == "dropped" else "ok" for i, r in records.items()}
    assert outcome == {
        "good": "ok",
        "lazy_only": "ok",
        "not_needed": "judge_edit_not_needed",
        "garbled": "judge_unparseable",  # the first judged style's reason
        "unsure": "judge_unrelated_change",
        "gone": "no_change",
    }
    assert "judge" not in records["gone"]  # dropped upstream: never asked
    lazy_only = records["lazy_only"]["judge"]
    assert lazy_only["lazy"]["passed"] and lazy_only["lazy"]["reason"] is None
    assert lazy_only["descriptive"] == {
        "passed": False,
        "reason": "judge_edit_incomplete",
        "verdicts": {
            "edit_needed": {"verdict": "PASS", "reason": "the old code lacks it"},
            "edit_complete": {"verdict": "FAIL", "reason": "all of it is done"},
            "edit_focused": {"verdict": "PASS", "reason": "nothing else changed"},
        },
        "error": None,
        "model": "judge1",
        "uncertain": "fail",
    }
    assert records["garbled"]["judge"]["lazy"]["verdicts"] is None
    assert sum(server.calls.values()) == len(server.bodies) == 10  # five kept triplets, two styles, one call

    assert (report["model"], report["calls"], report["errors"], report["unparseable"]) == ("judge1", 10, 0, 1)
    assert report["triplets"] == {"judged": 5, "kept": 2, "dropped": 3}
    assert report["settings"] == DEFAULT_JUDGE | {"model": "judge1"}
    m1_descriptive = report["by_teacher"]["m1"]["descriptive"]
    assert m1_descriptive["judged"] == 3 and m1_descriptive["passed"] == 1
    assert m1_descriptive["dropped"] == {"judge_edit_incomplete": 1, "judge_unrelated_change": 1}
    assert m1_descriptive["verdicts"]["edit_complete"] == {"PASS": 2, "FAIL": 1, "UNCERTAIN": 0}
    assert report["by_teacher"]["m1"]["lazy"]["dropped"] == {"judge_unparseable": 1}
    assert report["by_teacher"]["m2"]["lazy"]["verdicts"]["edit_focused"] == {"PASS": 1, "FAIL": 0, "UNCERTAIN": 1}
    assert json.loads((tmp_path / "a/judge.json").read_text()) == report
    usage = json.loads((tmp_path / "a/judge.usage.json").read_text())
    assert (usage["model"], usage["round"], usage["calls"], usage["cached"]) == ("judge1", "judge", 10, 0)


def test_a_rerun_is_answered_from_the_cache(triplets: Path, tmp_path: Path, server: FakeServer) -> None:
    judge(triplets, tmp_path / "a", server)
    judge(triplets, tmp_path / "b", server)
    assert sum(server.calls.values()) == 10  # the second run asked nothing
    assert (tmp_path / "a/judged.jsonl").read_bytes() == (tmp_path / "b/judged.jsonl").read_bytes()
    usage = json.loads((tmp_path / "b/judge.usage.json").read_text())
    assert (usage["calls"], usage["cached"]) == (0, 10)


def test_uncertain_may_count_as_a_pass_and_only_listed_styles_are_judged(
    triplets: Path, tmp_path: Path, server: FakeServer
) -> None:
    report = judge(triplets, tmp_path / "a", server, uncertain="pass", styles=["lazy"])
    records = {r["id"]: r for r in read_jsonl(tmp_path / "a/judged.jsonl")}
    assert records["unsure"]["status"] == "ok" and records["unsure"]["judge"]["lazy"]["passed"]
    assert all(set(r["judge"]) == {"lazy"} for r in records.values() if r["status"] == "ok")
    # Failing the only judged style drops no triplet: its descriptive style is kept unjudged.
    assert all(records[i]["status"] == "ok" for i in ("garbled", "not_needed"))
    assert records["not_needed"]["judge"]["lazy"]["reason"] == "judge_edit_not_needed"
    assert not judge_passed(records["garbled"], "lazy") and judge_passed(records["garbled"], "descriptive")
    assert report["calls"] == 5 and set(report["by_teacher"]["m1"]) == {"lazy"}


def fail_broken(body: dict[str, Any], call: int) -> Behaviour:
    """A 500 status for every call about the triplet "broken"; the others are answered."""
    return status(500) if "[broken/" in body["messages"][-1]["content"] else OK


@pytest.mark.parametrize(("max_error_share", "fails"), [(0.25, False), (0.2, True)])
def test_failed_calls_within_the_budget_are_judge_errors_beyond_it_the_stage_stops(
    tmp_path: Path, max_error_share: float, fails: bool
) -> None:
    write_jsonl(tmp_path / "in.jsonl", [marked(name) for name in ("broken", "good", "lazy_only", "unsure")])
    paths = (tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "r.json", tmp_path / "u.json")
    with FakeServer(responder=respond, script=fail_broken) as server:
        if fails:
            with pytest.raises(JudgeError, match=r"2 of 8 calls failed, more than synthesis\.max_error_share = 0\.2"):
                run_judge(*paths, {}, model=("j", spec(server)), cache_dir=None, max_error_share=max_error_share)
            assert not any(path.exists() for path in paths[1:])  # nothing half-written
            return
        report = run_judge(*paths, {}, model=("j", spec(server)), cache_dir=None, max_error_share=max_error_share)
    records = {r["id"]: r for r in read_jsonl(tmp_path / "out.jsonl")}
    assert (records["broken"]["status"], records["broken"]["reason"]) == ("dropped", "judge_error")
    assert (
        "500" in records["broken"]["judge"]["lazy"]["error"] and records["broken"]["judge"]["lazy"]["verdicts"] is None
    )
    assert records["good"]["status"] == "ok"
    assert (report["errors"], report["triplets"]["judged"]) == (2, 4)


def test_no_judge_model_is_a_clear_error(triplets: Path, tmp_path: Path) -> None:
    with pytest.raises(JudgeSettingsError, match=r"filtering\.judge\.model is null"):
        run_judge(triplets, *(tmp_path / n for n in ("o", "r", "u")), {}, model=None, cache_dir=None, max_error_share=0)


def test_with_nothing_kept_no_model_is_opened(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [marked("gone", status="dropped", reason="no_change")])
    paths = (tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "r.json", tmp_path / "u.json")
    report = run_judge(*paths, {}, model=("j", {"backend": "no-such"}), cache_dir=None, max_error_share=0)
    assert report["triplets"] == {"judged": 0, "kept": 0, "dropped": 0} and report["by_teacher"] == {}
    assert list(read_jsonl(tmp_path / "out.jsonl")) == list(read_jsonl(tmp_path / "in.jsonl"))
    assert json.loads((tmp_path / "u.json").read_text())["calls"] == 0


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (marked("t1", instruction_lazy=None), "record 't1' lacks the text field 'instruction_lazy'"),
        (marked("t1", status="pending"), "record 't1' has status 'pending', expected 'ok' or 'dropped'"),
    ],
)
def test_a_bad_record_names_its_file_before_any_call(tmp_path: Path, record: dict[str, Any], message: str) -> None:
    write_jsonl(tmp_path / "in.jsonl", [record])
    paths = (tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "r.json", tmp_path / "u.json")
    with FakeServer(responder=respond) as server:
        with pytest.raises(RecordError, match=re.escape(f"{tmp_path / 'in.jsonl'}: {message}")):
            run_judge(*paths, {}, model=("j", spec(server)), cache_dir=None, max_error_share=0)
    assert not server.bodies
