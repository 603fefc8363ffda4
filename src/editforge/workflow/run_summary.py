"""What a finished run prints: one screen, not the files themselves.

The measured pass@1 rows of each benchmark (the quoted rows stay in ``summary.md``), the
triplets left after each stage, the failed calls per synthesis model where
there were any, each experiment's paired differences with its baseline, and where the
report and the files are.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from editforge.records import PathLike


def end_of_run(
    report_dir: PathLike = "results/report",
    dataset_dir: PathLike = "results/dataset",
    experiments_dir: PathLike = "results/experiments",
) -> str:
    """The text to print when a run ends; parts whose files are missing (a run of part of the
    workflow) are left out."""
    report, lines = Path(report_dir), ["", "editforge: run finished"]
    summary = report / "summary.md"
    if summary.is_file():
        text = summary.read_text(encoding="utf-8")
        for title, rows in _measured_sections(text):
            lines += ["", f"{title}, measured:", *rows]
        warnings = sorted({line.strip("*") for line in text.splitlines() if line.startswith("**Warning")})
        lines += ["", *warnings] if warnings else []
    funnel_path = report / "funnel.json"
    if funnel_path.is_file():
        funnel = json.loads(funnel_path.read_text(encoding="utf-8"))
        stages = " -> ".join(f"{row['stage']} {row['remaining']}" for row in funnel.get("stages", []))
        lines += ["", f"Triplets: {stages}"]
        if "total" in funnel.get("dataset", {}):
            lines.append(f"Training samples: {funnel['dataset']['total']}")
        failed = {
            model: row["usage"]["errors"]
            for model, row in funnel.get("synthesis", {}).items()
            if row.get("usage", {}).get("errors")
        }
        if failed:
            lines.append("Failed calls: " + ", ".join(f"{model} {count:.0f}" for model, count in failed.items()))
    for deltas in sorted(Path(experiments_dir).glob("*/deltas.csv")):
        lines += ["", f"Experiment {deltas.parent.name}, paired differences with the baseline (points):"]
        lines += _shown_contrasts(deltas)
        lines.append(f"  table: {deltas.parent / 'table.md'}")
    tables = [f"{path} ({what})" for path, what in ((summary, "pass@k per benchmark, all splits, the quoted rows"),
                                                    (report / "funnel.md", "every stage and drop")) if path.is_file()]
    lines.append("")
    if tables:
        lines.append("Tables: " + ", ".join(tables))
    if (Path(dataset_dir) / "README.md").is_file():
        lines.append(f"Dataset: {Path(dataset_dir)}/ (README.md is its card)")
    if tables:
        lines.append("Report: snakemake --report results/report.html")
    lines.append("")
    return "\n".join(lines)


def _shown_contrasts(deltas: PathLike) -> list[str]:
    """The contrasts an experiment's table shows (each benchmark's overall split), a line each."""
    with open(deltas, encoding="utf-8", newline="") as file:
        rows = [row for row in csv.DictReader(file) if row["family"] == "shown"]
    return [
        f"  {row['variant']} ({row['student']}, {row['benchmark']}): {100 * float(row['delta']):+.1f} "
        f"[{100 * float(row['low']):.1f}, {100 * float(row['high']):.1f}], Holm p {float(row['p_holm']):.3f}"
        for row in rows
    ]


def _measured_sections(markdown: str) -> list[tuple[str, list[str]]]:
    """Per benchmark section of summary.md (the headings at the level of the one above the first table):
    its title and its first table's header and measured rows."""
    sections: list[tuple[int, str, list[str]]] = []  # (heading level, title, first table)
    table_done = False
    for line in markdown.splitlines():
        heading = re.match(r"(#+) (.*)", line)
        if heading:
            sections.append((len(heading.group(1)), heading.group(2).strip(), []))
            table_done = False
        elif sections and line.startswith("|") and not table_done:
            sections[-1][2].append(line)
        elif sections and sections[-1][2]:
            table_done = True
    level = next((level for level, _, table in sections if table), None)
    return [
        (title, table[:2] + [row for row in table[2:] if _is_measured(row)])
        for own, title, table in sections
        if own == level and table
    ]


def _is_measured(row: str) -> bool:
    """Whether a table row's last cell (its source) says measured (flagged or not), not quoted."""
    return row.strip().strip("|").split("|")[-1].strip().startswith("measured")
