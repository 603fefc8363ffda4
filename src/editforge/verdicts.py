"""The LLM judge's verdicts as the records hold them: their names, whether a style passed, the counts by
teacher and style, and their table. Shared by the judge (``filtering/judge.py``), the dataset stage and
its card, and the report's funnel.

A judged record carries ``judge``: style -> ``{"passed", "reason", "verdicts", "error", "model",
"uncertain"}``, ``verdicts`` mapping each of ``VERDICTS`` to ``{"verdict": one of VALUES, "reason"}``
(None where the answer was unreadable or the call failed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

VERDICTS = ("edit_needed", "edit_complete", "edit_focused")
VALUES = ("PASS", "FAIL", "UNCERTAIN")


def judge_passed(record: Mapping[str, Any], style: str) -> bool:
    """False only where the record was judged for ``style`` and did not pass it."""
    entry = (record.get("judge") or {}).get(style)
    return entry is None or bool(entry.get("passed"))


def judge_counts(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per teacher (the synthesis model, ``record["model"]``) and style: judged, passed, the drop reasons
    of the styles that failed, and each verdict's PASS/FAIL/UNCERTAIN counts."""
    counts: dict[str, dict[str, dict[str, Any]]] = {}
    for record in records:
        for style, entry in (record.get("judge") or {}).items():
            teacher = counts.setdefault(str(record.get("model")), {})
            tally = teacher.setdefault(
                style,
                {"judged": 0, "passed": 0, "dropped": {}, "verdicts": {v: dict.fromkeys(VALUES, 0) for v in VERDICTS}},
            )
            tally["judged"] += 1
            if entry["passed"]:
                tally["passed"] += 1
            else:
                tally["dropped"][entry["reason"]] = tally["dropped"].get(entry["reason"], 0) + 1
            for name, verdict in (entry.get("verdicts") or {}).items():
                tally["verdicts"][name][verdict["verdict"]] += 1
    for teacher in counts.values():
        for tally in teacher.values():
            tally["dropped"] = dict(sorted(tally["dropped"].items()))
    return {name: dict(sorted(styles.items())) for name, styles in sorted(counts.items())}


def verdict_table(by_teacher: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    """Markdown table lines of ``judge_counts``: per teacher and style, passed of judged, each verdict's
    PASS / FAIL / UNCERTAIN, and why the styles that did not pass failed."""
    lines = [
        f"| teacher | style | passed / judged | {' | '.join(f'{v} (PASS / FAIL / UNCERTAIN)' for v in VERDICTS)} "
        "| not passed, by reason |",
        f"|---|---|---:|{'---:|' * len(VERDICTS)}---|",
    ]
    for teacher, styles in by_teacher.items():
        for style, counts in styles.items():
            verdicts = " | ".join(" / ".join(str(counts["verdicts"][v][value]) for value in VALUES) for v in VERDICTS)
            reasons = ", ".join(f"{reason}: {n}" for reason, n in counts["dropped"].items()) or "-"
            lines.append(f"| {teacher} | {style} | {counts['passed']} / {counts['judged']} | {verdicts} | {reasons} |")
    return lines
