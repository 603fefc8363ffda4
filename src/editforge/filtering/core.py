"""Filtering of edit triplets: per-shard validity and diff checks, then dedup and decontamination.

``run_filter_shard`` checks each triplet on its own (``filter_triplet``, then
the optional execution checks: the post-edit program must run, and, with
``generated_tests``, pass tests that a model writes for the edit, see
``check_generated_tests``). ``run_dedup`` then looks at all triplets of all
shards and models together: overlap with the benchmark first
(``editforge.filtering.decontamination``, on every triplet, dropped ones too, since the
unfiltered exports hold them), then exact duplicates (compiled code and
instructions) and near duplicates of the kept ones (MinHash LSH proposes
pairs, their exact Jaccard similarity decides, so it stays near-linear at
100k triplets and agrees with an all-pairs check). Code is compared in the
canonical form of ``editforge.pycode.canonical``, so a copy with renamed variables is a
near duplicate. Every record read is written back out; a dropped one carries
the name of the check that dropped it and, in ``duplicate_of`` or
``contaminated_by``, what it matched; the report file lists the matches.
``bench/dedup.py`` measures the dedup on 100k triplets.
"""

from __future__ import annotations

import ast
import builtins
import difflib
import hashlib
import itertools
import os
import re
import types
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from datasketch import MinHash

from editforge.pycode import syntax as pysyntax
from editforge.pycode.diff import diff_stats
from editforge.filtering.decontamination import BenchmarkIndex, code_shingles
from editforge.records import RecordError, drop, read_jsonl, status_counts, write_json, write_jsonl
from editforge.sandbox import Isolation, Limits, run_many, select_isolation

# The descriptive instruction leaks the answer when it holds more than
# LEAK_SHARE of the post-edit program's new lines, counted only when there are at
# least LEAK_MIN_NEW_LINES of them: quoting a line or two is how a descriptive
# instruction is meant to be precise. Lines shorter than LEAK_MIN_LINE_CHARS
# (``else:``, ``return x``) say nothing about a leak.
LEAK_MIN_NEW_LINES = 3
LEAK_SHARE = 0.5
LEAK_MIN_LINE_CHARS = 8

TRIPLET_FIELDS = ("pre_code", "post_code", "instruction_lazy", "instruction_descriptive")
NEAR_DUPLICATE_REASONS = ("near_duplicate_code", "near_duplicate_diff", "near_duplicate_instruction")

_BUILTINS = frozenset(dir(builtins))
_WORD = re.compile(r"\w+")
# A diff line's side, as a token of its own before the line's words (control characters: never in a word).
_SAME_LINE, _OLD_LINE, _NEW_LINE = "\x01= ", "\x01- ", "\x01+ "
_DIFF_TOKEN = re.compile(r"\x01[=+-]|\w+")
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_ABBREVIATION = re.compile(r"\b(?:e\.g|i\.e|etc|vs|cf)\.", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")


class ContaminationError(RuntimeError):
    """Too many triplets match the benchmark to trust the synthesis inputs."""


# ---------------------------------------------------------------- per-triplet checks


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
    # The current Python grammar (tree-sitter), whatever interpreter runs the stage.
    if not (rec["pre_code"].strip() and pysyntax.is_valid(rec["pre_code"])):
        return "pre_code_syntax"
    if not (rec["post_code"].strip() and pysyntax.is_valid(rec["post_code"])):
        return "post_code_syntax"
    if not rec["instruction_lazy"].strip() or not rec["instruction_descriptive"].strip():
        return "empty_instruction"
    # Comments, blank lines, spacing and quoting style are no change.
    if pysyntax.same_code(rec["pre_code"], rec["post_code"]):
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
    """The module's AST for the running interpreter (which runs the generated tests), or None
    when the code is blank or not valid Python there."""
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
    triplets_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    settings: Mapping[str, Any],
    *,
    tests_model: tuple[str, Mapping[str, Any]] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    sandbox: str = "auto",
) -> dict[str, int]:
    """Check every kept triplet of one shard; write all records; return status counts.

    Records the triplet stage dropped stay dropped. With ``execution_check`` the
    post-edit program of each triplet that passed the other checks is run in the
    sandbox and must exit cleanly. With ``generated_tests`` (off by default) a
    model then writes tests for each survivor (``check_generated_tests``);
    ``tests_model`` names it and gives its ``models:`` entry, and ``cache_dir``
    is the LLM cache.
    """
    isolation = None
    if settings.get("execution_check", False) or settings.get("generated_tests", False):
        isolation = select_isolation(sandbox)  # before any model call: a refusal costs nothing
    records = list(read_jsonl(triplets_path))
    for record in records:
        if _is_kept(record, triplets_path):
            _require_fields(record, TRIPLET_FIELDS, triplets_path)
            reason = filter_triplet(record, settings)
            if reason is not None:
                drop(record, reason)
    timeout_s = settings.get("execution_timeout_s", 10)
    if settings.get("execution_check", False):
        _check_execution([r for r in records if r["status"] == "ok"], timeout_s, isolation)
    if settings.get("generated_tests", False):
        if tests_model is None:
            raise ValueError("filtering.generated_tests is on but no model to write the tests was given")
        from editforge.backend import open_backend  # only this optional check talks to a model

        kept = [r for r in records if r["status"] == "ok"]
        if kept:
            with open_backend(tests_model[0], tests_model[1], cache_dir) as backend:
                check_generated_tests(
                    kept,
                    backend,
                    timeout_s=timeout_s,
                    max_tokens=settings.get("generated_tests_max_tokens", 1024),
                    isolation=isolation,
                )
    write_jsonl(out_path, records)
    return status_counts(records)


def _check_execution(records: list[dict[str, Any]], timeout_s: float, isolation: Isolation | None) -> None:
    limits = Limits(timeout_s=timeout_s)
    results = run_many([r["post_code"] for r in records], os.cpu_count() or 1, limits=limits, isolation=isolation)
    for record, result in zip(records, results):
        if result.outcome != "pass":
            drop(record, "post_code_fails_to_run")


# ---------------------------------------------------------------- generated tests (a third round)

# Change kinds a model may name; the pre-edit program must fail the tests of the first two.
CHANGE_KINDS = ("bug fix", "new feature", "refactor", "other")
MUST_FAIL_BEFORE = ("bug fix", "new feature")
GENERATED_TEST_REASONS = ("no_tests", "generated_tests_fail_on_post", "generated_tests_pass_on_pre")

TESTS_SYSTEM_PROMPT = "You are a careful Python developer who writes small, exact tests for code changes."
_TESTS_REQUEST = """Below are a Python program before and after an edit, and the instruction that asked for the edit.

## Program before the edit
```python
{pre}
```

## Instruction
{instruction}

## Program after the edit
```python
{post}
```

Write a short test script for this edit: plain `assert` statements, with any setup they need, that check the \
behaviour the instruction asks for. Use no test framework, no input, no files and no network. The script will be \
appended to the end of a program and run. It must pass when appended to the program after the edit. If the edit \
fixes a bug or adds a feature, it must fail when appended to the program before the edit.

Answer in exactly this form, and write nothing else:
Kind: <bug fix, new feature, refactor or other>
```python
<the test script>
```"""

_KIND = re.compile(
    r"^[\W_]*kind[\W_]*:\W*(bug[\s_-]*fix|new[\s_-]*feature|feature|refactor\w*|other)", re.IGNORECASE | re.MULTILINE
)
_FENCE = re.compile(r"^```[ \t]*(?:python|py)?[ \t]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def tests_request(record: Mapping[str, Any]) -> list[dict[str, str]]:
    """The conversation asking for tests of one triplet's edit (a fresh one: any model can answer it)."""
    user = _TESTS_REQUEST.format(
        pre=record["pre_code"].rstrip(),
        instruction=record["instruction_descriptive"].strip(),
        post=record["post_code"].rstrip(),
    )
    return [{"role": "system", "content": TESTS_SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_tests_answer(text: str) -> tuple[str | None, str | None]:
    """(change kind, test script) from a model's answer; None for what it lacks.

    The script is the first fenced block, kept only when it parses and holds an
    ``assert``. The kind is one of CHANGE_KINDS, read from a ``Kind:`` line.
    """
    kind_match = _KIND.search(text)
    kind = None
    if kind_match:
        word = kind_match.group(1).lower()
        kind = next(k for k in CHANGE_KINDS if word.startswith(k.split()[0]) or k.split()[-1] in word)
    fence = _FENCE.search(text)
    script = fence.group(1).strip("\n") if fence else None
    if script is not None:
        tree = _parse(script)
        if tree is None or not any(isinstance(node, ast.Assert) for node in ast.walk(tree)):
            script = None
    return kind, script


def check_generated_tests(
    records: Sequence[dict[str, Any]],
    backend: Any,
    *,
    timeout_s: float = 10,
    max_tokens: int = 1024,
    isolation: Isolation | None = None,
) -> dict[str, int]:
    """Ask ``backend`` for tests of each record's edit and keep the records whose tests hold.

    The tests are appended to the post-edit program, which must pass them; for a
    change the model labels a bug fix or a new feature, the pre-edit program
    must not pass them (a test that cannot tell the programs apart checks
    nothing). When the model names no kind (or refactor, other) only the first
    condition applies: a refactor is meant to keep behaviour. Drops with
    ``no_tests`` (no fenced script with an assert), ``generated_tests_fail_on_post``
    or ``generated_tests_pass_on_pre``. Each record gets ``change_kind`` and
    ``generated_tests``. Returns the count of each outcome.
    """
    from editforge.backend import Request, Sampling

    sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=max_tokens)
    answers = backend.generate([Request(messages=tests_request(r), sampling=sampling) for r in records], desc="tests")
    with_tests: list[tuple[dict[str, Any], str]] = []
    for record, completions in zip(records, answers):
        kind, script = parse_tests_answer(completions[0].text if completions and not completions[0].error else "")
        record["change_kind"] = kind
        record["generated_tests"] = script
        if script is None:
            drop(record, "no_tests")
        else:
            with_tests.append((record, script))
    workers = os.cpu_count() or 1
    limits = Limits(timeout_s=timeout_s)
    post = run_many(
        [_with_tests(r["post_code"], s) for r, s in with_tests], workers, limits=limits, isolation=isolation
    )
    passing = [(r, s) for (r, s), result in zip(with_tests, post) if result.outcome == "pass"]
    for (record, _), result in zip(with_tests, post):
        if result.outcome != "pass":
            drop(record, "generated_tests_fail_on_post")
    must_fail = [(r, s) for r, s in passing if r["change_kind"] in MUST_FAIL_BEFORE]
    pre = run_many([_with_tests(r["pre_code"], s) for r, s in must_fail], workers, limits=limits, isolation=isolation)
    for (record, _), result in zip(must_fail, pre):
        if result.outcome == "pass":
            drop(record, "generated_tests_pass_on_pre")
    return dict(Counter(r["reason"] if r["status"] == "dropped" else "ok" for r in records))


def _with_tests(program: str, tests: str) -> str:
    return f"{program.rstrip()}\n\n\n# Generated tests\n{tests}\n"


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
    The report's ``similarity`` of a near duplicate is the exact Jaccard
    similarity of the two shingle sets (shingles compared by 32-bit hash).
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
        contaminated = _decontaminate(records, BenchmarkIndex(benchmark, decontamination))
    kept_contaminated = [m for m in contaminated if m["kept_before"]]
    share = len(kept_contaminated) / len(kept) if kept else 0.0
    if share > decontamination["max_contaminated_share"]:
        top = Counter(m["problem"] for m in kept_contaminated).most_common(5)
        raise ContaminationError(
            f"{len(kept_contaminated)} of {len(kept)} kept triplets ({share:.1%}) overlap benchmark problems, more "
            f"than decontamination.max_contaminated_share = {decontamination['max_contaminated_share']}; most "
            f"matched: {', '.join(f'{name} ({n})' for name, n in top)}. The seeds or prompts probably contain "
            "benchmark code."
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


class _TokenHashes(dict):
    """A stable 64-bit hash per token, computed once per distinct token."""

    def __missing__(self, token: str) -> int:
        value = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
        self[token] = value
        return value


_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def _fmix64(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's finalizer: spreads every input bit over the whole word (wraps mod 2**64)."""
    with np.errstate(over="ignore"):
        values = values ^ (values >> np.uint64(33))
        values = values * np.uint64(0xFF51AFD7ED558CCD)
        values = values ^ (values >> np.uint64(33))
        values = values * np.uint64(0xC4CEB9FE1A85EC53)
        return values ^ (values >> np.uint64(33))


@dataclass(frozen=True)
class _Sketches:
    """MinHash signatures of token lists, with the shingle hashes they were taken over."""

    signatures: np.ndarray  # (lists, num_perm) uint32
    shingles: np.ndarray  # uint32, list after list
    offsets: np.ndarray  # (lists + 1,): list i's shingles are shingles[offsets[i]:offsets[i + 1]]

    def shingle_set(self, row: int) -> set[int]:
        return set(self.shingles[self.offsets[row] : self.offsets[row + 1]].tolist())

    def row(self, row: int) -> _Sketches:
        """The sketch of list ``row`` alone."""
        start, stop = self.offsets[row], self.offsets[row + 1]
        return _Sketches(self.signatures[row : row + 1], self.shingles[start:stop], np.array([0, stop - start]))


class _Sketcher:
    """MinHash signatures of token lists, over shingles of ``shingle_words`` consecutive tokens.

    A signature is ``num_perm`` uint32 values: for each of datasketch's affine
    permutations (``MinHash(num_perm, seed=1)``, scheme affine32: h -> a*h + b
    mod 2**32), the minimum over the shingles' 32-bit hashes. The shingle hashes
    are computed with numpy from per-token hashes (a rolling combination and a
    finalizer) rather than by hashing each shingle's text, and many lists are
    sketched at once: that is what makes 100k triplets take seconds. A list
    shorter than a shingle is one shingle.
    """

    def __init__(self, num_perm: int, shingle_words: int) -> None:
        self.num_perm = num_perm
        self.shingle_words = shingle_words
        a, b = MinHash(num_perm=num_perm, seed=1, scheme="affine32").permutations
        self._a = np.asarray(a, dtype=np.uint32)[:, None]
        self._b = np.asarray(b, dtype=np.uint32)[:, None]
        self._tokens = _TokenHashes()

    def __call__(self, tokens: Sequence[str]) -> _Sketches:
        """The sketch of one non-empty token list."""
        return self.sketch([tokens])

    def sketch(self, token_lists: Sequence[Sequence[str]], batch_tokens: int = 8192) -> _Sketches:
        """Sketches of non-empty token lists.

        Computed in batches of about ``batch_tokens`` tokens, laid out one
        permutation per row so that each batch stays in the CPU cache.
        """
        lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
        if len(lengths) and lengths.min() == 0:
            raise ValueError("an empty token list has no MinHash signature")
        counts = np.maximum(lengths - self.shingle_words + 1, 1)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        shingles = np.empty(int(offsets[-1]), dtype=np.uint32)
        cumulative = np.cumsum(lengths)
        start = 0
        while start < len(token_lists):
            base = int(cumulative[start - 1]) if start else 0
            stop = max(start + 1, int(np.searchsorted(cumulative, base + batch_tokens, side="right")))
            ids = np.fromiter(
                map(self._tokens.__getitem__, itertools.chain.from_iterable(token_lists[start:stop])),
                dtype=np.uint64,
                count=int(cumulative[stop - 1]) - base,
            )
            shingles[offsets[start] : offsets[stop]] = self._shingles(ids, lengths[start:stop])
            start = stop
        return self.from_shingles(shingles, offsets, batch_tokens)

    def from_shingles(self, shingles: np.ndarray, offsets: np.ndarray, batch_shingles: int = 8192) -> _Sketches:
        """Sketches of lists of 32-bit shingle hashes (list i: shingles[offsets[i]:offsets[i + 1]], none empty)."""
        signatures = np.empty((len(offsets) - 1, self.num_perm), dtype=np.uint32)
        start = 0
        while start < len(offsets) - 1:
            stop = max(start + 1, int(np.searchsorted(offsets, offsets[start] + batch_shingles, side="right")) - 1)
            hashes = shingles[offsets[start] : offsets[stop]]
            permuted = self._a * hashes[None, :] + self._b  # wraps mod 2**32
            signatures[start:stop] = np.minimum.reduceat(permuted, offsets[start:stop] - offsets[start], axis=1).T
            start = stop
        return _Sketches(signatures, shingles, offsets)

    def _shingles(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Shingle hashes of consecutive token lists (token hashes ``ids``, list sizes ``lengths``, all > 0)."""
        k = self.shingle_words
        ends = np.cumsum(lengths)
        counts = np.maximum(lengths - k + 1, 1)
        out = np.empty(int(counts.sum()), dtype=np.uint64)
        out_starts = np.cumsum(counts) - counts
        long = lengths >= k
        with np.errstate(over="ignore"):
            if long.any():
                windows = len(ids) - k + 1
                rolling = ids[:windows].copy()
                for offset in range(1, k):
                    rolling = rolling * _MULTIPLIER + ids[offset : offset + windows]
                # A window is a shingle when it ends inside the list it starts in.
                list_of = np.repeat(np.arange(len(lengths)), lengths)[:windows]
                inside = np.arange(windows) + k <= ends[list_of]
                first = np.repeat(out_starts[long], counts[long])
                within = np.arange(len(first)) - np.repeat(np.cumsum(counts[long]) - counts[long], counts[long])
                out[first + within] = rolling[inside] + np.uint64(k)
            for index in np.flatnonzero(~long):  # fewer tokens than a shingle: one shingle of them all
                value = np.uint64(0)
                for token in ids[ends[index] - lengths[index] : ends[index]]:
                    value = value * _MULTIPLIER + token
                out[out_starts[index]] = value + np.uint64(lengths[index])
        return (_fmix64(out) >> np.uint64(32)).astype(np.uint32)


def jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


# Locality-sensitive hashing must propose a pair at the threshold with at least this probability.
LSH_RECALL_AT_THRESHOLD = 0.95


class _Bands:
    """LSH banding: ``bands`` runs of ``rows`` signature values; a shared run proposes a pair.

    Two sets of Jaccard similarity s share a band with probability
    1 - (1 - s**rows)**bands. ``rows`` is the largest for which a pair at the
    threshold is proposed with probability LSH_RECALL_AT_THRESHOLD or more
    (0.8 and 128 permutations: 18 bands of 7 rows, 0.985); proposals are then
    checked by their exact Jaccard similarity, so extra ones cost time only.
    """

    def __init__(self, threshold: float, num_perm: int) -> None:
        self.rows = next(
            r for r in range(num_perm, 0, -1) if 1 - (1 - threshold**r) ** (num_perm // r) >= LSH_RECALL_AT_THRESHOLD
        )
        self.bands = num_perm // self.rows

    def keys(self, signatures: np.ndarray) -> np.ndarray:
        """One 64-bit key per signature row and band; equal runs give equal keys.

        Unequal runs may collide (one pair in about 2**64): that only proposes a pair.
        """
        runs = signatures[:, : self.bands * self.rows].reshape(len(signatures), self.bands, self.rows)
        keys = np.zeros((len(signatures), self.bands), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for row in range(self.rows):
                keys = keys * _MULTIPLIER + runs[:, :, row]
        return _fmix64(keys + np.arange(self.bands, dtype=np.uint64))


class _NearIndex:
    """An LSH index whose proposals are confirmed by their exact Jaccard similarity."""

    def __init__(self, threshold: float, num_perm: int) -> None:
        self.threshold = threshold
        self._bands = _Bands(threshold, num_perm)
        self._buckets: list[dict[int, list[int]]] = [{} for _ in range(self._bands.bands)]
        self._shingles: list[set[int]] = []
        self._names: list[str] = []

    def add(self, name: str, sketch: _Sketches) -> None:
        """Index the first (only) list of ``sketch`` under ``name``."""
        for bucket, key in zip(self._buckets, self._bands.keys(sketch.signatures[:1])[0].tolist()):
            bucket.setdefault(key, []).append(len(self._names))
        self._shingles.append(sketch.shingle_set(0))
        self._names.append(name)

    def best_match(self, sketch: _Sketches) -> tuple[str, float] | None:
        """The most similar entry at or above the threshold (the earliest on ties)."""
        keys = self._bands.keys(sketch.signatures[:1])[0].tolist()
        proposed = sorted({p for bucket, key in zip(self._buckets, keys) for p in bucket.get(key, ())})
        shingles = sketch.shingle_set(0)
        best: tuple[float, int] | None = None
        for position in proposed:
            similarity = jaccard(shingles, self._shingles[position])
            if similarity >= self.threshold and (best is None or similarity > best[0]):
                best = (similarity, position)
        return None if best is None else (self._names[best[1]], round(best[0], 4))


# The word lists compared for the kinds of near duplicate other than code (which compares canonical code).
_NEAR_TOKENS = {
    "near_duplicate_diff": lambda record: _diff_tokens(record["pre_code"], record["post_code"]),
    "near_duplicate_instruction": lambda record: words(record["instruction_lazy"])
    + words(record["instruction_descriptive"]),
}


def _field_sketches(
    reason: str, records: Sequence[Mapping[str, Any]], positions: list[int], sketcher: _Sketcher
) -> tuple[list[int], _Sketches]:
    """The records at ``positions`` that have something to compare for ``reason``, and their sketches."""
    if reason == "near_duplicate_code":
        hashes, offsets = code_shingles([records[i]["pre_code"] for i in positions])
        sizes = np.diff(offsets)
        present = [i for i, size in zip(positions, sizes.tolist()) if size]
        return present, sketcher.from_shingles(hashes, np.concatenate([[0], np.cumsum(sizes[sizes > 0])]))
    lists = [(i, tokens) for i in positions if (tokens := _NEAR_TOKENS[reason](records[i]))]  # "..." has no words
    return [i for i, _ in lists], sketcher.sketch([tokens for _, tokens in lists])


@dataclass
class _Field:
    """Sketch data of one kind of near duplicate, for the records that have tokens for it."""

    row: np.ndarray  # record position -> row here, -1 without tokens
    position: list[int]  # row -> record position
    keys: np.ndarray  # (rows, bands) LSH keys
    shingles: np.ndarray
    offsets: np.ndarray
    shared: np.ndarray | None = None  # (rows, bands): does another row have the same key
    group: np.ndarray | None = None  # (rows, bands): a dense id of the key

    def shingle_set(self, row: int) -> set[int]:
        return set(self.shingles[self.offsets[row] : self.offsets[row + 1]].tolist())


def _deduplicate(records: list[dict[str, Any]], threshold: float, sketcher: _Sketcher) -> list[dict[str, Any]]:
    """Drop exact, then near duplicates of earlier kept records; return one entry per drop.

    Greedy in input order: a record is compared with the records kept before it.
    It is an exact duplicate when its ``_exact_key`` was seen before, else a near
    duplicate when, for one of the token lists of ``_near_tokens`` (tried in that
    order), a kept record's shingle set has a Jaccard similarity of at least
    ``threshold`` with its own (the most similar is named, the earliest on ties).
    MinHash LSH proposes the pairs to compare, so a near-duplicate pair is missed
    only when LSH does not propose it (at the threshold, 1.5% of pairs; much
    fewer above it).

    Batched for speed: exact keys and LSH keys of all records are computed
    first; buckets are grouped with numpy, and only buckets that hold at least
    two records are ever looked at (most records share no bucket with any other).
    """
    keys = _exact_keys(records)
    seen: set[bytes] = set()
    exact = [key in seen or bool(seen.add(key)) for key in keys]
    candidates = [i for i, is_exact in enumerate(exact) if not is_exact]
    bands = _Bands(threshold, sketcher.num_perm)
    fields = _sketch_fields(records, candidates, sketcher, bands)

    members = {reason: [dict[int, list[int]]() for _ in range(bands.bands)] for reason in fields}
    sets: dict[tuple[str, int], set[int]] = {}  # shingle sets of kept rows, built when first compared
    root_of_key: dict[bytes, str] = {}  # exact key -> the kept triplet it (or its near duplicate) matches
    found: list[dict[str, Any]] = []
    for position, record in enumerate(records):
        key = keys[position]
        if exact[position]:
            found.append(_mark_duplicate(record, "exact_duplicate", root_of_key[key], 1.0))
            continue
        match = None
        for reason, field in fields.items():
            row = int(field.row[position])
            if row < 0 or not field.shared[row].any():
                continue
            proposed = sorted(
                {
                    kept
                    for band in np.flatnonzero(field.shared[row]).tolist()
                    for kept in members[reason][band].get(int(field.group[row, band]), ())
                }
            )
            if not proposed:
                continue
            own = field.shingle_set(row)
            best: tuple[float, int] | None = None
            for kept in proposed:  # in input order: a later one must be strictly more similar
                if (reason, kept) not in sets:
                    sets[reason, kept] = field.shingle_set(kept)
                similarity = jaccard(own, sets[reason, kept])
                if similarity >= threshold and (best is None or similarity > best[0]):
                    best = (similarity, kept)
            if best is not None:
                match = (reason, records[field.position[best[1]]]["id"], round(best[0], 4))
                break
        if match is not None:
            reason, original, similarity = match
            root_of_key[key] = original
            found.append(_mark_duplicate(record, reason, original, similarity))
            continue
        root_of_key[key] = record["id"]
        for reason, field in fields.items():
            row = int(field.row[position])
            if row >= 0:
                for band in np.flatnonzero(field.shared[row]).tolist():
                    members[reason][band].setdefault(int(field.group[row, band]), []).append(row)
    return found


def _sketch_fields(
    records: Sequence[Mapping[str, Any]], candidates: list[int], sketcher: _Sketcher, bands: _Bands, chunk: int = 2048
) -> dict[str, _Field]:
    """LSH keys and shingles of the ``candidates``, per kind of near duplicate.

    Tokens are made ``chunk`` records at a time (all at once would take
    gigabytes at 100k triplets); signatures are dropped once they gave their keys.
    """
    parts: dict[str, list[tuple[list[int], np.ndarray, _Sketches]]] = {r: [] for r in NEAR_DUPLICATE_REASONS}
    for start in range(0, len(candidates), chunk):
        for reason in NEAR_DUPLICATE_REASONS:
            present, sketches = _field_sketches(reason, records, candidates[start : start + chunk], sketcher)
            if present:
                # Not signatures[:0]: a view would keep every signature alive.
                light = _Sketches(np.empty((0, 0), np.uint32), sketches.shingles, sketches.offsets)
                parts[reason].append((present, bands.keys(sketches.signatures), light))
    fields: dict[str, _Field] = {}
    for reason, pieces in parts.items():
        position = [i for positions, _, _ in pieces for i in positions]
        row = np.full(len(records), -1)
        row[position] = np.arange(len(position))
        shingle_parts = [p.shingles for _, _, p in pieces]
        sizes = np.concatenate([np.diff(p.offsets) for _, _, p in pieces]) if pieces else np.zeros(0, np.int64)
        field = _Field(
            row=row,
            position=position,
            keys=np.concatenate([k for _, k, _ in pieces]) if pieces else np.zeros((0, bands.bands), np.uint64),
            shingles=np.concatenate(shingle_parts) if pieces else np.zeros(0, np.uint32),
            offsets=np.concatenate([[0], np.cumsum(sizes)]),
        )
        field.group = np.empty(field.keys.shape, dtype=np.int32)
        field.shared = np.empty(field.keys.shape, dtype=bool)
        for band in range(bands.bands):
            _, group, size = np.unique(field.keys[:, band], return_inverse=True, return_counts=True)
            field.group[:, band] = group
            field.shared[:, band] = size[group] > 1
        field.keys = np.empty((0, bands.bands), np.uint64)  # grouped: no longer needed
        fields[reason] = field
    return fields


def _mark_duplicate(record: dict[str, Any], reason: str, original: str, similarity: float) -> dict[str, Any]:
    drop(record, reason)
    record["duplicate_of"] = original
    return {"id": record["id"], "reason": reason, "duplicate_of": original, "similarity": similarity}


def _exact_keys(records: Sequence[Mapping[str, Any]]) -> list[bytes]:
    """``_exact_key`` of each record, or a cheaper key that is just as unique.

    Compiling the code is the costly part, and only records whose instructions
    match another record's can share a key, so only those are compiled.
    """
    instructions = [_instructions_key(record) for record in records]
    repeated = {key for key, n in Counter(instructions).items() if n > 1}
    return [_exact_key(r) if key in repeated else b"i" + key for r, key in zip(records, instructions)]


def _instructions_key(record: Mapping[str, Any]) -> bytes:
    parts = [_squash(record["instruction_lazy"].lower()), _squash(record["instruction_descriptive"].lower())]
    return hashlib.sha1("\0".join(parts).encode()).digest()


def _exact_key(record: Mapping[str, Any]) -> bytes:
    """Pre-edit code up to formatting and comments, plus both instructions up to case and spacing."""
    return b"e" + hashlib.sha1(_code_key(record["pre_code"]) + b"\0" + _instructions_key(record)).digest()


def _code_key(source: str) -> bytes:
    """What the compiler makes of the code: blind to layout, comments and quoting.

    Bytecode, names and constants of every code object, without line numbers.
    Code that this interpreter does not compile (``return`` outside a function,
    a newer Python's syntax) is keyed by its tokens; code that does not parse, by
    its text up to spacing.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = compile(source, "<triplet>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        tree = pysyntax.parse(source)
        return ("\0".join(pysyntax.tokens(tree)) if tree else _squash(source)).encode()
    parts: list[Any] = []
    _code_parts(code, parts)
    return repr(parts).encode()


def _code_parts(code: types.CodeType, parts: list[Any]) -> None:
    parts += [
        code.co_code, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars, code.co_name,
        code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags, code.co_exceptiontable,
    ]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_parts(const, parts)
        elif isinstance(const, frozenset):  # its order follows string hashing, which varies by process
            parts.append(sorted(map(repr, const)))
        else:
            parts.append(repr(const))


def _diff_tokens(pre: str, post: str) -> list[str]:
    """The unified diff (3 context lines) as tokens, each line led by a marker of its side.

    The context matters: the same small edit (``import os`` added) in unrelated
    programs is not a duplicate.
    """
    before, after = pre.splitlines(), post.splitlines()
    # Lines both programs begin or end with, but for the 3 of context, are in no hunk: leaving them
    # out of the matcher is several times faster (edits are mostly local) and gives the same hunks,
    # but where repeated lines allow two equally good alignments.
    head = tail = 0
    while head < min(len(before), len(after)) and before[head] == after[head]:
        head += 1
    while tail < min(len(before), len(after)) - head and before[-1 - tail] == after[-1 - tail]:
        tail += 1
    removed, added = before[head : len(before) - tail], after[head : len(after) - tail]
    if len(removed) + len(added) <= 1 or len(removed) == len(added) == 1:
        # One hunk without a matcher: a line inserted, deleted or replaced, or nothing changed.
        if not removed and not added:
            return []
        lines = [_SAME_LINE + line for line in before[max(head - 3, 0) : head]]
        lines += [_OLD_LINE + line for line in removed] + [_NEW_LINE + line for line in added]
        lines += [_SAME_LINE + line for line in before[len(before) - tail : len(before) - tail + 3]]
        return _DIFF_TOKEN.findall("\n".join(lines).lower())
    head, tail = max(head - 3, 0), max(tail - 3, 0)
    before, after = before[head : len(before) - tail], after[head : len(after) - tail]
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    lines = []
    for hunk in matcher.get_grouped_opcodes(3):
        for tag, i1, i2, j1, j2 in hunk:
            marker = _SAME_LINE if tag == "equal" else _OLD_LINE
            lines += [marker + line for line in before[i1:i2]]
            if tag != "equal":
                lines += [_NEW_LINE + line for line in after[j1:j2]]
    return _DIFF_TOKEN.findall("\n".join(lines).lower())  # one scan: much faster than one per line


def _decontaminate(records: list[dict[str, Any]], index: BenchmarkIndex) -> list[dict[str, Any]]:
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
