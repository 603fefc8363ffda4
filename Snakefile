# editforge: synthesize code-edit training data with open LLMs, fine-tune on it,
# and score the result on CanItEdit. Stages, in order, each in rules/<stage>.smk:
#   seeds -> synthesis (round 1, round 2, parse) -> filtering -> dataset
#   -> training -> evaluation -> report; experiments (rules/experiments.smk) compare data variants
# The demo: `snakemake --cores 2`. The paper: `--configfile config/paper.yaml`.

from snakemake.utils import min_version

from editforge.config import read_yaml

min_version("9.0")


# The demo config applies only when no --configfile is given: Snakemake would
# otherwise merge the two, and a paper run would inherit the demo's models.
if not config:
    read_yaml("config/config.yaml")  # a syntax error names its line and column, as Snakemake's own does not

    configfile: "config/config.yaml"


# `snakemake --report results/report.html`: this page, then the outputs flagged with report().
report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/seeds.smk"
include: "rules/synthesis.smk"
include: "rules/filtering.smk"
include: "rules/dataset.smk"
include: "rules/training.smk"
include: "rules/evaluation.smk"
include: "rules/report.smk"
include: "rules/experiments.smk"


rule all:
    default_target: True
    input:
        "results/report/funnel.md",
        "results/report/summary.md",
        "results/report/pass_at_1.png",
        "results/dataset/README.md",
        # what `snakemake --report` shows besides
        "results/report/pass_at_1.html",
        "results/report/funnel.html",
        "results/report/diff_sizes.png",
        "results/report/topics.png",
        # the students' training curves and final numbers, where there are students
        expand("results/report/{name}", name=["training_curves.png", "training.csv", "training.md"]) if STUDENTS else [],
        # the experiments: block's grid, where there is one
        rules.experiment.input,


onstart:
    run_lock.record_owner()


onsuccess:
    run_lock.release_owner()
    print_report()


onerror:
    run_lock.release_owner()
