"""Stage 4: per-triplet checks, static checks, execution, generated tests, dedup, decontamination, the judge.

- ``checks``: the checks of one triplet on its own, each a drop reason (filter_triplet)
- ``static``: the static checks of both programs (undefined names, missing imports, leftover markup,
  truncated code), each a drop reason
- ``static_names``: undefined names and modules used without an import, by ruff's pyflakes rules
- ``shard``: the filter_shard stage: the checks, the static checks, then the optional execution check
  (run_filter_shard)
- ``generated_tests``: the third round: a model's tests for each edit, run on both programs
- ``minhash``: word tokens, MinHash sketches, LSH bands and Jaccard similarity
- ``exact``: exact-duplicate keys (compiled code, instructions up to case and spacing)
- ``dedup``: the dedup stage: decontamination, exact and near duplicates, the report (run_dedup)
- ``decontamination``: benchmark text in triplets' code and instructions (BenchmarkIndex)
- ``judge``: the optional LLM judge after dedup: three verdicts per instruction style (run_judge)
"""

from editforge.filtering.dedup import run_dedup
from editforge.filtering.judge import run_judge
from editforge.filtering.shard import run_filter_shard

__all__ = ["run_dedup", "run_filter_shard", "run_judge"]
