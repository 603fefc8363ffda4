"""Synthesis with a scripted backend: one conversation over two rounds, sectioned prefills, failures and
truncation, the error budget, commit records, and the hand-off to parsing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from editforge.backend import Completion, Request
from editforge.parsing import run_parse
from editforge.records import RecordError, read_jsonl, write_jsonl
from editforge.seeds import SeedError, run_seeds
from editforge.synthesis import rounds as synthesis_rounds
from editforge.synthesis import run_round1, run_round2
from editforge.synthesis.rounds import ErrorBudgetExceeded, SynthesisError
from editforge.templates import load_fewshot, template
from helpers.scripted import (
    AFTER,
    C_DESC,
    C_LAZY,
    DESC,
    LAZY,
    PROGRAM,
    ScriptedBackend,
    commit_index,
    commit_new,
    commit_old,
    commit_respond,
    dialogue_respond,
    install,
    ok,
    pair,
    rounds,
    sectioned_respond,
    user_text,
)


def test_dialogue_mode_keeps_one_conversation(
    tmp_path: Path, pairs_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = ScriptedBackend(dialogue_respond)
    opened = install(monkeypatch, backend)
    r1, r2, triplets = rounds(tmp_path, pairs_file, {"mode": "dialogue", "sampling": {"temperature": 0.5}})
    assert len(backend.calls) == 2 and all(len(call) == 4 for call in backend.calls)  # one call per round
    assert opened[0] == ("m", {"backend": "openai", "model": "m"}, tmp_path / "cache") and backend.closed
    sampling = backend.calls[0][0].sampling
    assert (sampling.temperature, sampling.top_p, sampling.max_tokens, sampling.stop) == (0.5, 0.95, 2048, ())
    for before, after, request in zip(r1, r2, backend.calls[1]):
        assert [m["role"] for m in after["messages"]] == ["system", "user", "assistant", "user", "assistant"]
        assert after["messages"][:3] == before["messages"]  # round 2 continues round 1
        assert request.messages == after["messages"][:4]
        assert after["messages"][3]["content"] == template("round2")
        assert set(after["round1"]) == {"answer"} and set(after["round2"]) == {"answer"}
        assert after["round1"]["answer"]["usage"] == {"prompt_tokens": 100, "completion_tokens": 10}
    assert [t["status"] for t in triplets] == ["ok"] * 4
    assert triplets[0]["pre_code"] == PROGRAM and triplets[0]["post_code"] == AFTER
    assert triplets[0]["instruction_descriptive"] == DESC and triplets[0]["instruction_lazy"] == LAZY
    assert triplets[0]["id"] == "m:p000000" and triplets[0]["fewshot_id"] == r1[0]["pair"]["fewshot_id"]
    assert json.loads((tmp_path / "r1.usage.json").read_text())["calls"] == 4
    assert json.loads((tmp_path / "counts.json").read_text()) == {"ok": 4}


def test_sectioned_mode_prefills_each_section(
    tmp_path: Path, pairs_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = ScriptedBackend(sectioned_respond)
    install(monkeypatch, backend)
    r1, r2, triplets = rounds(tmp_path, pairs_file, {"mode": "sectioned"})
    assert [len(call) for call in backend.calls] == [4, 4, 4, 4]  # three round-1 steps, one round-2 step
    program, descriptive, lazy, after = (call[0] for call in backend.calls)
    assert program.prefill == "[Program Before Edit]\n```python\n" and program.sampling.stop == ("```",)
    assert descriptive.prefill == f"[Program Before Edit]\n```python\n{PROGRAM}\n```\n\n[Descriptive]\n"
    assert "[Lazy" in descriptive.sampling.stop
    assert lazy.prefill == descriptive.prefill + DESC + "\n\n[Lazy]\n" and "\n\n" in lazy.sampling.stop
    assert after.prefill == "[Program After Edit]\n```python\n"
    assert program.messages == descriptive.messages == lazy.messages  # the same round-1 conversation
    assembled = r1[0]["messages"][2]["content"]
    assert assembled == lazy.prefill + LAZY
    assert after.messages == [*r1[0]["messages"], {"role": "user", "content": template("round2")}]
    assert r2[0]["messages"][4]["content"] == f"[Program After Edit]\n```python\n{AFTER}\n```"
    assert set(r1[0]["round1"]) == {"program_before", "descriptive", "lazy"}
    assert set(r2[0]["round2"]) == {"program_after"}
    assert [t["status"] for t in triplets] == ["ok"] * 4
    assert (triplets[0]["pre_code"], triplets[0]["post_code"]) == (PROGRAM, AFTER)
    assert (triplets[0]["instruction_descriptive"], triplets[0]["instruction_lazy"]) == (DESC, LAZY)


def test_failures_and_truncation_flow_to_parse(
    tmp_path: Path, pairs_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """p0 fails in round 1, p1 is cut off in its program, p2 fails in round 2, p3 is fine."""

    def respond(request: Request) -> Completion:
        prompt = user_text(request)
        if "# 0\n" in prompt:
            return Completion(text="", finish_reason=None, error="HTTP 400: content filter")
        if "# 1\n" in prompt and request.prefill.endswith("```python\n") and len(request.messages) == 2:
            return Completion(text="def add(a, b):\n    return", finish_reason="length")
        if "# 2\n" in prompt and len(request.messages) == 4:
            return Completion(text="", finish_reason=None, error="timeout after 3 retries")
        return sectioned_respond(request)

    backend = ScriptedBackend(respond)
    install(monkeypatch, backend)
    r1, r2, triplets = rounds(tmp_path, pairs_file, {"mode": "sectioned", "max_error_share": 0.5})
    assert [r["status"] for r in r1] == ["dropped", "ok", "ok", "ok"]
    assert r1[0]["reason"] == "round1_error" and r1[0]["round1"]["program_before"]["error"]
    assert len(r1[0]["messages"]) == 2  # no answer was received
    assert r1[1]["round1"]["program_before"]["finish_reason"] == "length" and set(r1[1]["round1"]) == {"program_before"}
    assert [len(call) for call in backend.calls] == [4, 2, 2, 2]  # later steps skip p0 and p1
    assert r2[0] == r1[0] and r2[1] == r1[1]  # carried through round 2 unchanged
    assert r2[2]["status"] == "dropped" and r2[2]["reason"] == "round2_error"
    assert [(t["status"], t.get("reason")) for t in triplets] == [
        ("dropped", "call_error"),
        ("dropped", "truncated"),
        ("dropped", "call_error"),
        ("ok", None),
    ]
    assert triplets[2]["pre_code"] == PROGRAM  # round 1 of a round-2 failure is still recorded
    counts = json.loads((tmp_path / "counts.json").read_text())
    assert counts == {"call_error": 2, "ok": 1, "truncated": 1}
    usage = json.loads((tmp_path / "r2.usage.json").read_text())
    assert (usage["calls"], usage["errors"]) == (1, 1)


def test_a_shard_over_its_error_budget_fails_naming_the_error_and_keeps_what_was_answered(
    tmp_path: Path, pairs_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def respond(request: Request) -> Completion:
        if "# 0\n" in user_text(request) or "# 1\n" in user_text(request):
            return Completion(text="", finish_reason=None, error="HTTP 401: invalid API key")
        return sectioned_respond(request)

    install(monkeypatch, ScriptedBackend(respond))
    spec = {"backend": "openai", "model": "m"}
    with pytest.raises(ErrorBudgetExceeded, match=(
        r"model 'm' \(round1\): 2 of 4 answers failed, more than synthesis.max_error_share = 0.25; "
        r"most common error \(2x\): HTTP 401: invalid API key\. Fix the cause and rerun"
    )):
        run_round1(pairs_file, tmp_path / "r1.jsonl", "m", spec, {"max_error_share": 0.25}, None, tmp_path / "u.json")
    assert not (tmp_path / "r1.jsonl").exists()
    # At the budget the shard goes through, with its failures recorded.
    run_round1(pairs_file, tmp_path / "r1.jsonl", "m", spec, {"max_error_share": 0.5}, None, tmp_path / "u.json")
    assert [r["status"] for r in read_jsonl(tmp_path / "r1.jsonl")] == ["dropped", "dropped", "ok", "ok"]


def test_round2_is_skipped_for_unparseable_round1_and_veto_is_dropped(
    tmp_path: Path, pairs_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def respond(request: Request) -> Completion:
        prompt = user_text(request)
        if "# 0\n" in prompt:
            return ok("I'm sorry, I can't help with that.")
        if "# 1\n" in prompt and len(request.messages) == 4:
            return ok("The program does not make sense.\n\n**<UNREASONABLE>**")
        return dialogue_respond(request)

    backend = ScriptedBackend(respond)
    install(monkeypatch, backend)
    r1, r2, triplets = rounds(tmp_path, pairs_file, {"mode": "dialogue"})
    assert len(backend.calls[1]) == 3  # the refusal is not asked round 2
    assert r2[0] == r1[0] and "round2" not in r2[0]
    assert [t.get("reason") for t in triplets] == ["missing_program_before", "unreasonable", None, None]


def test_nothing_to_ask_loads_no_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> None:
        raise AssertionError("the backend must not be opened")

    monkeypatch.setattr(synthesis_rounds, "open_backend", refuse)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    counts = run_round1(empty, tmp_path / "r1.jsonl", "m", {}, {}, None, tmp_path / "u.json")
    assert counts == {} and (tmp_path / "r1.jsonl").read_text() == ""
    assert json.loads((tmp_path / "u.json").read_text())["calls"] == 0


def test_bad_settings_and_inputs_are_clear_errors(
    tmp_path: Path, pairs_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch, ScriptedBackend(dialogue_respond))
    out, usage = tmp_path / "out.jsonl", tmp_path / "u.json"
    with pytest.raises(SynthesisError, match="synthesis.mode"):
        run_round1(pairs_file, out, "m", {}, {"mode": "chatty"}, None, usage)
    with pytest.raises(SynthesisError, match="unknown key"):
        run_round1(pairs_file, out, "m", {}, {"sampling": {"temp": 1}}, None, usage)
    unknown = tmp_path / "unknown.jsonl"
    write_jsonl(unknown, [pair(0, "no-such-example")])
    with pytest.raises(SynthesisError, match="'no-such-example' is not in templates/fewshot.jsonl"):
        run_round1(unknown, out, "m", {}, {}, None, usage)
    lonely = tmp_path / "lonely.jsonl"
    write_jsonl(lonely, [{**pair(0, sorted(load_fewshot())[0]), "snippets": [{"text": "x"}]}])
    with pytest.raises(SynthesisError, match="two snippets"):
        run_round1(lonely, out, "m", {}, {}, None, usage)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    with pytest.raises(RecordError, match="not JSON"):
        run_round1(broken, out, "m", {}, {}, None, usage)
    with pytest.raises(RecordError, match="not a round-1 dialogue record"):
        run_round2(pairs_file, out, "m", {}, {}, None, usage)
    with pytest.raises(RecordError, match="record 1"):
        run_parse(pairs_file, out, usage)


def test_commit_mode_end_to_end_dialogue(tmp_path: Path, commits_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = ScriptedBackend(commit_respond)
    opened = install(monkeypatch, backend)
    r1, r2, triplets = rounds(tmp_path, commits_file, {"mode": "dialogue", "max_error_share": 0.5})
    assert len(opened) == 1  # round 2 has nothing to ask and loads no model
    assert [len(call) for call in backend.calls] == [5]  # one free-form call per commit
    assert r2 == r1  # commit records pass round 2 unchanged
    assert [r["status"] for r in r1] == ["ok", "ok", "ok", "dropped", "ok"]
    assert r1[3]["reason"] == "round1_error" and len(r1[3]["messages"]) == 2
    assert r1[0]["pair"]["kind"] == "commit" and set(r1[0]["round1"]) == {"answer"}
    assert [m["role"] for m in r1[0]["messages"]] == ["system", "user", "assistant"]
    assert [(t["status"], t.get("reason")) for t in triplets] == [
        ("ok", None),
        ("dropped", "missing_lazy"),
        ("dropped", "missing_descriptive"),
        ("dropped", "call_error"),
        ("ok", None),
    ]
    for i, triplet in enumerate(triplets):
        # the code comes from the commit, also for a dropped answer
        assert (triplet["pre_code"], triplet["post_code"]) == (commit_old(i).rstrip(), commit_new(i).rstrip())
        assert triplet["kind"] == "commit" and triplet["commit"] == f"{i:040x}"
        assert triplet["id"] == f"m:c{i:06d}" and triplet["pair_id"] == f"c{i:06d}"
        assert triplet["fewshot_id"] == r1[i]["pair"]["fewshot_id"]
    assert (triplets[0]["instruction_descriptive"], triplets[0]["instruction_lazy"]) == (
        C_DESC.format(i=0),
        C_LAZY.format(i=0),
    )
    assert triplets[4]["instruction_lazy"] == C_LAZY.format(i=4)  # the closing remark is not part of it
    assert json.loads((tmp_path / "counts.json").read_text()) == {
        "call_error": 1,
        "missing_descriptive": 1,
        "missing_lazy": 1,
        "ok": 2,
    }
    assert json.loads((tmp_path / "r2.usage.json").read_text())["calls"] == 0


def test_commit_mode_end_to_end_sectioned(tmp_path: Path, commits_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def respond(request: Request) -> Completion:
        i = commit_index(request)
        if i == 2:  # cut off in its descriptive instruction
            return Completion(text="In `mean_2`, return", finish_reason="length")
        if request.prefill == "[Descriptive]\n":
            return ok(C_DESC.format(i=i) + "\n\n**")  # what is left when the stop string "[Lazy" ends the call
        if request.prefill.endswith("\n\n[Lazy]\n"):
            return ok(" " + C_LAZY.format(i=i))
        raise AssertionError(f"unexpected prefill {request.prefill!r}")

    backend = ScriptedBackend(respond)
    install(monkeypatch, backend)
    r1, r2, triplets = rounds(tmp_path, commits_file, {"mode": "sectioned", "max_error_share": 0.5})
    assert [len(call) for call in backend.calls] == [5, 4]  # descriptive for all, lazy for those not cut off
    descriptive, lazy = backend.calls[0][0], backend.calls[1][0]
    assert descriptive.prefill == "[Descriptive]\n" and "[Lazy" in descriptive.sampling.stop
    assert lazy.prefill == f"[Descriptive]\n{C_DESC.format(i=0)}\n\n[Lazy]\n" and "\n\n" in lazy.sampling.stop
    assert descriptive.messages == lazy.messages
    assert r1[0]["messages"][2]["content"] == lazy.prefill + C_LAZY.format(i=0)
    assert set(r1[0]["round1"]) == {"descriptive", "lazy"} and set(r1[2]["round1"]) == {"descriptive"}
    assert r2 == r1
    assert [t.get("reason") for t in triplets] == [None, None, "truncated", None, None]
    assert triplets[1]["instruction_descriptive"] == C_DESC.format(i=1)
    assert triplets[1]["post_code"] == commit_new(1).rstrip()


def test_a_shard_may_mix_pairs_and_commits(tmp_path: Path, commits_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mixed = tmp_path / "mixed.jsonl"
    write_jsonl(mixed, [pair(0, sorted(load_fewshot())[0]), next(read_jsonl(commits_file))])

    def respond(request: Request) -> Completion:
        if request.messages[0]["content"] == template("commit_system"):
            return commit_respond(request)
        return dialogue_respond(request)

    backend = ScriptedBackend(respond)
    opened = install(monkeypatch, backend)
    r1, r2, triplets = rounds(tmp_path, mixed, {"mode": "dialogue"})
    assert len(opened) == 2  # once per stage, not per kind
    assert [len(call) for call in backend.calls] == [1, 1, 1]  # pairs' round 1, commits, pairs' round 2
    assert "round2" in r2[0] and "round2" not in r2[1] and r2[1] == r1[1]
    assert [(t["status"], t.get("kind")) for t in triplets] == [("ok", None), ("ok", "commit")]
    assert (triplets[0]["pre_code"], triplets[1]["pre_code"]) == (PROGRAM, commit_old(0).rstrip())


def test_bad_commit_records_are_clear_errors(
    tmp_path: Path, commits_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch, ScriptedBackend(commit_respond))
    record = next(read_jsonl(commits_file))
    broken = tmp_path / "broken.jsonl"
    write_jsonl(broken, [{**record, "commit": {**record["commit"], "new_code": ""}}])
    with pytest.raises(SynthesisError, match=r"commit record 1 \(c000000\): 'commit' must hold non-empty"):
        run_round1(broken, tmp_path / "o.jsonl", "m", {}, {}, None, tmp_path / "u.json")
    bare = tmp_path / "bare.jsonl"
    write_jsonl(bare, [{k: v for k, v in record.items() if k != "commit"}])
    with pytest.raises(SynthesisError, match="missing 'commit'"):
        run_round1(bare, tmp_path / "o.jsonl", "m", {}, {}, None, tmp_path / "u.json")
    source = tmp_path / "nomessage.jsonl"
    source.write_text(json.dumps({"old_contents": "x = 1\n", "new_contents": "x = 2\n"}) + "\n")
    with pytest.raises(SeedError, match="row 1 of .* has no column 'message'"):
        run_seeds(
            [{"name": "c", "type": "jsonl", "path": str(source)}],
            {"kind": "commits"},
            1,
            [tmp_path / "0.jsonl"],
            tmp_path / "s.json",
        )
