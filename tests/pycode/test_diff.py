"""The diff measures, each in its own unit: changed lines as the diff filter counts them (a replaced
line once), and the lines a unified diff adds or removes (a replaced line twice)."""

from __future__ import annotations

from editforge.pycode.diff import added_removed_lines, diff_stats, unified_diff


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


def test_added_removed_lines_counts_a_replaced_line_twice() -> None:
    old = "a = 1\n-- not a header\nb = 2"
    new = "a = 1\nb = 3\nc = 4"
    assert added_removed_lines(unified_diff(old, new)) == 4  # two removed, two added
    assert added_removed_lines(unified_diff(old, old)) == 0
