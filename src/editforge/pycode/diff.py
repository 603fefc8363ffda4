"""Every measure of how two versions of a program differ, each saying its unit.

- ``diff_stats``: changed lines as the reference's diff filter counts them, a replaced block
  counting its longer side once (``filtering.min/max_changed_lines``), and hunks.
  ``seeds.max_diff_lines`` counts a commit's changed lines the same way.
- ``unified_diff``: the unified diff a commit prompt shows (no measure: a text).

The harness's own measure of an answer's extra code (``excess_fraction``) stays with the
harness's rules in ``editforge.evaluation.harness``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

# An unchanged run longer than this splits hunks: two changes closer than twice
# the 3 context lines of ``diff -U3`` share one hunk (the reference's rule).
HUNK_SPLIT_EQUAL_LINES = 6


@dataclass(frozen=True)
class DiffStats:
    added: int
    removed: int
    modified: int  # a replaced block counts max(old lines, new lines)
    hunks: int

    @property
    def changed_lines(self) -> int:
        return self.added + self.removed + self.modified


def diff_stats(pre: str, post: str) -> DiffStats:
    """Line-diff size and hunk count, as the reference's diff filter measures them.

    Trailing whitespace is ignored. difflib's autojunk heuristic is off: it only
    acts on files of 200+ lines, where it turns frequent lines (blank ones) into
    junk and inflates the counts.
    """
    before = [line.rstrip() for line in pre.splitlines()]
    after = [line.rstrip() for line in post.splitlines()]
    added = removed = modified = hunks = 0
    in_hunk = False
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
        if tag == "equal":
            in_hunk = in_hunk and i2 - i1 <= HUNK_SPLIT_EQUAL_LINES
            continue
        if not in_hunk:
            hunks += 1
            in_hunk = True
        if tag == "replace":
            modified += max(i2 - i1, j2 - j1)
        elif tag == "insert":
            added += j2 - j1
        else:
            removed += i2 - i1
    return DiffStats(added=added, removed=removed, modified=modified, hunks=hunks)


def unified_diff(old: str, new: str, path: str = "") -> str:
    """The unified diff of a commit as the prompt shows it: 3 lines of context, no trailing newline."""
    lines = difflib.unified_diff(
        old.split("\n"),
        new.split("\n"),
        fromfile=f"a/{path}" if path else "before",
        tofile=f"b/{path}" if path else "after",
        n=3,
        lineterm="",
    )
    return "\n".join(lines)
