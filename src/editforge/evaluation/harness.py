"""The benchmark harness's own rules, copied to the letter: pass@k, the program it
measures (``program_no_test``), a passing sample's ExcessCode term, and how it reads
the coverage report of a passing program.

pass@k is the unbiased estimator of ``benchmark/pass_k.py``, 1.0 when ``n - c < k``,
so a problem with fewer than k samples counts as solved.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence

from editforge.evaluation.benchmark import TESTS_MARKER

_COVER_ROW = re.compile(r"^\S+\s+\d+\s+\d+\s+(\d+)%(?:\s+(.*))?$")


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimator 1 - C(n-c, k) / C(n, k), as a fraction.

    1.0 when n - c < k (every draw of k holds a pass), which includes n < k, as
    the harness computes it. Needs 0 <= c <= n, n >= 1 and k >= 1.
    """
    if not 0 <= c <= n or n < 1:
        raise ValueError(f"pass@k needs 0 <= c <= n and n >= 1, got n={n}, c={c}")
    if k < 1:
        raise ValueError(f"pass@k needs k >= 1, got k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def program_no_test(completion: str, tests: str) -> str:
    """The harness's ``program_no_test``: the executed program (completion, a
    newline, the tests) up to the first ``### START TESTS ###`` line."""
    return (completion + "\n" + tests).partition(TESTS_MARKER + "\n")[0]


def excess_fraction(before: str, completion: str, tests: str, coverage_missing: Sequence[int]) -> float:
    """A passing sample's ExcessCode term: uncovered lines / ndiff lines.

    As in the harness, the denominator is every line of the ndiff of ``before``
    and ``program_no_test`` (split without line ends), unchanged lines and ``?``
    hints included, although the metric is described as per changed line.
    """
    diff = difflib.Differ().compare(before.splitlines(), program_no_test(completion, tests).splitlines())
    return len(coverage_missing) / len(list(diff))


def parse_coverage_report(table: str) -> tuple[int, list[int]] | None:
    """(percent covered, missing line numbers) from ``coverage report -m``'s table, as the harness reads it.

    The row after the dashed line: its fourth column is the percentage, the
    rest the missing lines, with ``a-b`` ranges expanded. None without one.
    """
    lines = table.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.startswith("---"):
            match = _COVER_ROW.match(lines[i + 1].strip())
            if match is None:
                return None
            missing: list[int] = []
            for part in (match.group(2) or "").replace(" ", "").split(","):
                if not part or "->" in part:
                    continue
                low, _, high = part.partition("-")
                missing.extend(range(int(low), int(high or low) + 1))
            return int(match.group(1)), missing
    return None
