"""The experiment statistics against answers known in advance: by hand, by brute force or analytically."""

import itertools
import math
import time

import numpy as np
import pytest

from editforge.experiments.statistics import (
    Contrast,
    Interval,
    cell_interval,
    holm,
    item_scores,
    minimum_detectable_difference,
    paired_contrast,
    seed_sd,
)

KINDS = ("lazy", "descriptive")


def rows_from(scores: dict[tuple[str, str], float], n: int = 20) -> list[dict]:
    """One row per item with c / n equal to its score (scores must be multiples of 1 / n)."""
    return [{"problem": p, "kind": k, "n": n, "c": round(s * n)} for (p, k), s in scores.items()]


def one_item_per_problem(values: list[float], n: int = 20) -> list[dict]:
    return rows_from({(f"p{j}", "lazy"): v for j, v in enumerate(values)}, n)


# ---------------------------------------------------------------- item_scores


def test_item_scores_average_the_seeds() -> None:
    rows = [
        {"problem": "a", "kind": "lazy", "n": 10, "c": 2},
        {"problem": "a", "kind": "lazy", "n": 20, "c": 12},  # another seed, another n
        {"problem": "a", "kind": "descriptive", "n": 10, "c": 10},
        {"problem": "b", "kind": "lazy", "n": 4, "c": 0},
    ]
    assert item_scores(rows) == pytest.approx({("a", "lazy"): 0.4, ("a", "descriptive"): 1.0, ("b", "lazy"): 0.0})


@pytest.mark.parametrize(
    "row",
    [
        {"problem": "p17", "kind": "lazy", "n": 0, "c": 0},
        {"problem": "p17", "kind": "lazy", "n": 5, "c": 6},
        {"problem": "p17", "kind": "lazy", "n": 5, "c": -1},
        {"problem": "p17", "kind": "lazy", "n": 5},
    ],
)
def test_bad_rows_raise_naming_the_problem(row: dict) -> None:
    good = {"problem": "p1", "kind": "lazy", "n": 5, "c": 1}
    with pytest.raises(ValueError, match="p17"):
        item_scores([good, row])


# ---------------------------------------------------------------- cell_interval


def test_equal_scores_give_a_zero_width_interval_and_kinds_filter() -> None:
    scores = {(f"p{j}", "lazy"): 0.25 for j in range(30)} | {(f"p{j}", "descriptive"): 0.75 for j in range(30)}
    rows = rows_from(scores)
    assert cell_interval(rows, kinds=["lazy"]) == Interval(0.25, 0.25, 0.25, 30)
    assert cell_interval(rows, kinds=["descriptive"]) == Interval(0.75, 0.75, 0.75, 30)
    both = cell_interval(rows)
    assert (both.mean, both.low, both.high, both.problems) == (0.5, 0.5, 0.5, 30)  # every cluster averages 0.5
    with pytest.raises(ValueError, match="no items"):
        cell_interval(rows, kinds=["other"])


def test_tiny_cell_by_hand() -> None:
    # Cluster means 0.1, 0.5, 0.6; the pooled mean counts items: (0.1 + 0.5 + 0.5 + 0.7) / 4 = 0.45.
    rows = rows_from({("a", "lazy"): 0.1, ("b", "lazy"): 0.5, ("c", "lazy"): 0.5, ("c", "descriptive"): 0.7})
    interval = cell_interval(rows, resamples=4000, seed=3)
    assert interval.mean == pytest.approx(0.45)
    assert interval.problems == 3
    assert 0.1 <= interval.low < interval.mean < interval.high <= 0.6
    # Percentile bounds are estimates of resamples: with 27 equally likely draws the 2.5 % quantile
    # is the all-"a" estimate 0.1 (probability 1/27 > 2.5 %), the 97.5 % the all-"c" estimate 0.6.
    assert (interval.low, interval.high) == pytest.approx((0.1, 0.6))
    assert cell_interval(rows, resamples=4000, seed=3) == interval  # deterministic
    assert cell_interval(list(reversed(rows)), resamples=4000, seed=3) == interval  # whatever the row order


def test_resampled_estimate_pools_items_not_cluster_means() -> None:
    # Problem a: one item scoring 0; b: two items scoring 1. Drawing two problems gives aa (1/4): 0,
    # ab (1/2): 2/3 (not the 1/2 of the cluster means) and bb (1/4): 1, so the 30 % and 70 % quantiles are 2/3.
    rows = rows_from({("a", "lazy"): 0.0, ("b", "lazy"): 1.0, ("b", "descriptive"): 1.0})
    interval = cell_interval(rows, level=0.4)
    assert (interval.mean, interval.low, interval.high) == pytest.approx((2 / 3, 2 / 3, 2 / 3))


# ---------------------------------------------------------------- paired_contrast


def test_identical_sides_give_no_difference() -> None:
    rng = np.random.default_rng(1)
    rows = rows_from({(f"p{j}", k): rng.integers(0, 21) / 20 for j in range(105) for k in KINDS})
    assert paired_contrast(rows, rows) == Contrast(0.0, 0.0, 0.0, 1.0, 105)  # Monte Carlo branch
    assert paired_contrast(rows[:6], rows[:6]).p_value == 1.0  # exact branch (3 problems)


def test_exact_enumeration_of_a_consistent_shift() -> None:
    baseline = one_item_per_problem([0.0, 0.25, 0.5, 0.1])
    variant = one_item_per_problem([0.5, 0.75, 1.0, 0.6])
    contrast = paired_contrast(baseline, variant)
    assert contrast.delta == pytest.approx(0.5)
    assert contrast.p_value == pytest.approx(2 / 16)  # only the two all-equal sign patterns reach 0.5
    assert contrast.problems == 4
    assert contrast.low == pytest.approx(0.5) and contrast.high == pytest.approx(0.5)


def test_exact_p_value_matches_brute_force() -> None:
    rng = np.random.default_rng(7)
    problems, kinds = [f"p{j}" for j in range(9)], KINDS
    baseline = rows_from({(p, k): rng.integers(0, 21) / 20 for p in problems for k in kinds})
    variant = rows_from({(p, k): rng.integers(0, 21) / 20 for p in problems for k in kinds})
    variant = [row for row in variant if not (row["problem"] == "p0" and row["kind"] == "lazy")]  # unshared
    contrast = paired_contrast(baseline, variant, resamples=512)  # 2**9 = 512: exact

    base, var = item_scores(baseline), item_scores(variant)
    d = [sum(var[(p, k)] - base[(p, k)] for k in kinds if (p, k) in var) for p in problems]
    m = 2 * len(problems) - 1
    observed = abs(sum(d)) / m
    flips = [abs(sum(s * x for s, x in zip(signs, d))) / m for signs in itertools.product((1, -1), repeat=9)]
    expected = sum(t >= observed - 1e-12 for t in flips) / len(flips)
    assert contrast.delta == pytest.approx(sum(d) / m)
    assert contrast.p_value == pytest.approx(expected)
    assert 0.0 < expected < 1.0  # a case that tests something
    assert contrast.problems == 9


def test_monte_carlo_p_value_near_the_analytic_one() -> None:
    # Each d_j = ±1, so every signed sum is a sum of 20 fair ±1: with 14 up and 6 down the observed
    # |sum| is 8 and p = P(|S_20| >= 8) = 2 * sum_{k >= 14} C(20, k) / 2**20.
    baseline = one_item_per_problem([0.0] * 14 + [1.0] * 6)
    variant = one_item_per_problem([1.0] * 14 + [0.0] * 6)
    analytic = 2 * sum(math.comb(20, k) for k in range(14, 21)) / 2**20
    p_value = paired_contrast(baseline, variant).p_value  # 2**20 > 10,000: Monte Carlo
    assert abs(p_value - analytic) < 4 * math.sqrt(analytic * (1 - analytic) / 10_000)
    assert p_value != pytest.approx(analytic, abs=1e-9)  # really sampled, not enumerated


def test_huge_consistent_shift_reaches_the_smallest_monte_carlo_p() -> None:
    baseline = one_item_per_problem([0.0] * 30)
    variant = one_item_per_problem([1.0] * 30)
    assert paired_contrast(baseline, variant, resamples=2000).p_value == pytest.approx(1 / 2001)
    assert paired_contrast(variant, baseline, resamples=2000).delta == -1.0


def test_no_shared_items_raise_naming_the_counts() -> None:
    baseline = one_item_per_problem([0.5, 0.5, 0.5])
    variant = rows_from({("q", "lazy"): 0.5})
    with pytest.raises(ValueError, match="baseline has 3, the variant 1"):
        paired_contrast(baseline, variant)
    with pytest.raises(ValueError, match="no shared items"):
        paired_contrast(baseline, baseline, kinds=["descriptive"])


def test_bootstrap_is_fast() -> None:
    rng = np.random.default_rng(0)
    baseline = rows_from({(f"p{j}", k): rng.integers(0, 21) / 20 for j in range(105) for k in KINDS})
    variant = rows_from({(f"p{j}", k): rng.integers(0, 21) / 20 for j in range(105) for k in KINDS})
    start = time.perf_counter()
    paired_contrast(baseline, variant)
    assert time.perf_counter() - start < 2.0  # well under a second alone; slack for a loaded machine


# ---------------------------------------------------------------- holm


def test_holm_known_values() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.01, 0.02, 0.5, 0.9]) == pytest.approx([0.04, 0.06, 1.0, 1.0])  # 2 * 0.5 capped, then 0.9 lifted
    assert holm([0.2]) == [0.2]
    assert holm([]) == []


def test_holm_is_monotone_and_capped() -> None:
    p_values = list(np.random.default_rng(2).uniform(0, 0.6, size=12))
    adjusted = holm(p_values)
    in_order = [adjusted[i] for i in np.argsort(p_values)]
    assert in_order == sorted(in_order)
    assert all(a >= p for a, p in zip(adjusted, p_values))
    assert max(adjusted) == 1.0


# ---------------------------------------------------------------- seed_sd


def test_seed_sd() -> None:
    first = one_item_per_problem([0.4, 0.2, 0.6])  # pass@1 0.4
    second = one_item_per_problem([0.6, 0.6, 0.6])  # pass@1 0.6
    assert seed_sd([first, second]) == pytest.approx(math.sqrt(0.02))  # 0.1414...
    assert seed_sd([first, second, first]) == pytest.approx(np.std([0.4, 0.6, 0.4], ddof=1))
    assert seed_sd([first]) is None
    assert seed_sd([]) is None


# ---------------------------------------------------------------- minimum_detectable_difference


def test_minimum_detectable_difference_reference_values() -> None:
    assert minimum_detectable_difference(items=210, samples=20) == pytest.approx(0.027, abs=0.002)
    assert minimum_detectable_difference(items=210, samples=20, seeds=3) == pytest.approx(0.016, abs=0.002)


def test_minimum_detectable_difference_shrinks_with_samples_and_seeds() -> None:
    by_samples = [minimum_detectable_difference(items=210, samples=s) for s in (1, 5, 20, 100)]
    by_seeds = [minimum_detectable_difference(items=210, samples=20, seeds=s) for s in (1, 2, 3, 5)]
    assert by_samples == sorted(by_samples, reverse=True) and len(set(by_samples)) == 4
    assert by_seeds == sorted(by_seeds, reverse=True) and len(set(by_seeds)) == 4


@pytest.mark.parametrize(
    "arguments",
    [
        {"items": 0, "samples": 20},
        {"items": 210, "samples": -1},
        {"items": 210, "samples": 20, "seeds": 0},
        {"items": 210.0, "samples": 20},
        {"items": 210, "samples": 20, "alpha": 0.0},
        {"items": 210, "samples": 20, "power": 1.0},
        {"items": 210, "samples": 20, "item_variance": -0.1},
    ],
)
def test_minimum_detectable_difference_rejects_bad_arguments(arguments: dict) -> None:
    with pytest.raises(ValueError):
        minimum_detectable_difference(**arguments)
