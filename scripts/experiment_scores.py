"""Rule experiment_scores: see editforge.experiments.scores."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge.experiments.scores import experiment_scores, write_experiment_scores
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    benchmarks = snakemake.params.benchmarks
    cells = snakemake.params.cells
    frame = experiment_scores(
        cells,
        benchmarks,
        {(b, cell["id"]): snakemake.input[f"{b}/{cell['id']}"] for b in benchmarks for cell in cells},
        dict(zip(benchmarks, snakemake.input.benchmarks)),
        dict(zip(benchmarks, snakemake.input.preflights)),
    )
    write_experiment_scores(frame, snakemake.output[0])
