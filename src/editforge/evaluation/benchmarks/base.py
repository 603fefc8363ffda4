"""The benchmark plug-in interface: what the shared evaluation (sandbox, pass@k, the strict column,
exclusions, tables, report) needs from one benchmark, and nothing more.

A benchmark module defines one ``Benchmark`` subclass. Its problems are plain mappings with a stable
string ``id``; its instruction kinds are the splits a score is reported by; each sample becomes one
``Program``, the Python source that runs in the sandbox (a benchmark whose tests are a folder of files
ships them inside that source, see ``folder_program``); a sample passes when its program exits 0.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from editforge.backend import Request, Sampling
from editforge.evaluation.sources import BenchmarkError, benchmark_rows

BenchmarkProblem = Mapping[str, Any]  # a benchmark's own record: each has a stable string "id"

# The two families of prompt format a model can ask for: ``editforge`` (the format our students are
# trained on, the same for every benchmark) or ``harness`` (the benchmark's own harness, the number
# that is comparable with published ones).
FORMAT_FAMILIES = ("editforge", "harness")


@dataclass(frozen=True)
class Program:
    """One sample's program: Python source run in the sandbox, and how long it may run."""

    source: str
    timeout_s: int


@dataclass(frozen=True)
class QuotedRow:
    """A published result, quoted beside ours and marked as quoted: pass@1 (%) per split."""

    model: str
    scores: Mapping[str, float]
    source: str
    caveat: str = ""


class Benchmark(ABC):
    """One benchmark behind the shared harness."""

    name: ClassVar[str]  # the key under ``evaluation.benchmarks`` and in result paths
    title: ClassVar[str]  # what tables call it
    env_var: ClassVar[str]  # a local copy that replaces the configured source
    default_source: ClassVar[str | None]  # hub id or path; None: a local copy must be named
    kinds: ClassVar[tuple[str, ...]]  # instruction kinds, the splits a score is reported by
    size: ClassVar[int]  # problems in the whole set (an experiment's power preflight plans with it)
    timeout_s: ClassVar[int]  # the harness's time limit per program
    quoted: ClassVar[tuple[QuotedRow, ...]] = ()
    # The fields of ``reference_texts`` that are prose (compared as instructions); the rest are code.
    instruction_fields: ClassVar[tuple[str, ...]] = ()
    # Sampling settings the benchmark needs whatever the config's evaluation.sampling says
    # (Aider's whole files need room), overridden only by the benchmark's own settings.
    sampling_defaults: ClassVar[Mapping[str, Any]] = {}
    # A second try with the test output (Aider's pass_rate_2) is possible.
    retries: ClassVar[bool] = False

    def source(self, configured: str | None = None) -> str:
        """Where the problems come from: the environment variable, else the configured source, else the default."""
        chosen = os.environ.get(self.env_var) or configured or self.default_source
        if not chosen:
            raise BenchmarkError(f"{self.name}: no source; set {self.env_var} to a local copy of the benchmark")
        return chosen

    hub_split: ClassVar[str] = "test"
    hub_file: ClassVar[str | None] = None  # a JSON Lines file of the hub dataset to read instead of a split

    def load(self, configured: str | None = None) -> list[dict[str, Any]]:
        """Every problem, checked (``check``), in a stable order; each with a unique string ``id``."""
        chosen = self.source(configured)
        advice = f"set {self.env_var} to a local copy of the benchmark (a .jsonl or .parquet file)"
        if chosen.endswith((".jsonl", ".parquet")) and not Path(chosen).is_file():
            origin = f" (from {self.env_var})" if os.environ.get(self.env_var) else ""
            raise BenchmarkError(f"{self.name}: {chosen}{origin}: benchmark file not found; {advice}")
        rows = benchmark_rows(chosen, self.hub_split, advice, self.hub_file)
        problems = [self.check(row, where) for where, row in rows]
        if not problems:
            raise BenchmarkError(f"{self.name}: {chosen}: no problems")
        ids = [problem["id"] for problem in problems]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise BenchmarkError(f"{self.name}: {chosen}: problem id(s) {repeated} repeat")
        return sorted(problems, key=lambda problem: problem["order"])

    @abstractmethod
    def check(self, row: Any, where: str) -> dict[str, Any]:
        """A record as a problem (with ``id`` and a sortable ``order``), or a BenchmarkError naming ``where``."""

    @abstractmethod
    def request(self, problem: BenchmarkProblem, kind: str, family: str, sampling: Sampling, n: int) -> Request:
        """The request asking for ``n`` samples of ``problem`` in instruction ``kind`` and format ``family``."""

    @abstractmethod
    def program(self, problem: BenchmarkProblem, kind: str, family: str, answer: str) -> Program | None:
        """The program that tests a model's ``answer``; None when the answer is not well formed."""

    @abstractmethod
    def reference_programs(self, problem: BenchmarkProblem, kind: str) -> tuple[Program, Program]:
        """The oracle (the reference solution: must pass) and the anti-oracle (the unchanged input)."""

    @abstractmethod
    def reference_answers(self, problem: BenchmarkProblem, kind: str, family: str) -> tuple[str, str]:
        """The answers of a perfect model and of one that changes nothing, in format ``family``: their
        programs are the reference programs (the oracle and anti-oracle through the whole harness)."""

    @abstractmethod
    def reference_texts(self, problem: BenchmarkProblem) -> dict[str, str]:
        """Every text of the problem a training sample must not contain (decontamination), by field."""

    def retry_request(
        self, problem: BenchmarkProblem, kind: str, family: str, answer: str, test_output: str, sampling: Sampling
    ) -> Request:
        """The second try after a failed ``answer`` (``retries`` benchmarks): the conversation goes on
        with the test output."""
        raise BenchmarkError(f"{self.name}: no second try; set evaluation.benchmarks.{self.name}.tries: 1")

    def select(self, problems: Sequence[BenchmarkProblem], spec: int | Sequence[Any] | None) -> list[BenchmarkProblem]:
        """``None``: every problem; an int N: the first N (in the benchmark's order); a list: exactly those ids."""
        ordered = list(problems)
        if spec is None:
            return ordered
        where = f"evaluation.benchmarks.{self.name}.problems"
        if isinstance(spec, bool) or isinstance(spec, str):
            raise BenchmarkError(f"{where}: expected null, a count or a list of problem ids, got {spec!r}")
        if isinstance(spec, int):
            if not 1 <= spec <= len(ordered):
                raise BenchmarkError(f"{where}: a count must be between 1 and {len(ordered)}, got {spec}")
            return ordered[:spec]
        ids = list(spec)
        known = {problem["id"] for problem in ordered}
        unknown = [i for i in ids if i not in known]
        if unknown or not ids or len(set(ids)) != len(ids):
            example = ", ".join(repr(problem["id"]) for problem in ordered[:2])
            raise BenchmarkError(
                f"{where}: a list must name distinct problem ids (such as {example}); unknown: {unknown!r}"
            )
        wanted = set(ids)
        return [problem for problem in ordered if problem["id"] in wanted]

    def family(self, prompt_format: str) -> str:
        """The format family a model's ``prompt_format`` asks for: ``editforge`` for our own, the
        benchmark's harness for any harness format (``canitedit-*``)."""
        return "editforge" if prompt_format == "editforge" else "harness"

    def check_kind(self, kind: str) -> None:
        if kind not in self.kinds:
            raise BenchmarkError(f"{self.name}: instruction kind must be one of {', '.join(self.kinds)}, got {kind!r}")

    def check_family(self, family: str) -> None:
        if family not in FORMAT_FAMILIES:
            choices = ", ".join(FORMAT_FAMILIES)
            raise BenchmarkError(f"{self.name}: prompt format must be one of {choices}, got {family!r}")


def folder_program(files: Mapping[str, str], command: str, timeout_s: int) -> Program:
    """A program that writes ``files`` into its working folder and then runs ``command`` there (Python
    source run with that folder as its ``__main__``), so a benchmark whose tests are several files runs
    in the sandbox as one program. The files travel as JSON: no escaping rule of Python source matters."""
    payload = json.dumps(dict(files), sort_keys=True)
    source = (
        "import json, os, sys\n"
        f"files = json.loads({payload!r})\n"
        "for name, text in files.items():\n"
        "    folder = os.path.dirname(name)\n"
        "    if folder:\n"
        "        os.makedirs(folder, exist_ok=True)\n"
        "    with open(name, 'w', encoding='utf-8') as handle:\n"
        "        handle.write(text)\n"
        "sys.path.insert(0, os.getcwd())\n"
        f"{command}\n"
    )
    return Program(source=source, timeout_s=timeout_s)
