"""MinHash sketches and LSH bands."""

from __future__ import annotations

import numpy as np
import pytest

from editforge.filtering.minhash import LSH_RECALL_AT_THRESHOLD, Bands, Sketcher, jaccard


def test_lsh_bands_propose_pairs_at_the_threshold_with_high_probability() -> None:
    bands = Bands(0.8, 128)
    assert (bands.bands, bands.rows) == (18, 7)
    at_threshold = 1 - (1 - 0.8**bands.rows) ** bands.bands
    far = 1 - (1 - 0.3**bands.rows) ** bands.bands
    assert at_threshold >= LSH_RECALL_AT_THRESHOLD and far < 0.005


def test_signatures_estimate_jaccard_and_batches_agree_with_single_lists() -> None:
    sketcher = Sketcher(256, 1)
    a = [f"w{i}" for i in range(300)]
    b = [f"w{i}" for i in range(100, 400)]  # Jaccard 200 / 400 = 0.5
    sketches = sketcher.sketch([a, b, a[:3], ["x"]], batch_tokens=50)
    estimate = float(np.mean(sketches.signatures[0] == sketches.signatures[1]))
    assert abs(estimate - 0.5) < 0.1
    assert jaccard(sketches.shingle_set(0), sketches.shingle_set(1)) == 0.5
    for row, tokens in enumerate([a, b, a[:3], ["x"]]):
        assert (sketcher(tokens).signatures[0] == sketches.signatures[row]).all()
    with pytest.raises(ValueError, match="empty token list"):
        sketcher.sketch([a, []])


def test_shingles_shorter_than_a_shingle_are_one_shingle() -> None:
    sketcher = Sketcher(64, 5)
    assert len(sketcher.sketch([["a", "b"]]).shingle_set(0)) == 1
    assert sketcher.sketch([["a", "b"]]).shingle_set(0) != sketcher.sketch([["a", "b", "c"]]).shingle_set(0)
    assert len(sketcher.sketch([list("abcdefg")]).shingle_set(0)) == 3
