"""MinHash sketches of token lists and locality-sensitive hashing, to find near duplicates fast.

A ``Sketcher`` turns token lists into MinHash signatures over their shingles; ``Bands`` cuts a
signature into LSH band keys, so that similar lists share a key; a proposed pair is then confirmed
by the exact ``jaccard`` similarity of the two shingle sets. ``words`` is the word split of every
text comparison in filtering (instruction shingles here, instruction n-grams in decontamination).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from datasketch import MinHash

from editforge.pycode.canonical import MULTIPLIER, fmix64, text_hash

WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lower-cased word tokens: the unit of shingles and n-grams (punctuation is ignored)."""
    return WORD.findall(text.lower())


class _TokenHashes(dict):
    """A stable 64-bit hash per token, computed once per distinct token."""

    def __missing__(self, token: str) -> int:
        value = text_hash(token)
        self[token] = value
        return value


@dataclass(frozen=True)
class Sketches:
    """MinHash signatures of token lists, with the shingle hashes they were taken over."""

    signatures: np.ndarray  # (lists, num_perm) uint32
    shingles: np.ndarray  # uint32, list after list
    offsets: np.ndarray  # (lists + 1,): list i's shingles are shingles[offsets[i]:offsets[i + 1]]

    def shingle_set(self, row: int) -> set[int]:
        return set(self.shingles[self.offsets[row] : self.offsets[row + 1]].tolist())

    def row(self, row: int) -> Sketches:
        """The sketch of list ``row`` alone."""
        start, stop = self.offsets[row], self.offsets[row + 1]
        return Sketches(self.signatures[row : row + 1], self.shingles[start:stop], np.array([0, stop - start]))


class Sketcher:
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

    def __call__(self, tokens: Sequence[str]) -> Sketches:
        """The sketch of one non-empty token list."""
        return self.sketch([tokens])

    def sketch(self, token_lists: Sequence[Sequence[str]], batch_tokens: int = 8192) -> Sketches:
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

    def from_shingles(self, shingles: np.ndarray, offsets: np.ndarray, batch_shingles: int = 8192) -> Sketches:
        """Sketches of lists of 32-bit shingle hashes (list i: shingles[offsets[i]:offsets[i + 1]], none empty)."""
        signatures = np.empty((len(offsets) - 1, self.num_perm), dtype=np.uint32)
        start = 0
        while start < len(offsets) - 1:
            stop = max(start + 1, int(np.searchsorted(offsets, offsets[start] + batch_shingles, side="right")) - 1)
            hashes = shingles[offsets[start] : offsets[stop]]
            permuted = self._a * hashes[None, :] + self._b  # wraps mod 2**32
            signatures[start:stop] = np.minimum.reduceat(permuted, offsets[start:stop] - offsets[start], axis=1).T
            start = stop
        return Sketches(signatures, shingles, offsets)

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
                    rolling = rolling * MULTIPLIER + ids[offset : offset + windows]
                # A window is a shingle when it ends inside the list it starts in.
                list_of = np.repeat(np.arange(len(lengths)), lengths)[:windows]
                inside = np.arange(windows) + k <= ends[list_of]
                first = np.repeat(out_starts[long], counts[long])
                within = np.arange(len(first)) - np.repeat(np.cumsum(counts[long]) - counts[long], counts[long])
                out[first + within] = rolling[inside] + np.uint64(k)
            for index in np.flatnonzero(~long):  # fewer tokens than a shingle: one shingle of them all
                value = np.uint64(0)
                for token in ids[ends[index] - lengths[index] : ends[index]]:
                    value = value * MULTIPLIER + token
                out[out_starts[index]] = value + np.uint64(lengths[index])
        return (fmix64(out) >> np.uint64(32)).astype(np.uint32)


def jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


# Locality-sensitive hashing must propose a pair at the threshold with at least this probability.
LSH_RECALL_AT_THRESHOLD = 0.95


class Bands:
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
                keys = keys * MULTIPLIER + runs[:, :, row]
        return fmix64(keys + np.arange(self.bands, dtype=np.uint64))


class _NearIndex:
    """An LSH index whose proposals are confirmed by their exact Jaccard similarity."""

    def __init__(self, threshold: float, num_perm: int) -> None:
        self.threshold = threshold
        self._bands = Bands(threshold, num_perm)
        self._buckets: list[dict[int, list[int]]] = [{} for _ in range(self._bands.bands)]
        self._shingles: list[set[int]] = []
        self._names: list[str] = []

    def add(self, name: str, sketch: Sketches) -> None:
        """Index the first (only) list of ``sketch`` under ``name``."""
        for bucket, key in zip(self._buckets, self._bands.keys(sketch.signatures[:1])[0].tolist()):
            bucket.setdefault(key, []).append(len(self._names))
        self._shingles.append(sketch.shingle_set(0))
        self._names.append(name)

    def best_match(self, sketch: Sketches) -> tuple[str, float] | None:
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
