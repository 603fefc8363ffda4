"""Stage 3: the teachers' answers parsed into triplets."""

from editforge.parsing.core import (
    COMMIT_KIND,
    ROUND1_ERROR,
    ROUND2_ERROR,
    Round1Parsed,
    parse_round1_record,
    run_parse,
)

__all__ = ["COMMIT_KIND", "ROUND1_ERROR", "ROUND2_ERROR", "Round1Parsed", "parse_round1_record", "run_parse"]
