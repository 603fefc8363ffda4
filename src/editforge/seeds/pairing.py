"""Pairing snippets into the seed records of synthesis prompts.

Each pair takes two snippets from two different files: two distinct files are
drawn uniformly, then one snippet from each, so a file with many functions is
not over-represented. No pair repeats, and no snippet seeds more than
``max_snippet_reuse`` pairs; when that leaves fewer pairs than ``num_prompts``,
the stats (``pairs_short``), the log and the funnel say so. Everything is
determined by ``seed``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from editforge.records import PairRecord, Snippet
from editforge.seeds.settings import SeedError


def _pair_indices(
    groups: list[list[int]], count: int, rng: random.Random, max_reuse: int | None = None
) -> list[tuple[int, int]]:
    """``count`` distinct unordered pairs of items from two different groups, no item in more
    than ``max_reuse`` of them (fewer pairs where that cap, or the pairs possible, run out).

    Two groups are drawn uniformly, then one item from each. When the pairs
    wanted are a large share of all possible ones, all are listed and shuffled
    instead, which cannot stall on repeats. A pair the cap refuses is passed over.
    """
    sizes = [len(g) for g in groups]
    possible = (sum(sizes) ** 2 - sum(s * s for s in sizes)) // 2
    count = min(count, possible, max_reuse * sum(sizes) // 2 if max_reuse else possible)
    uses: Counter[int] = Counter()

    def fits(a: int, b: int) -> bool:
        return max_reuse is None or (uses[a] < max_reuse and uses[b] < max_reuse)

    pairs: list[tuple[int, int]] = []
    if 2 * count >= possible:
        every = [(a, b) for gi, ga in enumerate(groups) for gb in groups[gi + 1 :] for a in ga for b in gb]
        rng.shuffle(every)
        for a, b in every:
            if len(pairs) == count:
                break
            if fits(a, b):
                uses.update((a, b))
                pairs.append((a, b) if rng.random() < 0.5 else (b, a))
        return pairs
    seen: set[tuple[int, int]] = set()
    attempts = 0
    while len(pairs) < count and attempts < 50 * count + 1000:  # the cap can leave no pair to find
        attempts += 1
        ga, gb = rng.sample(groups, 2)
        a, b = rng.choice(ga), rng.choice(gb)
        key = (min(a, b), max(a, b))
        if key not in seen and fits(a, b):
            seen.add(key)
            uses.update((a, b))
            pairs.append((a, b))
    return pairs


def make_pairs(
    snippets: list[Snippet], count: int, fewshot_ids: Sequence[str], seed: int, max_reuse: int | None = None
) -> list[PairRecord]:
    """Pair records (without ``shard``) for ``count`` prompts, or fewer if fewer pairs exist
    (each snippet in at most ``max_reuse`` of them)."""
    by_file: dict[tuple[str, str], list[int]] = {}
    for index, snippet in enumerate(snippets):
        by_file.setdefault((snippet["source"], snippet["path"]), []).append(index)
    if len(by_file) < 2:
        raise SeedError(f"seeds: pairs need snippets from two different files; all {len(snippets)} come from one")
    if not fewshot_ids:
        raise SeedError("seeds: no few-shot examples to choose from")
    rng = random.Random(f"{seed}:pairs")
    chosen = _pair_indices(list(by_file.values()), count, rng, max_reuse)
    examples = random.Random(f"{seed}:fewshot")
    width = max(6, len(str(len(chosen) - 1)))
    return [
        PairRecord(
            id=f"p{i:0{width}d}",
            shard="",
            snippets=[snippets[a], snippets[b]],
            fewshot_id=examples.choice(list(fewshot_ids)),
        )
        for i, (a, b) in enumerate(chosen)
    ]
