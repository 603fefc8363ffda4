"""The held-out validation split of a training set (``dataset.validation``), by triplet.

Rows are grouped by their pair of programs (``pre_code``, ``post_code``; a row without them by
``triplet_id``, else by ``id``), so both instruction styles of a triplet fall on the same side, also in
an external set that gives one edit in two styles as two rows with ids of their own. Groups are ordered by
``sha256(f"{seed}:{group}")`` and taken in that order while the held-out rows stay within
``limit = min(samples, floor(max_share * rows))``; a group that would overflow it is skipped and later,
smaller groups are still tried. The split depends on the seed and the groups only, not on the rows'
order. Raising ``samples`` keeps every group taken before the first skip (with groups of one size,
the whole smaller set); a smaller group taken in a skipped one's place may give way to it.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULTS: dict[str, Any] = {"samples": 256, "max_share": 0.1}
_SHARE_WORDS = {0.1: "a tenth", 0.2: "a fifth", 0.25: "a quarter", 0.5: "half"}


class ValidationSettingsError(ValueError):
    """``dataset.validation`` holds a value the split cannot use."""


@dataclass(frozen=True)
class ValidationSplit:
    """The rows trained on (in their original order), the rows held out, the most that could be held out,
    and, when none were, why (one line for the dataset card)."""

    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    limit: int
    reason: str | None = None

    @property
    def triplets(self) -> int:
        """The triplets held out (by ``triplet_id``, else ``id``)."""
        return len({row.get("triplet_id") or row["id"] for row in self.validation})


def validation_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """``dataset.validation`` with its defaults filled in, checked."""
    merged = DEFAULTS | dict(settings or {})
    unknown = sorted(set(merged) - set(DEFAULTS))
    if unknown:
        raise ValidationSettingsError(f"dataset.validation: unknown settings {unknown}; known: samples, max_share")
    samples, share = merged["samples"], merged["max_share"]
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 0:
        raise ValidationSettingsError(
            f"dataset.validation.samples must be a whole number >= 0 (0 switches it off), got {samples!r}"
        )
    if not isinstance(share, (int, float)) or isinstance(share, bool) or not 0 < share <= 0.5:
        raise ValidationSettingsError(f"dataset.validation.max_share must be a number in (0, 0.5], got {share!r}")
    return merged


def group_of(row: Mapping[str, Any]) -> str:
    """The group a row is held out with: its pair of programs (both styles of a triplet share it, and so
    do an external set's rows that give one edit in two styles under different ids), else its triplet,
    else the row itself."""
    if "pre_code" in row and "post_code" in row:
        return hashlib.sha256(f"{row['pre_code']}\0{row['post_code']}".encode()).hexdigest()
    return str(row.get("triplet_id") or row["id"])


def split_validation(
    rows: Sequence[dict[str, Any]], settings: Mapping[str, Any] | None, seed: int, *, of: int | None = None
) -> ValidationSplit:
    """``rows`` split into (train, validation) by triplet; ``of``: the rows the share is a share of
    (default ``len(rows)``; a blend re-caps the union of its pools' held-out rows by all their rows)."""
    wanted = validation_settings(settings)
    total = len(rows) if of is None else of
    samples, share = wanted["samples"], wanted["max_share"]
    by_share = math.floor(share * total + 1e-9)  # 0.29 * 100 is 28.999...
    limit = min(samples, by_share)
    sizes = Counter(group_of(row) for row in rows)
    held: set[str] = set()
    count = 0
    for group in sorted(sizes, key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest()):
        if count + sizes[group] <= limit:
            held.add(group)
            count += sizes[group]
    train = [row for row in rows if group_of(row) not in held]
    validation = [row for row in rows if group_of(row) in held]
    reason = None
    if not validation:
        reason = _reason(samples, share, total, limit, min(sizes.values(), default=0))
    return ValidationSplit(train, validation, limit, reason)


def _reason(samples: int, share: float, total: int, limit: int, smallest: int) -> str:
    """Why nothing was held out, in one line."""
    if samples == 0:
        return "switched off (dataset.validation.samples: 0)"
    if smallest == 0:
        return "the set is empty"
    if limit == samples:
        return f"dataset.validation.samples ({samples}) is less than one triplet ({smallest} samples)"
    words = _SHARE_WORDS.get(share, f"a share of {share:g}")
    return f"{words} of {total} samples is less than one triplet"
