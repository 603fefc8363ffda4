"""Filtering of edit triplets: per-shard validity and diff checks, then dedup and decontamination.

``run_filter_shard`` checks each triplet on its own (``filter_triplet``, and the
optional execution check). ``run_dedup`` then looks at all kept triplets of all
shards and models together: exact and near duplicates (MinHash LSH, so it stays
near-linear at 100k triplets) and overlap with the benchmark (word n-grams and
MinHash, the latter blind to renamed identifiers in code). Every record read is
written back out; a dropped one carries the name of the check that dropped it
and, in ``duplicate_of`` or ``contaminated_by``, what it matched; the report file
lists the matches.
"""

from __future__ import annotations

import ast
import builtins
import difflib
import hashlib
import io
import keyword
import os
import re
import tokenize
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from datasketch import MinHash, MinHashLSH

from editforge.records import RecordError, drop, read_jsonl, status_counts, write_json, write_jsonl

# An unchanged run longer than this splits hunks: two changes closer than twice
# the 3 context lines of ``diff -U3`` share one hunk (the reference's rule).
HUNK_SPLIT_EQUAL_LINES = 6

# The descriptive instruction leaks the answer when it holds more than
# LEAK_SHARE of the post-edit program's new lines, counted only when there are at
# least LEAK_MIN_NEW_LINES of them: quoting a line or two is how a descriptive
# instruction is meant to be precise. Lines shorter than LEAK_MIN_LINE_CHARS
# (``else:``, ``return x``) say nothing about a leak.
LEAK_MIN_NEW_LINES = 3
LEAK_SHARE = 0.5
LEAK_MIN_LINE_CHARS = 8

TRIPLET_FIELDS = ("pre_code", "post_code", "instruction_lazy", "instruction_descriptive")
BENCHMARK_FIELDS = ("before", "after", "instruction_lazy", "instruction_descriptive")
NEAR_DUPLICATE_REASONS = ("near_duplicate_code", "near_duplicate_diff", "near_duplicate_instruction")

_BUILTINS = frozenset(dir(builtins))
_WORD = re.compile(r"\w+")
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_ABBREVIATION = re.compile(r"\b(?:e\.g|i\.e|etc|vs|cf)\.", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")


class ContaminationError(RuntimeError):
    """Too many triplets match the benchmark to trust the synthesis inputs."""


# ---------------------------------------------------------------- per-triplet checks


@dataclass(frozen=True)
class DiffStats:
    added: int
    removed: int
    modified: int  # a replaced block counts max(old lines, new lines)
    hunks: int

    @property
    def changed_lines(self) -> int:
        return self.added + self.removed + self.modified


def diff_stats(pre: str, post: str) -> DiffStats:
    """Line-diff size and hunk count, as the reference's diff filter measures them.

    Trailing whitespace is ignored. difflib's autojunk heuristic is off: it only
    acts on files of 200+ lines, where it turns frequent lines (blank ones) into
    junk and inflates the counts.
    """
    before = [line.rstrip() for line in pre.splitlines()]
    after = [line.rstrip() for line in post.splitlines()]
    added = removed = modified = hunks = 0
    in_hunk = False
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
        if tag == "equal":
            in_hunk = in_hunk and i2 - i1 <= HUNK_SPLIT_EQUAL_LINES
            continue
        if not in_hunk:
            hunks += 1
            in_hunk = True
        if tag == "replace":
            modified += max(i2 - i1, j2 - j1)
        elif tag == "insert":
            added += j2 - j1
        else:
            removed += i2 - i1
    return DiffStats(added=added, removed=removed, modified=modified, hunks=hunks)


def count_sentences(text: str) -> int:
    """Sentences in an instruction; each non-blank line ends one (bullets count).

    Inline code (``x.y()``) and abbreviations (e.g.) do not end a sentence; a
    period only ends one when followed by whitespace, so 3.5 is safe too.
    """
    text = _ABBREVIATION.sub("abbr", _INLINE_CODE.sub("code", text))
    return sum(
        1 for line in text.splitlines() for piece in _SENTENCE_END.split(line) if _WORD.search(piece)
    )


def filter_triplet(rec: Mapping[str, Any], settings: Mapping[str, Any]) -> str | None:
    """The name of the first check ``rec`` fails, or None when it passes them all.

    ``settings`` is the config's ``filtering:`` section.
    """
    pre_tree = _parse(rec["pre_code"])
    if pre_tree is None:
        return "pre_code_syntax"
    post_tree = _parse(rec["post_code"])
    if post_tree is None:
        return "post_code_syntax"
    if not rec["instruction_lazy"].strip() or not rec["instruction_descriptive"].strip():
        return "empty_instruction"
    # The AST ignores comments, blank lines, spacing and quoting style.
    if ast.dump(pre_tree) == ast.dump(post_tree):
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
    text = _squash(instruction)
    if _squash(post) in text:
        return True
    old = {_squash(line) for line in pre.splitlines()}
    new = {
        squashed
        for line in post.splitlines()
        if len(squashed := _squash(line)) >= LEAK_MIN_LINE_CHARS
        and squashed not in old
        and not squashed.startswith("#")
    }
    if len(new) < LEAK_MIN_NEW_LINES:
        return False
    return sum(line in text for line in new) > LEAK_SHARE * len(new)


def _parse(source: str) -> ast.Module | None:
    """The module's AST, or None when the code is blank or not valid Python."""
    if not source.strip():
        return None
    try:
        with warnings.catch_warnings():  # invalid escape sequences etc. are the model's business
            warnings.simplefilter("ignore")
            return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):  # ValueError: null bytes
        return None


def _squash(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------- per-shard stage


def run_filter_shard(
    triplets_path: str | os.PathLike[str], out_path: str | os.PathLike[str], settings: Mapping[str, Any]
) -> dict[str, int]:
    """Check every kept triplet of one shard; write all records; return status counts.

    Records the triplet stage dropped stay dropped. With ``execution_check`` the
    post-edit program of each triplet that passed the other checks is run in the
    sandbox and must exit cleanly.
    """
    records = list(read_jsonl(triplets_path))
    for record in records:
        if _is_kept(record, triplets_path):
            _require_fields(record, TRIPLET_FIELDS, triplets_path)
            reason = filter_triplet(record, settings)
            if reason is not None:
                drop(record, reason)
    if settings["execution_check"]:
        _check_execution([r for r in records if r["status"] == "ok"], settings["execution_timeout_s"])
    write_jsonl(out_path, records)
    return status_counts(records)


def _check_execution(records: list[dict[str, Any]], timeout_s: float) -> None:
    # Imported here: only this optional check needs the sandbox.
    from editforge.sandbox import run_many

    results = run_many([r["post_code"] for r in records], os.cpu_count() or 1, timeout_s=timeout_s)
    for record, result in zip(records, results):
        if result.outcome != "pass":
            drop(record, "post_code_fails_to_run")


def _is_kept(record: Mapping[str, Any], path: str | os.PathLike[str]) -> bool:
    status = record.get("status")
    if status not in ("ok", "dropped"):
        raise RecordError(f"{path}: record {record.get('id')!r} has status {status!r}, expected 'ok' or 'dropped'")
    return status == "ok"


def _require_fields(record: Mapping[str, Any], fields: Iterable[str], path: str | os.PathLike[str]) -> None:
    for field in fields:
        if not isinstance(record.get(field), str):
            raise RecordError(f"{path}: record {record.get('id')!r} lacks the text field {field!r}")


# ---------------------------------------------------------------- dedup and decontamination


def run_dedup(
    in_paths: Sequence[str | os.PathLike[str]],
    out_path: str | os.PathLike[str],
    report_path: str | os.PathLike[str],
    settings: Mapping[str, Any],
    benchmark: Sequence[Mapping[str, Any]] | None,
) -> dict[str, int]:
    """Drop benchmark-contaminated and duplicate triplets across all shards and models.

    Reads the records of ``in_paths`` in order and writes all of them to
    ``out_path``. Of each group of duplicates the first in that order is kept.
    Decontamination runs first, so a clean triplet is never dropped as the
    duplicate of a contaminated one. ``benchmark`` is the list of benchmark
    problems (None skips decontamination). Raises ContaminationError when the
    contaminated share of kept triplets exceeds
    ``decontamination.max_contaminated_share``. Returns the status counts.
    """
    records: list[dict[str, Any]] = []
    for path in in_paths:
        for record in read_jsonl(path):
            if _is_kept(record, path):
                _require_fields(record, TRIPLET_FIELDS, path)
            records.append(record)
    kept = [r for r in records if r["status"] == "ok"]
    minhash = settings["minhash"]
    decontamination = settings["decontamination"]
    sketcher = _Sketcher(minhash["num_perm"], minhash["shingle_words"])

    contaminated: list[dict[str, Any]] = []
    if benchmark is not None:
        index = _BenchmarkIndex(benchmark, decontamination["ngram"], decontamination["minhash_threshold"], sketcher)
        contaminated = _decontaminate(kept, index)
    share = len(contaminated) / len(kept) if kept else 0.0
    if share > decontamination["max_contaminated_share"]:
        top = Counter(m["problem"] for m in contaminated).most_common(5)
        raise ContaminationError(
            f"{len(contaminated)} of {len(kept)} kept triplets ({share:.1%}) overlap benchmark problems, more than "
            f"decontamination.max_contaminated_share = {decontamination['max_contaminated_share']}; most matched: "
            f"{', '.join(f'{name} ({n})' for name, n in top)}. The seeds or prompts probably contain benchmark code."
        )
    duplicates = _deduplicate([r for r in kept if r["status"] == "ok"], minhash["threshold"], sketcher)

    write_jsonl(out_path, records)
    counts = status_counts(records)
    write_json(
        report_path,
        {
            "records": len(records),
            "kept_before_dedup": len(kept),
            "counts": counts,
            "decontamination": "skipped: no benchmark given" if benchmark is None else "done",
            "contaminated_share": share,
            "contaminated": contaminated,
            "duplicates": duplicates,
        },
    )
    return counts


def words(text: str) -> list[str]:
    """Lower-cased word tokens: the unit of shingles and n-grams (punctuation is ignored)."""
    return _WORD.findall(text.lower())


class _Sketcher:
    """MinHash signatures of token lists, over shingles of ``shingle_words`` consecutive tokens.

    One permutation set serves every signature, so signatures are comparable.
    """

    def __init__(self, num_perm: int, shingle_words: int) -> None:
        self.num_perm = num_perm
        self.shingle_words = shingle_words
        template = MinHash(num_perm=num_perm, seed=1)
        self._permutations, self._scheme = template.permutations, template.scheme

    def __call__(self, tokens: Sequence[str]) -> MinHash:
        """The signature of a non-empty token list (shorter than a shingle: one shingle)."""
        k = self.shingle_words
        shingles = {" ".join(tokens[i : i + k]).encode() for i in range(max(1, len(tokens) - k + 1))}
        sketch = MinHash(num_perm=self.num_perm, permutations=self._permutations, scheme=self._scheme)
        sketch.update_batch(list(shingles))
        return sketch


class _NearIndex:
    """An LSH index whose candidates are confirmed by their estimated Jaccard similarity."""

    def __init__(self, threshold: float, num_perm: int) -> None:
        self.threshold = threshold
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._signatures: list[np.ndarray] = []
        self._names: list[str] = []

    def add(self, name: str, sketch: MinHash) -> None:
        self._lsh.insert(len(self._names), sketch)
        self._signatures.append(sketch.hashvalues)
        self._names.append(name)

    def best_match(self, sketch: MinHash) -> tuple[str, float] | None:
        """The most similar entry at or above the threshold (the earliest on ties)."""
        best: tuple[float, int] | None = None
        for position in self._lsh.query(sketch):
            similarity = float(np.mean(self._signatures[position] == sketch.hashvalues))
            if similarity >= self.threshold and (best is None or (-similarity, position) < (-best[0], best[1])):
                best = (similarity, position)
        return None if best is None else (self._names[best[1]], round(best[0], 4))


def _deduplicate(records: list[dict[str, Any]], threshold: float, sketcher: _Sketcher) -> list[dict[str, Any]]:
    """Drop exact, then near duplicates of earlier records; return one entry per drop."""
    first_with_key: dict[bytes, str] = {}
    indexes = {reason: _NearIndex(threshold, sketcher.num_perm) for reason in NEAR_DUPLICATE_REASONS}
    found: list[dict[str, Any]] = []
    for record in records:
        key = _exact_key(record)
        if key in first_with_key:
            found.append(_mark_duplicate(record, "exact_duplicate", first_with_key[key], 1.0))
            continue
        first_with_key[key] = record["id"]
        tokens = {
            "near_duplicate_code": words(record["pre_code"]),
            "near_duplicate_diff": _diff_tokens(record["pre_code"], record["post_code"]),
            "near_duplicate_instruction": words(record["instruction_lazy"]) + words(record["instruction_descriptive"]),
        }
        sketches = {reason: sketcher(t) for reason, t in tokens.items() if t}  # "..." has no words
        match = next(
            ((reason, hit) for reason, sketch in sketches.items() if (hit := indexes[reason].best_match(sketch))),
            None,
        )
        if match is not None:
            reason, (original, similarity) = match
            found.append(_mark_duplicate(record, reason, original, similarity))
            continue
        for reason, sketch in sketches.items():
            indexes[reason].add(record["id"], sketch)
    return found


def _mark_duplicate(record: dict[str, Any], reason: str, original: str, similarity: float) -> dict[str, Any]:
    drop(record, reason)
    record["duplicate_of"] = original
    return {"id": record["id"], "reason": reason, "duplicate_of": original, "similarity": similarity}


def _exact_key(record: Mapping[str, Any]) -> bytes:
    """Pre-edit code up to formatting and comments, plus both instructions up to case and spacing."""
    tree = _parse(record["pre_code"])
    parts = [
        ast.dump(tree) if tree else _squash(record["pre_code"]),
        _squash(record["instruction_lazy"].lower()),
        _squash(record["instruction_descriptive"].lower()),
    ]
    return hashlib.sha1("\0".join(parts).encode()).digest()


def _diff_tokens(pre: str, post: str) -> list[str]:
    """The unified diff (3 context lines) as tokens, each line led by a marker of its side.

    The context matters: the same small edit (``import os`` added) in unrelated
    programs is not a duplicate.
    """
    before, after = pre.splitlines(), post.splitlines()
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    tokens: list[str] = []
    for hunk in matcher.get_grouped_opcodes(3):
        for tag, i1, i2, j1, j2 in hunk:
            for line in before[i1:i2]:
                tokens += ["<=>" if tag == "equal" else "<->", *words(line)]
            if tag != "equal":
                for line in after[j1:j2]:
                    tokens += ["<+>", *words(line)]
    return tokens


class _BenchmarkIndex:
    """Word n-grams and MinHash sketches of every benchmark problem's code and instructions.

    The n-grams catch copied passages. The sketches of code are taken over
    Python tokens with identifiers renamed by first use (``code_tokens``), so a
    benchmark program whose names were changed still matches; instructions are
    sketched over words. Texts shorter than ``ngram`` words, on either side, are
    too short to be evidence.
    """

    def __init__(
        self, benchmark: Sequence[Mapping[str, Any]], ngram: int, threshold: float, sketcher: _Sketcher
    ) -> None:
        self.ngram = ngram
        self.sketcher = sketcher
        self._owners: dict[tuple[str, ...], tuple[str, str]] = {}
        self._code = _NearIndex(threshold, sketcher.num_perm)
        self._instructions = _NearIndex(threshold, sketcher.num_perm)
        for problem in benchmark:
            name = problem.get("full_name")
            for field in BENCHMARK_FIELDS:
                if not isinstance(name, str) or not isinstance(problem.get(field), str):
                    problem_name = name or problem.get("id")
                    raise ValueError(f"benchmark problem {problem_name!r} lacks the text field {field!r}")
                tokens = words(problem[field])
                if len(tokens) < ngram:
                    continue
                for gram in _ngrams(tokens, ngram):
                    self._owners.setdefault(gram, (name, field))
                index, sketch = self._sketch(field in ("before", "after"), problem[field])
                index.add(f"{name}\t{field}", sketch)

    def match(self, record: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first overlap of the record's code or instructions with a benchmark text, or None."""
        texts = {field: words(record[field]) for field in TRIPLET_FIELDS}
        texts = {field: tokens for field, tokens in texts.items() if len(tokens) >= self.ngram}
        for field, tokens in texts.items():
            for gram in _ngrams(tokens, self.ngram):
                if gram in self._owners:
                    return self._found(record, "ngram", field, self._owners[gram], " ".join(gram))
        for field in texts:
            index, sketch = self._sketch(field in ("pre_code", "post_code"), record[field])
            hit = index.best_match(sketch)
            if hit is not None:
                problem, benchmark_field = hit[0].split("\t")
                return self._found(record, "minhash", field, (problem, benchmark_field), hit[1])
        return None

    def _sketch(self, is_code: bool, text: str) -> tuple[_NearIndex, MinHash]:
        """The index to look in and the text's signature (the text has at least ``ngram`` words)."""
        if is_code:
            return self._code, self.sketcher(code_tokens(text) or words(text))
        return self._instructions, self.sketcher(words(text))

    @staticmethod
    def _found(
        record: Mapping[str, Any], method: str, field: str, owner: tuple[str, str], evidence: Any
    ) -> dict[str, Any]:
        return {
            "id": record["id"], "problem": owner[0], "benchmark_field": owner[1],
            "field": field, "method": method, "evidence": evidence,
        }


def _decontaminate(records: list[dict[str, Any]], benchmark: _BenchmarkIndex) -> list[dict[str, Any]]:
    """Drop the records that overlap a benchmark problem; return one match per drop."""
    matches: list[dict[str, Any]] = []
    for record in records:
        match = benchmark.match(record)
        if match is not None:
            drop(record, "contaminated")
            record["contaminated_by"] = match["problem"]
            matches.append(match)
    return matches


def code_tokens(source: str) -> list[str]:
    """Python tokens with every non-builtin name renamed by first use (v0, v1, ...).

    Consistently renaming a program's identifiers leaves this sequence unchanged.
    Keywords, builtins, literals and operators stay; comments and layout go.
    Code that does not tokenize gives an empty list.
    """
    names: dict[str, str] = {}
    tokens: list[str] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.NAME and not keyword.iskeyword(token.string) and token.string not in _BUILTINS:
                tokens.append(names.setdefault(token.string, f"v{len(names)}"))
            elif token.type in (tokenize.NAME, tokenize.OP, tokenize.NUMBER, tokenize.STRING):
                tokens.append(token.string)
    except (tokenize.TokenError, SyntaxError):  # IndentationError is a SyntaxError
        return []
    return tokens


def _ngrams(tokens: Sequence[str], n: int) -> Iterable[tuple[str, ...]]:
    return (tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
