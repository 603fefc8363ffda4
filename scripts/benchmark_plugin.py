"""Rule benchmark_plugin: load and check a plug-in benchmark once, with the texts decontamination compares."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from editforge.evaluation.benchmarks import benchmark
from editforge.filtering.decontamination import benchmark_texts
from editforge.records import write_jsonl
from editforge.stage_log import logged

with logged(snakemake.log[0]):
    bench = benchmark(snakemake.wildcards.plugin)
    problems = bench.load(snakemake.params.source)
    write_jsonl(snakemake.output.problems, problems)
    texts = [
        text._asdict()
        for problem in problems
        for text in benchmark_texts(
            bench.name, str(problem["id"]), bench.reference_texts(problem), bench.instruction_fields
        )
    ]
    write_jsonl(snakemake.output.texts, texts)
