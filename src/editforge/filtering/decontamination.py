"""Decontamination: find the triplets whose code or instructions hold benchmark text.

Every triplet is compared with every benchmark problem, field by field (code, string literals and
instructions, see ``BenchmarkIndex``), and the problem with the most evidence is named.
``decontaminate`` marks the records of the dedup stage that match; run_dedup refuses to go on when
too many kept ones do (``ContaminationError``). Any benchmark can be indexed: its texts are
``BenchmarkText`` entries (``BenchmarkIndex.from_texts``; ``benchmark_texts`` names a plug-in's
``reference_texts``); ``BenchmarkIndex(problems)`` indexes CanItEdit as before. ``bench/decontamination.py``
measures recall on mutated copies of every problem of every benchmark, and the clean data lost (standard
library, textbook programs).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

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
# Strict texts (those of a benchmark of textbook exercises: HumanEvalFix, Exercism; see ``BenchmarkText``). Their
# code is compared by the shingles that at most STRICT_MAX_PROBLEMS indexed problems have, on both sides: a shingle
# that more problems share is how Python is written (a running maximum, a class that stores its arguments), not what
# one problem says. A strict program counts as inside a triplet's only with STRICT_MIN_SHARED such shingles in common,
# or when the two are nearly the same program (each holds STRICT_CONTAINMENT of the other's): every textbook has
# a few lines of a small idiomatic program (a prime test). Strict instructions are compared by STRICT_NGRAM-character
# n-grams: a sentence of plain English has 60% of its 5-grams in most long texts (an Exercism exercise is 1,500
# characters, up to 12,000). ``bench/decontamination.py`` measured these against the textbook programs.
STRICT_MAX_PROBLEMS = 3
STRICT_MIN_SHARED = 20
STRICT_CONTAINMENT = 0.75
STRICT_NGRAM = 8

DEFAULTS: dict[str, float] = {"code_containment": 0.25, "instruction_containment": 0.6}
KINDS = ("code", "instruction")

_HALF, _LOW = np.uint64(32), np.uint64(0xFFFFFFFF)


class BenchmarkText(NamedTuple):
    """One text of one benchmark problem that no triplet may hold.

    ``kind`` says how it is compared: ``"code"`` (canonical shingles, and its string literals of
    ``MIN_LITERAL_CHARS``) or ``"instruction"`` (character n-grams). A ``strict`` text (the default:
    a new benchmark's) is compared by the rule for textbook exercises (``STRICT_*`` above); CanItEdit's
    (``canitedit_texts``) are not strict: they keep the rule their recall was measured with, so CanItEdit's
    matches and reports stay as they were.
    """

    problem: str  # the name a match reports: "47_merge_sort", "humanevalfix/Python/0", "aider_exercism/leap"
    field: str  # the benchmark field the text comes from ("before", "test", "docstring", "instructions", ...)
    kind: str  # "code" or "instruction"
    text: str
    strict: bool = True


def canitedit_texts(benchmark: Sequence[Mapping[str, Any]]) -> list[BenchmarkText]:
    """CanItEdit's texts, named by ``full_name``: ``before`` and ``after`` as code, both instructions."""
    entries = []
    for problem in benchmark:
        for field in ("full_name", *BENCHMARK_CODE_FIELDS, *BENCHMARK_INSTRUCTION_FIELDS):
            if not isinstance(problem.get(field), str):
                label = problem.get("full_name") or problem.get("id")
                raise ValueError(f"benchmark problem {label!r} lacks the text field {field!r}")
        name = problem["full_name"]
        entries += [BenchmarkText(name, field, "code", problem[field], False) for field in BENCHMARK_CODE_FIELDS]
        entries += [
            BenchmarkText(name, field, "instruction", problem[field], False) for field in BENCHMARK_INSTRUCTION_FIELDS
        ]
    return entries


def benchmark_texts(
    benchmark: str, problem_id: str, texts: Mapping[str, str], instruction_fields: Collection[str] = ()
) -> list[BenchmarkText]:
    """One problem's texts (a plug-in's ``reference_texts``), named ``<benchmark>/<problem_id>``; the fields in
    ``instruction_fields`` are prose, the others code. Empty texts are left out."""
    name = f"{benchmark}/{problem_id}"
    return [
        BenchmarkText(name, field, "instruction" if field in instruction_fields else "code", text)
        for field, text in texts.items()
        if text.strip()
    ]


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
    shared: int  # distinct shingles in common (a strict program's: those few problems have; a literal: its length)

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
        if not len(self.keys):
            none = np.zeros(0, dtype=np.int64)
            return none, none, none, none
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

    **Strict texts** (``BenchmarkText.strict``: benchmarks of small textbook
    exercises, whose programs are the idioms every textbook has) are held to
    more: their code is compared by the shingles at most ``STRICT_MAX_PROBLEMS``
    indexed problems have, and a part of a program counts only with
    ``STRICT_MIN_SHARED`` of them (or when the triplet's program and the
    benchmark's are nearly the same); their instructions by ``STRICT_NGRAM``-
    character n-grams. A triplet that holds a tiny benchmark program among other
    code is then found by its literals (HumanEval's docstring) or not at all.

    ``BenchmarkIndex(problems)`` indexes CanItEdit's problems (``canitedit_texts``);
    ``BenchmarkIndex.from_texts(entries)`` any benchmarks' texts.
    """

    def __init__(self, benchmark: Sequence[Mapping[str, Any]], settings: Mapping[str, Any] | None = None) -> None:
        """CanItEdit's problems (``canitedit_texts``)."""
        self._build(canitedit_texts(benchmark), settings)

    @classmethod
    def from_texts(
        cls, entries: Iterable[BenchmarkText | tuple[str, str, str, str]], settings: Mapping[str, Any] | None = None
    ) -> BenchmarkIndex:
        """Any benchmarks' texts: ``BenchmarkText`` entries, or (problem, field, kind, text) tuples (strict).

        Problems are ranked (ties of evidence) in the order they first occur.
        """
        index = cls.__new__(cls)
        index._build([BenchmarkText(*entry) for entry in entries], settings)
        return index

    def _build(self, entries: Sequence[BenchmarkText], settings: Mapping[str, Any] | None) -> None:
        self.settings = DEFAULTS | dict(settings or {})
        for entry in entries:
            label = f"benchmark text {entry.problem!r} {entry.field!r}"
            if entry.kind not in KINDS:
                raise ValueError(f"{label}: kind must be 'code' or 'instruction', not {entry.kind!r}")
            if not all(isinstance(value, str) for value in (entry.problem, entry.field, entry.text)):
                raise ValueError(f"{label}: problem, field and text must be strings")
        self.code_entries = [(e.problem, e.field) for e in entries if e.kind == "code"]
        self.instruction_entries = [(e.problem, e.field) for e in entries if e.kind == "instruction"]
        self.problems = list(dict.fromkeys(entry.problem for entry in entries))
        self._literals: dict[str, dict[str, str]] = {}  # text -> problem -> the first field that has it
        for entry in entries:
            if entry.kind == "code":
                for literal in string_literals(entry.text):
                    if len(literal) >= MIN_LITERAL_CHARS:
                        self._literals.setdefault(literal, {}).setdefault(entry.problem, entry.field)
        self._passes: list[_Pass] = []
        for kind, ngram in (("code", 0), ("instruction", CHAR_NGRAM)):
            chosen = [e for e in entries if e.kind == kind and not e.strict]
            self._passes.append(_Pass(kind, chosen, *_cut(kind, [e.text for e in chosen], ngram), ngram))
        # Strict code: compared by the shingles that few problems have; strict instructions: by longer n-grams.
        code = [e for e in entries if e.kind == "code"]
        hashes, offsets = code_shingles([e.text for e in code])
        self.common_shingles = np.zeros(0, dtype=np.uint32)  # code shingles that are no evidence against strict texts
        strict = np.array([e.strict for e in code], dtype=bool)
        if strict.any():
            problem = np.unique([e.problem for e in code], return_inverse=True)[1].astype(np.uint64)
            pairs = np.unique((hashes.astype(np.uint64) << _HALF) | np.repeat(problem, np.diff(offsets)))
            values, problems = np.unique(pairs >> _HALF, return_counts=True)
            self.common_shingles = values[problems > STRICT_MAX_PROBLEMS].astype(np.uint32)
            owner = np.repeat(np.arange(len(code)), np.diff(offsets))
            keep = strict[owner] & ~np.isin(hashes, self.common_shingles)
            counts = np.bincount(owner[keep], minlength=len(code))[strict]
            chosen = [e for e in code if e.strict]
            kept_offsets = np.concatenate([[0], np.cumsum(counts)])
            self._passes.append(_Pass("code", chosen, hashes[keep], kept_offsets, 0, self.common_shingles))
        chosen = [e for e in entries if e.kind == "instruction" and e.strict]
        ngrams = char_ngrams([e.text for e in chosen], STRICT_NGRAM)
        self._passes.append(_Pass("instruction", chosen, *ngrams, STRICT_NGRAM))

    def match(self, records: Sequence[Mapping[str, Any]]) -> list[Match | None]:
        """The benchmark text each record overlaps most (None: none), records taken many at a time."""
        return [m for start in range(0, len(records), 2048) for m in self._match(records[start : start + 2048])]

    def _match(self, records: Sequence[Mapping[str, Any]]) -> list[Match | None]:
        # evidence[record][problem] -> (shingles in common over the record's fields, the strongest match)
        evidence: list[dict[str, tuple[int, Match]]] = [{} for _ in records]
        queries: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        for step in self._passes:
            if not step.entries:
                continue
            fields = CODE_FIELDS if step.method == "code" else INSTRUCTION_FIELDS
            if (step.method, step.ngram) not in queries:
                texts = [_text(record, field) for record in records for field in fields]
                queries[step.method, step.ngram] = _cut(step.method, texts, step.ngram)
            hashes, offsets = queries[step.method, step.ngram]
            if step.common is not None:  # what is common is no evidence, and takes no room in a triplet's text
                hashes, offsets = _without(hashes, offsets, step.common)
            threshold = self.settings[f"{step.method}_containment"]
            query, entry, shared, query_size = step.index.overlaps(hashes, offsets)
            entry_size = step.index.sizes[entry]
            in_triplet = shared / entry_size  # the share of the benchmark text that the triplet's holds
            in_benchmark = shared / np.maximum(query_size, 1)
            score = np.maximum(in_triplet, in_benchmark)
            minimum = np.minimum(MIN_SHARED_BENCHMARK[step.method], entry_size)
            contained = (in_triplet >= threshold) & (shared >= minimum)
            if step.common is not None and step.method == "code":  # many shingles, or nearly the same programs
                same = (in_triplet >= STRICT_CONTAINMENT) & (in_benchmark >= STRICT_CONTAINMENT)
                contained &= (shared >= STRICT_MIN_SHARED) | same
            hit = contained | ((in_benchmark >= threshold) & (shared >= MIN_SHARED_TRIPLET[step.method]))
            best_per_field: dict[tuple[int, str], Match] = {}
            for q, e, s, n in zip(query[hit].tolist(), entry[hit].tolist(), score[hit].tolist(), shared[hit].tolist()):
                problem, benchmark_field = step.entries[e]
                found = Match(problem, fields[q % len(fields)], benchmark_field, step.method, round(s, 4), n)
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


class _Pass:
    """One comparison: the benchmark texts of one kind, lenient or strict (``common`` is then the hashes left out
    of both sides), and the n-gram length of instructions (0: code)."""

    def __init__(
        self, method: str, texts: Sequence[BenchmarkText], hashes: np.ndarray, offsets: np.ndarray, ngram: int,
        common: np.ndarray | None = None,
    ) -> None:
        self.method, self.ngram, self.common = method, ngram, common
        self.entries = [(text.problem, text.field) for text in texts]
        self.index = _SetIndex(hashes, offsets)


def _cut(kind: str, texts: Sequence[str], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    return code_shingles(texts) if kind == "code" else char_ngrams(texts, ngram)


def _without(hashes: np.ndarray, offsets: np.ndarray, common: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    owner = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    keep = ~np.isin(hashes, common)
    return hashes[keep], np.concatenate([[0], np.cumsum(np.bincount(owner[keep], minlength=len(offsets) - 1))])


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
