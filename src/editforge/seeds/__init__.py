"""Stage 1: real code snippets (or commits) from the configured sources, paired for synthesis."""

from editforge.seeds.core import (
    collect_snippets,
    run_seeds,
)

__all__ = ["collect_snippets", "run_seeds"]
