"""Evaluation on CanItEdit, HumanEvalFix and Aider's Exercism set: load a benchmark, prompt a
model, run the answers against the hidden tests in the sandbox, and score pass@k.

- ``benchmarks/``: every benchmark as a plug-in of one interface, and the registry
- ``benchmark``: loading, checking and selecting CanItEdit's problems
- ``prompts``: CanItEdit's prompt formats and post-processing
- ``preflight``: CanItEdit's reference programs judge the environment before any generation
- ``stages``: CanItEdit's generate and execute (with the coverage pass)
- ``plugin_stages``: the other benchmarks' reference check, generate, execute, second try, score
- ``harness``: CanItEdit's harness's copied rules (pass@k, ExcessCode's term, the coverage report)
- ``scoring``: execution records to scores, and the report files
- ``frames``: the per-problem, summary and harness tables
- ``summary``: CanItEdit's summary.md, the shared sentences, the pass@1 chart, the paper's rows
- ``report``: every benchmark in one report; a plug-in benchmark's summary.md
"""

from editforge.evaluation.benchmark import (
    BENCHMARK_ENV,
    CHANGE_KINDS,
    BenchmarkError,
    Problem,
    Taxonomy,
    check_problem,
    load_benchmark,
    required_modules,
    select_problems,
)
from editforge.evaluation.harness import pass_at_k
from editforge.evaluation.prompts import (
    PROMPT_FORMATS,
    PromptFormat,
    build_request,
    first_fenced_block,
    postprocess,
)
from editforge.evaluation.scoring import Scores, run_score, score
from editforge.evaluation.stages import run_execute, run_generate
from editforge.evaluation.summary import PAPER_ROWS

__all__ = [
    "BENCHMARK_ENV",
    "CHANGE_KINDS",
    "PAPER_ROWS",
    "PROMPT_FORMATS",
    "BenchmarkError",
    "Problem",
    "PromptFormat",
    "Scores",
    "Taxonomy",
    "build_request",
    "check_problem",
    "first_fenced_block",
    "load_benchmark",
    "pass_at_k",
    "postprocess",
    "required_modules",
    "run_execute",
    "run_generate",
    "run_score",
    "score",
    "select_problems",
]
