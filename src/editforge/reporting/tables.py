"""The report's tables (``snakemake --report``): pass@1 per target (official and
strict rules) beside each benchmark's quoted rows, one table per benchmark, with each
student's final train and validation loss (``training.csv``), and the triplets left
after each stage. They are written as small self-contained HTML pages,
which the report shows inline (a CSV or Markdown file would only be a download there).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from editforge.evaluation.benchmarks.aider_exercism import RETRY_LINES
from editforge.evaluation.benchmarks.registry import benchmark
from editforge.evaluation.report import (
    QUOTED_ROW,
    SECOND_TRY,
    has_second_try,
    measured_wide,
    quoted_score,
    quoted_sources,
    well_formed_cell,
)
from editforge.evaluation.summary import (
    PAPER_ROWS,
    QUOTED_SOURCE,
    isolation_sentence,
    unisolated_warning,
    wide_pass_at_1,
)
from editforge.records import PathLike

if TYPE_CHECKING:
    from editforge.evaluation.benchmarks.base import Benchmark

MEASURED = "measured"
QUOTED = "quoted from the paper, not measured"
# One table of the pass@1 page: its title, the table and the note under it.
Section = tuple[str, pl.DataFrame, str]

_CSS = """
body { font-family: sans-serif; font-size: 14px; margin: 8px; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 3px 8px; }
th { background: #f0f0f0; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
tr.quoted td { color: #666; font-style: italic; }
p.note { color: #555; font-size: 12px; max-width: 60em; }
"""


# The measured columns of the pass@1 table beyond the paper's: summary name -> shown name.
_MEASURED_ONLY = {
    "lazy_strict": "lazy (strict)",
    "descriptive_strict": "descriptive (strict)",
    "overall_strict": "overall (strict)",
    "excess_code": "ExcessCode",
    "excess_code_se": "ExcessCode SE",
}


def pass_at_1_table(summary: pl.DataFrame) -> pl.DataFrame:
    """pass@1 (%) per measured target, then the paper's rows: model, lazy,
    descriptive, overall (official rule), the strict pass@1s and the overall
    ExcessCode (measured rows only), source, and a check naming early exits."""
    wide = wide_pass_at_1(summary)
    measured = wide.select(
        pl.col("target").alias("model"),
        "lazy",
        "descriptive",
        "overall",
        *[pl.col(name).alias(shown) for name, shown in _MEASURED_ONLY.items()],
        source=pl.lit(MEASURED),
        check=pl.when(pl.col("early_exits") > 0)
        .then(pl.format("flagged: {} samples pass officially but not strictly", pl.col("early_exits")))
        .otherwise(pl.lit(None, dtype=pl.String)),
    )
    quoted = pl.DataFrame(
        PAPER_ROWS,
        schema={"model": pl.String, "lazy": pl.Float64, "descriptive": pl.Float64, "overall": pl.Float64},
        orient="row",
    ).with_columns(
        *[pl.lit(None, dtype=pl.Float64).alias(shown) for shown in _MEASURED_ONLY.values()],
        source=pl.lit(QUOTED),
        check=pl.lit(None, dtype=pl.String),
    )
    return pl.concat([measured, quoted])


def plugin_table(summary: pl.DataFrame, bench: Benchmark) -> pl.DataFrame:
    """A plug-in benchmark's pass@1 (%) per measured target, then its quoted rows: model, each kind and
    overall (official rule), their strict pass@1s, ``pass_rate_2`` where a second try was measured, the
    well-formed answers (measured rows only), source, and a check naming early exits."""
    splits = (*bench.kinds, "overall")
    retry = [SECOND_TRY] if has_second_try(summary) else []
    rows: list[dict[str, Any]] = [
        {
            "model": row["target"],
            **{split: row[split] for split in splits},
            **{f"{split} (strict)": row[f"{split}_strict"] for split in splits},
            **{column: row[column] for column in retry},
            "well-formed answers": well_formed_cell(row),
            "source": MEASURED,
            "check": f"flagged: {row['early_exits']} samples pass officially but not strictly"
            if row["early_exits"] else None,
        }
        for row in measured_wide(summary, bench.kinds)
    ]
    rows += [
        {"model": q.model, **{split: quoted_score(bench, q, split) for split in splits}, "source": QUOTED_ROW}
        for q in bench.quoted
    ]
    schema = {
        "model": pl.String,
        **dict.fromkeys(splits, pl.Float64),
        **{f"{split} (strict)": pl.Float64 for split in splits},
        **dict.fromkeys(retry, pl.Float64),
        **dict.fromkeys(("well-formed answers", "source", "check"), pl.String),
    }
    return pl.DataFrame(rows, schema=schema)


# training.csv's final losses, as the pass@1 tables name them.
TRAINING_COLUMNS = {"final_train_loss": "final train loss", "final_val_loss": "final val loss"}
TRAINING_NOTE = (
    "final train loss and final val loss: a student's loss at its last training step and its last loss on the "
    "held-out validation samples (training.md has more); a dash for targets not fine-tuned in this run or "
    "without held-out samples."
)


def with_training(table: pl.DataFrame, training: pl.DataFrame) -> pl.DataFrame:
    """``table`` with each measured student's final losses (``training.csv``'s rows, by ``student``) before
    its source column; null for the other rows."""
    losses = training.select(
        pl.col("student").cast(pl.String).alias("model"),
        *[pl.col(name).cast(pl.Float64).alias(shown) for name, shown in TRAINING_COLUMNS.items()],
    ).unique("model", keep="last")
    joined = table.join(losses, on="model", how="left", maintain_order="left").with_columns(
        pl.when(pl.col("source") == MEASURED).then(pl.col(shown)).alias(shown) for shown in TRAINING_COLUMNS.values()
    )
    at = table.columns.index("source")
    return joined.select([*table.columns[:at], *TRAINING_COLUMNS.values(), *table.columns[at:]])


def excluded_note(summary: pl.DataFrame) -> str:
    """The problems the preflight left out, as ``summary.csv`` names them."""
    names = summary.filter(pl.col("split") == "overall")["excluded"].drop_nulls().unique().to_list()
    if not names:
        return "No problem was excluded before generation."
    return f"Excluded before generation (the reference program fails in this environment): {'; '.join(names)}."


def stage_frame(stages: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """The funnel's stages (``funnel.json``): triplets remaining, in total and per
    model, and what the stage dropped by reason."""
    models = sorted({model for row in stages for model in row.get("per_model", {})})
    return pl.DataFrame(
        [
            {
                "stage": row["stage"],
                "remaining": row["remaining"],
                **{model: row.get("per_model", {}).get(model, 0) for model in models},
                "dropped (by reason)": "; ".join(f"{r}: {n}" for r, n in row.get("dropped", {}).items()) or "-",
            }
            for row in stages
        ],
        schema={"stage": pl.String, "remaining": pl.Int64, **dict.fromkeys(models, pl.Int64),
                "dropped (by reason)": pl.String},
    )


CALL_COLUMNS = ("answered calls", "paid now", "of them by batch", "from cache", "failed calls")


def calls_frame(synthesis: Mapping[str, Mapping[str, Any]]) -> pl.DataFrame:
    """The funnel's calls per synthesis model and round: answered (paid now or from the cache) and failed."""
    return pl.DataFrame(
        [
            {"model": model, "round": round_, "answered calls": use["answered"], "paid now": use["calls"],
             "of them by batch": use.get("batch_calls", 0), "from cache": use["cached"], "failed calls": use["errors"]}
            for model, row in synthesis.items()
            for round_, use in row.get("usage", {}).get("by_round", {}).items()
        ],
        schema={"model": pl.String, "round": pl.String, **dict.fromkeys(CALL_COLUMNS, pl.Int64)},
    )


def html_table(frame: pl.DataFrame, title: str, note: str = "",
               more: Sequence[tuple[str, pl.DataFrame]] = ()) -> str:
    """A self-contained HTML page with ``frame`` as a table (and the ``more`` tables after it, each
    with its title): numbers right-aligned, floats with two decimals, nulls as a dash; quoted rows
    (their ``source`` starts with "quoted") in grey."""
    body = _table_html(frame) + _note_html(note)
    body += "".join(f"<h3>{html.escape(name)}</h3>{_table_html(table)}" for name, table in more)
    return _page(title, f"<h3>{html.escape(title)}</h3>{body}")


def html_sections(title: str, sections: Sequence[Section]) -> str:
    """A self-contained HTML page with one titled table and its note per section, as ``html_table``."""
    body = "".join(f"<h3>{html.escape(name)}</h3>{_table_html(table)}{_note_html(note)}"
                   for name, table, note in sections)
    return _page(title, body)


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>{body}</body></html>\n"
    )


def _note_html(note: str) -> str:
    return f'<p class="note">{html.escape(note)}</p>' if note else ""


def _table_html(frame: pl.DataFrame) -> str:
    header = "".join(f"<th>{html.escape(name)}</th>" for name in frame.columns)
    rows = []
    for row in frame.iter_rows(named=True):
        quoted = ' class="quoted"' if str(row.get("source") or "").startswith("quoted") else ""
        rows.append(f"<tr{quoted}>{''.join(_cell(value) for value in row.values())}</tr>")
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _cell(value: Any) -> str:
    if value is None:
        return '<td class="number">–</td>'
    if isinstance(value, float):
        return f'<td class="number">{value:.2f}</td>'
    if isinstance(value, int):
        return f'<td class="number">{value}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def write_tables(
    summary_csv: PathLike,
    funnel_json: PathLike,
    pass_at_1_html: PathLike,
    funnel_html: PathLike,
    training_csv: PathLike | None = None,
) -> None:
    """The pass@1 tables, one per benchmark (from the merged ``summary.csv``; with ``training_csv``, the
    students' final losses beside their pass@1), and the stage counts (from ``funnel.json``) as HTML pages."""
    # Columns that can be all empty, which would read as strings.
    summary = pl.read_csv(
        summary_csv,
        schema_overrides={
            "excluded": pl.String,
            "isolation": pl.String,
            **dict.fromkeys(("excess_code", "excess_code_se", SECOND_TRY), pl.Float64),
        },
    )
    if "benchmark" not in summary.columns:
        raise ValueError(f"{summary_csv}: no benchmark column; the evaluation report (eval_report) writes it")
    sections = []
    for name in summary["benchmark"].unique(maintain_order=True):
        part = summary.filter(pl.col("benchmark") == name).drop("benchmark")
        sections.append(canitedit_section(part) if name == "canitedit" else plugin_section(part, benchmark(name)))
    if training_csv is not None:
        overrides = {"student": pl.String, **dict.fromkeys(TRAINING_COLUMNS, pl.Float64)}
        train = pl.read_csv(training_csv, schema_overrides=overrides)
        sections = [(title, with_training(table, train), f"{note} {TRAINING_NOTE}") for title, table, note in sections]
    Path(pass_at_1_html).write_text(html_sections("pass@1 (%) per benchmark", sections), encoding="utf-8")
    funnel = json.loads(Path(funnel_json).read_text())
    title = "Triplets remaining after each stage"
    calls = ("Synthesis calls per model and round", calls_frame(funnel.get("synthesis", {})))
    Path(funnel_html).write_text(html_table(stage_frame(funnel["stages"]), title, more=[calls]), encoding="utf-8")


def canitedit_section(summary: pl.DataFrame) -> Section:
    """CanItEdit's table beside the paper's rows, and its note."""
    note = (
        "Measured rows cover the problems this run evaluated, every sample counted. lazy, descriptive and "
        "overall follow the official rule (exit status 0, as the harness); strict also needs the tests to "
        "reach their end; ExcessCode (%) is the harness's, for the overall split. "
        f"{excluded_note(summary)} {isolation_sentence(summary)} Rows in grey are copied from {QUOTED_SOURCE}; "
        "they cover all 105 problems with 20 samples each."
    )
    return "CanItEdit pass@1 (%)", pass_at_1_table(summary), _warned(summary, note)


def plugin_section(summary: pl.DataFrame, bench: Benchmark) -> Section:
    """A plug-in benchmark's table beside its quoted rows, and its note."""
    splits = ", ".join((*bench.kinds, "overall"))
    retry = (
        f" {SECOND_TRY} is pass@1 after a second try with the first {RETRY_LINES} lines of the test output, "
        "as Aider does."
        if has_second_try(summary) else ""
    )
    note = (
        f"Measured rows cover the problems this run evaluated, every sample counted. {splits} follow the "
        "official rule (exit status 0); strict also needs the tests to reach their end; well-formed answers "
        f"are the samples whose answer gave a program to run.{retry} {excluded_note(summary)} "
        f"{isolation_sentence(summary)} Rows in grey are quoted, not measured. {' '.join(quoted_sources(bench.quoted))}"
    )
    return f"{bench.title} pass@1 (%)", plugin_table(summary, bench), _warned(summary, note.rstrip())


def _warned(summary: pl.DataFrame, note: str) -> str:
    warning = unisolated_warning(summary)
    return warning.replace("**", "").replace("`", "") + " " + note if warning else note
