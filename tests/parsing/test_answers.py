"""The answer parsers on realistic model answers: every header style, fences, prose,
thinking blocks, refusals and cut-off answers, round 1, round 2 and commit instructions."""

from __future__ import annotations

from typing import Any

import pytest

from editforge.parsing.answers import (
    UNREASONABLE,
    Instructions,
    ParseFailure,
    Round1Parsed,
    parse_instructions,
    parse_round1,
    parse_round2,
)

PROGRAM = "def add(a, b):\n    return a - b"
DESC = "Fix `add` so that it returns the sum `a + b` instead of the difference."
LAZY = "add() subtracts, make it add."
OK = {"program_before": PROGRAM, "descriptive": DESC, "lazy": LAZY}


def answer(before: str, desc: str, lazy: str, program: str = PROGRAM, fence: str = "```python") -> str:
    return f"{before}\n{fence}\n{program}\n```\n\n{desc}\n{DESC}\n\n{lazy}\n{LAZY}"


FULL_ANSWER = f"[Program Before Edit]\n```python\n{PROGRAM}\n```\n\n[Descriptive]\n{DESC}\n\n[Lazy]\n{LAZY}"

# (case id, answer text, truncated, expected: a reason or the parsed sections)
ROUND1_CASES: list[tuple[str, str, bool, Any]] = [
    ("brackets", answer("[Program Before Edit]", "[Descriptive]", "[Lazy]"), False, OK),
    ("hash_brackets", answer("### [Program Before Edit]", "### [Descriptive]", "### [Lazy]"), False, OK),
    ("hash_plain", answer("## Program Before Edit", "## Descriptive", "## Lazy"), False, OK),
    ("bold", answer("**Program Before Edit**", "**Descriptive**", "**Lazy**"), False, OK),
    ("bold_brackets", answer("**[Program Before Edit]**", "**[Descriptive]**", "**[Lazy]**"), False, OK),
    ("colon", answer("Program Before Edit:", "Descriptive:", "Lazy:"), False, OK),
    (
        "instruction_suffix",
        answer("### Program Before Edit", "### Descriptive Instruction:", "Lazy Instruction:"),
        False,
        OK,
    ),
    ("numbered", answer("1. **Program Before Edit**", "2. **Descriptive**", "3. **Lazy**"), False, OK),
    ("bold_colon_outside", answer("**Program Before Edit**:", "**Descriptive**:", "**Lazy**:"), False, OK),
    (
        "bracket_then_word",
        answer("[Program Before Edit]", "### [Descriptive] Instruction", "### [Lazy] Instruction"),
        False,
        OK,
    ),
    (
        "parenthetical",
        answer(
            "[Program Before Edit]",
            "Descriptive instruction (detailed):",
            "Lazy instruction (at most three sentences):",
        ),
        False,
        OK,
    ),
    ("lowercase_brackets", answer("[program before edit]", "[descriptive]", "[lazy]"), False, OK),
    ("no_language_tag", answer("[Program Before Edit]", "[Descriptive]", "[Lazy]", fence="```"), False, OK),
    ("py_tag", answer("[Program Before Edit]", "[Descriptive]", "[Lazy]", fence="```py"), False, OK),
    (
        "inline_text_on_header_line",
        f"**Program Before Edit:**\n```python\n{PROGRAM}\n```\n**Descriptive:** {DESC}\n**Lazy:** {LAZY}",
        False,
        OK,
    ),
    (
        "prose_around",
        f"Sure! Here is a task inspired by the two snippets.\n\n[Program Before Edit]\n```python\n{PROGRAM}\n```\n\n"
        f"[Descriptive]\n{DESC}\n\n[Lazy]\n{LAZY}\n\nLet me know if you want the edited program too!",
        False,
        OK,
    ),
    (
        "thinking_block_with_fake_headers",
        "<think>\nThe user wants [Descriptive] and [Lazy]. Let me draft:\n[Lazy]\nnot this one\n</think>\n"
        + answer("[Program Before Edit]", "[Descriptive]", "[Lazy]"),
        False,
        OK,
    ),
    (
        "separators_between_sections",
        f"### Program Before Edit\n```python\n{PROGRAM}\n```\n---\n### Descriptive\n{DESC}\n---\n### Lazy\n{LAZY}\n---",
        False,
        OK,
    ),
    (
        "lazy_before_descriptive",
        f"[Program Before Edit]\n```python\n{PROGRAM}\n```\n\n[Lazy]\n{LAZY}\n\n[Descriptive]\n{DESC}",
        False,
        OK,
    ),
    (
        "unfenced_program_with_intro",
        f"[Program Before Edit]\nHere is the program:\n{PROGRAM}\n\n[Descriptive]\n{DESC}\n\n[Lazy]\n{LAZY}",
        False,
        OK,
    ),
    (
        "python_word_on_first_line",
        f"[Program Before Edit]\n```\npython\n{PROGRAM}\n```\n\n[Descriptive]\n{DESC}\n\n[Lazy]\n{LAZY}",
        False,
        OK,
    ),
    (
        "tilde_fence",
        f"[Program Before Edit]\n~~~python\n{PROGRAM}\n~~~\n\n[Descriptive]\n{DESC}\n\n[Lazy]\n{LAZY}",
        False,
        OK,
    ),
    (
        "nested_fence_in_docstring",
        '[Program Before Edit]\n```python\ndef show():\n    """Print an example.\n\n    ```python\n    show()\n'
        '    ```\n    """\n    print("x")\n```\n\n[Descriptive]\n' + DESC + "\n\n[Lazy]\n" + LAZY,
        False,
        {
            "program_before": 'def show():\n    """Print an example.\n\n    ```python\n    show()\n    ```\n    """\n'
            '    print("x")',
            "descriptive": DESC,
            "lazy": LAZY,
        },
    ),
    (
        "descriptive_ends_with_code_block",
        f"[Program Before Edit]\n```python\n{PROGRAM}\n```\n\n[Descriptive]\nReplace the body of `add` with:\n"
        "```python\nreturn a + b\n```\n\n[Lazy]\n" + LAZY,
        False,
        {
            "program_before": PROGRAM,
            "descriptive": "Replace the body of `add` with:\n```python\nreturn a + b\n```",
            "lazy": LAZY,
        },
    ),
    (
        "lazy_followed_by_prose",
        f"[Program Before Edit]\n```python\n{PROGRAM}\n```\n\n[Descriptive]\n{DESC}\n\n[Lazy]\n{LAZY}\n\n"
        "This task exercises basic arithmetic.",
        False,
        OK,
    ),
    (
        "lazy_introduces_code",
        f"[Program Before Edit]\n```python\n{PROGRAM}\n```\n\n[Descriptive]\n{DESC}\n\n[Lazy]\nMake it do this:\n\n"
        "```python\nadd(1, 2) == 3\n```\n\nThat's all.",
        False,
        {"program_before": PROGRAM, "descriptive": DESC, "lazy": "Make it do this:\n\n```python\nadd(1, 2) == 3\n```"},
    ),
    (
        "wrapped_in_bold_and_quotes",
        f'[Program Before Edit]\n```python\n{PROGRAM}\n```\n\n[Descriptive]\n**{DESC}**\n\n[Lazy]\n"{LAZY}"',
        False,
        OK,
    ),
    (
        "no_before_header_code_first",
        f"```python\n{PROGRAM}\n```\n\n[Descriptive]\n{DESC}\n\n[Lazy]\n{LAZY}",
        False,
        OK,
    ),
    (
        "unclosed_fence_before_bracket_header",
        f"[Program Before Edit]\n```python\n{PROGRAM}\n[Descriptive]\n{DESC}\n\n[Lazy]\n{LAZY}",
        False,
        OK,
    ),
    (
        "code_lines_that_look_like_headers",
        "[Program Before Edit]\n```python\nclass Config:\n    lazy: bool = False\n    Descriptive = 1\n```\n\n"
        f"[Descriptive]\nLazy loading is not supported yet. {DESC}\n\n[Lazy]\n{LAZY}",
        False,
        {
            "program_before": "class Config:\n    lazy: bool = False\n    Descriptive = 1",
            "descriptive": f"Lazy loading is not supported yet. {DESC}",
            "lazy": LAZY,
        },
    ),
    (
        "bold_word_and_list_items_in_prose",
        f"[Program Before Edit]\n```python\n{PROGRAM}\n```\n\n[Descriptive]\nChange `add`:\n1. Lazy evaluation is not "
        "needed.\n**Lazy** loading stays off.\n\n[Lazy]\n" + LAZY,
        False,
        {
            "program_before": PROGRAM,
            "descriptive": "Change `add`:\n1. Lazy evaluation is not needed.\n**Lazy** loading stays off.",
            "lazy": LAZY,
        },
    ),
    (
        "outline_of_headers_first",
        "I will give:\n- [Program Before Edit]\n- [Descriptive]\n- [Lazy]\n\n" + FULL_ANSWER,
        False,
        OK,
    ),
    (
        "sectioned_assembly",
        f"[Program Before Edit]\n```python\n{PROGRAM}\n```\n\n[Descriptive]\n{DESC}\n\n[Lazy]\n{LAZY}",
        False,
        OK,
    ),
    ("truncated_in_program", "[Program Before Edit]\n```python\ndef add(a, b):\n    return", True, "truncated"),
    (
        "truncated_in_descriptive",
        f"[Program Before Edit]\n```python\n{PROGRAM}\n```\n\n[Descriptive]\nFix the",
        True,
        "truncated",
    ),
    (
        "truncated_in_lazy",
        f"[Program Before Edit]\n```python\n{PROGRAM}\n```\n\n[Descriptive]\n{DESC}\n\n[Lazy]\nadd()",
        True,
        "truncated",
    ),
    (
        "truncated_after_lazy_complete",
        f"[Program Before Edit]\n```python\n{PROGRAM}\n```\n\n[Descriptive]\n{DESC}\n\n[Lazy]\n{LAZY}\n\n"
        "[Program After Edit]\n```python\ndef add(a, b):\n    ret",
        True,
        OK,
    ),
    ("truncated_while_thinking", "<think>\nLet me think about the two snippets. The first one", True, "truncated"),
    (
        "missing_lazy",
        f"[Program Before Edit]\n```python\n{PROGRAM}\n```\n\n[Descriptive]\n{DESC}",
        False,
        "missing_lazy",
    ),
    (
        "missing_descriptive",
        f"[Program Before Edit]\n```python\n{PROGRAM}\n```\n\n[Lazy]\n{LAZY}",
        False,
        "missing_descriptive",
    ),
    (
        "empty_lazy",
        f"[Program Before Edit]\n```python\n{PROGRAM}\n```\n\n[Descriptive]\n{DESC}\n\n[Lazy]\n",
        False,
        "missing_lazy",
    ),
    ("refusal", "I'm sorry, but I can't help with that request.", False, "missing_program_before"),
    ("empty_answer", "", False, "missing_program_before"),
    (
        "empty_code_block",
        f"[Program Before Edit]\n```python\n```\n\n[Descriptive]\n{DESC}\n\n[Lazy]\n{LAZY}",
        False,
        "empty_code",
    ),
]


@pytest.mark.parametrize(
    ("text", "truncated", "expected"), [c[1:] for c in ROUND1_CASES], ids=[c[0] for c in ROUND1_CASES]
)
def test_round1(text: str, truncated: bool, expected: Any) -> None:
    result = parse_round1(text, truncated=truncated)
    if isinstance(expected, str):
        assert result == ParseFailure(expected)
    else:
        assert result == Round1Parsed(**expected)


AFTER = "def add(a, b):\n    return a + b"

ROUND2_CASES: list[tuple[str, str, bool, Any]] = [
    ("brackets", f"[Program After Edit]\n```python\n{AFTER}\n```", False, AFTER),
    (
        "hash_header_and_explanation",
        f"### Program After Edit\n```python\n{AFTER}\n```\n\nI changed `-` to `+`.",
        False,
        AFTER,
    ),
    ("bold_brackets", f"**[Program After Edit]**\n```python\n{AFTER}\n```", False, AFTER),
    ("colon_inline_fence", f"Program After Edit: ```python\n{AFTER}\n```", False, AFTER),
    (
        "reasonable_prose_first",
        f"The program is reasonable.\n\n[Program After Edit]\n```python\n{AFTER}\n```",
        False,
        AFTER,
    ),
    ("no_header", f"Here you go:\n\n```python\n{AFTER}\n```", False, AFTER),
    ("header_unfenced", f"[Program After Edit]\n{AFTER}\n", False, AFTER),
    ("all_code_no_header", f"{AFTER}\n", False, AFTER),
    (
        "thinking_then_code",
        f"<think>Is it reasonable? Yes.</think>\n[Program After Edit]\n```python\n{AFTER}\n```",
        False,
        AFTER,
    ),
    (
        "bash_block_first",
        f"[Program After Edit]\n```bash\npip install nothing\n```\n```python\n{AFTER}\n```",
        False,
        AFTER,
    ),
    ("unclosed_fence_model_stopped", f"[Program After Edit]\n```python\n{AFTER}\n", False, AFTER),
    (
        "nested_fence",
        '[Program After Edit]\n```python\ndef f():\n    """```python\n    f()\n    ```"""\n```',
        False,
        'def f():\n    """```python\n    f()\n    ```"""',
    ),
    (
        "marker_inside_code_is_not_a_veto",
        '[Program After Edit]\n```python\nMARK = "<UNREASONABLE>"\n```',
        False,
        'MARK = "<UNREASONABLE>"',
    ),
    (
        "truncated_after_closed_block",
        f"[Program After Edit]\n```python\n{AFTER}\n```\n\nThe change replaces",
        True,
        AFTER,
    ),
    ("unreasonable_bare", "<UNREASONABLE>", False, UNREASONABLE),
    ("unreasonable_bold", "**<UNREASONABLE>**", False, UNREASONABLE),
    (
        "unreasonable_in_prose",
        "On reflection the program mixes two unrelated ideas, so: <UNREASONABLE>.",
        False,
        UNREASONABLE,
    ),
    ("unreasonable_spaced_lowercase", "< unreasonable >", False, UNREASONABLE),
    ("unreasonable_word_only", "UNREASONABLE", False, UNREASONABLE),
    ("unreasonable_after_thinking", "<think>The program has no point.</think>\n<UNREASONABLE>", False, UNREASONABLE),
    (
        "truncated_in_code",
        "[Program After Edit]\n```python\ndef add(a, b):\n    return a +",
        True,
        ParseFailure("truncated"),
    ),
    ("truncated_unfenced", "[Program After Edit]\ndef add(a, b):\n    return a +", True, ParseFailure("truncated")),
    ("refusal", "Sure, I can help with that.", False, ParseFailure("missing_program_after")),
    ("bare_word_is_not_code", "Reasonable", False, ParseFailure("missing_program_after")),
    ("empty_block", "[Program After Edit]\n```python\n```", False, ParseFailure("empty_code")),
]


@pytest.mark.parametrize(
    ("text", "truncated", "expected"), [c[1:] for c in ROUND2_CASES], ids=[c[0] for c in ROUND2_CASES]
)
def test_round2(text: str, truncated: bool, expected: Any) -> None:
    assert parse_round2(text, truncated=truncated) == expected


def test_case_table_is_large_and_ids_unique() -> None:
    ids = [c[0] for c in ROUND1_CASES] + [f"r2:{c[0]}" for c in ROUND2_CASES]
    assert len(ids) >= 60 and len(set(ids)) == len(ids)


INSTRUCTIONS = Instructions(DESC, LAZY)

# (case id, answer text, truncated, expected: a reason or the instructions)
INSTRUCTION_CASES: list[tuple[str, str, bool, Any]] = [
    ("brackets", f"[Descriptive]\n{DESC}\n\n[Lazy]\n{LAZY}", False, INSTRUCTIONS),
    ("hashes", f"### Descriptive\n{DESC}\n\n### Lazy\n{LAZY}", False, INSTRUCTIONS),
    ("bold_inline", f"**Descriptive:** {DESC}\n\n**Lazy:** {LAZY}", False, INSTRUCTIONS),
    ("named", f"Descriptive instruction:\n{DESC}\n\nLazy instruction:\n{LAZY}", False, INSTRUCTIONS),
    (
        "preamble",
        f"Here is the rewrite.\n\n[Descriptive]\n{DESC}\n\n[Lazy]\n{LAZY}\n\nHope it helps!",
        False,
        INSTRUCTIONS,
    ),
    ("reversed", f"[Lazy]\n{LAZY}\n\n[Descriptive]\n{DESC}", False, INSTRUCTIONS),
    (
        "thinking",
        f"<think>The diff adds a check. [Lazy] first?</think>\n[Descriptive]\n{DESC}\n\n[Lazy]\n{LAZY}",
        False,
        INSTRUCTIONS,
    ),
    (
        "program_ignored",
        f"[Program Before Edit]\n```python\n{PROGRAM}\n```\n[Descriptive]\n{DESC}\n[Lazy]\n{LAZY}",
        False,
        INSTRUCTIONS,
    ),
    ("no_lazy", f"[Descriptive]\n{DESC}", False, "missing_lazy"),
    ("empty_lazy", f"[Descriptive]\n{DESC}\n\n[Lazy]\n", False, "missing_lazy"),
    ("no_sections", f"{DESC}\n\n{LAZY}", False, "missing_descriptive"),
    ("empty_descriptive", f"[Descriptive]\n\n[Lazy]\n{LAZY}", False, "missing_descriptive"),
    ("cut_in_lazy", f"[Descriptive]\n{DESC}\n\n[Lazy]\nadd() subtracts, make", True, "truncated"),
    ("cut_after_lazy", f"[Descriptive]\n{DESC}\n\n[Lazy]\n{LAZY}\n\nNote:", True, INSTRUCTIONS),
    ("cut_in_descriptive", "[Descriptive]\nFix `add` so", True, "truncated"),
    ("cut_before_anything", "Let me look at the diff", True, "truncated"),
]


@pytest.mark.parametrize(
    ("text", "truncated", "expected"), [c[1:] for c in INSTRUCTION_CASES], ids=[c[0] for c in INSTRUCTION_CASES]
)
def test_instructions(text: str, truncated: bool, expected: Any) -> None:
    result = parse_instructions(text, truncated)
    assert result == (ParseFailure(expected) if isinstance(expected, str) else expected)


def test_an_unfenced_answer_in_a_newer_pythons_syntax_is_code_and_python_2_is_not() -> None:
    modern = "class Box[T]:\n    def get(self) -> T:\n        return self.item"
    assert parse_round2(modern) == modern
    assert parse_round2("print 'boxed'") == ParseFailure("missing_program_after")
