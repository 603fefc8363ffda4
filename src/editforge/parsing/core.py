"""Stage 3b: read each synthesis dialogue back into a triplet, or a named drop.

Parsing checks structure only (are the sections there, is there code, was the
answer cut off); whether the code or the instructions are any good is the
filtering stage's business.

What real answers do, and how it is handled:

* Section headers come in many spellings: ``[Descriptive]``, ``### Descriptive``,
  ``**Descriptive**``, ``**[Descriptive]**``, ``Descriptive:``, ``Lazy
  Instruction:`` with the text on the same line, numbered or bulleted. A header
  counts only at the start of a line and outside code blocks, except that a
  bracketed header (``[Lazy]``) also ends a code block someone forgot to close.
* Sections may come in any order; each runs to the next header.
* Code is taken from the section's first Python (or untagged) fenced block.
  Fences nest: a fence line with a language tag inside a block opens an inner
  block, so a docstring that shows a fenced example does not cut the code.
  Unfenced code is accepted, with up to three lines of prose trimmed from each
  end when that makes it parse.
* ``<think>…</think>`` blocks are removed first.
* ``<UNREASONABLE>`` anywhere outside code in a round-2 answer, bare, bold or
  inside a sentence, is the model's veto.
* A lazy instruction is the first paragraph of its section (prose that follows
  it is dropped); a paragraph ending in ``:`` keeps the code block after it.
  Instructions keep a trailing code block intact.
* An answer cut off by the token limit is dropped as ``truncated`` unless every
  section needed was already complete: a closed code block, and a lazy
  instruction followed by something else.

A commit dialogue (its ``pair`` is a commit record, ``kind: "commit"``) has one
answer holding only ``[Descriptive]`` and ``[Lazy]`` (``parse_instructions``,
read as above); its triplet takes ``pre_code``/``post_code`` from the commit and
adds ``kind: "commit"`` and ``commit`` (the hash, or "").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from editforge.pycode import syntax as pysyntax
from editforge.records import PathLike, RecordError, Turn, drop, read_jsonl, status_counts, write_json, write_jsonl


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
_UNREASONABLE = re.compile(r"<\s*unreasonable\s*>", re.IGNORECASE)
_RULE = re.compile(r"^[ \t]*(?:-{3,}|\*{3,}|_{3,})[ \t]*$")
# The drop reasons synthesis gives a record whose call failed after its retries.
ROUND1_ERROR = "round1_error"
ROUND2_ERROR = "round2_error"
COMMIT_KIND = "commit"  # the ``kind`` of a commit seed record (pair records have none)
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


@dataclass(frozen=True)
class _Header:
    kind: str
    line: int
    rest: str  # text on the header line after the header itself


@dataclass(frozen=True)
class _Block:
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


def _fence(line: str) -> tuple[str, str] | None:
    match = _FENCE.match(line)
    return (match.group("fence"), match.group("info").lower()) if match else None


def _closes(fence: tuple[str, str], opening: str) -> bool:
    """Whether a fence line closes the block opened by ``opening``."""
    mark, info = fence
    return not info and mark[0] == opening[0] and len(mark) >= len(opening)


def _scan(lines: Sequence[str]) -> tuple[list[_Header], list[_Block]]:
    """Section headers outside code, and the outermost code blocks, of ``lines``."""
    headers: list[_Header] = []
    blocks: list[_Block] = []
    stack: list[str] = []  # opening fences of the blocks we are in
    start, info = 0, ""
    for number, line in enumerate(lines):
        fence = _fence(line)
        if stack:
            if fence and _closes(fence, stack[-1]):
                stack.pop()
                if not stack:
                    blocks.append(_Block(info, list(lines[start + 1 : number]), True, start, number + 1))
            elif fence and fence[1]:
                stack.append(fence[0])  # a tagged fence inside code opens an inner block
            else:
                found = _header(line)
                if found and found[2]:  # a bracketed header ends a block left open
                    blocks.append(_Block(info, list(lines[start + 1 : number]), False, start, number))
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
        blocks.append(_Block(info, list(lines[start + 1 :]), False, start, len(lines)))
    return headers, blocks


def _sections(lines: Sequence[str], headers: list[_Header]) -> dict[str, tuple[int, int, str]]:
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


def _trim_blank(lines: Sequence[str]) -> list[str]:
    kept = list(lines)
    while kept and not kept[0].strip():
        kept.pop(0)
    while kept and not kept[-1].strip():
        kept.pop()
    return kept


_LONE = frozenset({"identifier", "string", "concatenated_string", "integer", "float", "true", "false", "none"})


def _parses(text: str) -> bool:
    """Whether ``text`` is a program in the current Python grammar (whatever interpreter reads it)."""
    module = pysyntax.parse(text)
    if module is None:
        return False
    # A lone word such as "Yes" or "Done" parses as an expression but is no program.
    return any(
        not (statement.kind == "expression_statement" and {c.type for c in statement.node.named_children} <= _LONE)
        for statement in pysyntax.statements(module)
    )


def _unfenced_code(lines: Sequence[str]) -> str:
    """Code written without a fence; prose lines at either end are trimmed when that makes it parse."""
    body = _trim_blank(lines)
    for total in range(2 * PROSE_TRIM + 1):
        for lead in range(min(total, PROSE_TRIM) + 1):
            tail = total - lead
            if tail > PROSE_TRIM or lead + tail >= len(body):
                continue
            candidate = "\n".join(_trim_blank(body[lead : len(body) - tail]))
            if _parses(candidate):
                return candidate
    return "\n".join(body).rstrip()


def _block_code(block: _Block) -> str:
    lines = list(block.lines)
    if not block.info and lines and lines[0].strip().lower() in {"python", "py"}:
        lines = lines[1:]  # a language tag written on its own line
    return "\n".join(_trim_blank(lines)).rstrip()


def _pick_block(blocks: list[_Block]) -> _Block | None:
    """The program's block: the first Python or untagged one, else the first."""
    if not blocks:
        return None
    return next((b for b in blocks if b.info in PYTHON_TAGS and _block_code(b)), blocks[0])


def _code(lines: Sequence[str], truncated_at_end: bool) -> str | ParseFailure:
    """The program in a section's lines.

    ``truncated_at_end``: the section runs to the end of an answer that was cut
    off, so an unclosed block or unfenced code may be incomplete.
    """
    _, blocks = _scan(lines)
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
    lines = _trim_blank(text.split("\n"))
    while lines and _RULE.match(lines[0]):
        lines = _trim_blank(lines[1:])
    while lines and _RULE.match(lines[-1]):
        lines = _trim_blank(lines[:-1])
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
        if _fence(body[end]):  # a block inside the paragraph: keep it whole
            _, blocks = _scan(body[end:])
            if not blocks or not blocks[0].closed:
                return body[start:], False
            end += blocks[0].end
            continue
        end += 1
    paragraph = body[start:end]
    following = end
    while following < len(body) and not body[following].strip():
        following += 1
    if paragraph and paragraph[-1].rstrip().endswith(":") and following < len(body) and _fence(body[following]):
        _, blocks = _scan(body[following:])
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
    headers, blocks = _scan(lines)
    sections = _sections(lines, headers)
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
    headers, _ = _scan(lines)
    return _instructions(lines, _sections(lines, headers), truncated)


def parse_round2(text: str, truncated: bool = False) -> str | Unreasonable | ParseFailure:
    """The edited program of a round-2 answer, the veto, or why neither."""
    lines = strip_thinking(text).split("\n")
    headers, blocks = _scan(lines)
    in_code = {n for b in blocks for n in range(b.start, b.end)}
    prose = "\n".join(line for n, line in enumerate(lines) if n not in in_code)
    if _UNREASONABLE.search(prose) or re.fullmatch(r"[\s*_`#\[\]]*unreasonable[\s*_`#\[\].!]*", prose, re.I):
        return UNREASONABLE
    sections = _sections(lines, headers)
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


# ---------------------------------------------------------------- dialogue records


def _answers(record: dict[str, Any]) -> list[str]:
    return [m.get("content", "") for m in record.get("messages", []) if m.get("role") == "assistant"]


def _round_truncated(turns: dict[str, Turn]) -> tuple[bool, bool]:
    """(cut off, cut off in a way the text cannot show).

    A free-form answer (one ``answer`` turn) that hit the limit may still hold
    every section, which the text parser decides. A section produced by its own
    call (sectioned mode) that hit the limit is incomplete whatever the text.
    """
    cut = [t.get("finish_reason") == "length" for t in turns.values()]
    return any(cut), any(cut) and "answer" not in turns


def parse_round1_record(record: dict[str, Any]) -> Round1Parsed | ParseFailure:
    """Round 1 of a dialogue record, parsed: what synthesis checks before round 2."""
    return _parse_first_round(record, "missing_program_before", parse_round1)


def parse_commit_record(record: dict[str, Any]) -> Instructions | ParseFailure:
    """The answer of a commit dialogue record, parsed."""
    return _parse_first_round(record, "missing_descriptive", parse_instructions)


_Parsed = TypeVar("_Parsed")


def _parse_first_round(
    record: dict[str, Any], missing: str, parse: Callable[[str, bool], _Parsed | ParseFailure]
) -> _Parsed | ParseFailure:
    """The first round's answer through ``parse``, unless a call failed, nothing came
    back (``missing``) or a section was cut before its end."""
    turns: dict[str, Turn] = record.get("round1") or {}
    if record.get("reason") == ROUND1_ERROR or any(t.get("error") for t in turns.values()):
        return ParseFailure("call_error")
    answers = _answers(record)
    if not turns or not answers:
        return ParseFailure(missing)
    truncated, incomplete = _round_truncated(turns)
    if incomplete:
        return ParseFailure("truncated")
    return parse(answers[0], truncated)


def _round2_outcome(record: dict[str, Any]) -> str | Unreasonable | ParseFailure:
    turns: dict[str, Turn] = record.get("round2") or {}
    if record.get("reason") == ROUND2_ERROR or any(t.get("error") for t in turns.values()):
        return ParseFailure("call_error")
    answers = _answers(record)
    if not turns or len(answers) < 2:
        return ParseFailure("missing_program_after")
    truncated, incomplete = _round_truncated(turns)
    if incomplete:
        return ParseFailure("truncated")
    return parse_round2(answers[1], truncated)


def triplet_from_dialogue(record: dict[str, Any]) -> dict[str, Any]:
    """The TripletRecord of one dialogue record; ``status`` says whether it parsed.

    A drop keeps what did parse (a round-2 failure still has the round-1 parts).
    """
    for key in ("id", "model", "shard", "pair"):
        if key not in record:
            raise RecordError(f"dialogue record {record.get('id', '?')}: missing {key!r}")
    triplet: dict[str, Any] = {
        "id": f"{record['model']}:{record['id']}",
        "model": record["model"],
        "shard": record["shard"],
        "pair_id": record["id"],
        "fewshot_id": record["pair"].get("fewshot_id", ""),
        "pre_code": "",
        "post_code": "",
        "instruction_lazy": "",
        "instruction_descriptive": "",
        "status": "ok",
    }
    if record["pair"].get("kind") == COMMIT_KIND:
        return _commit_triplet(record, triplet)
    first = parse_round1_record(record)
    if isinstance(first, ParseFailure):
        return drop(triplet, first.reason)
    triplet.update(
        pre_code=first.program_before, instruction_descriptive=first.descriptive, instruction_lazy=first.lazy
    )
    second = _round2_outcome(record)
    if isinstance(second, Unreasonable):
        return drop(triplet, "unreasonable")
    if isinstance(second, ParseFailure):
        return drop(triplet, second.reason)
    triplet["post_code"] = second
    return triplet


def _commit_triplet(record: dict[str, Any], triplet: dict[str, Any]) -> dict[str, Any]:
    """A commit dialogue's triplet: the commit's code and the parsed instructions.

    It carries ``kind: "commit"`` and the commit's hash (``commit``, "" when
    unknown); the code is filled in even when the answer is dropped.
    """
    info = record["pair"].get("commit")
    if not isinstance(info, dict) or not all(isinstance(info.get(k), str) for k in ("old_code", "new_code")):
        raise RecordError(f"dialogue record {record['id']}: commit record without 'commit' code")
    triplet.update(kind=COMMIT_KIND, commit=info.get("commit") or "")
    triplet.update(pre_code=info["old_code"], post_code=info["new_code"])
    parsed = parse_commit_record(record)
    if isinstance(parsed, ParseFailure):
        return drop(triplet, parsed.reason)
    triplet.update(instruction_descriptive=parsed.descriptive, instruction_lazy=parsed.lazy)
    return triplet


def run_parse(round2_path: PathLike, out_path: PathLike, counts_path: PathLike) -> dict[str, int]:
    """Parse every dialogue of a round-2 file; write the triplets and the counts per outcome."""
    triplets: list[dict[str, Any]] = []
    for number, record in enumerate(read_jsonl(round2_path), start=1):
        try:
            triplets.append(triplet_from_dialogue(record))
        except RecordError as err:
            raise RecordError(f"{round2_path}: record {number}: {err}") from None
    write_jsonl(out_path, triplets)
    counts = status_counts(triplets)
    write_json(counts_path, counts)
    return counts
