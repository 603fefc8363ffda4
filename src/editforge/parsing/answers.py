"""The answer parsers: code extraction, ``parse_round1``, ``parse_instructions`` and ``parse_round2``.

What real answers do, and how it is handled:

* Code is taken from the section's first Python (or untagged) fenced block.
  Unfenced code is accepted, with up to three lines of prose trimmed from each
  end when that makes it parse.
* ``<UNREASONABLE>`` anywhere outside code in a round-2 answer, bare, bold or
  inside a sentence, is the model's veto.
* A lazy instruction is the first paragraph of its section (prose that follows
  it is dropped); a paragraph ending in ``:`` keeps the code block after it.
  Instructions keep a trailing code block intact.
* An answer cut off by the token limit is dropped as ``truncated`` unless every
  section needed was already complete: a closed code block, and a lazy
  instruction followed by something else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from editforge.parsing.markdown import Block, fence_line, find_sections, scan, strip_thinking, trim_blank
from editforge.pycode import syntax

_UNREASONABLE = re.compile(r"<\s*unreasonable\s*>", re.IGNORECASE)
_RULE = re.compile(r"^[ \t]*(?:-{3,}|\*{3,}|_{3,})[ \t]*$")
PYTHON_TAGS = frozenset({"", "python", "py", "python3", "py3", "ipython"})
PROSE_TRIM = 3  # lines of prose tried off each end of unfenced code


@dataclass(frozen=True)
class Round1Parsed:
    program_before: str
    descriptive: str
    lazy: str


@dataclass(frozen=True)
class Instructions:
    """A commit record's answer: the commit message rewritten in both styles."""

    descriptive: str
    lazy: str


@dataclass(frozen=True)
class ParseFailure:
    reason: str


@dataclass(frozen=True)
class Unreasonable:
    """The round-2 veto: the model judged its own program unreasonable."""


UNREASONABLE = Unreasonable()

_LONE = frozenset({"identifier", "string", "concatenated_string", "integer", "float", "true", "false", "none"})


def _parses(text: str) -> bool:
    """Whether ``text`` is a program in the current Python grammar (whatever interpreter reads it)."""
    module = syntax.parse(text)
    if module is None:
        return False
    # A lone word such as "Yes" or "Done" parses as an expression but is no program.
    return any(
        not (statement.kind == "expression_statement" and {c.type for c in statement.node.named_children} <= _LONE)
        for statement in syntax.statements(module)
    )


def _unfenced_code(lines: Sequence[str]) -> str:
    """Code written without a fence; prose lines at either end are trimmed when that makes it parse."""
    body = trim_blank(lines)
    for total in range(2 * PROSE_TRIM + 1):
        for lead in range(min(total, PROSE_TRIM) + 1):
            tail = total - lead
            if tail > PROSE_TRIM or lead + tail >= len(body):
                continue
            candidate = "\n".join(trim_blank(body[lead : len(body) - tail]))
            if _parses(candidate):
                return candidate
    return "\n".join(body).rstrip()


def _block_code(block: Block) -> str:
    lines = list(block.lines)
    if not block.info and lines and lines[0].strip().lower() in {"python", "py"}:
        lines = lines[1:]  # a language tag written on its own line
    return "\n".join(trim_blank(lines)).rstrip()


def _pick_block(blocks: list[Block]) -> Block | None:
    """The program's block: the first Python or untagged one, else the first."""
    if not blocks:
        return None
    return next((b for b in blocks if b.info in PYTHON_TAGS and _block_code(b)), blocks[0])


def _code(lines: Sequence[str], truncated_at_end: bool) -> str | ParseFailure:
    """The program in a section's lines.

    ``truncated_at_end``: the section runs to the end of an answer that was cut
    off, so an unclosed block or unfenced code may be incomplete.
    """
    _, blocks = scan(lines)
    block = _pick_block(blocks)
    if block is None:
        if truncated_at_end:
            return ParseFailure("truncated")
        return _unfenced_code(lines)
    if not block.closed and truncated_at_end:
        return ParseFailure("truncated")
    return _block_code(block)


def _unwrap(text: str) -> str:
    """Strip markdown that wraps a whole instruction: rules, bold, italics, quotes."""
    lines = trim_blank(text.split("\n"))
    while lines and _RULE.match(lines[0]):
        lines = trim_blank(lines[1:])
    while lines and _RULE.match(lines[-1]):
        lines = trim_blank(lines[:-1])
    text = "\n".join(lines).strip()
    for wrapper in ("**", "__", "*", '"'):
        if len(text) > 2 * len(wrapper) and text.startswith(wrapper) and text.endswith(wrapper):
            text = text[len(wrapper) : -len(wrapper)].strip()
    return text


def _first_paragraph(lines: Sequence[str]) -> tuple[list[str], bool]:
    """The first paragraph (plus the code block it introduces), and whether anything follows it."""
    body = list(lines)
    start = next((i for i, line in enumerate(body) if line.strip()), len(body))
    end = start
    while end < len(body) and body[end].strip():
        if fence_line(body[end]):  # a block inside the paragraph: keep it whole
            _, blocks = scan(body[end:])
            if not blocks or not blocks[0].closed:
                return body[start:], False
            end += blocks[0].end
            continue
        end += 1
    paragraph = body[start:end]
    following = end
    while following < len(body) and not body[following].strip():
        following += 1
    if paragraph and paragraph[-1].rstrip().endswith(":") and following < len(body) and fence_line(body[following]):
        _, blocks = scan(body[following:])
        if not blocks[0].closed:
            return body[start:], False
        paragraph = body[start : following + blocks[0].end]
        end = following + blocks[0].end
    return paragraph, any(line.strip() for line in body[end:])


def parse_round1(text: str, truncated: bool = False) -> Round1Parsed | ParseFailure:
    """The program and the two instructions of a round-1 answer, or why not.

    ``truncated``: the answer stopped at the token limit.
    """
    lines = strip_thinking(text).split("\n")
    headers, blocks = scan(lines)
    sections = find_sections(lines, headers)
    missing = "truncated" if truncated else None

    if "before" in sections:
        first, end, rest = sections["before"]
        code = _code(([rest] if rest else []) + list(lines[first:end]), truncated and end == len(lines))
    else:
        # No header: a Python block written before the instructions is the program.
        limit = min((h.line for h in headers if h.kind in ("descriptive", "lazy")), default=len(lines))
        block = _pick_block([b for b in blocks if b.end <= limit])
        if block is None:
            return ParseFailure(missing or "missing_program_before")
        code = _block_code(block)
    if isinstance(code, ParseFailure):
        return code
    if not code.strip():
        return ParseFailure("empty_code")

    instructions = _instructions(lines, sections, truncated)
    if isinstance(instructions, ParseFailure):
        return instructions
    return Round1Parsed(code, instructions.descriptive, instructions.lazy)


def _instructions(
    lines: Sequence[str], sections: dict[str, tuple[int, int, str]], truncated: bool
) -> Instructions | ParseFailure:
    """The descriptive and lazy sections of an answer, or why not."""
    missing = "truncated" if truncated else None
    if "descriptive" not in sections:
        return ParseFailure(missing or "missing_descriptive")
    first, end, rest = sections["descriptive"]
    body = ([rest] if rest else []) + list(lines[first:end])
    if truncated and end == len(lines):
        return ParseFailure("truncated")
    descriptive = _unwrap("\n".join(body))
    if not descriptive:
        return ParseFailure("missing_descriptive")

    if "lazy" not in sections:
        return ParseFailure(missing or "missing_lazy")
    first, end, rest = sections["lazy"]
    paragraph, followed = _first_paragraph(([rest] if rest else []) + list(lines[first:end]))
    if truncated and end == len(lines) and not followed:
        return ParseFailure("truncated")
    lazy = _unwrap("\n".join(paragraph))
    if not lazy:
        return ParseFailure("missing_lazy")
    return Instructions(descriptive, lazy)


def parse_instructions(text: str, truncated: bool = False) -> Instructions | ParseFailure:
    """The two instructions of a commit record's answer (``[Descriptive]``, ``[Lazy]``), or why not.

    The sections are read as in a round-1 answer; anything else in the answer
    (a program, a diff, a preamble) is ignored.
    """
    lines = strip_thinking(text).split("\n")
    headers, _ = scan(lines)
    return _instructions(lines, find_sections(lines, headers), truncated)


def parse_round2(text: str, truncated: bool = False) -> str | Unreasonable | ParseFailure:
    """The edited program of a round-2 answer, the veto, or why neither."""
    lines = strip_thinking(text).split("\n")
    headers, blocks = scan(lines)
    in_code = {n for b in blocks for n in range(b.start, b.end)}
    prose = "\n".join(line for n, line in enumerate(lines) if n not in in_code)
    if _UNREASONABLE.search(prose) or re.fullmatch(r"[\s*_`#\[\]]*unreasonable[\s*_`#\[\].!]*", prose, re.I):
        return UNREASONABLE
    sections = find_sections(lines, headers)
    if "after" in sections:
        first, end, rest = sections["after"]
        code = _code(([rest] if rest else []) + list(lines[first:end]), truncated and end == len(lines))
    elif blocks:
        code = _code(lines, truncated)
    elif truncated:
        return ParseFailure("truncated")
    else:
        # No header and no fence: only an answer that is all code counts.
        code = _unfenced_code(lines)
        if not _parses(code):
            return ParseFailure("missing_program_after")
    if isinstance(code, str) and not code.strip():
        return ParseFailure("empty_code")
    return code
