"""Markdown scanning of the teachers' answers: section headers, nested fences, sections, ``<think>`` removal.

What real answers do, and how it is handled:

* Section headers come in many spellings: ``[Descriptive]``, ``### Descriptive``,
  ``**Descriptive**``, ``**[Descriptive]**``, ``Descriptive:``, ``Lazy
  Instruction:`` with the text on the same line, numbered or bulleted. A header
  counts only at the start of a line and outside code blocks, except that a
  bracketed header (``[Lazy]``) also ends a code block someone forgot to close.
* Sections may come in any order; each runs to the next header.
* Fences nest: a fence line with a language tag inside a block opens an inner
  block, so a docstring that shows a fenced example does not cut the code.
* ``<think>…</think>`` blocks are removed first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# Section names, as the header patterns accept them (case-insensitive).
_NAMES = {
    "before": r"(?:program|code)[ \t]*\(?[ \t]*before(?:[ \t]+(?:the[ \t]+)?edit(?:ing)?)?\)?"
    r"|pre[- ]?edit[ \t]+(?:program|code)|original[ \t]+(?:program|code)",
    "descriptive": r"descriptive(?:[ \t]+(?:edit[ \t]+)?(?:instructions?|task|version|request|style))?",
    "lazy": r"lazy(?:[ \t]+(?:edit[ \t]+)?(?:instructions?|task|version|request|style))?",
    "after": r"(?:program|code)[ \t]*\(?[ \t]*after(?:[ \t]+(?:the[ \t]+)?edit(?:ing)?)?\)?"
    r"|post[- ]?edit[ \t]+(?:program|code)|edited[ \t]+(?:program|code)",
}
_HEADER = re.compile(
    r"""^[ \t]*
    (?P<hashes>\#{1,6}[ \t]*)?
    (?:(?:\d+[.)]|[-*+])[ \t]+)?           # a list marker
    (?P<open>\*\*|__|`(?!`))?[ \t]*
    (?P<bracket>\[)?[ \t]*
    (?:"""
    + "|".join(f"(?P<{kind}>{pattern})" for kind, pattern in _NAMES.items())
    + r""")
    [ \t]*(?(bracket)\])
    (?:[ \t]+(?:edit[ \t]+)?(?:instructions?|version|style)\b)?   # "[Lazy] Instruction"
    (?:[ \t]*\([^)\n]*\))?                   # "(at most three sentences)"
    [ \t]*(?P<colon>:)?
    [ \t]*(?P<close>\*\*|__|`(?!`))?
    [ \t]*(?P<colon2>:)?
    [ \t]*(?P<rest>.*?)[ \t]*$""",
    re.IGNORECASE | re.VERBOSE,
)
# A fence line: the fence, then an optional language tag (and attributes after a space).
_FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[\w+#.-]*)(?:[ \t]+[^`]*)?$")
_THINK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class _Header:
    kind: str
    line: int
    rest: str  # text on the header line after the header itself


@dataclass(frozen=True)
class Block:
    info: str
    lines: list[str]
    closed: bool
    start: int  # line of the opening fence, within the lines scanned
    end: int  # line after the closing fence (or len(lines) when unclosed)


def strip_thinking(text: str) -> str:
    """Remove reasoning blocks, including an unclosed one and a lone closing tag."""
    text = _THINK.sub("", text)
    closings = list(re.finditer(r"</think>", text, re.IGNORECASE))
    if closings:  # the opening tag was in the prompt (some chat templates put it there)
        text = text[closings[-1].end() :]
    opened = re.search(r"<think>", text, re.IGNORECASE)
    return text if opened is None else text[: opened.start()]


def _header(line: str) -> tuple[str, str, bool] | None:
    """(kind, rest of line, bracketed) when ``line`` is a section header."""
    match = _HEADER.match(line)
    if not match:
        return None
    kind = next(k for k in _NAMES if match.group(k))
    rest = match.group("rest")
    bracketed = bool(match.group("bracket"))
    colon = bool(match.group("colon") or match.group("colon2"))
    if rest and not (bracketed or colon):
        return None  # "Lazy loading is ..." or "**Lazy** loading ..." is prose, not a header
    # "Name: text" with nothing else marking it: code such as "lazy: bool = x" also
    # looks like this, so only a capitalised name counts.
    plain = not (bracketed or match.group("open") or match.group("hashes"))
    if rest and colon and plain and not match.group(kind)[0].isupper():
        return None
    return kind, rest, bracketed


def fence_line(line: str) -> tuple[str, str] | None:
    match = _FENCE.match(line)
    return (match.group("fence"), match.group("info").lower()) if match else None


def _closes(fence: tuple[str, str], opening: str) -> bool:
    """Whether a fence line closes the block opened by ``opening``."""
    mark, info = fence
    return not info and mark[0] == opening[0] and len(mark) >= len(opening)


def scan(lines: Sequence[str]) -> tuple[list[_Header], list[Block]]:
    """Section headers outside code, and the outermost code blocks, of ``lines``."""
    headers: list[_Header] = []
    blocks: list[Block] = []
    stack: list[str] = []  # opening fences of the blocks we are in
    start, info = 0, ""
    for number, line in enumerate(lines):
        fence = fence_line(line)
        if stack:
            if fence and _closes(fence, stack[-1]):
                stack.pop()
                if not stack:
                    blocks.append(Block(info, list(lines[start + 1 : number]), True, start, number + 1))
            elif fence and fence[1]:
                stack.append(fence[0])  # a tagged fence inside code opens an inner block
            else:
                found = _header(line)
                if found and found[2]:  # a bracketed header ends a block left open
                    blocks.append(Block(info, list(lines[start + 1 : number]), False, start, number))
                    stack.clear()
                    headers.append(_Header(found[0], number, found[1]))
            continue
        if fence:
            stack, start, info = [fence[0]], number, fence[1]
            continue
        found = _header(line)
        if found:
            headers.append(_Header(found[0], number, found[1]))
    if stack:
        blocks.append(Block(info, list(lines[start + 1 :]), False, start, len(lines)))
    return headers, blocks


def find_sections(lines: Sequence[str], headers: list[_Header]) -> dict[str, tuple[int, int, str]]:
    """Each kind's section: (first body line, end line, text on the header line).

    A section runs to the next header. The first header of a kind with any text
    under it wins, so an outline listing the headers before the answer is skipped.
    """
    found: dict[str, tuple[int, int, str]] = {}
    filled: set[str] = set()
    for index, header in enumerate(headers):
        if header.kind in filled:
            continue
        end = headers[index + 1].line if index + 1 < len(headers) else len(lines)
        if header.rest or any(line.strip() for line in lines[header.line + 1 : end]):
            filled.add(header.kind)
        elif header.kind in found:
            continue
        found[header.kind] = (header.line + 1, end, header.rest)
    return found


def trim_blank(lines: Sequence[str]) -> list[str]:
    kept = list(lines)
    while kept and not kept[0].strip():
        kept.pop(0)
    while kept and not kept[-1].strip():
        kept.pop()
    return kept
