"""Python source utilities shared by the stages (no stage imports another for these).

- ``syntax``: Python read by tree-sitter's current grammar, statements, ``same_code``
- ``canonical``: the canonical token form that dedup and decontamination compare, shingles,
  the one 64-bit hash (``fmix64``, ``text_hash``)
- ``diff``: every measure of how two versions differ, each naming its unit (``diff_stats``,
  ``unified_diff``)
"""

from editforge.pycode.canonical import canonical_forms, fmix64, shingles, text_hash
from editforge.pycode.diff import DiffStats, diff_stats, unified_diff
from editforge.pycode.syntax import is_valid, parse, same_code

__all__ = [
    "DiffStats",
    "canonical_forms",
    "diff_stats",
    "fmix64",
    "is_valid",
    "parse",
    "same_code",
    "shingles",
    "text_hash",
    "unified_diff",
]
