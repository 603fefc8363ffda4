"""The prompts of synthesis: the round-1, round-2 and commit messages, from ``templates/``.

Round 1 shows the model two seed snippets and one curated example (program,
descriptive and lazy instruction; not the edited program, as in the paper) and
asks for a new program plus an edit task in both styles. Round 2 continues the
same conversation and asks for the edited program, or ``<UNREASONABLE>``.

A commit record's one round asks the model to rewrite the commit message into a
descriptive and a lazy instruction (``templates/commit_v1.txt``: the file before
the change, the unified diff, the message, and the instructions of the record's
few-shot example).
"""

from __future__ import annotations

import re
from string import Template
from typing import Any

from editforge.pycode.diff import unified_diff
from editforge.templates import FewShot, template


def _fenced(code: str, language: str = "python") -> str:
    """``code`` in a block whose fence is longer than any backtick run inside."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{code.rstrip()}\n{fence}"


def round1_messages(pair: dict[str, Any], example: FewShot) -> list[dict[str, str]]:
    """The system turn and the round-1 user turn for one pair."""
    first, second = pair["snippets"]
    user = Template(template("round1")).substitute(
        snippet_1=_fenced(first["text"]),
        snippet_2=_fenced(second["text"]),
        example_program=example.program_before.rstrip(),
        example_descriptive=example.descriptive.strip(),
        example_lazy=example.lazy.strip(),
    )
    return [{"role": "system", "content": template("system")}, {"role": "user", "content": user}]


def commit_messages(record: dict[str, Any], example: FewShot) -> list[dict[str, str]]:
    """The system turn and the user turn for one commit record."""
    commit = record["commit"]
    user = Template(template("commit")).substitute(
        old_code=_fenced(commit["old_code"]),
        diff=_fenced(unified_diff(commit["old_code"], commit["new_code"], commit.get("path") or ""), "diff"),
        message=_fenced(commit["message"], ""),
        example_descriptive=example.descriptive.strip(),
        example_lazy=example.lazy.strip(),
    )
    return [{"role": "system", "content": template("commit_system")}, {"role": "user", "content": user}]


def round2_message() -> dict[str, str]:
    return {"role": "user", "content": template("round2")}
