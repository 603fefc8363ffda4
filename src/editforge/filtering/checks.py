"""The checks of one triplet on its own: syntax, a real change, diff size, instruction length, no leak.

``filter_triplet`` returns the name of the first check a triplet fails (the drop reason), or None.
``is_kept`` and ``require_fields`` check the records a filtering stage reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from editforge.filtering.minhash import WORD
from editforge.pycode import syntax
from editforge.pycode.diff import diff_stats
from editforge.records import PathLike, RecordError

# The descriptive instruction leaks the answer when it holds more than
# LEAK_SHARE of the post-edit program's new lines, counted only when there are at
# least LEAK_MIN_NEW_LINES of them: quoting a line or two is how a descriptive
# instruction is meant to be precise. Lines shorter than LEAK_MIN_LINE_CHARS
# (``else:``, ``return x``) say nothing about a leak.
LEAK_MIN_NEW_LINES = 3
LEAK_SHARE = 0.5
LEAK_MIN_LINE_CHARS = 8

TRIPLET_FIELDS = ("pre_code", "post_code", "instruction_lazy", "instruction_descriptive")

_INLINE_CODE = re.compile(r"`[^`\n]*`")
_ABBREVIATION = re.compile(r"\b(?:e\.g|i\.e|etc|vs|cf)\.", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")


def count_sentences(text: str) -> int:
    """Sentences in an instruction; each non-blank line ends one (bullets count).

    Inline code (``x.y()``) and abbreviations (e.g.) do not end a sentence; a
    period only ends one when followed by whitespace, so 3.5 is safe too.
    """
    text = _ABBREVIATION.sub("abbr", _INLINE_CODE.sub("code", text))
    return sum(
        1 for line in text.splitlines() for piece in _SENTENCE_END.split(line) if WORD.search(piece)
    )


def filter_triplet(rec: Mapping[str, Any], settings: Mapping[str, Any]) -> str | None:
    """The name of the first check ``rec`` fails, or None when it passes them all.

    ``settings`` is the config's ``filtering:`` section.
    """
    # The current Python grammar (tree-sitter), whatever interpreter runs the stage.
    if not (rec["pre_code"].strip() and syntax.is_valid(rec["pre_code"])):
        return "pre_code_syntax"
    if not (rec["post_code"].strip() and syntax.is_valid(rec["post_code"])):
        return "post_code_syntax"
    if not rec["instruction_lazy"].strip() or not rec["instruction_descriptive"].strip():
        return "empty_instruction"
    # Comments, blank lines, spacing and quoting style are no change.
    if syntax.same_code(rec["pre_code"], rec["post_code"]):
        return "no_change"
    stats = diff_stats(rec["pre_code"], rec["post_code"])
    if stats.changed_lines < settings["min_changed_lines"]:
        return "too_few_changed_lines"
    if stats.changed_lines > settings["max_changed_lines"]:
        return "too_many_changed_lines"
    if stats.hunks > settings["max_hunks"]:
        return "too_many_hunks"
    if count_sentences(rec["instruction_lazy"]) > settings["lazy_max_sentences"]:
        return "lazy_too_long"
    if leaks_post_code(rec["instruction_descriptive"], rec["pre_code"], rec["post_code"]):
        return "descriptive_leaks_post_code"
    return None


def leaks_post_code(instruction: str, pre: str, post: str) -> bool:
    """Whether the instruction holds the whole post-edit program or most of its new lines."""
    text = squash(instruction)
    if squash(post) in text:
        return True
    old = {squash(line) for line in pre.splitlines()}
    new = {
        squashed
        for line in post.splitlines()
        if len(squashed := squash(line)) >= LEAK_MIN_LINE_CHARS
        and squashed not in old
        and not squashed.startswith("#")
    }
    if len(new) < LEAK_MIN_NEW_LINES:
        return False
    return sum(line in text for line in new) > LEAK_SHARE * len(new)


def squash(text: str) -> str:
    """The text with every run of whitespace one space, and none at either end."""
    return " ".join(text.split())


def is_kept(record: Mapping[str, Any], path: PathLike) -> bool:
    """Whether an earlier stage kept the record (an error for a status other than ok or dropped)."""
    status = record.get("status")
    if status not in ("ok", "dropped"):
        raise RecordError(f"{path}: record {record.get('id')!r} has status {status!r}, expected 'ok' or 'dropped'")
    return status == "ok"


def require_fields(record: Mapping[str, Any], fields: Iterable[str], path: PathLike) -> None:
    """An error naming the first of ``fields`` that the record does not hold as text."""
    for field in fields:
        if not isinstance(record.get(field), str):
            raise RecordError(f"{path}: record {record.get('id')!r} lacks the text field {field!r}")
