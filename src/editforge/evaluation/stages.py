"""The generation and execution stages of the evaluation."""

from __future__ import annotations

import functools
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, cast

from editforge.backend import Backend, Sampling, open_backend
from editforge.evaluation.benchmark import Problem
from editforge.evaluation.harness import parse_coverage_report
from editforge.evaluation.prompts import PROMPT_FORMATS, build_request, postprocess
from editforge.records import (
    STYLES,
    CompletionRecord,
    ExecutionRecord,
    PathLike,
    RecordError,
    read_jsonl,
    write_json,
    write_jsonl,
)
from editforge.sandbox import Limits, SandboxError, SandboxResult, run_many, select_isolation

DEFAULT_MEMORY_MB = 4096
COVERAGE_TIMEOUT_S = 60  # the harness's coverage pass


def run_generate(
    target: str,
    model_spec: Mapping[str, Any],
    problems: Sequence[Problem],
    settings: Mapping[str, Any],
    cache_dir: str | Path | None,
    out_path: PathLike,
    *,
    backend: Backend | None = None,
) -> dict[str, Any]:
    """Sample ``settings["samples"]`` edits per problem and instruction kind; write them.

    ``settings``: ``samples``, ``sampling: {temperature, top_p, max_tokens}`` and
    optionally ``prompt_format`` (else the model spec's, else "editforge"). All
    requests go to the backend in one ``generate`` call. Writes one
    CompletionRecord per sample to ``out_path`` and the usage to
    ``<out_path without suffix>.usage.json``; returns the usage. ``backend``
    replaces the one ``open_backend`` would build (tests).
    """
    fmt = settings.get("prompt_format") or model_spec.get("prompt_format", "editforge")
    if fmt not in PROMPT_FORMATS:
        raise ValueError(f"{target}: unknown prompt_format {fmt!r}; expected one of {', '.join(PROMPT_FORMATS)}")
    samples = settings.get("samples")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"evaluation.samples must be a positive integer, got {samples!r}")
    sampling = sampling_settings(settings.get("sampling"))
    jobs = [(problem, kind) for problem in problems for kind in STYLES]
    requests = [build_request(problem, kind, fmt, sampling, samples) for problem, kind in jobs]
    with open_backend(target, model_spec, cache_dir) if backend is None else nullcontext(backend) as model:
        answers = model.generate(requests, desc=f"CanItEdit {target}")
        usage = model.usage.as_dict()
    if len(answers) != len(requests) or any(len(a) != samples for a in answers):
        raise RuntimeError(f"{target}: the backend returned the wrong number of completions")
    records: list[CompletionRecord] = []
    for (problem, kind), completions in zip(jobs, answers):
        for index, completion in enumerate(completions):
            records.append(
                CompletionRecord(
                    target=target,
                    problem_id=problem["id"],
                    full_name=problem["full_name"],
                    kind=kind,
                    change_kind=problem["taxonomy"]["change_kind"],
                    sample_index=index,
                    completion="" if completion.error else postprocess(completion.text, fmt),
                    raw=completion.text,
                    finish_reason=completion.finish_reason,
                    error=completion.error,
                )
            )
    write_jsonl(out_path, cast(list[dict[str, Any]], records))
    report = {
        "target": target,
        "prompt_format": fmt,
        "sampling": {"temperature": sampling.temperature, "top_p": sampling.top_p, "max_tokens": sampling.max_tokens},
        "problems": len(problems),
        "requests": len(requests),
        "samples": len(records),
        "finish_reasons": dict(Counter(str(r["finish_reason"]) for r in records)),
        "empty_programs": sum(1 for r in records if not r["completion"].strip()),
        "usage": usage,
    }
    write_json(Path(out_path).with_suffix(".usage.json"), report)
    return report


def run_execute(
    completions_path: PathLike,
    problems: Sequence[Problem],
    out_path: PathLike,
    settings: Mapping[str, Any],
) -> dict[str, int]:
    """Run every completion with its problem's tests in the sandbox; write ExecutionRecords.

    The program is ``completion + "\n" + tests``, as in the harness; identical
    programs run once. A sample whose generation failed is not run: its outcome
    is ``error``. Each program that passes is run again under coverage.py (60 s,
    as the harness's coverage pass) for ExcessCode. ``settings``: ``timeout_s``,
    ``workers``, and optionally ``memory_mb``, ``sandbox`` (the config's
    setting, ``auto`` by default) and ``python`` (the interpreter that runs the
    programs; default: this one). The isolation is checked before anything
    runs, and every record names the isolation in force. Returns the count of
    each outcome.
    """
    isolation = select_isolation(settings.get("sandbox", "auto"))
    python = settings.get("python") or sys.executable
    if subprocess.run([python, "-c", "import coverage"], capture_output=True).returncode != 0:
        raise SandboxError(f"coverage.py is not installed for {python}; pip install coverage (ExcessCode needs it)")
    memory_mb = settings.get("memory_mb", DEFAULT_MEMORY_MB)
    limits = Limits(timeout_s=settings["timeout_s"], memory_mb=memory_mb)
    by_id = {problem["id"]: problem for problem in problems}
    records = [completion_record(r, by_id, completions_path, i) for i, r in enumerate(read_jsonl(completions_path), 1)]
    runnable = [r for r in records if r["error"] is None]
    programs = [r["completion"] + "\n" + by_id[r["problem_id"]]["tests"] for r in runnable]
    label = Path(completions_path).parent.name
    run = functools.partial(run_many, workers=settings["workers"], isolation=isolation, python=python)
    results = run(programs, desc=f"execute {label}", limits=limits)
    passed = [program for program, result in zip(programs, results) if result.outcome == "pass"]
    coverage_limits = Limits(timeout_s=COVERAGE_TIMEOUT_S, memory_mb=memory_mb)
    covered = run(passed, desc=f"coverage {label}", limits=coverage_limits, mode="coverage")
    coverage = {program: _coverage(result) for program, result in zip(passed, covered)}
    described = isolation.describe(limits)
    outcomes = iter(zip(programs, results))
    executions: list[ExecutionRecord] = []
    for record in records:
        if record["error"] is not None:
            failed = SandboxResult("error", None, f"generation failed: {record['error']}", "", 0.0, False)
            executions.append(_execution(record, failed, (None, None), described))
            continue
        program, result = next(outcomes)
        executions.append(_execution(record, result, coverage.get(program, (None, None)), described))
    write_jsonl(out_path, cast(list[dict[str, Any]], executions))
    return dict(Counter(e["outcome"] for e in executions))


def _coverage(result: SandboxResult) -> tuple[int | None, list[int] | None]:
    """(percent, missing lines) of a coverage run; (None, None) where it failed, as in the harness."""
    parsed = parse_coverage_report(result.report) if result.outcome == "pass" else None
    return parsed if parsed is not None else (None, None)


def _execution(
    record: CompletionRecord,
    result: SandboxResult,
    coverage: tuple[int | None, list[int] | None],
    isolation: str,
) -> ExecutionRecord:
    return ExecutionRecord(
        **record,
        outcome=result.outcome,
        exit_code=result.exit_code,
        stderr_tail=result.stderr_tail,
        duration_s=result.duration_s,
        tests_finished=result.tests_finished,
        coverage=coverage[0],
        coverage_missing=coverage[1],
        isolation=isolation,
    )


def sampling_settings(values: Any) -> Sampling:
    if not isinstance(values, Mapping):
        raise ValueError(
            f"evaluation.sampling must be a mapping with temperature, top_p and max_tokens, got {values!r}"
        )
    missing = [key for key in ("temperature", "top_p", "max_tokens") if key not in values]
    if missing:
        raise ValueError(f"evaluation.sampling lacks {', '.join(missing)}")
    return Sampling(
        temperature=float(values["temperature"]), top_p=float(values["top_p"]), max_tokens=int(values["max_tokens"])
    )


def completion_record(
    record: dict[str, Any], by_id: Mapping[int, Problem], path: PathLike, number: int
) -> CompletionRecord:
    missing = [key for key in CompletionRecord.__annotations__ if key not in record]
    if missing:
        raise RecordError(f"{path}: record {number} lacks {', '.join(missing)}")
    if record["problem_id"] not in by_id:
        raise RecordError(f"{path}: record {number} is for problem {record['problem_id']!r}, which is not selected")
    return cast(CompletionRecord, {key: record[key] for key in CompletionRecord.__annotations__})
