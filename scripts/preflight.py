"""Rule preflight: see editforge.workflow.preflight."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

from pathlib import Path

from editforge.stage_log import logged
from editforge.workflow.preflight import run_model_preflight

with logged(snakemake.log[0]):
    checked = run_model_preflight(
        snakemake.wildcards.checked, snakemake.wildcards.use, snakemake.config, "results/benchmark/canitedit.jsonl"
    )
    print("\n".join(checked))
    Path(snakemake.output[0]).write_text("\n".join(checked) + "\n", encoding="utf-8")
