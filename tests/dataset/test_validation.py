"""The held-out validation split: by triplet, capped, seeded, stable as it grows, off at 0, and clear
about why a tiny set holds out nothing."""

from __future__ import annotations

import random
from typing import Any

import pytest

from editforge.dataset.validation import (
    DEFAULTS,
    ValidationSettingsError,
    group_of,
    split_validation,
    validation_settings,
)


def rows(triplets: int, *, both_every: int = 2, seed: int = 0) -> list[dict[str, Any]]:
    """Samples of ``triplets`` triplets, every ``both_every``-th in both styles, the rest in one, shuffled."""
    out = []
    for i in range(triplets):
        styles = ["lazy", "descriptive"] if i % both_every == 0 else [("lazy", "descriptive")[i % 3 % 2]]
        out += [{"id": f"t{i}:{style}", "triplet_id": f"t{i}", "style": style} for style in styles]
    random.Random(seed).shuffle(out)
    return out


def groups(split_rows: list[dict[str, Any]]) -> set[str]:
    return {group_of(row) for row in split_rows}


def test_both_styles_of_a_triplet_fall_on_the_same_side() -> None:
    split = split_validation(rows(200), {"samples": 40, "max_share": 0.5}, 42)
    assert split.validation and groups(split.validation).isdisjoint(groups(split.train))
    assert any(sum(group_of(r) == g for r in split.validation) == 2 for g in groups(split.validation))
    assert split.triplets == len(groups(split.validation)) and split.reason is None


def test_rows_of_one_edit_under_different_ids_fall_on_the_same_side() -> None:
    """An external set (OpenCodeEdit's rows, say) gives one edit's two styles as two rows with ids of their own."""
    edits = [
        {
            "id": f"oce:{2 * i + k}",
            "triplet_id": f"oce:{2 * i + k}",
            "style": style,
            "pre_code": f"def f{i}():\n    pass\n",
            "post_code": f"def f{i}():\n    return {i}\n",
        }
        for i in range(40)
        for k, style in enumerate(("lazy", "descriptive"))
    ]
    split = split_validation(edits, {"samples": 8, "max_share": 0.1}, 42)
    held = {(row["pre_code"], row["post_code"]) for row in split.validation}
    assert len(split.validation) == 8 and len(held) == 4  # four edits, each in both styles
    assert held.isdisjoint((row["pre_code"], row["post_code"]) for row in split.train)


def test_train_rows_keep_their_order_and_nothing_is_lost() -> None:
    data = rows(100)
    split = split_validation(data, {"samples": 20}, 42)
    assert split.train == [row for row in data if row in split.train]
    assert split.validation == [row for row in data if row in split.validation]
    assert len(split.train) + len(split.validation) == len(data)


@pytest.mark.parametrize(("samples", "share", "count"), [(256, 0.1, 300), (10, 0.5, 300), (256, 0.25, 37), (5, 0.1, 9)])
def test_the_cap_is_never_passed(samples: int, share: float, count: int) -> None:
    data = rows(count)
    split = split_validation(data, {"samples": samples, "max_share": share}, 7)
    assert split.limit == min(samples, int(share * len(data)))
    assert len(split.validation) <= split.limit <= samples and len(split.validation) <= share * len(data)
    assert len(split.validation) >= split.limit - 1  # groups of 1 or 2: at most one sample short


def test_an_overflowing_triplet_is_skipped_for_a_smaller_one() -> None:
    # limit 1: every two-style triplet overflows it; the first one-style triplet in the seeded order is taken
    data = rows(12, both_every=2)
    split = split_validation(data, {"samples": 1, "max_share": 0.5}, 3)
    assert len(split.validation) == 1 and split.triplets == 1


def test_seeded_and_independent_of_the_rows_order() -> None:
    data = rows(300)
    first = split_validation(data, DEFAULTS, 42)
    again = split_validation(list(reversed(data)), DEFAULTS, 42)
    assert groups(first.validation) == groups(again.validation)
    assert groups(split_validation(data, DEFAULTS, 43).validation) != groups(first.validation)


def test_raising_samples_only_adds_triplets() -> None:
    # Groups of one size: each smaller held-out set is a subset of every larger one.
    single = [{"id": f"ext:{i}", "style": "lazy"} for i in range(500)]  # no triplet_id: a group per row
    sets = [groups(split_validation(single, {"samples": n, "max_share": 0.5}, 42).validation) for n in (5, 20, 80)]
    assert sets[0] < sets[1] < sets[2] and [len(s) for s in sets] == [5, 20, 80]
    both = [r for r in rows(300, both_every=1)]
    sets = [groups(split_validation(both, {"samples": n, "max_share": 0.5}, 42).validation) for n in (4, 20, 80)]
    assert sets[0] < sets[1] < sets[2]
    # Mixed sizes: every triplet taken before the first skip stays held out as samples grows.
    data = rows(400)
    small = split_validation(data, {"samples": 30, "max_share": 0.5}, 42).validation
    large = groups(split_validation(data, {"samples": 60, "max_share": 0.5}, 42).validation)
    assert len(groups(small) - large) <= 1


def test_zero_samples_switches_it_off() -> None:
    data = rows(100)
    split = split_validation(data, {"samples": 0}, 42)
    assert split.train == data and split.validation == [] and split.limit == 0
    assert split.reason == "switched off (dataset.validation.samples: 0)"


def test_a_tiny_set_holds_out_nothing_and_says_why() -> None:
    two = rows(1, both_every=1)  # one triplet, both styles
    split = split_validation(two, None, 42)
    assert split.validation == [] and split.train == two
    assert split.reason == "a tenth of 2 samples is less than one triplet"
    # 16 samples at a tenth: 1 sample, less than a triplet of two
    split = split_validation(rows(8, both_every=1), {"max_share": 0.1}, 42)
    assert split.validation == [] and split.reason == "a tenth of 16 samples is less than one triplet"
    # the same 16 at a quarter hold out two triplets (4 samples)
    split = split_validation(rows(8, both_every=1), {"max_share": 0.25}, 42)
    assert len(split.validation) == 4 and split.triplets == 2
    split = split_validation(rows(50, both_every=1), {"samples": 1}, 42)
    assert split.reason == "dataset.validation.samples (1) is less than one triplet (2 samples)"
    assert split_validation([], None, 42).reason == "the set is empty"


def test_the_share_is_of_the_rows_given_unless_told() -> None:
    data = rows(10, both_every=100)  # 10 single-style triplets
    assert split_validation(data, {"max_share": 0.1}, 1).limit == 1
    assert split_validation(data, {"max_share": 0.1}, 1, of=100).limit == 10
    assert len(split_validation(data, {"max_share": 0.1}, 1, of=100).validation) == 10


def test_defaults_and_bad_settings() -> None:
    assert validation_settings(None) == {"samples": 256, "max_share": 0.1}
    assert validation_settings({"samples": 0}) == {"samples": 0, "max_share": 0.1}
    for settings, message in [
        ({"samples": -1}, r"dataset.validation.samples must be a whole number >= 0 \(0 switches it off\), got -1"),
        ({"samples": 2.5}, r"dataset.validation.samples must be a whole number"),
        ({"samples": True}, r"dataset.validation.samples must be a whole number"),
        ({"max_share": 0}, r"dataset.validation.max_share must be a number in \(0, 0.5\], got 0"),
        ({"max_share": 0.6}, r"dataset.validation.max_share must be a number in \(0, 0.5\], got 0.6"),
        ({"max_share": "10%"}, r"max_share must be a number"),
        ({"size": 3}, r"dataset.validation: unknown settings \['size'\]; known: samples, max_share"),
    ]:
        with pytest.raises(ValidationSettingsError, match=message):
            split_validation(rows(10), settings, 42)
