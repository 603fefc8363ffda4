"""A variant's training set at an exact size, and its manifest.

Rows come from the variant's pool (its mixed dataset, or an external set after decontamination),
or from several pools at fixed shares of the final set (a blend). Each pool is ordered once by a
hash of the run's seed and the row's id, and a set takes a prefix of that order: the same pool
gives every size the same order, so smaller sets are subsets of larger ones (5k ⊂ 10k ⊂ 20k), and
a size never depends on which other variants exist. A set with fewer rows than asked stops here,
before any training, unless the variant says ``mode: at_most``.

The validation rows come first (``editforge.dataset.validation``): each pool's full rows (for our own
data, its dataset's ``train.jsonl`` and ``validation.jsonl``) are split again with the variant's
``dataset.validation``, so the run's settings give the run's split and every size of a pool holds out
the same rows; the set is sized from the rest. The variant's validation set is its pools' held-out
rows, capped again as one set (a blend would otherwise hold out up to ``samples`` per pool).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from editforge.dataset.mix import largest_remainder
from editforge.dataset.validation import ValidationSettingsError, ValidationSplit, group_of, split_validation
from editforge.records import PathLike, read_jsonl, write_json, write_jsonl

# Tokens counted without a tokenizer (the same count for every student): words and single symbols.
_TOKEN = re.compile(r"\w+|[^\w\s]")


class TrainingSetError(ValueError):
    """A variant's set cannot be built as asked."""


@dataclass(frozen=True)
class Component:
    """One pool a variant's set draws from, with its share of the set and where its rows come from."""

    name: str
    share: float
    pool: PathLike
    provenance: Mapping[str, Any]  # sources, licences, generators, decontamination (see run_provenance)
    validation: PathLike | None = None  # our own data: the rows its dataset held out (the pool's other part)


def conversation_tokens(row: Mapping[str, Any]) -> int:
    return sum(len(_TOKEN.findall(message["content"])) for message in row["messages"])


def ordered(rows: Sequence[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """``rows`` in the seeded order every size of a set takes its prefix of."""
    return sorted(rows, key=lambda row: hashlib.sha256(f"{seed}:{row['id']}".encode()).hexdigest())


def run_provenance(
    seeds_stats: Mapping[str, Any], decontamination: Mapping[str, Any], licence: str, generators: Mapping[str, str]
) -> dict[str, Any]:
    """Where a pool of our own data comes from: the seed sources and their licences, the synthesis
    models, the dataset licence, and what decontamination dropped (the dedup stage's report)."""
    sources = seeds_stats.get("sources") or {}
    return {
        "sources": [f"{name} ({source.get('repository', '-')})" for name, source in sources.items()],
        "licences": [
            f"dataset: {licence}",
            *(
                f"seeds {name}: " + ", ".join(f"{lic} ({n})" for lic, n in source.get("licences", {}).items())
                for name, source in sources.items()
            ),
        ],
        "generators": dict(generators),
        "decontamination": {
            "contaminated": sum(1 for match in decontamination.get("contaminated", []) if match.get("kept_before")),
            "contaminated_share": decontamination.get("contaminated_share"),
        },
    }


def external_provenance(report: Mapping[str, Any]) -> dict[str, Any]:
    """Where an external pool comes from, from its decontamination report."""
    generator = report.get("generator")
    return {
        "sources": [str(report["source"])],
        "licences": [f"{report['source']}: {report.get('licence', 'unknown')}"],
        "generators": {str(report["source"]): generator} if generator else {},
        "decontamination": {"contaminated": report.get("contaminated"), "rows_read": report.get("rows_read")},
    }


def build_training_set(
    variant: str,
    components: Sequence[Component],
    size: Mapping[str, Any],
    seed: int,
    out_dir: PathLike,
    validation: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``train.jsonl``, ``validation.jsonl`` and ``manifest.json`` of ``variant`` to ``out_dir``;
    return the manifest.

    ``size``: ``n`` (None: every row of a single pool; for a blend, the most the shares allow), ``unit``
    (``rows``, or ``tokens``: the longest prefix of each pool within its share of n) and ``mode``.
    ``validation``: the variant's ``dataset.validation`` (None: its defaults).
    """
    splits, held_out = _held_out(variant, components, seed, validation)
    held_groups = {group_of(row) for split in splits.values() for row in split.validation}
    pools = {  # a triplet one pool held out is trained on from no other pool
        name: ordered([row for row in split.train if group_of(row) not in held_groups], seed)
        for name, split in splits.items()
    }
    quotas = _quotas(variant, components, pools, size)
    chosen: list[dict[str, Any]] = []
    taken: dict[str, dict[str, int]] = {}
    for part in components:
        # A row two blended pools share (the same triplet in the same style) is taken once.
        seen = {row["id"] for row in chosen}
        pool, quota = [row for row in pools[part.name] if row["id"] not in seen], quotas[part.name]
        unit = size["unit"]
        rows = pool[:quota] if unit == "rows" else _within_tokens(pool, quota)
        available = len(pool) if unit == "rows" else sum(map(conversation_tokens, pool))
        if available < quota and size["mode"] == "exact":
            raise TrainingSetError(
                f"experiments.variants.{variant}: {part.name} has {available} {unit}, {quota} asked; "
                "make more data, lower size.n, or set size.mode: at_most"
            )
        held = len(splits[part.name].validation)
        taken[part.name] = {"available": len(pool), "taken": len(rows), "held_out": held}
        chosen += rows
    if not chosen:
        raise TrainingSetError(f"experiments.variants.{variant}: the training set is empty")
    chosen = ordered(chosen, seed)
    out = Path(out_dir)
    write_jsonl(out / "train.jsonl", chosen)
    write_jsonl(out / "validation.jsonl", held_out.validation)
    manifest = {
        "variant": variant,
        "seed": seed,
        "size": dict(size),
        "rows": len(chosen),
        "tokens": sum(map(conversation_tokens, chosen)),
        "components": {part.name: {"share": part.share, **taken[part.name]} for part in components},
        "styles": dict(Counter(row["style"] for row in chosen).most_common()),
        "teachers": dict(Counter(row["model"] for row in chosen).most_common()),
        "sources": [s for part in components for s in part.provenance.get("sources", [])],
        "licences": [s for part in components for s in part.provenance.get("licences", [])],
        "generators": {k: v for part in components for k, v in part.provenance.get("generators", {}).items()},
        "decontamination": {part.name: part.provenance.get("decontamination") for part in components},
        "sha256": hashlib.sha256((out / "train.jsonl").read_bytes()).hexdigest(),
        "validation": {
            "rows": len(held_out.validation),
            "triplets": held_out.triplets,
            "tokens": sum(map(conversation_tokens, held_out.validation)),
            "sha256": hashlib.sha256((out / "validation.jsonl").read_bytes()).hexdigest(),
            "reason": held_out.reason,
        },
    }
    write_json(out / "manifest.json", manifest)
    return manifest


def _held_out(
    variant: str, components: Sequence[Component], seed: int, validation: Mapping[str, Any] | None
) -> tuple[dict[str, ValidationSplit], ValidationSplit]:
    """Each pool's full rows split with the variant's settings, and the variant's validation set: the
    pools' held-out rows split once more, capped by all the pools' rows (one pool: the same rows)."""
    splits: dict[str, ValidationSplit] = {}
    every: set[str] = set()
    for part in components:
        rows = [*read_jsonl(part.pool), *(read_jsonl(part.validation) if part.validation else [])]
        every |= {row["id"] for row in rows}
        try:
            splits[part.name] = split_validation(rows, validation, seed)
        except ValidationSettingsError as err:
            raise TrainingSetError(f"experiments.variants.{variant}: {err}") from None
    held = list({row["id"]: row for split in splits.values() for row in split.validation}.values())
    final = split_validation(ordered(held, seed), validation, seed, of=len(every))
    if not held:  # why none: the pools' own reasons (one pool: the run's card's)
        reason = "; ".join(dict.fromkeys(split.reason for split in splits.values() if split.reason))
        final = replace(final, reason=reason or final.reason)
    return splits, final


def _quotas(
    variant: str, components: Sequence[Component], pools: Mapping[str, list[dict[str, Any]]], size: Mapping[str, Any]
) -> dict[str, int]:
    """Rows (or tokens) each pool gives: its share of n, split by largest remainder so they sum to n."""
    n = size["n"]
    if n is None:
        measure = len if size["unit"] == "rows" else (lambda rows: sum(map(conversation_tokens, rows)))
        n = min(int(measure(pools[part.name]) / part.share) for part in components)
        if n == 0:
            raise TrainingSetError(f"experiments.variants.{variant}: a pool it draws from is empty")
    return largest_remainder({part.name: part.share for part in components}, n)


def _within_tokens(pool: Sequence[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """The longest prefix of ``pool`` whose tokens fit ``budget``."""
    rows, used = [], 0
    for row in pool:
        used += conversation_tokens(row)
        if used > budget:
            break
        rows.append(row)
    return rows
