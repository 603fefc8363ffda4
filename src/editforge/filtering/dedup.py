"""The dedup stage: benchmark overlap, then exact and near duplicates, over all shards and models.

``run_dedup`` looks at all triplets of all shards and models together: overlap with the benchmark
first (``editforge.filtering.decontamination``, on every triplet, dropped ones too, since the
unfiltered exports hold them), then exact duplicates (compiled code and instructions,
``editforge.filtering.exact``) and near duplicates of the kept ones (MinHash LSH proposes pairs,
their exact Jaccard similarity decides, so it stays near-linear at 100k triplets and agrees with an
all-pairs check). Code is compared in the canonical form of ``editforge.pycode.canonical``, so a
copy with renamed variables is a near duplicate. Every record read is written back out; a dropped
one carries the name of the check that dropped it and, in ``duplicate_of`` or ``contaminated_by``,
what it matched; the report file lists the matches. ``bench/dedup.py`` measures the dedup on 100k
triplets.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from editforge.filtering.checks import TRIPLET_FIELDS, is_kept, require_fields
from editforge.filtering.decontamination import (
    BenchmarkIndex,
    BenchmarkText,
    ContaminationError,
    canitedit_texts,
    code_shingles,
    decontaminate,
)
from editforge.filtering.exact import exact_keys
from editforge.filtering.minhash import Bands, Sketcher, Sketches, jaccard, words
from editforge.records import PathLike, RecordError, drop, read_jsonl, status_counts, write_json, write_jsonl

NEAR_DUPLICATE_REASONS = ("near_duplicate_code", "near_duplicate_diff", "near_duplicate_instruction")

# A diff line's side, as a token of its own before the line's words (control characters: never in a word).
_SAME_LINE, _OLD_LINE, _NEW_LINE = "\x01= ", "\x01- ", "\x01+ "
_DIFF_TOKEN = re.compile(r"\x01[=+-]|\w+")


def run_dedup(
    in_paths: Sequence[PathLike],
    out_path: PathLike,
    report_path: PathLike,
    settings: Mapping[str, Any],
    benchmark: Sequence[Mapping[str, Any]] | None,
) -> dict[str, int]:
    """Drop benchmark-contaminated and duplicate triplets across all shards and models.

    Reads the records of ``in_paths`` in order and writes all of them to
    ``out_path``. Of each group of duplicates the first in that order is kept.
    Decontamination runs first, so a clean triplet is never dropped as the
    duplicate of a contaminated one. ``benchmark`` is the list of CanItEdit's
    problems (None skips decontamination); ``settings["benchmark_texts"]``, where
    given, names files of the other benchmarks' texts (``read_benchmark_texts``). Raises ContaminationError when the
    contaminated share of kept triplets exceeds
    ``decontamination.max_contaminated_share``. Returns the status counts.
    The report's ``similarity`` of a near duplicate is the exact Jaccard
    similarity of the two shingle sets (shingles compared by 32-bit hash).
    """
    records: list[dict[str, Any]] = []
    for path in in_paths:
        for record in read_jsonl(path):
            if is_kept(record, path):
                require_fields(record, TRIPLET_FIELDS, path)
            records.append(record)
    kept = [r for r in records if r["status"] == "ok"]
    minhash = settings["minhash"]
    decontamination = settings["decontamination"]
    sketcher = Sketcher(minhash["num_perm"], minhash["shingle_words"])

    contaminated: list[dict[str, Any]] = []
    if benchmark is not None:
        entries = canitedit_texts(benchmark) + read_benchmark_texts(settings.get("benchmark_texts", []))
        contaminated = decontaminate(records, BenchmarkIndex.from_texts(entries, decontamination))
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


def read_benchmark_texts(paths: Sequence[PathLike]) -> list[BenchmarkText]:
    """The texts of files of BenchmarkText rows (``{"problem", "field", "kind", "text", "strict"}`` a line)."""
    texts = []
    for path in paths:
        for number, row in enumerate(read_jsonl(path), start=1):
            missing = [field for field in BenchmarkText._fields if field not in row]
            if missing:
                raise RecordError(f"{path}: record {number} lacks {', '.join(missing)}")
            texts.append(BenchmarkText(**{field: row[field] for field in BenchmarkText._fields}))
    return texts


# The word lists compared for the kinds of near duplicate other than code (which compares canonical code).
NEAR_TOKENS = {
    "near_duplicate_diff": lambda record: diff_tokens(record["pre_code"], record["post_code"]),
    "near_duplicate_instruction": lambda record: words(record["instruction_lazy"])
    + words(record["instruction_descriptive"]),
}


def _field_sketches(
    reason: str, records: Sequence[Mapping[str, Any]], positions: list[int], sketcher: Sketcher
) -> tuple[list[int], Sketches]:
    """The records at ``positions`` that have something to compare for ``reason``, and their sketches."""
    if reason == "near_duplicate_code":
        hashes, offsets = code_shingles([records[i]["pre_code"] for i in positions])
        sizes = np.diff(offsets)
        present = [i for i, size in zip(positions, sizes.tolist()) if size]
        return present, sketcher.from_shingles(hashes, np.concatenate([[0], np.cumsum(sizes[sizes > 0])]))
    lists = [(i, tokens) for i in positions if (tokens := NEAR_TOKENS[reason](records[i]))]  # "..." has no words
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


def _deduplicate(records: list[dict[str, Any]], threshold: float, sketcher: Sketcher) -> list[dict[str, Any]]:
    """Drop exact, then near duplicates of earlier kept records; return one entry per drop.

    Greedy in input order: a record is compared with the records kept before it.
    It is an exact duplicate when its ``exact_key`` was seen before, else a near
    duplicate when, for one of the token lists of ``NEAR_TOKENS`` (tried in that
    order), a kept record's shingle set has a Jaccard similarity of at least
    ``threshold`` with its own (the most similar is named, the earliest on ties).
    MinHash LSH proposes the pairs to compare, so a near-duplicate pair is missed
    only when LSH does not propose it (at the threshold, 1.5% of pairs; much
    fewer above it).

    Batched for speed: exact keys and LSH keys of all records are computed
    first; buckets are grouped with numpy, and only buckets that hold at least
    two records are ever looked at (most records share no bucket with any other).
    """
    keys = exact_keys(records)
    seen: set[bytes] = set()
    exact = [key in seen or bool(seen.add(key)) for key in keys]
    candidates = [i for i, is_exact in enumerate(exact) if not is_exact]
    bands = Bands(threshold, sketcher.num_perm)
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
    records: Sequence[Mapping[str, Any]], candidates: list[int], sketcher: Sketcher, bands: Bands, chunk: int = 2048
) -> dict[str, _Field]:
    """LSH keys and shingles of the ``candidates``, per kind of near duplicate.

    Tokens are made ``chunk`` records at a time (all at once would take
    gigabytes at 100k triplets); signatures are dropped once they gave their keys.
    """
    parts: dict[str, list[tuple[list[int], np.ndarray, Sketches]]] = {r: [] for r in NEAR_DUPLICATE_REASONS}
    for start in range(0, len(candidates), chunk):
        for reason in NEAR_DUPLICATE_REASONS:
            present, sketches = _field_sketches(reason, records, candidates[start : start + chunk], sketcher)
            if present:
                # Not signatures[:0]: a view would keep every signature alive.
                light = Sketches(np.empty((0, 0), np.uint32), sketches.shingles, sketches.offsets)
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


def diff_tokens(pre: str, post: str) -> list[str]:
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
