"""Parsing (rule ``parse``, the end of stages 2-3): each synthesis dialogue read back into a triplet, or a named drop.

Parsing checks structure only (are the sections there, is there code, was the
answer cut off); whether the code or the instructions are any good is the
filtering stage's business.

- ``markdown``: section headers, nested code fences, sections, ``<think>`` removal.
- ``answers``: code extraction; ``parse_round1``, ``parse_instructions``, ``parse_round2``.
- ``dialogue``: a dialogue record into its triplet; the stage, ``run_parse``.
"""

from editforge.parsing.answers import Round1Parsed
from editforge.parsing.dialogue import COMMIT_KIND, ROUND1_ERROR, ROUND2_ERROR, parse_round1_record, run_parse

__all__ = ["COMMIT_KIND", "ROUND1_ERROR", "ROUND2_ERROR", "Round1Parsed", "parse_round1_record", "run_parse"]
