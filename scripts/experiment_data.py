"""Rule experiment_data: see editforge.experiments.trainset."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # inside per-rule conda envs too

import json
from pathlib import Path

from editforge.experiments.trainset import Component, build_training_set, external_provenance, run_provenance
from editforge.stage_log import logged


def provenance(part, spec):
    """Where pool ``part`` comes from, from the files its stages wrote."""
    if spec["kind"] == "external":
        return external_provenance(json.loads(Path(snakemake.input[f"{part}.report"]).read_text()))
    return run_provenance(
        json.loads(Path(snakemake.input[f"{part}.seeds"]).read_text()),
        json.loads(Path(snakemake.input[f"{part}.decontamination"]).read_text()),
        spec["licence"],
        spec["generators"],
    )


with logged(snakemake.log[0]):
    components = [
        Component(
            part,
            spec["share"],
            snakemake.input[f"{part}.pool"],
            provenance(part, spec),
            validation=snakemake.input.get(f"{part}.validation"),  # our own data's held-out rows
        )
        for part, spec in snakemake.params.components.items()
    ]
    build_training_set(
        snakemake.wildcards.variant,
        components,
        snakemake.params.size,
        snakemake.params.seed,
        Path(snakemake.output.train).parent,
        validation=snakemake.params.validation,
    )
