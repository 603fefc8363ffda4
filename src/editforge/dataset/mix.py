"""Mixing filtered triplets into the chat-format training set.

For each instruction style, samples are drawn from the kept triplets by the
configured share of each synthesis model (``mix``), up to ``size_per_style``
(a number for every style, or one per style). Within a model's quota the draw
is balanced over topics (``editforge.dataset.topics``): a topic model is fitted per
style over the pre-edit code and that style's instruction of every kept
triplet, and each model's triplets are sampled by max-min fair water-filling
over their dominant topics, which keeps small topics whole and caps large ones.
This is the paper's topic step, done within each model's share so that the
shares stay exact. With fewer triplets than the quota, all are taken.

Where the LLM judge ran (``editforge.filtering.judge``; ``editforge.verdicts``), a style draws only from
the kept triplets that passed the judge for that style (``judge_passed``), and
its topics are fitted over those; records the judge never saw are unaffected.

Last, ``dataset.validation`` holds whole triplets of the chosen samples out of the training set
(``editforge.dataset.validation``): ``train.*`` hold the rest, ``validation.*`` the held-out rows.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from editforge.backend import embedded
from editforge.dataset import topics as topic_model
from editforge.dataset.card import render_card
from editforge.dataset.export import write_exports
from editforge.dataset.validation import ValidationSettingsError, split_validation, validation_settings
from editforge.edit_format import training_messages
from editforge.funnel import outcomes_of, plot_funnel, stage_counts
from editforge.records import STYLES, TrainingRecord, read_jsonl, status_counts, write_json, write_jsonl
from editforge.verdicts import judge_counts, judge_passed

STYLE_SPLITS = ("independent", "disjoint")

log = logging.getLogger(__name__)


class MixError(ValueError):
    """The filtered triplets or the dataset settings cannot make a training set."""


def run_mix(
    filtered_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    settings: Mapping[str, Any],
    seed: int,
    decontamination_path: str | os.PathLike[str] | None = None,
    generators: Mapping[str, str] | None = None,
    seeds_path: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Write the training set and its exports, stats, topics and card to ``out_dir``; return the stats.

    Writes, besides ``train.jsonl``/``train.parquet`` and ``validation.*``: ``stats.json``,
    ``topics.json``, ``README.md`` (the card, ``editforge.dataset.card``),
    ``funnel.png`` and the exports of ``editforge.dataset.export``.

    ``decontamination_path`` is the dedup stage's report (summarised on the
    card), ``generators`` the synthesis models' names and models, ``seeds_path``
    the seeds stage's stats (the sources and their licences, for the card).

    ``settings`` is the config's ``dataset:`` section: ``styles``, ``mix`` (model
    -> share; equal shares when absent), ``size_per_style`` (an upper bound, a
    number or style -> number: a model with fewer kept triplets than its quota
    gives all it has), ``style_split`` (``independent``, the default, or
    ``disjoint``) and ``topics`` (``editforge.dataset.topics.DEFAULTS``; method
    ``none`` turns balancing off) and ``validation`` (``samples``, ``max_share``: what is held out).
    """
    records = list(read_jsonl(filtered_path))
    decontamination = json.loads(Path(decontamination_path).read_text()) if decontamination_path else {}
    seeds = json.loads(Path(seeds_path).read_text()) if seeds_path else {}
    licence_id = settings.get("license", "other")
    generators = {  # for the card: the embedded model by the name it has on the Hub
        name: f"{embedded.HUB_ID} (embedded)" if model == "embedded" else model
        for name, model in (generators or {}).items()
    }
    kept = sorted((r for r in records if r.get("status") == "ok"), key=lambda r: r["id"])
    if not kept:
        raise MixError(f"no triplets survived filtering; see {filtered_path} reasons: {status_counts(records)}")
    styles = _styles(settings.get("styles", STYLES))
    style_split = settings.get("style_split", "independent")
    if style_split not in STYLE_SPLITS:
        raise MixError(f"dataset.style_split is {style_split!r}; expected one of {', '.join(STYLE_SPLITS)}")
    sizes = _style_sizes(settings.get("size_per_style", 10_000), styles)
    try:
        topic_settings = topic_model.topic_settings(settings.get("topics"))
    except topic_model.TopicError as err:
        raise MixError(f"dataset.topics: {err}") from None
    try:
        validation = validation_settings(settings.get("validation"))
    except ValidationSettingsError as err:
        raise MixError(str(err)) from None

    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in kept:
        by_model[record["model"]].append(record)
    shares = _shares(settings.get("mix") or {model: 1.0 for model in by_model}, by_model)
    quotas = {style: largest_remainder(shares, size) for style, size in sizes.items()}

    eligible = {style: [r for r in kept if judge_passed(r, style)] for style in styles}
    fits = {style: _fit(eligible[style], style, topic_settings, seed) for style in styles}
    topic_of = {style: dict(zip((r["id"] for r in eligible[style]), fit.assignments)) for style, fit in fits.items()}

    samples: list[TrainingRecord] = []
    for model in shares:
        pools = _style_pools(by_model.get(model, []), styles, style_split, seed, model)
        for style in styles:
            pool = [record for record in pools[style] if judge_passed(record, style)]
            rng = random.Random(f"{seed}:{style}:{model}")
            chosen = topic_model.balance(pool, [topic_of[style][r["id"]] for r in pool], quotas[style][model], rng)
            samples += [training_record(record, style, topic_of[style][record["id"]]) for record in chosen]
    if not samples:
        raise MixError(f"dataset.mix {dict(shares)} with size_per_style {dict(sizes)} selects no samples")
    random.Random(f"{seed}:order").shuffle(samples)
    split = split_validation(samples, validation, seed)  # the training rows keep their order

    out = Path(out_dir)
    write_jsonl(out / "train.jsonl", split.train)
    pl.DataFrame(split.train, infer_schema_length=None).write_parquet(out / "train.parquet")
    write_exports(out, split.train, records, styles, validation=split.validation)
    topics = _topic_report(fits, eligible, samples, styles)
    write_json(out / "topics.json", topics)
    stats = _stats(split.train, kept, quotas, styles, style_split, filtered_path, seed, fits)
    stats["validation"] = {
        "rows": len(split.validation), "triplets": split.triplets, "limit": split.limit, "reason": split.reason
    }
    if any("judge" in record for record in records):
        stats["judge"] = _judge_stats(records, kept, styles)
    stages = stage_counts(outcomes_of(records), judged=any("judge" in record for record in records))
    stats["stages"] = stages
    write_json(out / "stats.json", stats)
    plot_funnel({"stages": stages, "dataset": stats}, out / "funnel.png")
    card = render_card(stats, stages, _topic_summary(topics), decontamination, licence_id, generators, seeds)
    (out / "README.md").write_text(card, encoding="utf-8")
    return stats


def _styles(styles: Sequence[str]) -> list[str]:
    unknown = [s for s in styles if s not in STYLES]
    if unknown or not styles:
        raise MixError(f"dataset.styles must list some of {', '.join(STYLES)}; got {list(styles)}")
    return list(styles)


def _style_sizes(size: int | Mapping[str, int], styles: list[str]) -> dict[str, int]:
    """The number of samples wanted per style: one number for all, or one per style (0 for one not named)."""
    sizes = {style: size for style in styles} if isinstance(size, int) else {s: size.get(s, 0) for s in styles}
    if any(not isinstance(n, int) or isinstance(n, bool) or n < 0 for n in sizes.values()):
        raise MixError(f"dataset.size_per_style needs non-negative whole numbers; got {size!r}")
    return sizes


def _shares(mix: Mapping[str, float], by_model: Mapping[str, list[Any]]) -> dict[str, float]:
    """Shares normalised to sum to 1; a mixed model with no kept triplets is an error unless others have some."""
    total = sum(mix.values())
    if total <= 0 or any(share < 0 for share in mix.values()):
        raise MixError(f"dataset.mix needs non-negative shares with a positive sum; got {dict(mix)}")
    if not any(by_model.get(model) for model, share in mix.items() if share > 0):
        raise MixError(
            f"none of the kept triplets come from the models in dataset.mix ({', '.join(mix)}); "
            f"kept triplets per model: { {m: len(r) for m, r in by_model.items()} }"
        )
    return {model: share / total for model, share in mix.items()}


def largest_remainder(shares: Mapping[str, float], size: int) -> dict[str, int]:
    """Integer quotas summing to ``size``: floors, then the leftover to the largest fractions."""
    exact = {model: share * size for model, share in shares.items()}
    quotas = {model: int(value) for model, value in exact.items()}
    leftover = size - sum(quotas.values())
    for model in sorted(exact, key=lambda m: (quotas[m] - exact[m], m))[:leftover]:
        quotas[model] += 1
    return quotas


def _style_pools(
    records: list[dict[str, Any]], styles: list[str], style_split: str, seed: int, model: str
) -> dict[str, list[dict[str, Any]]]:
    """The triplets each style may draw from: all of them, or a disjoint deal of a shuffled deck.

    Unlike the reference (which reseeds identically for both styles and so pairs
    every selected program with both of its instructions), each style draws with
    its own seed; ``style_split: disjoint`` goes further and gives each triplet to
    at most one style, dealing the deck in turn to the styles it passed the judge for.
    """
    if style_split == "independent":
        return {style: records for style in styles}
    deck = list(records)
    random.Random(f"{seed}:split:{model}").shuffle(deck)
    hands: dict[str, list[dict[str, Any]]] = {style: [] for style in styles}
    turn = 0
    for record in deck:
        passed = [i for i in range(turn, turn + len(styles)) if judge_passed(record, styles[i % len(styles)])]
        if passed:  # without the judge every style: the plain deal, card k to style k mod len(styles)
            hands[styles[passed[0] % len(styles)]].append(record)
            turn = (passed[0] + 1) % len(styles)
    return {style: sorted(hand, key=lambda r: r["id"]) for style, hand in hands.items()}


def _fit(
    kept: list[dict[str, Any]], style: str, settings: Mapping[str, Any], seed: int
) -> topic_model.TopicFit:
    documents = [topic_model.topic_document(r["pre_code"], r[f"instruction_{style}"]) for r in kept]
    try:
        fit = topic_model.fit_topics(documents, settings, seed)
    except topic_model.TopicError as err:
        raise MixError(f"dataset.topics: {err}") from None
    log.info("%s: %s topic model, %d topics over %d triplets", style, fit.method, len(fit.sizes()), len(kept))
    return fit


def training_record(triplet: Mapping[str, Any], style: str, topic: int) -> TrainingRecord:
    """One triplet as a sample of one style.

    Its ``messages`` come from ``edit_format.training_messages``, the format evaluation prompts with.
    """
    instruction = triplet[f"instruction_{style}"]
    return {  # type: ignore[typeddict-unknown-key]  # topic: see _topic_report
        "id": f"{triplet['id']}:{style}",
        "triplet_id": triplet["id"],
        "model": triplet["model"],
        "style": style,  # type: ignore[typeddict-item]  # checked by _styles
        "pre_code": triplet["pre_code"],
        "post_code": triplet["post_code"],
        "instruction": instruction,
        "messages": training_messages(triplet["pre_code"], instruction, triplet["post_code"]),
        "topic": topic,
    }


def _topic_report(
    fits: Mapping[str, topic_model.TopicFit],
    eligible: Mapping[str, list[dict[str, Any]]],
    samples: list[TrainingRecord],
    styles: list[str],
) -> dict[str, Any]:
    """topics.json: per style, the model and every topic's top words and sizes before and after balancing."""
    report: dict[str, Any] = {}
    for style in styles:
        fit = fits[style]
        before = fit.sizes()
        per_model_before: dict[int, Counter[str]] = defaultdict(Counter)
        for record, topic in zip(eligible[style], fit.assignments):
            per_model_before[topic][record["model"]] += 1
        chosen = [s for s in samples if s["style"] == style]
        after = Counter(s["topic"] for s in chosen)  # type: ignore[typeddict-item]
        per_model_after: dict[int, Counter[str]] = defaultdict(Counter)
        for sample in chosen:
            per_model_after[sample["topic"]][sample["model"]] += 1  # type: ignore[typeddict-item]
        report[style] = {
            "method": fit.method,
            "settings": fit.settings,
            "documents": len(fit.assignments),
            "vocabulary": fit.vocabulary,
            "pruned": fit.pruned,
            "selected": len(chosen),
            "topics": [
                {
                    "topic": topic,
                    "kept": before[topic],
                    "selected": after.get(topic, 0),
                    "kept_per_model": dict(sorted(per_model_before[topic].items())),
                    "selected_per_model": dict(sorted(per_model_after[topic].items())),
                    "top_words": fit.top_words.get(topic, []),
                }
                for topic in sorted(before, key=lambda t: (-before[t], t))
            ],
        }
    return report


def _topic_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    return {
        style: {
            "method": entry["method"],
            "topics": sum(1 for t in entry["topics"] if t["topic"] != topic_model.NO_TOPIC),
            "no_topic": next(
                (
                    {"kept": t["kept"], "selected": t["selected"]}
                    for t in entry["topics"]
                    if t["topic"] == topic_model.NO_TOPIC
                ),
                {"kept": 0, "selected": 0},
            ),
            "documents": entry["documents"],
            "vocabulary": entry["vocabulary"],
            "selected": entry["selected"],
            "table": entry["topics"],
        }
        for style, entry in report.items()
    }


def _stats(
    samples: list[TrainingRecord],
    kept: list[dict[str, Any]],
    quotas: Mapping[str, Mapping[str, int]],
    styles: list[str],
    style_split: str,
    filtered_path: str | os.PathLike[str],
    seed: int,
    fits: Mapping[str, topic_model.TopicFit],
) -> dict[str, Any]:
    models = sorted({*(m for q in quotas.values() for m in q), *(s["model"] for s in samples)})
    per_model_style: dict[str, dict[str, int]] = {model: {style: 0 for style in styles} for model in models}
    for sample in samples:
        per_model_style[sample["model"]][sample["style"]] += 1
    triplet_styles = Counter(s["triplet_id"] for s in samples)
    triplet_models = {s["triplet_id"]: s["model"] for s in samples}
    return {
        "source": str(filtered_path),
        "seed": seed,
        "styles": styles,
        "style_split": style_split,
        "total": len(samples),
        "per_style": {style: sum(counts[style] for counts in per_model_style.values()) for style in styles},
        "per_model": {model: sum(counts.values()) for model, counts in per_model_style.items()},
        "per_model_style": per_model_style,
        # One style's quotas when all styles have the same (the common case), else style -> quotas.
        "quota_per_style": dict(quotas[styles[0]])
        if all(quotas[s] == quotas[styles[0]] for s in styles)
        else {style: dict(q) for style, q in quotas.items()},
        "kept_triplets": len(kept),
        "kept_triplets_per_model": dict(Counter(r["model"] for r in kept)),
        "distinct_triplets": len(triplet_styles),
        "triplets_per_model": dict(sorted(Counter(triplet_models.values()).items())),
        "triplets_in_several_styles": sum(1 for n in triplet_styles.values() if n > 1),
        "topic_method": {style: fit.method for style, fit in fits.items()},
        "topics_per_style": {style: len(fit.sizes()) for style, fit in fits.items()},
    }


def _judge_stats(records: list[dict[str, Any]], kept: list[dict[str, Any]], styles: list[str]) -> dict[str, Any]:
    """The LLM judge's outcomes as the records hold them: per teacher and style (judge.json's ``by_teacher``),
    the kept triplets each style left out, the judging models and what UNCERTAIN counted as."""
    entries = [entry for record in records for entry in (record.get("judge") or {}).values()]
    return {
        "models": sorted({str(entry["model"]) for entry in entries if entry.get("model")}),
        "uncertain": sorted({str(entry["uncertain"]) for entry in entries if entry.get("uncertain")}),
        "by_teacher": judge_counts(records),
        "excluded_per_style": {style: sum(1 for r in kept if not judge_passed(r, style)) for style in styles},
    }
