"""Benchmark: are the experiment statistics calibrated, and how fast are they, on simulated CanItEdit outcomes.

    python bench/experiment_stats.py [--replicates 400] [--resamples 2000] [--effect 0.3] [--seed 0]

Each replicate draws 105 problems from a super-population: a problem's difficulty logit ~ Normal(0, 2),
the kind offsets -0.5 (lazy) and +0.5 (descriptive), item noise ~ Normal(0, 0.7); the variant adds a
per-item effect ~ Normal(``--effect``, 0.5) on the logit scale. Each item gets c ~ Binomial(20, p) for
the baseline and the variant. The true values (the super-population means of p_baseline and of
p_variant - p_baseline) come from one Monte Carlo draw of 200,000 items. It prints:

1. the coverage of the 95 % intervals: ``paired_contrast`` of the true difference and ``cell_interval``
   of the baseline's true pass@1 (``--resamples`` bootstrap resamples, fewer than the default for speed);
2. the false-positive rate of the permutation test when the variant is the baseline again (same p,
   new binomial draws): the share of replicates with p < 0.05 and p < 0.01;
3. the minimum detectable difference of the paper's protocol (210 items, 20 samples) with 1 and 3
   training seeds, and the median time of one ``paired_contrast`` at the default 10,000 resamples.

Expected: coverage about 0.95 and false-positive rates about 0.05 and 0.01 (at most that: the test is
exact but discrete), each within 3 binomial standard errors sqrt(p (1 - p) / replicates).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import numpy as np

from editforge.experiments.statistics import (
    RESAMPLES,
    cell_interval,
    minimum_detectable_difference,
    paired_contrast,
)

PROBLEMS = 105
SAMPLES = 20
KIND_OFFSETS = {"lazy": -0.5, "descriptive": 0.5}
DIFFICULTY_SD = 2.0
NOISE_SD = 0.7
EFFECT_SD = 0.5
TRUTH_ITEMS = 200_000


def probabilities(rng: np.random.Generator, problems: int, effect: float) -> tuple[np.ndarray, np.ndarray]:
    """Pass probabilities (problems x kinds) of the baseline and of the variant."""
    difficulty = rng.normal(0.0, DIFFICULTY_SD, size=(problems, 1))
    baseline = difficulty + np.array(list(KIND_OFFSETS.values())) + rng.normal(0.0, NOISE_SD, (problems, 2))
    variant = baseline + rng.normal(effect, EFFECT_SD, (problems, 2))
    return 1 / (1 + np.exp(-baseline)), 1 / (1 + np.exp(-variant))


def rows(passed: np.ndarray) -> list[dict]:
    return [
        {"problem": f"p{j}", "kind": kind, "n": SAMPLES, "c": int(passed[j, k])}
        for j in range(passed.shape[0])
        for k, kind in enumerate(KIND_OFFSETS)
    ]


def line(label: str, share: float, replicates: int, expected: str) -> str:
    error = math.sqrt(share * (1 - share) / replicates)
    return f"{label:<44} {share:>8.3f} {error:>7.3f} {expected:>9}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicates", type=int, default=400)
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap and permutation draws per call")
    parser.add_argument("--effect", type=float, default=0.3, help="mean variant effect, logit scale")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")

    rng = np.random.default_rng(args.seed)
    truth_baseline, truth_variant = probabilities(rng, TRUTH_ITEMS // 2, args.effect)
    true_difference = float(np.mean(truth_variant - truth_baseline))
    true_pass = float(np.mean(truth_baseline))
    print(f"true pass@1 {true_pass:.4f}, true difference {true_difference:+.4f} ({TRUTH_ITEMS:,} items)")

    covered = {"difference": 0, "cell": 0}
    false_positives = {0.05: 0, 0.01: 0}
    detected = 0
    widths: dict[str, list[float]] = {"paired": [], "unpaired": []}
    start = time.perf_counter()
    for replicate in range(args.replicates):
        baseline_p, variant_p = probabilities(rng, PROBLEMS, args.effect)
        baseline = rows(rng.binomial(SAMPLES, baseline_p))
        variant = rows(rng.binomial(SAMPLES, variant_p))
        again = rows(rng.binomial(SAMPLES, baseline_p))
        options = {"resamples": args.resamples, "seed": replicate}

        contrast = paired_contrast(baseline, variant, **options)
        covered["difference"] += contrast.low <= true_difference <= contrast.high
        detected += contrast.p_value < 0.05
        cell, variant_cell = cell_interval(baseline, **options), cell_interval(variant, **options)
        covered["cell"] += cell.low <= true_pass <= cell.high
        widths["paired"].append(contrast.high - contrast.low)
        widths["unpaired"].append(math.hypot(cell.high - cell.low, variant_cell.high - variant_cell.low))

        null = paired_contrast(baseline, again, **options).p_value
        for alpha in false_positives:
            false_positives[alpha] += null < alpha
    elapsed = time.perf_counter() - start

    count = args.replicates
    print(
        f"\n{count} replicates of {PROBLEMS} problems x {len(KIND_OFFSETS)} kinds x {SAMPLES} samples, "
        f"{args.resamples} resamples per call, {elapsed:.1f} s"
    )
    print(f"{'figure':<44} {'estimate':>8} {'SE':>7} {'expected':>9}")
    print(line("coverage of the 95 % paired-difference CI", covered["difference"] / count, count, "0.95"))
    print(line("coverage of the 95 % baseline pass@1 CI", covered["cell"] / count, count, "0.95"))
    print(line("false-positive rate, p < 0.05", false_positives[0.05] / count, count, "<= 0.05"))
    print(line("false-positive rate, p < 0.01", false_positives[0.01] / count, count, "<= 0.01"))
    print(line(f"power at p < 0.05, effect {args.effect:+.2f} logit", detected / count, count, "-"))
    paired, unpaired = statistics.mean(widths["paired"]), statistics.mean(widths["unpaired"])
    print(f"mean CI width: paired {paired:.4f}, unpaired (two cells combined) {unpaired:.4f}: {unpaired / paired:.1f}x")

    one, three = (minimum_detectable_difference(items=210, samples=20, seeds=s) for s in (1, 3))
    print(
        f"\nminimum detectable difference (210 items, 20 samples, alpha 0.05, power 0.8): "
        f"{one:.4f} with 1 seed, {three:.4f} with 3 seeds"
    )
    times = []
    for _ in range(7):
        begin = time.perf_counter()
        paired_contrast(baseline, variant, resamples=RESAMPLES)
        times.append(time.perf_counter() - begin)
    print(
        f"paired_contrast at {RESAMPLES:,} resamples: {statistics.median(times) * 1000:.0f} ms (median of 7); "
        f"load average {os.getloadavg()[0]:.2f} at end"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
