"""CanItEdit (105 problems, lazy and descriptive instructions) as a plug-in.

The loading, checks, prompts and extraction are those of ``evaluation.benchmark`` and
``evaluation.prompts`` (byte-exact with the CanItEdit harness); this module puts them behind
the ``Benchmark`` interface, so the registry, the reference check, decontamination and the
report treat CanItEdit as they treat every benchmark. Its workflow rules keep their own stages
(``evaluation.stages``): the coverage pass behind ExcessCode and the harness's CSV are CanItEdit's.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

from editforge.backend import Request, Sampling
from editforge.config import BENCHMARK_ENV
from editforge.evaluation.benchmark import Problem, check_problem, load_benchmark
from editforge.evaluation.benchmarks.base import Benchmark, BenchmarkProblem, Program, QuotedRow
from editforge.evaluation.prompts import PROMPT_FORMATS, build_request, postprocess
from editforge.evaluation.sources import BenchmarkError
from editforge.evaluation.summary import PAPER_ROWS, QUOTED_SOURCE
from editforge.records import STYLES, Style

# The harness format a ``harness`` family request uses: the paper-era chat prompt.
HARNESS_FORMAT = "canitedit-chat"


def _quoted(model: str, lazy: float | None, descriptive: float | None, overall: float) -> QuotedRow:
    scores = {"lazy": lazy, "descriptive": descriptive, "overall": overall}
    return QuotedRow(
        model=model,
        scores={split: value for split, value in scores.items() if value is not None},
        source=QUOTED_SOURCE,
        caveat="all 105 problems, 20 samples each",
    )


class CanItEdit(Benchmark):
    """CanItEdit: edit ``before`` as the instruction (lazy or descriptive) asks; the hidden tests follow.

    Families: ``editforge``, or any CanItEdit harness format (``prompts.PROMPT_FORMATS``); ``harness``
    is the paper-era chat format. A sample's program is the extracted code, a newline and the tests.
    """

    name: ClassVar[str] = "canitedit"
    title: ClassVar[str] = "CanItEdit"
    env_var: ClassVar[str] = BENCHMARK_ENV
    default_source: ClassVar[str | None] = "nuprl/CanItEdit"
    kinds: ClassVar[tuple[str, ...]] = STYLES
    size: ClassVar[int] = 105
    timeout_s: ClassVar[int] = 15  # the default of the config's evaluation.timeout_s, which CanItEdit's rules use
    instruction_fields: ClassVar[tuple[str, ...]] = ("instruction_lazy", "instruction_descriptive")
    quoted: ClassVar[tuple[QuotedRow, ...]] = tuple(_quoted(*row) for row in PAPER_ROWS)

    def load(self, configured: str | None = None) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], load_benchmark(self.source(configured)))

    def check(self, row: Any, where: str) -> dict[str, Any]:
        return cast(dict[str, Any], check_problem(row, where))

    def family(self, prompt_format: str) -> str:
        return prompt_format  # every CanItEdit format is its own

    def check_family(self, family: str) -> None:
        if family not in (*PROMPT_FORMATS, "harness"):
            raise BenchmarkError(f"canitedit: prompt format must be one of {', '.join(PROMPT_FORMATS)}, got {family!r}")

    def _format(self, family: str) -> str:
        self.check_family(family)
        return HARNESS_FORMAT if family == "harness" else family

    def request(self, problem: BenchmarkProblem, kind: str, family: str, sampling: Sampling, n: int) -> Request:
        self.check_kind(kind)
        return build_request(cast(Problem, problem), cast(Style, kind), self._format(family), sampling, n)

    def program(self, problem: BenchmarkProblem, kind: str, family: str, answer: str) -> Program | None:
        self.check_kind(kind)
        code = postprocess(answer, self._format(family))
        return self.assemble(problem, code) if code.strip() else None

    def assemble(self, problem: BenchmarkProblem, code: str) -> Program:
        """The harness's program: the code, a newline, the tests."""
        return Program(source=code + "\n" + problem["tests"], timeout_s=self.timeout_s)

    def reference_programs(self, problem: BenchmarkProblem, kind: str) -> tuple[Program, Program]:
        self.check_kind(kind)
        return self.assemble(problem, problem["after"]), self.assemble(problem, problem["before"])

    def reference_answers(self, problem: BenchmarkProblem, kind: str, family: str) -> tuple[str, str]:
        """A chat answer holds the program in a fence; a direct continuation is the bare program (as the
        direct format's stop strings leave it). The chat formats' extraction ends the code with a newline,
        as the harness's does, so their programs have one blank line more before the tests."""
        self.check_kind(kind)
        if self._format(family).startswith("canitedit-direct"):
            return problem["after"], problem["before"]
        return f"```python\n{problem['after']}\n```", f"```python\n{problem['before']}\n```"

    def reference_texts(self, problem: BenchmarkProblem) -> dict[str, str]:
        return {field: problem[field] for field in ("before", "after", *self.instruction_fields)}
