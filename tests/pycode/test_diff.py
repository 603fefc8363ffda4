"""The diff measure (changed lines as the diff filter counts them, a replaced line once; hunks) and the
unified diff a commit prompt shows."""

from __future__ import annotations

from editforge.pycode.diff import diff_stats, unified_diff


def test_diff_stats_counts_replace_as_its_longer_side_and_splits_hunks_after_six_equal_lines() -> None:
    pre = "a\nb\nc\n"
    assert diff_stats(pre, "a\nB1\nB2\nB3\nc\n").changed_lines == 3  # 1 line replaced by 3
    assert diff_stats(pre, "a\nb\nc\nd\n").added == 1
    assert diff_stats(pre, "a\nc\n").removed == 1
    assert diff_stats(pre, "a \nb\nc\n").changed_lines == 0  # trailing whitespace is ignored
    middle = "".join(f"m{i}\n" for i in range(6))
    assert diff_stats(f"x\n{middle}y\n", f"X\n{middle}Y\n").hunks == 1  # six equal lines join
    middle += "m6\n"
    assert diff_stats(f"x\n{middle}y\n", f"X\n{middle}Y\n").hunks == 2  # seven split


def test_unified_diff_is_what_a_commit_prompt_shows() -> None:
    old = "a = 1\n-- not a header\nb = 2"
    new = "a = 1\nb = 3\nc = 4"
    assert unified_diff(old, new, "pkg/m.py").split("\n") == [
        "--- a/pkg/m.py",
        "+++ b/pkg/m.py",
        "@@ -1,3 +1,3 @@",
        " a = 1",
        "--- not a header",
        "-b = 2",
        "+b = 3",
        "+c = 4",
    ]
    assert unified_diff(old, new).startswith("--- before\n+++ after\n")
    assert unified_diff(old, old) == ""
