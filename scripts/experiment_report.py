"""Rule experiment_report: see editforge.experiments.table and editforge.experiments.curves."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

import json
from pathlib import Path

import polars as pl

from editforge.experiments.curves import cell_losses, read_curves, write_curves
from editforge.experiments.table import experiment_tables, write_experiment_tables
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    manifests = {Path(path).parent.name: json.loads(Path(path).read_text()) for path in snakemake.input.manifests}
    curves = read_curves(snakemake.params.cells, list(snakemake.input.models))
    tables = experiment_tables(
        pl.read_parquet(snakemake.input.per_problem),
        manifests,
        baseline=snakemake.params.baseline,
        variants=snakemake.params.variants,
        benchmarks=snakemake.params.benchmarks,
        samples=snakemake.params.samples,
        seeds=snakemake.params.seeds,
        resamples=snakemake.params.resamples,
        losses=cell_losses(curves),
    )
    write_experiment_tables(tables, Path(snakemake.output.table).parent)
    write_curves(curves, snakemake.output.curves)
