"""Stage 4: per-triplet checks, execution, generated tests, dedup and decontamination."""

from editforge.filtering.core import (
    run_dedup,
    run_filter_shard,
)

__all__ = ["run_dedup", "run_filter_shard"]
