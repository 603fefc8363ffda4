# Configuration, shard lists and the helpers that turn config entries into
# rule params. Every setting that changes a rule's output reaches the rule as a
# param, so changing it reruns exactly that rule and what follows.

import re
import sys
from pathlib import Path
from types import SimpleNamespace

from editforge.workflow import resources as cluster_resources
from editforge import config as efconfig
from editforge import monitoring
from editforge.experiments import grid as experiment_grid
from editforge.experiments import plan as experiment_plan
from editforge.workflow import run_lock
from editforge.templates import synthesis_files
from editforge.workflow.run_summary import end_of_run

# A dry run sends nothing, so there an unset API key is a warning; a run stops on it (efconfig.validate).
# (The dry-run executor is chosen after the Snakefile is read; the output settings know it before.)
DRY_RUN = bool(workflow.output_settings and workflow.output_settings.dryrun)
config.update(efconfig.validate(config, check_env=not DRY_RUN))
if DRY_RUN and workflow.is_main_process:
    for line in efconfig.missing_api_keys(config) + monitoring.tracker_problems(config):
        print(f"warning: {line}; a real run stops here", file=sys.stderr)

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
# The experiments: block (editforge.experiments.grid), None without one. Its cells are evaluation
# targets too (cell id = variant~student~sSEED), scored by the same rules as TARGETS.
EXPERIMENT = experiment_grid.experiment(config)
CELLS = [cell.id for cell in EXPERIMENT.cells] if EXPERIMENT else []
# Every synthesis model of the run or of a variant: a variant's model synthesizes with the run's rules
# where its generation settings are the run's.
ALL_SYNTHESIS_MODELS = list(dict.fromkeys([*SYNTHESIS_MODELS, *(EXPERIMENT.synthesis_models() if EXPERIMENT else [])]))
# The LLM judge's model (filtering.judge.model) of the run and of every variant that has one.
VARIANT_CONFIGS = [v.config for v in EXPERIMENT.variants.values() if v.config] if EXPERIMENT else []
JUDGE_MODELS = list(
    dict.fromkeys(c["filtering"]["judge"]["model"] for c in [config, *VARIANT_CONFIGS] if experiment_grid.judged(c))
)
# The triplets the dataset stage reads: the judge's where it is on, else dedup's.
FILTERED_TRIPLETS = experiment_grid.filtered_triplets("results", "results", config)
# The models the preflight checks: every synthesis model, every judge, and every evaluated model behind an API.
API_TARGETS = [t for t in TARGETS if config["models"].get(t, {}).get("backend") == "openai"]
CHECKED_MODELS = list(dict.fromkeys([*ALL_SYNTHESIS_MODELS, *JUDGE_MODELS, *API_TARGETS]))
# The synthesis prompts as inputs (an edit reruns synthesis), found through the package that reads them:
# workflow.basedir is the deploying workflow's folder when this workflow runs as a module.
TEMPLATES = [str(path) for path in synthesis_files()]


wildcard_constraints:
    shard=r"\d+",
    model="|".join(map(re.escape, ALL_SYNTHESIS_MODELS)),
    student="|".join(map(re.escape, STUDENTS)) if STUDENTS else "(?!)",
    target="|".join(map(re.escape, [*TARGETS, *CELLS])),
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
    return experiment_grid.tests_model(config, wildcards.model)


def sandbox_params_for_filtering():
    return experiment_grid.filtering_sandbox(config)


def synthesis_settings():
    return experiment_grid.synthesis_settings(config)


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


def judge_settings(wildcards):
    """The judge settings of the run, or of the variant that builds this judge stage."""
    cfg = stage_config(wildcards) if hasattr(wildcards, "stage") else config
    return cfg["filtering"]["judge"]


def judge_model_spec(wildcards):
    return config["models"][judge_settings(wildcards)["model"]]


def judge_model_params(wildcards):
    """What the judge's answers depend on in its models entry (as the synthesis rules' model param)."""
    return efconfig.output_spec(judge_model_spec(wildcards))


def judge_preflight(wildcards):
    """A judge behind an API is checked before its first call (as a synthesis model is)."""
    name = judge_settings(wildcards)["model"]
    return f"results/preflight/judge/{name}.txt" if config["models"][name]["backend"] == "openai" else []


def judge_threads(wildcards):
    return _threads(judge_model_spec(wildcards))


def judge_gpus(wildcards):
    return cluster_resources.model_gpus(judge_model_spec(wildcards))


def judge_mem_mb(wildcards):
    return _mem_mb(judge_model_spec(wildcards))


def student_model_input(wildcards):
    """A student target needs its trained model folder first."""
    if wildcards.target in STUDENTS:
        return f"results/training/{wildcards.target}/model"
    if wildcards.target in CELLS:
        return f"{EXPERIMENT.cell_dir(wildcards.target)}/model"
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
    """What trains the student: not how it is served for evaluation, nor what only watches the run
    (monitoring.MONITORING_KEYS, which scripts/finetune.py reads from the config)."""
    student = config["training"]["students"][wildcards.student]
    return {k: v for k, v in student.items() if k != "serve" and k not in monitoring.MONITORING_KEYS}


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


# Experiments (rules/experiments.smk): the variants, the data stages they build, their cells.
EXPERIMENT_NAME = EXPERIMENT.name if EXPERIMENT else None
EXPERIMENT_VARIANTS = list(EXPERIMENT.variants) if EXPERIMENT else []
EXPERIMENT_STAGES = (
    sorted({owner for level in experiment_grid.LEVELS for owner in EXPERIMENT.owners(level)}) if EXPERIMENT else []
)


def _alternatives(names):
    return "|".join(map(re.escape, names)) if names else "(?!)"


wildcard_constraints:
    experiment=_alternatives([EXPERIMENT_NAME] if EXPERIMENT else []),
    variant=_alternatives(EXPERIMENT_VARIANTS),
    stage=_alternatives(EXPERIMENT_STAGES),
    seed=r"\d+",


def stage_config(wildcards):
    """The settings of the variant that builds this stage."""
    return EXPERIMENT.variants[wildcards.stage].config


def stage_level_root(wildcards, level):
    """Where the stage's owner reads ``level`` from: the run's folders or a variant's."""
    return EXPERIMENT.level_root(wildcards.stage, level)


def training_hours(cell):
    """GPU-hours a cell's training reserves: its time limit times its GPUs on every node."""
    wildcards = SimpleNamespace(student=cell.student)
    gpus = training_gpus(wildcards) * training_nodes(wildcards)
    return RESOURCES.runtime("finetune", 1, training_gpus(wildcards)) / 60 * gpus


def evaluation_hours(cell, benchmark):
    """GPU-hours a cell's generation on ``benchmark`` reserves."""
    gpus = cluster_resources.model_gpus(efconfig.resource_spec(config, cell.id))
    generate = "eval_generate" if benchmark == "canitedit" else "benchmark_generate"
    return RESOURCES.runtime(generate, 1, gpus) / 60 * gpus


def external_settings(wildcards):
    return EXPERIMENT.variants[wildcards.variant].external


def variant_pools(wildcards):
    """The pools a variant's set draws from (itself, or each variant of its blend), with their provenance;
    a pool of our own data is its dataset's training rows and its held-out validation rows."""
    variant = EXPERIMENT.variants[wildcards.variant]
    inputs = {}
    for part in variant.blend or {variant.name: 1.0}:
        spec = EXPERIMENT.variants[part]
        if spec.kind == "external":
            root = f"{EXPERIMENT.root}/external/{part}"
            inputs |= {f"{part}.pool": f"{root}/pool.jsonl", f"{part}.report": f"{root}/report.json"}
        else:
            inputs |= {
                f"{part}.pool": f"{EXPERIMENT.level_root(part, 'dataset')}/dataset/train.jsonl",
                f"{part}.validation": f"{EXPERIMENT.level_root(part, 'dataset')}/dataset/validation.jsonl",
                f"{part}.seeds": f"{EXPERIMENT.level_root(part, 'generation')}/seeds/stats.json",
                f"{part}.decontamination": f"{EXPERIMENT.level_root(part, 'filtering')}/filtered/decontamination.json",
            }
    return inputs


def variant_validation(wildcards):
    """The variant's dataset.validation: its own settings for an overrides variant, the run's for an
    external set or a blend."""
    own = EXPERIMENT.variants[wildcards.variant].config
    return (own or config)["dataset"]["validation"]


def variant_components(wildcards):
    """Each pool's share of the set, its kind, and (for our own data) its licence and synthesis models."""
    variant = EXPERIMENT.variants[wildcards.variant]
    components = {}
    for part, share in (variant.blend or {variant.name: 1.0}).items():
        spec = EXPERIMENT.variants[part]
        own = spec.config
        components[part] = {"share": share, "kind": spec.kind} | (
            {
                "licence": own["dataset"]["license"],
                "generators": {name: own["models"][name]["model"] for name in own["synthesis"]["models"]},
            }
            if own
            else {}
        )
    return components


def cell_executions(wildcards):
    """Every cell's execution file on every benchmark of the experiment, named ``benchmark/cell`` (first
    tries: a second try, Aider's, is another protocol, reported for the run's own targets)."""
    return {
        f"{benchmark}/{cell}": f"results/evaluation/{benchmark}/{cell}/executions.jsonl"
        for benchmark in EXPERIMENT.benchmarks
        for cell in CELLS
    }


def cell_student_settings(wildcards):
    """The student's settings with the cell's training seed."""
    return student_settings(wildcards) | {"seed": int(wildcards.seed)}


# The cells and the power preflight (cells.tsv, power.json), printed once before a dry run's plan.
EXPERIMENT_PLAN = experiment_plan.plan(EXPERIMENT, config, training_hours, evaluation_hours) if EXPERIMENT else None
if EXPERIMENT and DRY_RUN and workflow.is_main_process:
    print(experiment_plan.plan_text(EXPERIMENT_PLAN))
