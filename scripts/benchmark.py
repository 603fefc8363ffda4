"""Rule benchmark: load and check CanItEdit once, for decontamination and evaluation."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge.evaluation import load_benchmark
from editforge.records import write_jsonl
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    write_jsonl(snakemake.output[0], load_benchmark(snakemake.params.source))
