"""The config's ``experiments:`` block expanded: its variants, the stages they share, and its cells.

A variant is named overrides of the data settings (``seeds``, ``synthesis``, ``filtering``,
``dataset``), an external dataset, or a blend of other variants' sets. Each overrides variant's
settings are merged into the run's and checked like a config. The data stages fall into three
levels; a variant shares a level with the run (or with an earlier variant) exactly when the
settings that level's outputs depend on are equal, so a lazy-only variant reuses synthesis,
filtering and dedup and adds only its own mix. A cell is a variant, a student and a training seed;
its id (``variant~student~sSEED``) is also the evaluation target its model is scored as.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from editforge.config import CELL_SEP, ConfigError, benchmark_names, cell_dir, experiment_root

# The data stages, in order; each level's outputs depend on its own settings and those of the levels before.
# The LLM judge is a level of its own: switching it on reuses the run's filtering and dedup.
LEVELS = ("generation", "filtering", "judge", "dataset")
OVERRIDABLE = ("seeds", "synthesis", "filtering", "dataset")
# Settings a variant may not override, and why.
FIXED = {
    ("filtering", "decontamination"): "decontamination is the same for every variant; it cannot be switched off",
    ("seeds", "num_shards"): "the shard count is the run's (it changes how work is split, not the data)",
    ("synthesis", "max_error_share"): "the error budget is the run's (it decides whether a job fails)",
}


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str  # overrides, external or blend
    size: dict[str, Any]  # n (None: the whole set), unit (rows or tokens), mode (exact or at_most)
    config: dict[str, Any] | None = None  # overrides: the run's config with the overrides merged in
    external: dict[str, Any] | None = None  # external: the dataset's settings
    blend: dict[str, float] | None = None  # blend: component variant -> share of the final set
    owners: dict[str, str] = field(default_factory=dict)  # overrides: level -> who builds it ("" = the run)


@dataclass(frozen=True)
class Cell:
    variant: str
    student: str
    seed: int

    @property
    def id(self) -> str:
        return CELL_SEP.join((self.variant, self.student, f"s{self.seed}"))


@dataclass(frozen=True)
class Experiment:
    name: str
    baseline: str
    variants: dict[str, Variant]
    students: list[str]
    seeds: list[int]
    benchmarks: list[str]
    cells: list[Cell]
    resamples: int
    power: dict[str, Any]

    @property
    def root(self) -> str:
        return experiment_root(self.name)

    def stage_root(self, owner: str) -> str:
        """Where the data stages built by ``owner`` live: the run's own folders, or a variant's."""
        return "results" if owner == "" else f"{self.root}/stages/{owner}"

    def level_root(self, variant: str, level: str) -> str:
        return self.stage_root(self.variants[variant].owners[level])

    def data_dir(self, variant: str) -> str:
        return f"{self.root}/data/{variant}"

    def cell_dir(self, cell_id: str) -> str:
        return cell_dir(self.name, cell_id)

    def owners(self, level: str) -> list[str]:
        """The variants that build ``level`` themselves (the others share the run's or an earlier variant's);
        for the judge, those that have one."""
        return [
            v.name
            for v in self.variants.values()
            if v.kind == "overrides" and v.owners[level] == v.name and (level != "judge" or judged(v.config))
        ]

    def triplets(self, variant: str) -> str:
        """The final filtered triplets of an overrides variant: judged where it has a judge."""
        return filtered_triplets(self.level_root(variant, "filtering"), self.level_root(variant, "judge"),
                                 self.variants[variant].config)

    def synthesis_models(self) -> list[str]:
        """Every synthesis model of the run or of an overrides variant."""
        names = [m for v in self.variants.values() if v.config for m in v.config["synthesis"]["models"]]
        return list(dict.fromkeys(names))


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in: mappings key by key, anything else replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def level_settings(cfg: Mapping[str, Any], level: str) -> dict[str, Any]:
    """What the outputs of ``level`` (and of the levels before it) depend on."""
    settings: dict[str, Any] = {"seed": cfg["seed"], "seeds": cfg["seeds"], "synthesis": synthesis_settings(cfg)}
    rank = LEVELS.index(level)
    if rank >= LEVELS.index("filtering"):
        settings |= {"filtering": filtering_settings(cfg), "models": cfg["synthesis"]["models"]}
    if rank >= LEVELS.index("judge"):
        settings["judge"] = cfg["filtering"]["judge"] if judged(cfg) else None
    if level == "dataset":
        # the held-out split is made again by experiment_data with the variant's own settings
        settings["dataset"] = {k: v for k, v in cfg["dataset"].items() if k != "validation"}
    return settings


def filtering_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The filtering settings minus the judge's (its own rule's): the filter_shard rules' params."""
    return {k: v for k, v in cfg["filtering"].items() if k != "judge"}


def judged(cfg: Mapping[str, Any] | None) -> bool:
    """Whether the settings switch the LLM judge on."""
    return bool(cfg and cfg["filtering"]["judge"]["model"])


def filtered_triplets(filtering_root: str, judge_root: str, cfg: Mapping[str, Any]) -> str:
    """The triplets the dataset stage reads: the judge's where there is one, else dedup's."""
    if judged(cfg):
        return f"{judge_root}/filtered/judged.jsonl"
    return f"{filtering_root}/filtered/triplets.jsonl"


def synthesis_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Synthesis settings minus the model list (adding a model runs its branch only) and the error budget
    (it decides whether a job fails, not what it writes): the synthesis rules' params."""
    return {k: v for k, v in cfg["synthesis"].items() if k not in ("models", "max_error_share")}


def tests_model(cfg: Mapping[str, Any], model: str) -> str | None:
    """The model that writes tests for the execution check of ``model``'s triplets, by name (None: off)."""
    if not cfg["filtering"]["generated_tests"]:
        return None
    return cfg["filtering"]["generated_tests_model"] or model


def filtering_sandbox(cfg: Mapping[str, Any]) -> str | None:
    """The sandbox setting where filtering runs generated code (None: it runs none, so it cannot rerun it)."""
    filtering = cfg["filtering"]
    return cfg["sandbox"] if filtering["execution_check"] or filtering["generated_tests"] else None


def level_key(cfg: Mapping[str, Any], level: str) -> str:
    text = json.dumps(level_settings(cfg, level), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def experiment(cfg: Mapping[str, Any]) -> Experiment | None:
    """The run's experiment, checked (ConfigError naming the key), or None without an ``experiments:`` block."""
    block = cfg.get("experiments")
    if block is None:
        return None
    where = "experiments"
    students, configured = block["students"], benchmark_names(dict(cfg))
    for name in students:
        if name not in cfg["training"]["students"]:
            raise ConfigError(f"{where}.students: '{name}' is not one of training.students")
    benchmarks = block.get("benchmarks") or configured
    for name in benchmarks:
        if name not in configured:
            raise ConfigError(f"{where}.benchmarks: '{name}' is not under evaluation.benchmarks; add it there")
    if block["baseline"] not in block["variants"]:
        raise ConfigError(f"{where}.baseline: '{block['baseline']}' is not one of experiments.variants")
    variants = _variants(cfg, block)
    seeds = block.get("seeds") or [cfg["seed"]]
    for i, rule in enumerate(block["exclude"]):
        for key, known in (("variant", variants), ("student", students), ("seed", seeds)):
            if key in rule and rule[key] not in known:
                raise ConfigError(f"{where}.exclude.{i}.{key}: '{rule[key]}' is not one of the experiment's {key}s")
    cells = [
        Cell(variant, student, seed)
        for student in students
        for variant in variants
        for seed in seeds
        if not any(_excludes(rule, variant, student, seed) for rule in block["exclude"])
    ]
    for student in students:
        if not any(c.student == student and c.variant == block["baseline"] for c in cells):
            raise ConfigError(f"{where}.exclude: leaves student '{student}' without a baseline cell to compare with")
    return Experiment(
        name=block["name"],
        baseline=block["baseline"],
        variants=variants,
        students=list(students),
        seeds=list(seeds),
        benchmarks=[b for b in configured if b in benchmarks],
        cells=cells,
        resamples=block["resamples"],
        power=block["power"],
    )


def _excludes(rule: Mapping[str, Any], variant: str, student: str, seed: int) -> bool:
    wanted = {"variant": variant, "student": student, "seed": seed}
    return all(rule[key] == wanted[key] for key in rule)


def _variants(cfg: Mapping[str, Any], block: Mapping[str, Any]) -> dict[str, Variant]:
    from editforge.config import validate  # the grid is checked from config.validate, so imported late

    run_keys = {level: level_key(cfg, level) for level in LEVELS}
    first_owner: dict[tuple[str, str], str] = {}
    variants: dict[str, Variant] = {}
    for name, spec in block["variants"].items():
        where = f"experiments.variants.{name}"
        size = {**block["size"], **spec.get("size", {})}
        if "external" in spec:
            variants[name] = Variant(name, "external", size, external=spec["external"])
            continue
        if "blend" in spec:
            variants[name] = Variant(name, "blend", size, blend=_blend(block, name, spec["blend"]))
            continue
        overrides = spec.get("overrides", {})
        for (section, key), why in FIXED.items():
            if key in overrides.get(section, {}):
                raise ConfigError(f"{where}.overrides.{section}.{key}: not a variant setting; {why}")
        merged = deep_merge({k: v for k, v in cfg.items() if k != "experiments"}, overrides)
        try:
            effective = validate(merged, check_env=False)
        except ConfigError as err:
            raise ConfigError(f"{where}.overrides: {str(err).replace(chr(10), ' ')}") from None
        owners = {}
        for level in LEVELS:
            key = level_key(effective, level)
            owners[level] = "" if key == run_keys[level] else first_owner.setdefault((level, key), name)
        variants[name] = Variant(name, "overrides", size, config=effective, owners=owners)
    return variants


def _blend(block: Mapping[str, Any], name: str, shares: Mapping[str, float]) -> dict[str, float]:
    where = f"experiments.variants.{name}.blend"
    for part, share in shares.items():
        spec = block["variants"].get(part)
        if spec is None or part == name:
            raise ConfigError(f"{where}: '{part}' is not another variant of experiments.variants")
        if "blend" in spec:
            raise ConfigError(f"{where}: '{part}' is a blend itself; blend overrides or external variants")
        if share <= 0:
            raise ConfigError(f"{where}.{part}: a share is a positive fraction of the blended set")
    total = sum(shares.values())
    return {part: share / total for part, share in shares.items()}
