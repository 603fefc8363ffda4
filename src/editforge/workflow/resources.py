"""What each job asks for: memory, time and CPUs per rule from the config's ``resources``,
grown on each retry, and capped to the largest partition that could run the job.

The partitions are those of the SLURM executor's partitions file (``partitions:`` with
``max_mem_mb``, ``max_runtime`` in minutes, ``max_threads`` and ``max_gpu`` per partition),
so a request never asks for more than the cluster has; a job that ran out of time or
memory is retried with ``retry_growth`` times more of both, up to that limit.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from editforge.config import ConfigError

# The partitions file's limit for each resource a rule sets.
LIMIT_KEYS = {"mem_mb": "max_mem_mb", "runtime": "max_runtime", "cpus": "max_threads"}


@dataclass(frozen=True)
class Partition:
    name: str
    max_gpu: int
    limits: dict[str, float]  # resource -> its limit; inf where the file gives none


def read_partitions(path: Path) -> list[Partition]:
    """The partitions of a SLURM executor partitions file; an unreadable file is a ConfigError."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"resources.partitions: cannot read {path} ({err}); fix it or set it to null") from err
    entries = data.get("partitions") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"resources.partitions: {path} has no 'partitions:' mapping of names to limits")
    partitions = []
    for name, limits in entries.items():
        limits = limits or {}
        values = {key: float(limits.get(limit, math.inf)) for key, limit in LIMIT_KEYS.items()}
        partitions.append(Partition(str(name), int(limits.get("max_gpu", 0)), values))
    return partitions


@dataclass
class Planner:
    """Requests for the jobs of a run (config: the validated config's ``resources`` section)."""

    config: dict[str, Any]
    partitions: list[Partition]
    partitions_file: str = "the partitions file"
    local_mem_mb: int | None = None  # the run's --resources mem_mb, where given
    out: TextIO = sys.stderr
    warn: bool = True  # a cluster job plans itself again on its node, where the run has warned already
    _warned: set[tuple[str, str]] = field(default_factory=set)

    def settings(self, rule: str) -> dict[str, int]:
        """The rule's own settings over resources.default."""
        return {**self.config["default"], **self.config.get(rule, {})}

    def limit(self, key: str, gpus: int = 0) -> float:
        """The largest limit of ``key`` among the partitions for a job with ``gpus`` GPUs: those with
        enough GPUs; for a CPU job those without GPUs where there are any (the executor prefers them)."""
        cpu_only = [p for p in self.partitions if p.max_gpu == 0]
        candidates = cpu_only if gpus == 0 and cpu_only else [p for p in self.partitions if p.max_gpu >= gpus]
        fitting = [p.limits[key] for p in candidates]
        limit = max(fitting, default=math.inf)
        if key == "mem_mb" and self.local_mem_mb is not None:
            limit = min(limit, self.local_mem_mb)
        return limit

    def _capped(self, rule: str, key: str, wanted: float, gpus: int, attempt: int) -> int:
        limit = self.limit(key, gpus)
        if self.warn and attempt == 1 and wanted > limit and (rule, key) not in self._warned:
            self._warned.add((rule, key))
            where = "--resources mem_mb" if limit == self.local_mem_mb else f"every partition in {self.partitions_file}"
            print(
                f"editforge warning: resources.{rule}.{key}: {int(wanted)} is above the limit of {where} "
                f"({int(limit)}); the job asks for {int(limit)}",
                file=self.out,
            )
        return int(min(wanted, limit))

    def grown(self, rule: str, key: str, base: int, attempt: int, gpus: int = 0) -> int:
        """``base`` times retry_growth for each earlier attempt, capped to the limit."""
        return self._capped(rule, key, base * self.config["retry_growth"] ** (attempt - 1), gpus, attempt)

    def mem_mb(self, rule: str, attempt: int, model_mb: int | None = None, gpus: int = 0) -> int:
        """The rule's mem_mb; for a job holding a model and no mem_mb of its own, the model's need."""
        own = self.config.get(rule, {}).get("mem_mb")
        base = own or model_mb or self.config["default"]["mem_mb"]
        return self.grown(rule, "mem_mb", base, attempt, gpus)

    def runtime(self, rule: str, attempt: int, gpus: int = 0) -> int:
        return self.grown(rule, "runtime", self.settings(rule)["runtime"], attempt, gpus)

    def threads(self, rule: str, default: int, gpus: int = 0) -> int:
        """The rule's cpus (else its own thread count), capped to the partitions' max_threads."""
        return self._capped(rule, "cpus", self.config.get(rule, {}).get("cpus", default), gpus, 1)


DEFAULT_PARTITIONS = "profiles/slurm/partitions.yaml"


def planner(config: dict[str, Any], basedir: Path, local_mem_mb: int | None = None, warn: bool = True) -> Planner:
    """The planner for a validated config. A relative partitions path is looked up in the working
    directory (a project that deploys this workflow keeps its profile there), then in ``basedir``.
    The default file missing (this workflow used as a module, without its profiles) means no caps."""
    section = config["resources"]
    name = section["partitions"]
    found = None if name is None else next((p for p in (Path(name), Path(basedir, name)) if p.is_file()), None)
    if found is None:
        if name is not None and name != DEFAULT_PARTITIONS:
            raise ConfigError(f"resources.partitions: no file {name} in {Path.cwd()} or {basedir}; "
                              "name your partitions file or set it to null")
        return Planner(section, [], local_mem_mb=local_mem_mb, warn=warn)
    return Planner(section, read_partitions(found), str(name), local_mem_mb, warn=warn)


# What a job calling a model needs, from the model's entry (``models.X`` or a student's base).
def model_gpus(spec: dict[str, Any]) -> int:
    """GPUs a job calling this model asks for: a served model's; one for an in-process
    model, unless it runs on the CPU (``device: cpu``, or the embedded model without
    ``device: cuda``); none for a remote server."""
    if "serve" in spec:
        return int(spec["serve"].get("gpus", 1))
    if spec["backend"] != "transformers" or _on_cpu(spec):
        return 0
    return 1


def _on_cpu(spec: dict[str, Any]) -> bool:
    device = spec.get("device", "auto")
    return device == "cpu" or (spec.get("model") == "embedded" and device != "cuda")


# Parameters of the embedded model (SmolLM2-135M-Instruct).
EMBEDDED_PARAMETERS = 135e6
_PARAMETER_COUNT = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*([bBmM])(?![a-zA-Z])")


def model_mem_mb(spec: dict[str, Any]) -> int:
    """Host memory for a job calling this model: room for the weights of a model loaded in
    the job (4 bytes a parameter, as loading may pass through float32, plus 2 GB), read from
    its size in the name ("7B", "135M") where one is given, else 64 GB; 4 GB otherwise."""
    if spec["backend"] != "transformers" and "serve" not in spec:
        return 4000
    model = str(spec.get("model", ""))
    if model == "embedded":
        parameters = EMBEDDED_PARAMETERS
    elif match := _PARAMETER_COUNT.search(model.rsplit("/", 1)[-1]):
        parameters = float(match.group(1)) * (1e9 if match.group(2) in "bB" else 1e6)
    else:
        return 64000
    return max(4000, int(parameters * 4 / 1e6) + 2000)
