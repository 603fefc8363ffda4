"""The seeds stage: seed records for every shard, round robin, and the stage's stats."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from editforge.records import PathLike, write_json, write_jsonl
from editforge.seeds.commits import collect_commits, make_commit_records
from editforge.seeds.pairing import make_pairs
from editforge.seeds.settings import SeedError, SeedSettings, log
from editforge.seeds.snippets import collect_snippets
from editforge.seeds.sources import check_sources
from editforge.templates import load_fewshot


def _shard(records: list[Any], shard_paths: list[PathLike], stems: list[str]) -> dict[str, int]:
    """Write record ``i`` to shard ``i % len(shard_paths)`` (round robin); return the counts."""
    shards: list[list[Any]] = [[] for _ in shard_paths]
    for index, record in enumerate(records):
        record["shard"] = stems[index % len(stems)]
        shards[index % len(stems)].append(record)
    for path, chunk in zip(shard_paths, shards):
        write_jsonl(path, [dict(record) for record in chunk])
    return {stem: len(chunk) for stem, chunk in zip(stems, shards)}


def run_seeds(
    sources: list[dict[str, Any]],
    settings: dict[str, Any],
    seed: int,
    shard_paths: list[PathLike],
    stats_path: PathLike,
) -> dict[str, Any]:
    """Write the seed records of every shard and the stats; return the stats.

    ``kind: snippets``: extract, deduplicate and pair snippets (pair records).
    ``kind: commits``: read, check and deduplicate commits (commit records).
    Record ``i`` goes to shard ``i % len(shard_paths)`` (round robin, so shards
    differ in size by at most one).
    """
    config = SeedSettings.from_dict(settings)
    if not shard_paths:
        raise SeedError("seeds: no shard files to write")
    if config.num_shards != len(shard_paths) and "num_shards" in settings:
        raise SeedError(f"seeds.num_shards is {config.num_shards} but {len(shard_paths)} shard files were given")
    stems = [Path(p).stem for p in shard_paths]
    if len(set(stems)) != len(stems):
        raise SeedError("seeds: shard file names must differ in their stems")
    if config.kind == "commits":
        commits, stats = collect_commits(sources, config, seed)
        records = make_commit_records(commits, config.num_prompts, sorted(load_fewshot()), seed)
        shards = _shard(records, shard_paths, stems)
        stats.update(commits_requested=config.num_prompts, commits=len(records), shards=shards)
        if len(records) < config.num_prompts:
            log.warning("only %d usable commits exist; %d were asked for", len(records), config.num_prompts)
        write_json(stats_path, stats)
        log.info("seeds: %d rows seen, %d commits", stats["files_seen"], len(records))
        return stats
    check_sources(sources, config)  # before any file is parsed
    snippets, stats = collect_snippets(sources, config, seed)
    pairs = make_pairs(snippets, config.num_prompts, sorted(load_fewshot()), seed, config.max_snippet_reuse)
    reuse = Counter(snippet["text"] for pair in pairs for snippet in pair["snippets"])
    stats.update(
        pairs_requested=config.num_prompts,
        pairs=len(pairs),
        max_snippet_reuse=config.max_snippet_reuse,
        most_reused_snippet=max(reuse.values(), default=0),
        shards=_shard(pairs, shard_paths, stems),
    )
    if len(pairs) < config.num_prompts:
        stats["pairs_short"] = (
            f"{len(pairs)} of {config.num_prompts} pairs: {len(snippets)} snippets, each in at most "
            f"{config.max_snippet_reuse} pairs (seeds.max_snippet_reuse); add sources or raise the cap"
        )
        log.warning("seeds: %s", stats["pairs_short"])
    write_json(stats_path, stats)
    log.info("seeds: %d files used, %d snippets, %d pairs", stats["files_used"], stats["snippets"], len(pairs))
    return stats
