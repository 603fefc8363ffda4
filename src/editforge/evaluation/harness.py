"""The benchmark harness's own rules, copied to the letter: how it reads the coverage report
of a passing program. (Its metrics join this file when scoring is split.)"""

from __future__ import annotations

import re

_COVER_ROW = re.compile(r"^\S+\s+\d+\s+\d+\s+(\d+)%(?:\s+(.*))?$")


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
