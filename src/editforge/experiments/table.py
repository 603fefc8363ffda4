"""The results table of an experiment grid (dataset variants × students × training seeds, each cell
evaluated on the configured benchmarks): pass@1 with intervals per benchmark and split, each variant's
Δ against its student's baseline with a Holm-adjusted p, the spread over seeds and the variant's size.

``experiment_tables`` computes it (``statistics`` does the numbers); ``write_experiment_tables``
writes ``table.md``, ``table.csv``, ``table.tex``, ``deltas.csv`` and ``forest.png``. Scores are
proportions in ``deltas.csv`` and percentages (points) everywhere else. Given the cells' final losses
(``curves.cell_losses``), each row also has its final train and validation loss, averaged over seeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from editforge.experiments import statistics as stats
from editforge.experiments.forest import SHOWN, write_forest_plot
from editforge.records import PathLike

OVERALL = "overall"
DASH = "—"
DELTA_SCHEMA: dict[str, Any] = {
    "student": pl.String,
    "variant": pl.String,
    "baseline": pl.String,
    "benchmark": pl.String,
    "split": pl.String,
    "delta": pl.Float64,
    "low": pl.Float64,
    "high": pl.Float64,
    "p_value": pl.Float64,
    "p_holm": pl.Float64,
    "problems": pl.Int64,
    "family": pl.String,
}
_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "Δ": r"$\Delta$",
    "—": "---",
    "–": "--",
    "×": r"$\times$",
    "α": r"$\alpha$",
}

Rows = list[dict[str, Any]]  # per_problem rows, as statistics reads them
LOSSES = {"final_train_loss": "train loss", "final_val_loss": "val loss"}  # column -> its header
LOSS_NOTE = (
    "Train loss and val loss: each cell's loss at its last training step and its last loss on the held-out "
    f"validation samples, averaged over the variant's seeds ({DASH} where none was logged); curves.png shows them "
    "per step."
)


@dataclass(frozen=True)
class ExperimentTables:
    """What the files are written from."""

    rows: pl.DataFrame  # table.csv: one row per (student, variant), baseline first; pass@1 and Δ in points
    deltas: pl.DataFrame  # deltas.csv: every contrast (DELTA_SCHEMA), proportions
    footnotes: tuple[str, ...]  # the lines under the table
    splits: dict[str, tuple[str, ...]]  # benchmark -> its splits (kinds, then overall), benchmarks in order
    baseline: str


def experiment_tables(
    per_problem: pl.DataFrame,
    manifests: Mapping[str, Mapping[str, Any]],
    *,
    baseline: str,
    variants: Sequence[str],
    benchmarks: Sequence[str],
    samples: Mapping[str, int],
    seeds: Sequence[int],
    resamples: int = stats.RESAMPLES,
    seed: int = 0,
    losses: pl.DataFrame | None = None,
) -> ExperimentTables:
    """The table of ``per_problem`` (one row per cell × benchmark × (problem, kind) item: ``cell``,
    ``variant``, ``student``, ``seed``, ``benchmark``, ``problem``, ``kind``, ``n``, ``c``), a row per
    student (in order of first appearance) and variant (the baseline first, then ``variants``' order).
    A variant's seeds are pooled (item scores averaged); ``seed`` seeds every bootstrap. ``losses`` (one row
    per cell: ``variant``, ``student``, ``seed``, ``final_train_loss``, ``final_val_loss``) adds the two
    losses' means over the seeds (null where no seed logged one)."""
    order = [baseline, *dict.fromkeys(v for v in variants if v != baseline)]
    if not benchmarks:
        raise ValueError("no benchmark to tabulate")
    groups = _groups(per_problem, order, benchmarks)
    for variant in order:
        if variant not in manifests:
            raise ValueError(f"variant {variant!r} has no manifest")
    for name in benchmarks:
        if name not in samples:
            raise ValueError(f"benchmark {name!r} has no samples per item")
    splits = {name: _splits(per_problem, name) for name in benchmarks}
    students = list(dict.fromkeys(student for student, _, _ in groups))
    primary = benchmarks[0]

    contrasts: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for student in students:
        for variant in order:
            if (student, variant, primary) not in groups:
                continue  # excluded for this student
            mine = {name: groups[student, variant, name] for name in benchmarks}
            by_seed = _by_seed(mine[primary])
            row: dict[str, Any] = {"student": student, "variant": variant, "seeds": len(by_seed)}
            for name in benchmarks:
                for split in splits[name]:
                    kinds = None if split == OVERALL else (split,)
                    interval = stats.cell_interval(mine[name], kinds=kinds, resamples=resamples, seed=seed)
                    row |= {f"{name}_{split}_{key}": 100 * getattr(interval, key) for key in ("mean", "low", "high")}
                    if variant != baseline:
                        contrast = stats.paired_contrast(
                            groups[student, baseline, name], mine[name], kinds=kinds, resamples=resamples, seed=seed
                        )
                        family = SHOWN if split == OVERALL else f"split:{name}:{split}"
                        contrasts.append(
                            {
                                "student": student,
                                "variant": variant,
                                "baseline": baseline,
                                "benchmark": name,
                                "split": split,
                                "delta": contrast.delta,
                                "low": contrast.low,
                                "high": contrast.high,
                                "p_value": contrast.p_value,
                                "p_holm": None,
                                "problems": contrast.problems,
                                "family": family,
                            }
                        )
            sd = stats.seed_sd(by_seed)
            row |= {
                "seed_sd": None if sd is None else 100 * sd,
                "rows": manifests[variant]["rows"],
                "tokens": manifests[variant]["tokens"],
            }
            if losses is not None:
                row |= _mean_losses(losses, student, variant)
            rows.append(row)
    _adjust(contrasts)
    deltas = pl.DataFrame(contrasts, schema=DELTA_SCHEMA)
    table = _with_deltas(rows, deltas, splits, with_losses=losses is not None)
    items = per_problem.filter(pl.col("benchmark") == primary).select("problem", "kind").unique().height
    footnotes = _footnotes(manifests, order, splits, samples, seeds, resamples, deltas, items)
    if losses is not None:
        footnotes += (LOSS_NOTE,)
    return ExperimentTables(table, deltas, footnotes, splits, baseline)


def write_experiment_tables(tables: ExperimentTables, out_dir: PathLike) -> None:
    """table.md, table.csv, table.tex, deltas.csv and forest.png in ``out_dir`` (made if missing)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables.rows.write_csv(out / "table.csv")
    tables.deltas.write_csv(out / "deltas.csv")
    (out / "table.md").write_text(table_markdown(tables), encoding="utf-8")
    (out / "table.tex").write_text(table_latex(tables), encoding="utf-8")
    write_forest_plot(tables.deltas, list(tables.splits), tables.baseline, out / "forest.png")


def table_markdown(tables: ExperimentTables) -> str:
    """The table (one row per student and variant) and its footnotes, a paragraph each."""
    lines = ["# Experiments: pass@1 (%)", "", _md_cells(_header(tables)), "|" + "---|" * len(_header(tables))]
    lines += [_md_cells(cells) for _, cells in _body(tables)]
    for note in tables.footnotes:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def table_latex(tables: ExperimentTables) -> str:
    """A booktabs tabular of the same cells, a rule between students, the footnotes in a note under it."""
    header = _header(tables)
    lines = [
        r"\begin{tabular}{ll" + "r" * (len(header) - 2) + "}",
        r"\toprule",
        " & ".join(_tex(cell) for cell in header) + r" \\",
        r"\midrule",
    ]
    previous = None
    for student, cells in _body(tables):
        if previous is not None and student != previous:
            lines.append(r"\midrule")
        previous = student
        lines.append(" & ".join(_tex(cell) for cell in cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", "", r"\par\smallskip", r"{\footnotesize"]
    lines += [_tex(note) + r"\par" for note in tables.footnotes]
    return "\n".join([*lines, "}"]) + "\n"


def _groups(per_problem: pl.DataFrame, order: Sequence[str], benchmarks: Sequence[str]) -> dict[tuple, Rows]:
    """(student, variant, benchmark) -> its rows: the baseline's for every student and benchmark, another
    variant's for every benchmark or, where the experiment excluded it for a student, none."""
    wanted = per_problem.filter(pl.col("variant").is_in(order) & pl.col("benchmark").is_in(benchmarks))
    if wanted.filter(pl.col("variant") == order[0]).is_empty():
        raise ValueError(f"baseline variant {order[0]!r} has no rows in per_problem")
    parts = wanted.partition_by("student", "variant", "benchmark", as_dict=True, maintain_order=True)
    groups = {key: part.to_dicts() for key, part in parts.items()}
    students = wanted["student"].unique(maintain_order=True).to_list()
    for student in students:
        for variant in order:
            present = [name for name in benchmarks if (student, variant, name) in groups]
            if variant != order[0] and not present:
                continue  # the experiment's exclude: left this variant out for this student
            for name in benchmarks:
                if name not in present:
                    what = "baseline variant" if variant == order[0] else "variant"
                    raise ValueError(f"{what} {variant!r} has no rows for benchmark {name!r} (student {student!r})")
    for variant in order[1:]:
        if not any((student, variant, benchmarks[0]) in groups for student in students):
            raise ValueError(f"variant {variant!r} has no rows for benchmark {benchmarks[0]!r} (for any student)")
    return groups


def _splits(per_problem: pl.DataFrame, benchmark: str) -> tuple[str, ...]:
    kinds = per_problem.filter(pl.col("benchmark") == benchmark)["kind"].unique(maintain_order=True).to_list()
    if OVERALL in kinds:
        raise ValueError(f"benchmark {benchmark!r} has a kind named {OVERALL!r}, the name of the all-kinds split")
    return (*kinds, OVERALL) if len(kinds) > 1 else (OVERALL,)


def _by_seed(rows: Rows) -> list[Rows]:
    seeds: dict[int, Rows] = {}
    for row in rows:
        seeds.setdefault(row["seed"], []).append(row)
    return [seeds[s] for s in sorted(seeds)]


def _adjust(contrasts: list[dict[str, Any]]) -> None:
    """Fill ``p_holm``: Holm within each family."""
    families: dict[str, list[dict[str, Any]]] = {}
    for contrast in contrasts:
        families.setdefault(contrast["family"], []).append(contrast)
    for members in families.values():
        for contrast, adjusted in zip(members, stats.holm([m["p_value"] for m in members])):
            contrast["p_holm"] = adjusted


def _mean_losses(losses: pl.DataFrame, student: str, variant: str) -> dict[str, float | None]:
    """The mean over seeds of each final loss of (student, variant)'s cells; None where none logged it."""
    mine = losses.filter((pl.col("student") == student) & (pl.col("variant") == variant))
    return {name: mine[name].drop_nulls().mean() if mine[name].drop_nulls().len() else None for name in LOSSES}


def _with_deltas(
    rows: list[dict[str, Any]], deltas: pl.DataFrame, splits: Mapping[str, Sequence[str]], *, with_losses: bool
) -> pl.DataFrame:
    """The rows with each benchmark's shown Δ (points) and Holm p, columns in table order."""
    shown = {
        (r["student"], r["variant"], r["benchmark"]): r for r in deltas.filter(pl.col("family") == SHOWN).to_dicts()
    }
    columns: dict[str, Any] = {"student": pl.String, "variant": pl.String, "seeds": pl.Int64}
    for name, names in splits.items():
        columns |= {f"{name}_{split}_{key}": pl.Float64 for split in names for key in ("mean", "low", "high")}
        columns |= {f"{name}_{key}": pl.Float64 for key in ("delta", "delta_low", "delta_high", "p_holm")}
    columns |= {"seed_sd": pl.Float64, "rows": pl.Int64, "tokens": pl.Int64}
    if with_losses:
        columns |= dict.fromkeys(LOSSES, pl.Float64)
    for row in rows:
        for name in splits:
            contrast = shown.get((row["student"], row["variant"], name))
            for key, source in (("delta", "delta"), ("delta_low", "low"), ("delta_high", "high")):
                row[f"{name}_{key}"] = None if contrast is None else 100 * contrast[source]
            row[f"{name}_p_holm"] = None if contrast is None else contrast["p_holm"]
    return pl.DataFrame(rows, schema=columns)


def _footnotes(
    manifests: Mapping[str, Mapping[str, Any]],
    order: Sequence[str],
    splits: Mapping[str, Sequence[str]],
    samples: Mapping[str, int],
    seeds: Sequence[int],
    resamples: int,
    deltas: pl.DataFrame,
    items: int,
) -> tuple[str, ...]:
    benchmarks = list(splits)
    primary = benchmarks[0]
    mde = stats.minimum_detectable_difference(items=items, samples=samples[primary], seeds=max(1, len(seeds)))
    shown = deltas.filter(pl.col("family") == SHOWN).height
    notes = [
        "Samples per item: " + "; ".join(f"{name} {samples[name]}" for name in benchmarks) + ".",
        f"Training seeds: {', '.join(str(s) for s in seeds)}; a variant's seeds are pooled (each item's score "
        f"averaged over them). Seed sd: the standard deviation over seeds of {primary} overall pass@1, in points "
        f"({DASH} with one seed).",
        f"Intervals: {stats.LEVEL:.0%} cluster bootstrap over problems, {resamples} resamples; Δ: paired over "
        f"shared items; p: paired sign-flip permutation, Holm-adjusted over the {shown} contrasts shown "
        "(the per-kind contrasts in deltas.csv are adjusted within each benchmark and kind).",
        f"Minimum detectable difference of this design: {100 * mde:.1f} points ({primary}: {items} items × "
        f"{samples[primary]} samples × {max(1, len(seeds))} seeds; two-sided α = 0.05, power 0.8).",
    ]
    for variant in order:
        manifest = manifests[variant]
        licences = ", ".join(manifest["licences"]) or "none stated"
        sources = ", ".join(manifest["sources"]) or "none"
        notes.append(f"Licences of {variant} (sources: {sources}): {licences}.")
    return tuple(notes)


def _header(tables: ExperimentTables) -> list[str]:
    cells = ["student", "variant"]
    for name, names in tables.splits.items():
        cells += [*(f"{name} {split}" for split in names), f"{name} Δ", f"{name} p"]
    losses = [shown for name, shown in LOSSES.items() if name in tables.rows.columns]
    return [*cells, "seed sd", "rows", "tokens", *losses]


def _body(tables: ExperimentTables) -> list[tuple[str, list[str]]]:
    """(student, the row's cells as printed) per row."""
    body = []
    for row in tables.rows.iter_rows(named=True):
        cells = [row["student"], row["variant"]]
        for name, names in tables.splits.items():
            cells += [
                _interval(row, f"{name}_{split}_mean", f"{name}_{split}_low", f"{name}_{split}_high") for split in names
            ]
            if row[f"{name}_delta"] is None:
                cells += [DASH, DASH]
            else:
                cells += [
                    _interval(row, f"{name}_delta", f"{name}_delta_low", f"{name}_delta_high", sign=True),
                    _p(row[f"{name}_p_holm"]),
                ]
        cells += [DASH if row["seed_sd"] is None else _one(row["seed_sd"]), f"{row['rows']:,}", f"{row['tokens']:,}"]
        cells += [DASH if row[name] is None else f"{row[name]:.4f}" for name in LOSSES if name in row]
        body.append((row["student"], cells))
    return body


def _interval(row: Mapping[str, Any], mean: str, low: str, high: str, *, sign: bool = False) -> str:
    return f"{_one(row[mean], sign=sign)} [{_one(row[low])}, {_one(row[high])}]"


def _one(value: float, *, sign: bool = False) -> str:
    rounded = round(value, 1) + 0.0  # no "-0.0"
    return f"{rounded:+.1f}" if sign else f"{rounded:.1f}"


def _p(value: float) -> str:
    return "p<0.001" if value < 0.001 else f"p={value:.3f}"


def _md_cells(values: Sequence[str]) -> str:
    return "| " + " | ".join(value.replace("|", "\\|") for value in values) + " |"


def _tex(text: str) -> str:
    return "".join(_TEX.get(char, char) for char in text)
