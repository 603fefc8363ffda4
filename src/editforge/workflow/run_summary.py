"""What a finished run prints: one screen, not the files themselves.

The measured pass@1 rows (the paper's rows stay in ``summary.md``), the
triplets left after each stage, the failed calls per synthesis model where
there were any, and where the report and the files are.
"""

from __future__ import annotations

import json
from pathlib import Path

from editforge.records import PathLike


def end_of_run(report_dir: PathLike = "results/report", dataset_dir: PathLike = "results/dataset") -> str:
    """The text to print when a run ends; parts whose files are missing (a run of part of the
    workflow) are left out."""
    report, lines = Path(report_dir), ["", "editforge: run finished"]
    summary = report / "summary.md"
    if summary.is_file():
        text = summary.read_text(encoding="utf-8")
        lines += ["", "CanItEdit pass@1 (%), measured:", *_measured_rows(text)]
        lines += sorted({line.strip("*") for line in text.splitlines() if line.startswith("**Warning")})
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
    tables = [f"{path} ({what})" for path, what in ((summary, "pass@k, all splits, the paper's rows"),
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


def _measured_rows(markdown: str) -> list[str]:
    """The first table of summary.md: its header and the rows measured in this run."""
    table: list[str] = []
    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    return table[:2] + [row for row in table[2:] if row.rstrip(" |").endswith("measured") and "not measured" not in row]
