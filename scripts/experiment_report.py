"""Rule experiment_report: see editforge.experiments.table."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

import json
from pathlib import Path

import polars as pl

from editforge.experiments.table import experiment_tables, write_experiment_tables
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    manifests = {Path(path).parent.name: json.loads(Path(path).read_text()) for path in snakemake.input.manifests}
    tables = experiment_tables(
        pl.read_parquet(snakemake.input.per_problem),
        manifests,
        baseline=snakemake.params.baseline,
        variants=snakemake.params.variants,
        benchmarks=snakemake.params.benchmarks,
        samples=snakemake.params.samples,
        seeds=snakemake.params.seeds,
        resamples=snakemake.params.resamples,
    )
    write_experiment_tables(tables, Path(snakemake.output.table).parent)
