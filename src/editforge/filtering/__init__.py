"""Stage 4: per-triplet checks, execution, generated tests, dedup and decontamination.

- ``checks``: the checks of one triplet on its own, each a drop reason (filter_triplet)
- ``shard``: the filter_shard stage: the checks, then the optional execution check (run_filter_shard)
- ``generated_tests``: the third round: a model's tests for each edit, run on both programs
- ``minhash``: word tokens, MinHash sketches, LSH bands and Jaccard similarity
- ``exact``: exact-duplicate keys (compiled code, instructions up to case and spacing)
- ``dedup``: the dedup stage: decontamination, exact and near duplicates, the report (run_dedup)
- ``decontamination``: benchmark text in triplets' code and instructions (BenchmarkIndex)
"""

from editforge.filtering.dedup import run_dedup
from editforge.filtering.shard import run_filter_shard

__all__ = ["run_dedup", "run_filter_shard"]
