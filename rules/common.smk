# Configuration, shard lists and the helpers that turn config entries into
# rule params. Every setting that changes a rule's output reaches the rule as a
# param, so changing it reruns exactly that rule and what follows.

import re
from pathlib import Path

from editforge import config as efconfig

config.update(efconfig.validate(config))

SHARDS = efconfig.shard_names(config)
SYNTHESIS_MODELS = config["synthesis"]["models"]
STUDENTS = list(config["training"]["students"])
TARGETS = config["evaluation"]["targets"]
TEMPLATES = sorted(str(p) for p in Path(workflow.basedir, "src", "editforge", "templates").glob("*"))


wildcard_constraints:
    shard=r"\d+",
    model="|".join(map(re.escape, SYNTHESIS_MODELS)),
    student="|".join(map(re.escape, STUDENTS)) if STUDENTS else "(?!)",
    target="|".join(map(re.escape, TARGETS)),


localrules:
    all,
    report,


def model_params(wildcards):
    return efconfig.output_spec(config["models"][wildcards.model])


def tests_model_params(wildcards):
    """The model that writes tests for the execution check, by name (None: off)."""
    if not config["filtering"]["generated_tests"]:
        return None
    return config["filtering"]["generated_tests_model"] or wildcards.model


def synthesis_settings():
    """Synthesis settings minus the model list: adding a model runs its branch only."""
    return {k: v for k, v in config["synthesis"].items() if k != "models"}


def target_params(wildcards):
    return efconfig.output_spec(efconfig.target_spec(config, wildcards.target))


def _threads(spec):
    """An in-process model uses every core it gets; an HTTP client needs one."""
    return 2 if spec["backend"] == "transformers" else 1


def synthesis_threads(wildcards):
    return _threads(config["models"][wildcards.model])


def target_threads(wildcards):
    return _threads(efconfig.target_spec(config, wildcards.target))


def student_model_input(wildcards):
    """A student target needs its trained model folder first."""
    if wildcards.target in STUDENTS:
        return f"results/training/{wildcards.target}/model"
    return []


def student_base_params(wildcards):
    return efconfig.output_spec(efconfig.student_base(config, wildcards.student))


def training_gpus(wildcards):
    return config["training"]["students"][wildcards.student]["num_gpus"]


def training_nodes(wildcards):
    return config["training"]["students"][wildcards.student]["num_nodes"]


def training_threads(wildcards):
    """About 8 CPU cores per GPU for data loading; 2 for a CPU run."""
    return 8 * training_gpus(wildcards) if config["training"]["students"][wildcards.student]["num_gpus"] > 1 else 2


def student_settings(wildcards):
    return config["training"]["students"][wildcards.student]


def print_report():
    for name in ("funnel.md", "summary.md"):
        path = Path("results/report", name)
        if path.exists():
            print(path.read_text())
