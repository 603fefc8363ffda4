"""Decontamination: find the triplets whose code or instructions hold benchmark text.

Every triplet is compared with every benchmark problem, field by field (code, string literals and
instructions, see ``BenchmarkIndex``), and the problem with the most evidence is named.
``decontaminate`` marks the records of the dedup stage that match; run_dedup refuses to go on when
too many kept ones do (``ContaminationError``). ``bench/decontamination.py`` measures recall on
mutated copies of every problem and false positives on the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from editforge.filtering.checks import TRIPLET_FIELDS
from editforge.filtering.minhash import words
from editforge.pycode.canonical import MULTIPLIER, canonical_forms, fmix64, shingles, string_literals
from editforge.records import drop

CODE_FIELDS = ("pre_code", "post_code")
INSTRUCTION_FIELDS = ("instruction_lazy", "instruction_descriptive")
BENCHMARK_CODE_FIELDS = ("before", "after")
BENCHMARK_INSTRUCTION_FIELDS = ("instruction_lazy", "instruction_descriptive")

# Canonical tokens per code shingle (about two lines of code) and characters per instruction n-gram.
CODE_SHINGLE_TOKENS = 10
CHAR_NGRAM = 5
# A string literal this long found in a benchmark program is evidence on its own (data, messages).
MIN_LITERAL_CHARS = 40
# Distinct shingles a pair must share: to count a benchmark text as contained in a triplet's (or all of the
# benchmark text's, when it has fewer), and to count a triplet's text as contained in a benchmark text.
MIN_SHARED_BENCHMARK = {"code": 4, "instruction": 20}
MIN_SHARED_TRIPLET = {"code": 40, "instruction": 40}

DEFAULTS: dict[str, float] = {"code_containment": 0.25, "instruction_containment": 0.6}

_HALF, _LOW = np.uint64(32), np.uint64(0xFFFFFFFF)


class ContaminationError(RuntimeError):
    """Too many triplets match the benchmark to trust the synthesis inputs."""


@dataclass(frozen=True)
class Match:
    """The benchmark text a triplet overlaps, and how much."""

    problem: str
    field: str  # the triplet's field
    benchmark_field: str
    method: str  # "code" or "instruction"
    score: float  # the larger containment of the pair
    shared: int  # distinct shingles in common

    def as_record(self, triplet_id: str) -> dict[str, Any]:
        return {
            "id": triplet_id, "problem": self.problem, "field": self.field, "benchmark_field": self.benchmark_field,
            "method": self.method, "score": self.score, "shared_shingles": self.shared,
        }


class _SetIndex:
    """Sets of 32-bit hashes, one per entry, and the overlap of other sets with each of them.

    Pairs are packed into one 64-bit number (high half, low half) so that numpy
    sorts them as plain integers.
    """

    def __init__(self, hashes: np.ndarray, offsets: np.ndarray) -> None:
        entry = np.repeat(np.arange(len(offsets) - 1, dtype=np.uint64), np.diff(offsets))
        pairs = np.unique((hashes.astype(np.uint64) << _HALF) | entry)  # distinct (hash, entry), sorted
        self.entries = (pairs & _LOW).astype(np.int64)
        self.sizes = np.bincount(self.entries, minlength=len(offsets) - 1)
        self.keys, first = np.unique(pairs >> _HALF, return_index=True)
        self.starts = np.append(first, len(pairs))

    def overlaps(self, hashes: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, ...]:
        """(query, entry, shared, query_size) for every query set sharing at least one hash with an entry."""
        owners = np.repeat(np.arange(len(offsets) - 1, dtype=np.uint64), np.diff(offsets))
        distinct = np.unique((hashes.astype(np.uint64) << _HALF) | owners)
        owner, value = (distinct & _LOW).astype(np.int64), distinct >> _HALF
        query_sizes = np.bincount(owner, minlength=len(offsets) - 1)
        slot = np.searchsorted(self.keys, value)
        found = (slot < len(self.keys)) & (self.keys[np.minimum(slot, len(self.keys) - 1)] == value)
        slot, owner = slot[found], owner[found]
        width = self.starts[slot + 1] - self.starts[slot]
        entries = self.entries[np.repeat(self.starts[slot], width) + _ranges(width)]
        pairs, shared = np.unique((np.repeat(owner, width) << 32) | entries, return_counts=True)
        return pairs >> 32, pairs & 0xFFFFFFFF, shared, query_sizes[pairs >> 32]


def _ranges(widths: np.ndarray) -> np.ndarray:
    """0..w-1 for every w in ``widths``, concatenated."""
    return np.arange(int(widths.sum())) - np.repeat(np.cumsum(widths) - widths, widths)


def char_ngrams(texts: Sequence[str], n: int = CHAR_NGRAM) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of the ``n``-character windows of each text's lower-cased words joined by spaces.

    A text shorter than ``n`` characters has one n-gram of it all; one without words, none.
    """
    normal = [" ".join(words(text)).encode() for text in texts]
    lengths = np.fromiter(map(len, normal), dtype=np.int64, count=len(normal))
    counts = np.where(lengths > 0, np.maximum(lengths - n + 1, 1), 0)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    data = np.frombuffer(b"".join(normal), dtype=np.uint8).astype(np.uint64)
    if not len(data):
        return np.zeros(0, np.uint32), offsets
    text_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    starts = np.repeat(text_starts, counts) + _ranges(counts)
    ends = np.repeat(text_starts + lengths, counts)
    value = np.zeros(len(starts), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(n):
            position = starts + offset
            byte = data[np.minimum(position, len(data) - 1)] + np.uint64(1)
            value = np.where(position < ends, value * MULTIPLIER + byte, value)
    return (fmix64(value) >> np.uint64(32)).astype(np.uint32), offsets


def code_shingles(sources: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The canonical shingles of each program (``pycode.canonical``), and their offsets."""
    return shingles(canonical_forms(sources), CODE_SHINGLE_TOKENS)


class BenchmarkIndex:
    """Every benchmark problem's code and instructions, ready to be compared with triplets.

    Every triplet is compared with every benchmark problem, field by field:

    * **code** (``pre_code``, ``post_code`` against ``before`` and ``after``) in
      the canonical form of ``editforge.pycode.canonical``: blind to renaming, layout,
      quoting, literals, comments and docstrings. Two programs overlap by the
      share of distinct canonical shingles they have in common, measured as
      *containment* both ways: a benchmark program (or a large part of it)
      inside a longer triplet program, or a triplet program that is mostly a
      piece of a benchmark program. Similar programs contain each other, so a
      near copy is caught too.
    * **string literals** of at least ``MIN_LITERAL_CHARS`` characters found in a
      benchmark program (data, messages, docstrings; blanks collapsed, an
      f-string's fields as ``{}``): one such literal in a triplet's code is
      evidence on its own, however little code surrounds it.
    * **instructions** (either style against either benchmark style) by
      character n-grams of the lower-cased words, also as containment both ways:
      a word substituted every eight words still leaves most n-grams, a benchmark
      instruction quoted inside a longer one is still inside, and a short lazy
      instruction is compared whole, however few words it has.

    A pair counts only with enough distinct shingles in common
    (``MIN_SHARED_BENCHMARK``, or all of a shorter benchmark text's, for a
    benchmark text inside a triplet's; ``MIN_SHARED_TRIPLET`` for a triplet's
    text inside a benchmark text), so a few generic lines never make a match. Of
    all problems a triplet matches, the one with the most evidence (shingles in
    common, summed over the triplet's fields) is named, so a triplet planted from
    one problem is not attributed to a sibling that shares a few lines with it.
    """

    def __init__(self, benchmark: Sequence[Mapping[str, Any]], settings: Mapping[str, Any] | None = None) -> None:
        self.settings = DEFAULTS | dict(settings or {})
        self.code_entries: list[tuple[str, str]] = []
        self.instruction_entries: list[tuple[str, str]] = []
        code_texts: list[str] = []
        instruction_texts: list[str] = []
        for problem in benchmark:
            for field in ("full_name", *BENCHMARK_CODE_FIELDS, *BENCHMARK_INSTRUCTION_FIELDS):
                if not isinstance(problem.get(field), str):
                    label = problem.get("full_name") or problem.get("id")
                    raise ValueError(f"benchmark problem {label!r} lacks the text field {field!r}")
            name: str = problem["full_name"]
            for field in BENCHMARK_CODE_FIELDS:
                self.code_entries.append((name, field))
                code_texts.append(problem[field])
            for field in BENCHMARK_INSTRUCTION_FIELDS:
                self.instruction_entries.append((name, field))
                instruction_texts.append(problem[field])
        self.problems = list(dict.fromkeys(name for name, _ in self.code_entries))
        self._literals: dict[str, dict[str, str]] = {}  # text -> problem -> the first field that has it
        for (name, field), text in zip(self.code_entries, code_texts):
            for literal in string_literals(text):
                if len(literal) >= MIN_LITERAL_CHARS:
                    self._literals.setdefault(literal, {}).setdefault(name, field)
        self._code = _SetIndex(*code_shingles(code_texts))
        self._instructions = _SetIndex(*char_ngrams(instruction_texts))

    def match(self, records: Sequence[Mapping[str, Any]]) -> list[Match | None]:
        """The benchmark text each record overlaps most (None: none), records taken many at a time."""
        return [m for start in range(0, len(records), 2048) for m in self._match(records[start : start + 2048])]

    def _match(self, records: Sequence[Mapping[str, Any]]) -> list[Match | None]:
        # evidence[record][problem] -> (shingles in common over the record's fields, the strongest match)
        evidence: list[dict[str, tuple[int, Match]]] = [{} for _ in records]
        kinds = (
            ("code", CODE_FIELDS, code_shingles, self._code, self.code_entries, self.settings["code_containment"]),
            (
                "instruction", INSTRUCTION_FIELDS, char_ngrams, self._instructions, self.instruction_entries,
                self.settings["instruction_containment"],
            ),
        )
        for method, fields, shingle, index, entries, threshold in kinds:
            texts = [_text(record, field) for record in records for field in fields]
            query, entry, shared, query_size = index.overlaps(*shingle(texts))
            entry_size = index.sizes[entry]
            in_triplet = shared / entry_size  # the share of the benchmark text that the triplet's holds
            in_benchmark = shared / np.maximum(query_size, 1)
            score = np.maximum(in_triplet, in_benchmark)
            hit = ((in_triplet >= threshold) & (shared >= np.minimum(MIN_SHARED_BENCHMARK[method], entry_size))) | (
                (in_benchmark >= threshold) & (shared >= MIN_SHARED_TRIPLET[method])
            )
            best_per_field: dict[tuple[int, str], Match] = {}
            for q, e, s, n in zip(query[hit].tolist(), entry[hit].tolist(), score[hit].tolist(), shared[hit].tolist()):
                problem, benchmark_field = entries[e]
                found = Match(problem, fields[q % len(fields)], benchmark_field, method, round(s, 4), n)
                key = (q, problem)
                if key not in best_per_field or _strength(found) > _strength(best_per_field[key]):
                    best_per_field[key] = found
            for (q, problem), found in best_per_field.items():
                per_problem = evidence[q // len(fields)]
                total, best = per_problem.get(problem, (0, found))
                per_problem[problem] = (total + found.shared, max(best, found, key=_strength))  # earlier field on ties
        for number, record in enumerate(records):
            for field in CODE_FIELDS:
                for literal in string_literals(_text(record, field)):
                    for problem, benchmark_field in self._literals.get(literal, {}).items():
                        found = Match(problem, field, benchmark_field, "literal", 1.0, len(literal))
                        total, best = evidence[number].get(problem, (0, found))
                        evidence[number][problem] = (total + found.shared, max(best, found, key=_strength))
        order = {name: rank for rank, name in enumerate(self.problems)}
        return [
            min(found.items(), key=lambda item: (-item[1][0], -item[1][1].score, order[item[0]]))[1][1]
            if found else None
            for found in evidence
        ]


def _strength(match: Match) -> tuple[int, float]:
    return match.shared, match.score


def _text(record: Mapping[str, Any], field: str) -> str:
    value = record.get(field)
    return value if isinstance(value, str) else ""


def decontaminate(records: list[dict[str, Any]], index: BenchmarkIndex) -> list[dict[str, Any]]:
    """Mark every record that holds benchmark text; return one match per record found.

    Dropped records are looked at too (the unfiltered exports hold them): a
    kept one is dropped as ``contaminated``, a dropped one keeps its reason;
    both get ``contaminated_by``.
    """
    with_text = [r for r in records if any(isinstance(r.get(f), str) for f in TRIPLET_FIELDS)]
    matches: list[dict[str, Any]] = []
    for record, match in zip(with_text, index.match(with_text)):
        if match is not None:
            was_kept = record["status"] == "ok"
            if was_kept:
                drop(record, "contaminated")
            record["contaminated_by"] = match.problem
            matches.append(match.as_record(record["id"]) | {"kept_before": was_kept})
    return matches
