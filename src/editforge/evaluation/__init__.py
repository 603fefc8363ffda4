"""Evaluation on CanItEdit: load the benchmark, prompt a model, run the edits
against the hidden tests in the sandbox, and score pass@k.

Modules: ``benchmark`` (loading, checking, selecting problems), ``prompts``
(prompt formats and post-processing), ``stages`` (generate and execute) and
``scoring`` (pass@k, the report files and the chart).
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
from editforge.evaluation.prompts import (
    PROMPT_FORMATS,
    PromptFormat,
    build_request,
    first_fenced_block,
    postprocess,
)
from editforge.evaluation.scoring import PAPER_ROWS, Scores, pass_at_k, run_score, score
from editforge.evaluation.stages import run_execute, run_generate

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
