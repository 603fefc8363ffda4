"""Pass@1 with confidence intervals, paired contrasts between models, and the power of a protocol.

A code-editing benchmark such as CanItEdit has problems (105) that each come in two instruction
kinds ("lazy" and "descriptive"); an item is a (problem, kind) pair, answered with ``n`` samples of
which ``c`` pass. An item's score is ``c / n`` (averaged over training seeds when a model was
trained more than once), and pass@1 is the mean item score.

* ``cell_interval``: pass@1 of one model with a percentile cluster-bootstrap interval. The two kinds
  of one problem are strongly correlated (an easy problem is easy under both instructions), so the
  items are not independent: the bootstrap resamples problems, each carrying both of its items.
* ``paired_contrast``: variant minus baseline on the items both were evaluated on. Problem
  difficulty varies far more than the effect of a change of model, and pairing removes it: the
  standard error of a paired difference is about a quarter of the unpaired one. The interval is a
  cluster bootstrap of the per-problem differences, the p-value a sign-flip permutation test over
  problems (exact when all sign patterns can be enumerated).
* ``holm``: Holm-Bonferroni adjustment for a family of contrasts.
* ``seed_sd``: spread of pass@1 over training seeds.
* ``minimum_detectable_difference``: the smallest paired difference a protocol (items, samples per
  item, training seeds) detects with a given power, from a normal approximation.

Everything is in proportions (0.27, not 27 %) and deterministic given ``seed``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

RESAMPLES = 10_000
LEVEL = 0.95
_TIE = 1e-12  # a permuted statistic this close below the observed one counts as at least as extreme

Item = tuple[str, str]  # (problem, kind)


@dataclass(frozen=True)
class Interval:
    """Pass@1 and its interval, proportions in [0, 1]."""

    mean: float
    low: float
    high: float
    problems: int  # clusters used


@dataclass(frozen=True)
class Contrast:
    """Variant minus baseline, proportions."""

    delta: float
    low: float
    high: float
    p_value: float  # two-sided paired sign-flip permutation p-value
    problems: int  # problems both sides share


def item_scores(rows: Iterable[Mapping]) -> dict[Item, float]:
    """Each item's score: the mean of ``c / n`` over its rows (one row per training seed)."""
    totals: dict[Item, list[float]] = defaultdict(lambda: [0.0, 0])
    for row in rows:
        try:
            item, n, c = (row["problem"], row["kind"]), row["n"], row["c"]
        except KeyError as error:
            raise ValueError(f"row {dict(row)!r} lacks the key {error}") from None
        if not (n > 0 and 0 <= c <= n):
            raise ValueError(f"row {dict(row)!r}: need n > 0 and 0 <= c <= n")
        total = totals[item]
        total[0] += c / n
        total[1] += 1
    return {item: score / count for item, (score, count) in totals.items()}


def _selected(rows: Iterable[Mapping], kinds: Sequence[str] | None) -> dict[Item, float]:
    scores = item_scores(rows)
    if kinds is None:
        return scores
    wanted = set(kinds)
    return {item: score for item, score in scores.items() if item[1] in wanted}


def _clusters(values: Mapping[Item, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per problem, in sorted order (so a seed gives the same draws whatever the row order): the sum of
    its item values and its item count."""
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for (problem, _), value in values.items():
        sums[problem] += value
        counts[problem] += 1
    problems = sorted(sums)
    return np.array([sums[p] for p in problems]), np.array([counts[p] for p in problems], dtype=float)


def _check(resamples: int, level: float) -> None:
    if resamples < 1:
        raise ValueError(f"resamples must be positive, got {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")


def _bootstrap(
    sums: np.ndarray, counts: np.ndarray, resamples: int, rng: np.random.Generator, level: float
) -> tuple[float, float]:
    """Percentile interval of sum(sums) / sum(counts) over problems resampled with replacement."""
    draws = rng.integers(0, len(sums), size=(resamples, len(sums)))
    estimates = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    low, high = np.quantile(estimates, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def cell_interval(
    rows: Iterable[Mapping],
    *,
    kinds: Sequence[str] | None = None,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> Interval:
    """Pass@1 over the items of ``kinds`` (all when None) with a cluster-bootstrap interval."""
    _check(resamples, level)
    sums, counts = _clusters(_selected(rows, kinds))
    if not len(sums):
        raise ValueError(f"no items of kinds {kinds!r}")
    low, high = _bootstrap(sums, counts, resamples, np.random.default_rng(seed), level)
    return Interval(float(sums.sum() / counts.sum()), low, high, len(sums))


def _sign_flip_p(differences: np.ndarray, items: float, resamples: int, rng: np.random.Generator) -> float:
    """Two-sided p-value of |sum d_j| / items under random signs of the per-problem differences."""
    observed = abs(differences.sum()) / items
    count = len(differences)
    if 2**count <= resamples:  # every sign pattern: the exact p-value
        patterns = (np.arange(2**count)[:, None] >> np.arange(count)) & 1
        flipped = np.abs((1 - 2 * patterns) @ differences) / items
        return float(np.mean(flipped >= observed - _TIE))
    signs = 1 - 2 * rng.integers(0, 2, size=(resamples, count))
    flipped = np.abs(signs @ differences) / items
    return float((1 + np.count_nonzero(flipped >= observed - _TIE)) / (1 + resamples))


def paired_contrast(
    baseline_rows: Iterable[Mapping],
    variant_rows: Iterable[Mapping],
    *,
    kinds: Sequence[str] | None = None,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> Contrast:
    """Variant minus baseline pass@1 over the items both sides have, with a cluster-bootstrap interval
    and a sign-flip permutation p-value over problems."""
    _check(resamples, level)
    baseline, variant = _selected(baseline_rows, kinds), _selected(variant_rows, kinds)
    shared = baseline.keys() & variant.keys()
    if not shared:
        raise ValueError(
            f"no shared items of kinds {kinds!r}: the baseline has {len(baseline)}, the variant {len(variant)}"
        )
    differences, counts = _clusters({item: variant[item] - baseline[item] for item in shared})
    rng = np.random.default_rng(seed)
    low, high = _bootstrap(differences, counts, resamples, rng, level)
    p_value = _sign_flip_p(differences, counts.sum(), resamples, rng)
    return Contrast(float(differences.sum() / counts.sum()), low, high, p_value, len(differences))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in input order."""
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def seed_sd(per_seed_rows: Sequence[Iterable[Mapping]], *, kinds: Sequence[str] | None = None) -> float | None:
    """Sample standard deviation (ddof=1) of pass@1 over training seeds; None with fewer than two."""
    if len(per_seed_rows) < 2:
        return None
    means = []
    for rows in per_seed_rows:
        sums, counts = _clusters(_selected(rows, kinds))
        if not len(sums):
            raise ValueError(f"a seed has no items of kinds {kinds!r}")
        means.append(sums.sum() / counts.sum())
    return float(np.std(means, ddof=1))


def minimum_detectable_difference(
    *,
    items: int,
    samples: int,
    seeds: int = 1,
    item_variance: float = 0.14,
    seed_variance: float = 0.0027,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """Smallest paired difference (proportion) a two-sided test at ``alpha`` detects with ``power``.

    Two variants, each evaluated on ``items`` items with ``samples`` samples per item and trained with
    ``seeds`` seeds. Per item and variant, sampling adds ``item_variance / samples`` (``item_variance``
    is the mean p(1 - p), 0.14 for a benchmark near 50 %) and retraining adds ``seed_variance``
    (0.0027 is about 0.3 logit sd near 50 %); averaging over seeds and items divides both.
    """
    for name, value in (("items", items), ("samples", samples), ("seeds", seeds)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if item_variance < 0 or seed_variance < 0:
        raise ValueError(f"variances must be >= 0, got {item_variance} and {seed_variance}")
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must lie in (0, 1), got {alpha} and {power}")
    standard_error = math.sqrt(2 * (item_variance / samples + seed_variance) / (seeds * items))
    z = NormalDist().inv_cdf
    return (z(1 - alpha / 2) + z(power)) * standard_error
