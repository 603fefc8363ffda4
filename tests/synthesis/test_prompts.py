"""The prompts synthesis sends: both snippets and the example in round 1, the commit's code, diff and
message in a commit round; the few-shot set they draw on."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from editforge.records import read_jsonl
from editforge.synthesis import run_round1
from editforge.templates import load_fewshot, template
from helpers.scripted import (
    SNIPPET_A,
    SNIPPET_B,
    ScriptedBackend,
    commit_old,
    commit_respond,
    dialogue_respond,
    install,
    user_text,
)


def test_round1_prompt_holds_both_snippets_and_the_example(
    tmp_path: Path, pairs_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = ScriptedBackend(dialogue_respond)
    install(monkeypatch, backend)
    run_round1(pairs_file, tmp_path / "r1.jsonl", "m", {}, {"mode": "dialogue"}, None, tmp_path / "u.json")
    first = backend.calls[0][0]
    example = load_fewshot()[sorted(load_fewshot())[0]]
    prompt = user_text(first)
    assert first.messages[0] == {"role": "system", "content": template("system")}
    assert f"```python\n{SNIPPET_A}  # 0\n```" in prompt and f"```python\n{SNIPPET_B}\n```" in prompt
    assert example.program_before in prompt and example.descriptive in prompt and example.lazy in prompt
    assert example.program_after not in prompt  # as in the paper: the example shows no solution
    assert not re.search(r"\$\{?(snippet|example)_", prompt)  # every placeholder was filled
    for header in ("[Program Before Edit]", "[Descriptive]", "[Lazy]"):
        assert header in prompt



def test_commit_prompt_shows_code_diff_message_and_example_instructions(
    tmp_path: Path, commits_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = ScriptedBackend(commit_respond)
    install(monkeypatch, backend)
    settings = {"mode": "dialogue", "max_error_share": 0.5}
    run_round1(commits_file, tmp_path / "r1.jsonl", "m", {}, settings, None, tmp_path / "u.json")
    seed = next(read_jsonl(commits_file))
    request = backend.calls[0][0]
    prompt = user_text(request)
    assert request.messages[0] == {"role": "system", "content": template("commit_system")}
    assert f"```python\n{commit_old(0).rstrip()}\n```" in prompt
    assert "```diff\n--- a/stats/mean_0.py\n+++ b/stats/mean_0.py\n@@ -1,2 +1,4 @@\n" in prompt
    assert "+    if not xs:\n+        return 0.0\n" in prompt
    assert "```\nHandle empty input #0\n```" in prompt
    example = load_fewshot()[seed["fewshot_id"]]
    assert example.descriptive in prompt and example.lazy in prompt
    assert example.program_before not in prompt and example.program_after not in prompt  # instructions only
    assert "[Descriptive]" in prompt and "[Lazy]" in prompt and "[Program" not in prompt
    assert not re.search(r"\$\{?\w", prompt)  # every placeholder was filled


def test_fewshot_set_is_complete_and_valid() -> None:
    examples = load_fewshot()
    assert len(examples) >= 6
    for example in examples.values():
        ast.parse(example.program_before)
        ast.parse(example.program_after)
        assert example.program_before != example.program_after
        assert len([s for s in example.lazy.replace("?", ".").split(". ") if s.strip()]) <= 3
        assert example.program_after not in example.descriptive
