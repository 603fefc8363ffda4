"""The canonical form of Python code that deduplication and decontamination compare.

Programs become canonical token streams (``canonical_forms``) and their shingles
(``shingles``). All of it runs on many programs at once with numpy; a regular expression
stands in for ``tokenize``: ten times faster, and it also reads code that
does not tokenize (an unclosed bracket, say).
"""

from __future__ import annotations

import builtins
import hashlib
import itertools
import keyword
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Python's tokens as far as the canonical form needs them (no capturing groups,
# so ``findall`` returns the tokens, each with the blanks before it: matching
# those is faster than scanning them): names (not a string's prefix), strings,
# newlines, numbers, operators and comments; anything else is skipped.
_TOKEN = re.compile(
    r"""
    [ \t]*+(?:
    [^\W\d]\w*+(?!["'])
    | [(),\[\]{}\n]
    | [rRbBuUfFtT]{0,2}(?:"{3}(?:\\[\s\S]|[^\\])*?"{3}|'{3}(?:\\[\s\S]|[^\\])*?'{3}
        |"(?:\\[\s\S]|[^"\\\r\n])*"|'(?:\\[\s\S]|[^'\\\r\n])*')
    | 0[xXoObB][0-9a-fA-F_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?[jJ]?
    | \*\*=?|//=?|->|:=|<<=?|>>=?|\.\.\.|[-+*/%@&|^<>=!]=|[-+*/%@&|^~<>=.,:;()\[\]{}]
    | \#[^\r\n]*
    )""",
    re.VERBOSE,
)

# Token kinds, kept in the low bits of each token's 64-bit value.
_KIND_BITS = 4
_KIND_MASK = np.uint64((1 << _KIND_BITS) - 1)
LITERAL, NAME, STRING, NEWLINE, COMMENT, OPEN_PAREN, CLOSE_PAREN, OPEN, CLOSE, COMMA, SEMICOLON = range(11)
_FIXED_KINDS = {
    "\n": NEWLINE, "(": OPEN_PAREN, ")": CLOSE_PAREN, "[": OPEN, "{": OPEN, "]": CLOSE, "}": CLOSE,
    ",": COMMA, ";": SEMICOLON,
}
_REPLACEMENT_FIELD = re.compile(r"\{[^{}]*\}")
_LITERAL_NAMES = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | frozenset(keyword.softkwlist)

MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # the golden ratio in 64 bits: the polynomial rolling hash of token runs


def fmix64(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's finalizer: spreads every input bit over the whole word (wraps mod 2**64)."""
    with np.errstate(over="ignore"):
        values = values ^ (values >> np.uint64(33))
        values = values * np.uint64(0xFF51AFD7ED558CCD)
        values = values ^ (values >> np.uint64(33))
        values = values * np.uint64(0xC4CEB9FE1A85EC53)
        return values ^ (values >> np.uint64(33))


def text_hash(text: str) -> int:
    """A stable 64-bit hash of a text."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


class _TokenValues(dict[str, int]):
    """token -> its 64-bit value: a hash of what it stands for, with its kind in the low bits."""

    def __missing__(self, blanks_and_token: str) -> int:
        token = blanks_and_token.lstrip(" \t")
        first = token[0]
        if first == "#":
            kind, meaning = COMMENT, "#"
        elif token[-1] in "\"'":
            kind, meaning = STRING, _string_text(token)
        elif first.isdigit() or (first == "." and len(token) > 1):
            kind, meaning = LITERAL, _number_value(token)
        elif token in _FIXED_KINDS:
            kind, meaning = _FIXED_KINDS[token], token
        elif first.isidentifier() and not (token in _LITERAL_NAMES or token[:2] == token[-2:] == "__"):
            kind, meaning = NAME, token
        else:
            kind, meaning = LITERAL, token
        value = (text_hash(meaning) & ~int(_KIND_MASK)) | kind
        self[blanks_and_token] = value
        return value


def _string_text(token: str) -> str:
    """A string token's text without prefix and quotes; an f-string's replacement fields as ``{}``.

    A replacement field holds code, whose names a renaming changes.
    """
    body = token.lstrip("rRbBuUfFtT")
    quotes = 3 if body[:3] in ('"""', "'''") else 1
    text = body[quotes:-quotes]
    if "f" in token[: len(token) - len(body)].lower():
        return "f:" + _REPLACEMENT_FIELD.sub("{}", text)
    return "s:" + text


def string_literals(source: str) -> list[str]:
    """The text of every string literal in ``source`` (docstrings too), as ``_string_text`` with blanks collapsed."""
    return [
        " ".join(_string_text(token).split())
        for token in map(str.lstrip, _TOKEN.findall(source))
        if token[-1:] in ("\"", "'") and token[0] != "#"
    ]


def _number_value(token: str) -> str:
    text = token.replace("_", "").lower()
    try:
        return "n:" + repr(int(text, 0) if text.isalnum() and not text.endswith("j") else float(text))
    except ValueError:
        return "n:" + text  # a complex literal, or ``0777``


_VALUES = _TokenValues()


@dataclass(frozen=True)
class CodeForms:
    """The canonical token streams of several programs, one after the other."""

    tokens: np.ndarray  # uint64: a hash of the token's meaning, its kind in the low bits
    offsets: np.ndarray  # (programs + 1,) int64: program i is tokens[offsets[i]:offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def kinds(self) -> np.ndarray:
        return (self.tokens & _KIND_MASK).astype(np.int8)


def canonical_forms(sources: Sequence[str]) -> CodeForms:
    """The canonical token streams of ``sources``.

    A program is read as a stream of Python tokens and normalised so that copying
    it with cosmetic changes leaves the stream as it was:

    * comments, docstrings (a string that is a statement of its own), newlines,
      parentheses, semicolons and trailing commas are dropped, so layout,
      redundant brackets and a reformatter's choices do not count;
    * a string literal stands for its text, without prefix and quotes (in an
      f-string every replacement field is ``{}``: it holds code, whose names a
      renaming changes), and a number for its value, so quote style and the
      spelling of numbers (``1_000``, ``0x3e8``) do not count;
    * identifiers are *parameters*: keywords, builtins and dunder names stay as
      they are, every other name is compared only by where it occurred before.
    """
    lists = [_TOKEN.findall(source) for source in sources]
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    tokens = np.fromiter(
        map(_VALUES.__getitem__, itertools.chain.from_iterable(lists)), dtype=np.uint64, count=int(lengths.sum())
    )
    program = np.repeat(np.arange(len(lists)), lengths)
    kind = (tokens & _KIND_MASK).astype(np.int8)

    def keep(mask: np.ndarray) -> None:
        nonlocal tokens, program, kind
        tokens, program, kind = tokens[mask], program[mask], kind[mask]

    keep(kind != COMMENT)
    keep(~_standalone_strings(kind, program) & (kind != NEWLINE) & (kind != SEMICOLON))
    same_program_next = np.zeros(len(kind), dtype=bool)
    same_program_next[:-1] = program[1:] == program[:-1]
    closing_next = np.zeros(len(kind), dtype=bool)
    closing_next[:-1] = (kind[1:] == CLOSE) | (kind[1:] == CLOSE_PAREN)
    keep(~((kind == COMMA) & closing_next & same_program_next) & (kind != OPEN_PAREN) & (kind != CLOSE_PAREN))
    counts = np.bincount(program, minlength=len(lists))
    return CodeForms(tokens, np.concatenate([[0], np.cumsum(counts)]))


def _standalone_strings(kind: np.ndarray, program: np.ndarray) -> np.ndarray:
    """Strings that are a statement of their own (docstrings): alone on their lines, outside brackets."""
    delta = np.isin(kind, (OPEN_PAREN, OPEN)).astype(np.int64) - np.isin(kind, (CLOSE_PAREN, CLOSE))
    depth = np.cumsum(delta) - delta  # before each token, counted from the first program
    starts = np.ones(len(kind), dtype=bool)
    starts[1:] = program[1:] != program[:-1]
    first_of_program = np.maximum.accumulate(np.where(starts, np.arange(len(kind)), 0))
    depth = depth - depth[first_of_program]  # an unbalanced program does not shift the next one
    ends = np.ones(len(kind), dtype=bool)
    ends[:-1] = starts[1:]
    after_break = starts.copy()
    after_break[1:] |= kind[:-1] == NEWLINE
    before_break = ends.copy()
    before_break[:-1] |= kind[1:] == NEWLINE
    return (kind == STRING) & (depth == 0) & after_break & before_break


def _previous_occurrence(forms: CodeForms) -> np.ndarray:
    """For each token: how many tokens back the same name last occurred in its program (0: never, or not a name)."""
    tokens = forms.tokens
    names = np.flatnonzero((tokens & _KIND_MASK) == NAME)
    program = np.repeat(np.arange(len(forms.lengths)), forms.lengths)[names]
    order = np.lexsort((names, tokens[names], program))
    positions = names[order]
    same = np.zeros(len(positions), dtype=bool)
    same[1:] = (program[order][1:] == program[order][:-1]) & (tokens[positions][1:] == tokens[positions][:-1])
    distance = np.zeros(len(tokens), dtype=np.int64)
    distance[positions[1:][same[1:]]] = np.diff(positions)[same[1:]]
    return distance


# What a parameter stands for in a shingle: "new", or the distance back to its last use.
_NEW_NAME = np.uint64(text_hash("<new name>"))
_BACK_REFERENCES = fmix64(np.arange(1, 65, dtype=np.uint64) + np.uint64(text_hash("<back reference>")))


def shingles(forms: CodeForms, size: int) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of every program's windows of ``size`` canonical tokens, and their offsets.

    A program with fewer tokens than ``size`` has one shingle of them all; one
    with none has none. Returns (hashes, offsets): program i's shingles are
    hashes[offsets[i]:offsets[i + 1]], in order, repeats included.

    Shingles of this stream (``shingles``) are windows of ``size`` tokens in
    which each parameter is replaced by the distance back to its previous
    occurrence *inside the window*, or "new" (Baker's parameterized strings, the
    classic encoding of code-clone detection). Consistent renaming leaves every
    shingle unchanged, and since the encoding of a window depends on that window
    alone, a program copied into the middle of another module keeps its
    shingles: that is what makes containment measurable, unlike renaming by
    first use over the whole program.
    """
    if not 1 <= size <= len(_BACK_REFERENCES):
        raise ValueError(f"a shingle has 1 to {len(_BACK_REFERENCES)} tokens; got {size}")
    lengths = forms.lengths
    counts = np.where(lengths > 0, np.maximum(lengths - size + 1, 1), 0)
    out_offsets = np.concatenate([[0], np.cumsum(counts)])
    if not len(forms.tokens):
        return np.zeros(0, np.uint32), out_offsets
    distance = _previous_occurrence(forms)
    is_name = (forms.tokens & _KIND_MASK) == NAME
    # What a token contributes at each offset in a window: a parameter is "new" unless its previous
    # occurrence lies inside the window (0 < distance <= offset). Padded, so that every offset is a slice.
    pad = np.zeros(size, dtype=np.uint64)
    as_new = np.concatenate([np.where(is_name, _NEW_NAME, forms.tokens), pad])
    back_reference = np.concatenate([_BACK_REFERENCES[np.clip(distance - 1, 0, len(_BACK_REFERENCES) - 1)], pad])
    reference = np.concatenate([is_name & (distance > 0), np.zeros(size, dtype=bool)])
    distance = np.concatenate([distance, np.zeros(size, dtype=np.int64)])
    total = len(forms.tokens)
    value = np.zeros(total, dtype=np.uint64)  # the window starting at each token, cut at the end of its program
    ends = np.repeat(forms.offsets[1:], lengths)
    with np.errstate(over="ignore"):
        for offset in range(size):
            window = slice(offset, offset + total)
            seen = reference[window] & (distance[window] <= offset)
            token = np.where(seen, back_reference[window], as_new[window])
            inside = np.arange(offset, offset + total) < ends
            value = np.where(inside, value * MULTIPLIER + token, value)
    # A program's windows start at each of its tokens that leaves ``size`` (a short one: its first only).
    within = np.arange(int(out_offsets[-1])) - np.repeat(out_offsets[:-1], counts)
    starts = np.repeat(forms.offsets[:-1], counts) + within
    return (fmix64(value[starts] + np.uint64(size)) >> np.uint64(32)).astype(np.uint32), out_offsets


def identifiers(source: str) -> list[str]:
    """The names in Python code, in order, without keywords; names in strings and comments are not names."""
    tokens = (token.lstrip(" \t") for token in _TOKEN.findall(source))
    return [t for t in tokens if t[:1].isidentifier() and t[-1] not in "\"'" and not keyword.iskeyword(t)]
