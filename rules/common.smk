# Configuration, shard lists and the helpers that turn config entries into
# rule params. Every setting that changes a rule's output reaches the rule as a
# param, so changing it reruns exactly that rule and what follows.

import re
from pathlib import Path

from editforge.workflow import resources as cluster_resources
from editforge import config as efconfig
from editforge.workflow import run_lock
from editforge.templates import synthesis_files
from editforge.workflow.run_summary import end_of_run

config.update(efconfig.validate(config))

# After a hard kill the same command resumes: the dead run's lock goes first (looked at by
# the main process only: a cluster job parses this file too, on a node, while the run holds its lock).
if workflow.is_main_process and (stale := run_lock.clear_stale_lock()):
    print(stale)

SHARDS = efconfig.shard_names(config)
SYNTHESIS_MODELS = config["synthesis"]["models"]
STUDENTS = list(config["training"]["students"])
TARGETS = config["evaluation"]["targets"]
# The benchmarks to evaluate on (evaluation.benchmarks), each with its settings filled in (config.benchmark_settings);
# CanItEdit has its own rules, the other benchmarks (plug-ins) share the benchmark_* rules.
BENCHMARK_NAMES = efconfig.benchmark_names(config)
CANITEDIT = efconfig.benchmark_settings(config, "canitedit")
PLUGINS = {name: efconfig.benchmark_settings(config, name) for name in BENCHMARK_NAMES if name != "canitedit"}
# The other benchmarks' texts: dedup gets their paths in its settings, so a run that adds none (the
# default, CanItEdit alone) keeps the settings, and the datasets, it had.
PLUGIN_TEXTS = [f"results/benchmark/{name}.texts.jsonl" for name in PLUGINS]
DEDUP_SETTINGS = {k: config["filtering"][k] for k in ("minhash", "decontamination")} | (
    {"benchmark_texts": PLUGIN_TEXTS} if PLUGIN_TEXTS else {}
)
# The models the preflight checks: every synthesis model, and every evaluated model behind an API.
API_TARGETS = [t for t in TARGETS if config["models"].get(t, {}).get("backend") == "openai"]
CHECKED_MODELS = list(dict.fromkeys([*SYNTHESIS_MODELS, *API_TARGETS]))
# The synthesis prompts as inputs (an edit reruns synthesis), found through the package that reads them:
# workflow.basedir is the deploying workflow's folder when this workflow runs as a module.
TEMPLATES = [str(path) for path in synthesis_files()]


wildcard_constraints:
    shard=r"\d+",
    model="|".join(map(re.escape, SYNTHESIS_MODELS)),
    student="|".join(map(re.escape, STUDENTS)) if STUDENTS else "(?!)",
    target="|".join(map(re.escape, TARGETS)),
    checked="|".join(map(re.escape, CHECKED_MODELS)),
    plugin="|".join(map(re.escape, PLUGINS)) if PLUGINS else "(?!)",


localrules:
    all,
    report,
    # on the submit host, which reaches the API servers
    preflight,


def model_params(wildcards):
    return efconfig.output_spec(config["models"][wildcards.model])


def tests_model_params(wildcards):
    """The model that writes tests for the execution check, by name (None: off)."""
    if not config["filtering"]["generated_tests"]:
        return None
    return config["filtering"]["generated_tests_model"] or wildcards.model


def sandbox_params_for_filtering():
    """The sandbox setting where filtering runs generated code (None: it runs none, so it cannot rerun it)."""
    filtering = config["filtering"]
    return config["sandbox"] if filtering["execution_check"] or filtering["generated_tests"] else None


def synthesis_settings():
    """Synthesis settings minus the model list (adding a model runs its branch only) and the error budget
    (it decides whether a job fails, not what it writes)."""
    return {k: v for k, v in config["synthesis"].items() if k not in ("models", "max_error_share")}


def target_params(wildcards):
    return efconfig.output_spec(efconfig.target_spec(config, wildcards.target))


def _threads(spec):
    """An in-process model uses every core it gets; a server started in the job
    needs a few for tokenizing and scheduling; an HTTP client needs one."""
    if "serve" in spec:
        return 8
    return 2 if spec["backend"] == "transformers" else 1


def synthesis_threads(wildcards):
    return _threads(config["models"][wildcards.model])


def synthesis_gpus(wildcards):
    return cluster_resources.model_gpus(config["models"][wildcards.model])


def _mem_mb(spec):
    """Host memory: room for the weights of a model loaded in the job; an HTTP client needs little."""
    return cluster_resources.model_mem_mb(spec)


def synthesis_mem_mb(wildcards):
    return _mem_mb(config["models"][wildcards.model])


def target_threads(wildcards):
    return _threads(efconfig.target_spec(config, wildcards.target))


def target_gpus(wildcards):
    return cluster_resources.model_gpus(efconfig.resource_spec(config, wildcards.target))


def target_mem_mb(wildcards):
    return _mem_mb(efconfig.resource_spec(config, wildcards.target))


def tests_model_gpus(wildcards):
    name = tests_model_params(wildcards)
    return 0 if name is None else cluster_resources.model_gpus(config["models"][name])


def student_model_input(wildcards):
    """A student target needs its trained model folder first."""
    if wildcards.target in STUDENTS:
        return f"results/training/{wildcards.target}/model"
    return []


def target_preflight(wildcards):
    """A target behind an API is checked before its generation (as a synthesis model is)."""
    return f"results/preflight/evaluation/{wildcards.target}.txt" if wildcards.target in API_TARGETS else []


def plugin_generation_params(wildcards):
    """What a plug-in benchmark's generation depends on: the selected problems, samples and sampling."""
    return {key: PLUGINS[wildcards.plugin][key] for key in ("problems", "samples", "sampling")}


def plugin_execution_params(wildcards):
    """How a plug-in benchmark's answers run: the format family they were asked in, and the sandbox."""
    return {
        "family": efconfig.benchmark_family(config, wildcards.plugin, wildcards.target),
        "timeout_s": PLUGINS[wildcards.plugin]["timeout_s"],
        "memory_mb": config["evaluation"]["memory_mb"],
        "sandbox": config["sandbox"],
        "python": config["evaluation"]["python"],
    }


def plugin_executions(wildcards, name):
    """Every target's execution file of a plug-in benchmark: ``executions``, or ``retry_executions``
    (the second tries, where the benchmark's tries is 2; else none)."""
    if name == "retry_executions" and PLUGINS[wildcards.plugin]["tries"] == 1:
        return []
    return [f"results/evaluation/{wildcards.plugin}/{target}/{name}.jsonl" for target in TARGETS]


def student_base_params(wildcards):
    return efconfig.output_spec(efconfig.student_base(config, wildcards.student))


def training_gpus(wildcards):
    """GPUs per node; none where the student trains on the CPU (accelerate_config: cpu, or a base model
    that runs on the CPU: device: cpu, or the embedded model), so a cluster without GPUs runs the demo."""
    student = config["training"]["students"][wildcards.student]
    base = efconfig.student_base(config, wildcards.student)
    on_cpu = student["accelerate_config"] == "cpu" or (
        base["backend"] == "transformers" and cluster_resources.model_gpus(base) == 0
    )
    return 0 if on_cpu else student["num_gpus"]


def training_nodes(wildcards):
    return config["training"]["students"][wildcards.student]["num_nodes"]


def training_gpu_resource(wildcards):
    """GPUs of a one-node job (SLURM's --gpus counts the whole job's)."""
    return training_gpus(wildcards) if training_nodes(wildcards) == 1 else None


def training_gres(wildcards):
    """A multi-node job asks for its GPUs per node (--gres=gpu:N), a CPU-only one for none."""
    gpus = training_gpus(wildcards)
    return None if training_nodes(wildcards) == 1 or gpus == 0 else f"gpu:{gpus}"


def training_threads(wildcards):
    """About 8 CPU cores per GPU for data loading; 2 for a one-process run."""
    gpus = training_gpus(wildcards)
    return RESOURCES.threads("finetune", 8 * gpus if gpus > 1 else 2, gpus)


def student_settings(wildcards):
    """What trains the student; how it is served for evaluation is not part of it."""
    return {k: v for k, v in config["training"]["students"][wildcards.student].items() if k != "serve"}


# What each job asks for (editforge.workflow.resources): config resources, grown on each retry (attempt),
# capped to the largest partition of resources.partitions that could run it, and to --resources mem_mb.
def _run_mem_mb():
    """--resources mem_mb, where given: no job asking for more could ever be scheduled."""
    value = workflow.global_resources.get("mem_mb")
    value = getattr(value, "value", value)
    return value if isinstance(value, int) else None


# Only the run's own process warns of a capped request: each cluster job plans itself again on its node.
RESOURCES = cluster_resources.planner(config, Path(workflow.basedir), _run_mem_mb(), warn=workflow.is_main_process)


def job_mem_mb(name, model_mb=None, gpus=None):
    """mem_mb of a job of ``name`` (a rule); model_mb, gpus: functions of the wildcards, for a job holding a model."""

    def mem_mb(wildcards, attempt):
        return RESOURCES.mem_mb(name, attempt, model_mb and model_mb(wildcards), gpus(wildcards) if gpus else 0)

    return mem_mb


def job_runtime(name, gpus=None):
    """runtime (minutes) of a job of ``name`` (a rule name)."""

    def runtime(wildcards, attempt):
        return RESOURCES.runtime(name, attempt, gpus(wildcards) if gpus else 0)

    return runtime


def job_threads(name, default, gpus=None):
    """Threads of a job of ``name`` (a rule name), from resources.<name>.cpus, else ``default``."""
    return lambda wildcards: RESOURCES.threads(
        name, default(wildcards) if callable(default) else default, gpus(wildcards) if gpus else 0
    )


def print_report():
    print(end_of_run())
