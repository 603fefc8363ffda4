"""Load and check the workflow configuration before anything runs.

The JSON schema (``schemas/config.schema.yaml``) catches unknown keys and wrong
types; ``validate`` adds the checks a schema cannot express (names that refer to
other entries, files that must exist, API-key variables that must be set) and
fills in defaults, so every stage reads one complete, checked config.
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from editforge import monitoring
from editforge.backend.serving import ServeSettings

BENCHMARK_ENV = "EDITFORGE_CANITEDIT"
SYNTHESIS_SAMPLING = {"temperature": 0.8, "top_p": 0.95, "max_tokens": 2048}
EVALUATION_SAMPLING = {"temperature": 0.2, "top_p": 0.95, "max_tokens": 2048}
# Model-spec keys that change how a call is made but not what it returns; they
# stay out of rule params so that, e.g., raising concurrency reruns nothing.
OPERATIONAL_KEYS = frozenset(
    {"base_url", "api_key_env", "max_concurrency", "timeout_s", "max_retries", "retry_base_s",
     "retry_max_s", "num_threads", "device", "price", "use_n", "serve", "mode", "batch", "batch_price"}
)


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key."""


# Joins an experiment cell's variant, student and seed into its id, the evaluation target it is scored as.
CELL_SEP = "~"


def cell_student(target: str) -> str | None:
    """The student of an evaluation target that is an experiment cell's id, else None."""
    parts = target.split(CELL_SEP)
    return parts[1] if len(parts) == 3 else None


def experiment_root(name: str) -> str:
    """Where experiment ``name`` writes: its plan, data, cells and tables."""
    return f"results/experiments/{name}"


def cell_dir(experiment: str, cell_id: str) -> str:
    """A cell's folder: its trained ``model`` and that model's checkpoints."""
    return f"{experiment_root(experiment)}/cells/{cell_id}"


def schema() -> dict[str, Any]:
    return copy.deepcopy(_schema())


@functools.cache
def _schema() -> dict[str, Any]:
    # Parsed once a process (0.2 s): an experiments block checks each variant as a config of its own.
    text = resources.files("editforge").joinpath("schemas/config.schema.yaml").read_text()
    return yaml.safe_load(text)


def _with_defaults(validator_class: type) -> type:
    """A validator that also writes each property's ``default`` into the instance."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: dict, instance: Any, sub_schema: dict) -> Iterator:
        if isinstance(instance, dict):
            for name, prop in properties.items():
                if "default" in prop and name not in instance:
                    instance[name] = copy.deepcopy(prop["default"])
        yield from validate_properties(validator, properties, instance, sub_schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


# Keys that were renamed or replaced: the old name -> what to write instead.
REPLACED_KEYS = {
    "filtering.decontamination.ngram": "code_containment and instruction_containment (containment, not n-gram runs)",
    "filtering.decontamination.minhash_threshold": "code_containment",
}


def _message(error: jsonschema.ValidationError) -> str:
    """The error's message; for an unknown key, what was meant (the nearest allowed key, or its replacement)."""
    if error.validator != "additionalProperties" or not isinstance(error.instance, dict):
        return error.message
    allowed = sorted(error.schema.get("properties", {}))
    hints = []
    for key in sorted(set(error.instance) - set(allowed)):
        path = ".".join([*map(str, error.absolute_path), str(key)])
        if path in REPLACED_KEYS:
            hints.append(f"'{key}' was replaced: use {REPLACED_KEYS[path]}")
            continue
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(allowed)}"
        hints.append(f"unknown key '{key}' ({hint})")
    return "; ".join(hints)


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """The contents of a YAML file; a syntax error names the file, line and column."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        context = f" ({err.context})" if err.context else ""
        raise ConfigError(f"{where}: not valid YAML: {err.problem}{context}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config file and validate it."""
    raw = read_yaml(path)
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config is a mapping of keys, not a {type(raw).__name__}")
    return validate(raw or {})


def validate(raw: dict[str, Any], *, check_env: bool = True) -> dict[str, Any]:
    """Return a checked copy of ``raw`` with defaults filled in, or raise ConfigError."""
    cfg = copy.deepcopy(raw)
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema())
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {_key_path(e)}: {_message(e)}" for e in errors]
        raise ConfigError("invalid config:\n" + "\n".join(lines))
    for section, defaults in (("synthesis", SYNTHESIS_SAMPLING), ("evaluation", EVALUATION_SAMPLING)):
        cfg[section]["sampling"] = {**defaults, **cfg[section]["sampling"]}
    _check_references(cfg)
    _check_files(cfg)
    if check_env and (missing := missing_api_keys(cfg) + monitoring.tracker_problems(cfg)):
        raise ConfigError(missing[0])
    cfg = _sorted_keys(cfg)
    if "experiments" in cfg:
        # The variants keep the order they are written in: the cells' and the table's.
        variants = cfg["experiments"]["variants"]
        cfg["experiments"]["variants"] = {name: variants[name] for name in raw["experiments"]["variants"]}
        from editforge.experiments.grid import experiment  # the grid checks variants with validate itself

        experiment(cfg)
    return cfg


def _sorted_keys(value: Any) -> Any:
    """Dicts with sorted keys, all the way down: Snakemake compares params by their
    repr, so the order keys happen to have in a YAML file must not rerun anything."""
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value


def _check_references(cfg: dict[str, Any]) -> None:
    models, students = cfg["models"], cfg["training"]["students"]
    for name in cfg["synthesis"]["models"]:
        if name not in models:
            raise ConfigError(f"synthesis.models: '{name}' is not defined under models")
    clash = sorted(set(models) & set(students))
    if clash:
        raise ConfigError(f"training.students: '{clash[0]}' is also a models entry; use distinct names")
    for name in cfg["evaluation"]["targets"]:
        if name not in models and name not in students:
            raise ConfigError(f"evaluation.targets: '{name}' is neither a models entry nor a training student")
    for name, spec in models.items():
        if "serve" in spec:
            if spec["backend"] != "openai":
                raise ConfigError(f"models.{name}.serve: only an 'openai' backend model is served")
            if "base_url" in spec:
                raise ConfigError(f"models.{name}.serve: leave base_url out; the started server's address is used")
            _check_serve(f"models.{name}.serve", spec["serve"], batch=spec.get("mode") == "batch")
        if spec.get("mode") == "batch" and spec["backend"] != "openai":
            raise ConfigError(f"models.{name}.mode: batch is for an 'openai' backend model (an API or a serve: block)")
        if "batch_price" in spec and "price" not in spec:
            raise ConfigError(f"models.{name}.batch_price: give price too (the price of live calls)")
    for name, student in students.items():
        if "serve" in student:
            _check_serve(f"training.students.{name}.serve", student["serve"])
        base = student["base_model"]
        if base in models and models[base]["backend"] != "transformers":
            raise ConfigError(
                f"training.students.{name}.base_model: '{base}' is served over HTTP; "
                "fine-tuning needs a transformers model (hub id, local path or 'embedded')"
            )
    mix = cfg["dataset"].get("mix")
    if mix is not None:
        for name in mix:
            if name not in cfg["synthesis"]["models"]:
                raise ConfigError(f"dataset.mix: '{name}' is not one of synthesis.models")
        if sum(mix.values()) <= 0:
            raise ConfigError("dataset.mix: the shares must not all be zero")
    tests_model = cfg["filtering"]["generated_tests_model"]
    if tests_model is not None and tests_model not in models:
        raise ConfigError(f"filtering.generated_tests_model: '{tests_model}' is not defined under models")
    judge_model = cfg["filtering"]["judge"]["model"]
    if judge_model is not None and judge_model not in models:
        raise ConfigError(f"filtering.judge.model: '{judge_model}' is not defined under models; add it or set null")
    seeds = cfg["seeds"]
    if seeds["min_lines"] > seeds["max_lines"]:
        raise ConfigError("seeds.min_lines: must not exceed seeds.max_lines")
    names = [s["name"] for s in seeds["sources"]]
    if len(set(names)) != len(names):
        raise ConfigError("seeds.sources: source names must be unique")


def _check_serve(where: str, serve: dict[str, Any], batch: bool = False) -> None:
    try:
        settings = ServeSettings(**serve)
        if batch:
            settings.batch_argv("model", Path("input"), Path("output"))
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None


def _check_files(cfg: dict[str, Any]) -> None:
    for i, source in enumerate(cfg["seeds"]["sources"]):
        kind = source["type"]
        if kind in {"directory", "jsonl", "parquet"}:
            if "path" not in source:
                raise ConfigError(f"seeds.sources.{i}.path: required for a '{kind}' source")
            if not Path(source["path"]).exists():
                raise ConfigError(f"seeds.sources.{i}.path: '{source['path']}' does not exist")
        if kind == "hf" and "dataset" not in source:
            raise ConfigError(f"seeds.sources.{i}.dataset: required for an 'hf' source")
    for name in cfg["evaluation"]["benchmarks"]:
        _check_benchmark(cfg, name)


def _check_benchmark(cfg: dict[str, Any], name: str) -> None:
    """A benchmark's source exists where it is a file, and its settings suit it."""
    env, own = benchmark_env(name), cfg["evaluation"]["benchmarks"][name]
    source = benchmark_settings(cfg, name)["source"]
    configured = f"evaluation.benchmarks.{name}.source" if "source" in own else "evaluation.benchmark"
    where = env if os.environ.get(env) else configured
    if source is None:
        raise ConfigError(
            f"evaluation.benchmarks.{name}: no source; set {env} to a local copy of the benchmark "
            f"(a .jsonl file) or evaluation.benchmarks.{name}.source"
        )
    if _looks_like_file(source) and not Path(source).exists():
        raise ConfigError(f"{where}: benchmark file '{source}' does not exist")
    if own["tries"] == 2 and not _plugin(name).retries:
        raise ConfigError(f"evaluation.benchmarks.{name}.tries: a second try is for aider_exercism only; use 1")


def missing_api_keys(cfg: dict[str, Any]) -> list[str]:
    """A line for each model this run calls whose API key's environment variable is unset: an error
    before a run, a warning before a dry run (which sends nothing)."""
    return [
        f"models.{name}.api_key_env: environment variable {env} is not set (export {env}=... before running)"
        for name in models_in_use(cfg)
        if (env := cfg["models"].get(name, {}).get("api_key_env")) and not os.environ.get(env)
    ]


def _looks_like_file(source: str) -> bool:
    return source.endswith((".jsonl", ".json", ".parquet")) or source.startswith((".", "/"))


def models_in_use(cfg: dict[str, Any]) -> list[str]:
    """The models entries that this run will call."""
    used = list(cfg["synthesis"]["models"])
    filterings = [cfg["filtering"]]
    for variant in cfg.get("experiments", {}).get("variants", {}).values():
        used += variant.get("overrides", {}).get("synthesis", {}).get("models", [])
        filterings.append(variant.get("overrides", {}).get("filtering", {}))
    for filtering in filterings:
        used += [m for m in (filtering.get("generated_tests_model"), filtering.get("judge", {}).get("model")) if m]
    used += [t for t in cfg["evaluation"]["targets"] if t in cfg["models"]]
    used += [s["base_model"] for s in cfg["training"]["students"].values() if s["base_model"] in cfg["models"]]
    return list(dict.fromkeys(used))


def benchmark_source(cfg: dict[str, Any]) -> str:
    """CanItEdit's source: the environment override, else the configured one."""
    return str(benchmark_settings(cfg, "canitedit")["source"])


def benchmark_names(cfg: dict[str, Any]) -> list[str]:
    """The configured benchmarks in the schema's order (CanItEdit first): the order of the report."""
    known = schema()["properties"]["evaluation"]["properties"]["benchmarks"]["properties"]
    return [name for name in known if name in cfg["evaluation"]["benchmarks"]]


def benchmark_env(name: str) -> str:
    """The environment variable naming a local copy of benchmark ``name``."""
    return BENCHMARK_ENV if name == "canitedit" else _plugin(name).env_var


def benchmark_settings(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    """Benchmark ``name``'s settings: its own under ``evaluation.benchmarks``, else the shared ones of
    ``evaluation`` (samples, sampling; problems where that is null or a count, as a list names CanItEdit
    ids), else the benchmark's own (time limit, sampling it needs). CanItEdit keeps ``evaluation.benchmark``
    and ``evaluation.timeout_s``. ``source`` is the environment variable's path where it is set (None: none)."""
    evaluation = cfg["evaluation"]
    own = evaluation.get("benchmarks", {}).get(name, {})
    problems = evaluation["problems"]
    if name == "canitedit":
        configured, timeout_s, needed = evaluation["benchmark"], evaluation["timeout_s"], {}
    else:
        plugin = _plugin(name)
        configured, timeout_s, needed = plugin.default_source, plugin.timeout_s, plugin.sampling_defaults
        problems = problems if problems is None or isinstance(problems, int) else None
    return {
        "source": os.environ.get(benchmark_env(name)) or own.get("source", configured),
        "problems": own.get("problems", problems),
        "samples": own.get("samples", evaluation["samples"]),
        "sampling": {**evaluation["sampling"], **needed, **own.get("sampling", {})},
        "timeout_s": own.get("timeout_s", timeout_s),
        "tries": own.get("tries", 1),
    }


def benchmark_family(cfg: dict[str, Any], name: str, target: str) -> str:
    """The format family target ``target`` is asked in on plug-in benchmark ``name``: its ``prompt_format``
    (``editforge``, or a harness format: that benchmark's own harness)."""
    return str(_plugin(name)().family(target_spec(cfg, target).get("prompt_format", "editforge")))


def _plugin(name: str) -> Any:
    # Imported only for a benchmark other than CanItEdit: the evaluation package costs 0.6 s a parse.
    from editforge.evaluation.benchmarks.registry import BENCHMARKS

    return BENCHMARKS[name]


def shard_names(cfg: dict[str, Any]) -> list[str]:
    width = max(3, len(str(cfg["seeds"]["num_shards"] - 1)))
    return [f"{i:0{width}d}" for i in range(cfg["seeds"]["num_shards"])]


def output_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The part of a model spec that can change what the model returns."""
    return {k: v for k, v in spec.items() if k not in OPERATIONAL_KEYS}


def student_base(cfg: dict[str, Any], student: str) -> dict[str, Any]:
    """The transformers model spec a student starts from."""
    base = cfg["training"]["students"][student]["base_model"]
    if base in cfg["models"]:
        return dict(cfg["models"][base])
    return {"backend": "transformers", "model": base}


def target_spec(cfg: dict[str, Any], target: str, model_dir: str | None = None) -> dict[str, Any]:
    """The model spec an evaluation target is called with.

    A student is evaluated like its base model, loaded from its trained folder
    and prompted in the format it was trained on.
    """
    if target in cfg["models"]:
        return dict(cfg["models"][target])
    student, default_dir = _student_target(cfg, target)
    model = model_dir or default_dir
    serve = cfg["training"]["students"][student].get("serve")
    if serve is not None:
        return {"backend": "openai", "model": model, "serve": serve, "prompt_format": "editforge"}
    spec = student_base(cfg, student)
    spec.update(model=model, prompt_format="editforge")
    return spec


def resource_spec(cfg: dict[str, Any], target: str) -> dict[str, Any]:
    """The spec whose size a job evaluating ``target`` is planned by: a student's is its
    base model's (its trained folder has the same size), with the student's ``serve``."""
    spec = target_spec(cfg, target)
    if target in cfg["models"]:
        return spec
    base = student_base(cfg, _student_target(cfg, target)[0])
    return base | {"backend": spec["backend"], "serve": spec["serve"]} if "serve" in spec else base


def _student_target(cfg: dict[str, Any], target: str) -> tuple[str, str]:
    """The student an evaluation target trains, and its model folder: a student's own, or an experiment
    cell's (its id is ``variant~student~sSEED``)."""
    if target in cfg["training"]["students"]:
        return target, f"results/training/{target}/model"
    student = cell_student(target)
    if student is None:
        raise ConfigError(f"'{target}' is neither a models entry, a training student nor an experiment cell")
    return student, f"{cell_dir(cfg['experiments']['name'], target)}/model"
