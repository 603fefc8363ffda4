"""Evaluation on CanItEdit: load the benchmark, prompt a model, run the edits
against the hidden tests in the sandbox, and score pass@k.

- ``benchmark``: loading, checking and selecting problems
- ``prompts``: prompt formats and post-processing
- ``preflight``: the reference programs judge the environment before any generation
- ``stages``: generate and execute
- ``harness``: the harness's copied rules (pass@k, ExcessCode's term, the coverage report)
- ``scoring``: execution records to scores, and the report files
- ``frames``: the per-problem, summary and harness tables
- ``summary``: summary.md, the shared sentences, the pass@1 chart, the paper's rows
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
