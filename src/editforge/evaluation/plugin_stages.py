"""The evaluation stages of a plug-in benchmark (HumanEvalFix, Aider's Exercism set): the reference
check, generation, execution, the optional second try, and scoring, each through the benchmark's
``Benchmark`` methods and the shared sandbox, pass@k, strict rule, exclusions and tables.

CanItEdit keeps its own stages (``stages``, ``preflight``): its coverage pass (ExcessCode) and
harness CSV are its own. Settings: ``timeout_s``, ``workers``, and optionally ``memory_mb``,
``sandbox`` and ``python``, as for CanItEdit.
"""

from __future__ import annotations

import json
import platform
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, cast

from editforge.backend import Backend, Completion, Request, open_backend
from editforge.evaluation.benchmarks.base import Benchmark, BenchmarkProblem, Program
from editforge.evaluation.preflight import REFERENCE_FAILURES, EvalPreflightError, failing_references, failure_cause
from editforge.evaluation.report import plugin_summary_markdown
from editforge.evaluation.scoring import Scores, check_ks, full_name, read_preflight, score_files
from editforge.evaluation.stages import DEFAULT_MEMORY_MB, completion_record, sampling_settings
from editforge.records import CompletionRecord, ExecutionRecord, PathLike, read_jsonl, write_json, write_jsonl
from editforge.sandbox import Isolation, Limits, SandboxResult, run_many, select_isolation

NOT_WELL_FORMED = "the answer is not well formed: it gives no program"


def _limits(settings: Mapping[str, Any]) -> Limits:
    return Limits(timeout_s=settings["timeout_s"], memory_mb=settings.get("memory_mb", DEFAULT_MEMORY_MB))


def _run(
    programs: Sequence[Program], settings: Mapping[str, Any], isolation: Isolation, desc: str
) -> list[SandboxResult]:
    return run_many(
        [program.source for program in programs],
        settings["workers"],
        desc=desc,
        limits=_limits(settings),
        isolation=isolation,
        python=settings.get("python"),
    )


def run_benchmark_preflight(
    bench: Benchmark,
    problems: Sequence[BenchmarkProblem],
    report_path: PathLike,
    excluded_path: PathLike,
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """The reference check before generation: every (problem, kind)'s oracle must pass (a failure is
    tried twice more), as CanItEdit's preflight; the anti-oracles that already pass are named
    (``anti_oracle_passes``: the score of a model that changes nothing). ``reference_failures``:
    ``stop`` (default) raises EvalPreflightError naming the problems; ``exclude`` leaves them out."""
    mode = settings.get("reference_failures", "stop")
    if mode not in REFERENCE_FAILURES:
        raise ValueError(f"evaluation.reference_failures must be stop or exclude, got {mode!r}")
    limits, isolation = _limits(settings), select_isolation(settings.get("sandbox", "auto"))
    pairs = [(problem, kind) for problem in problems for kind in bench.kinds]
    references = [bench.reference_programs(problem, kind) for problem, kind in pairs]
    oracles = [oracle.source for oracle, _ in references]
    failing = failing_references(oracles, settings, limits, isolation, f"{bench.name} references")
    anti = _run([anti_oracle for _, anti_oracle in references], settings, isolation, f"{bench.name} unchanged inputs")
    failures: dict[Any, dict[str, Any]] = {}
    for i, result in failing.items():
        problem, kind = pairs[i]
        failures.setdefault(
            problem["id"],
            {
                "problem_id": problem["id"],
                "full_name": full_name(problem),
                "reason": f"{kind}: {failure_cause(result, limits)}",
            },
        )
    report = {
        "benchmark": bench.name,
        "checked": len(problems),
        "isolation": isolation.describe(limits),
        "kernel": platform.release(),
        "failing": list(failures.values()),
        "excluded": list(failures.values()) if mode == "exclude" else [],
        "anti_oracle_passes": [
            {"problem_id": problem["id"], "kind": kind}
            for (problem, kind), result in zip(pairs, anti)
            if result.outcome == "pass"
        ],
    }
    write_json(report_path, report)
    write_json(excluded_path, {"excluded": report["excluded"]})
    if failures and mode == "stop":
        names = "; ".join(f"{f['full_name']} ({f['reason']})" for f in failures.values())
        raise EvalPreflightError(
            f"{bench.name} reference check: the reference solutions of {len(failures)} of {len(problems)} problems "
            f"fail in this environment: {names}; install what they need in the evaluation environment, or set "
            "evaluation.reference_failures: exclude to leave them out for every target"
        )
    return report


def run_benchmark_generate(
    bench: Benchmark,
    target: str,
    model_spec: Mapping[str, Any],
    problems: Sequence[BenchmarkProblem],
    settings: Mapping[str, Any],
    cache_dir: str | Path | None,
    out_path: PathLike,
    *,
    backend: Backend | None = None,
) -> dict[str, Any]:
    """Sample ``settings["samples"]`` answers per problem and instruction kind, in the format family the
    model's ``prompt_format`` asks for; write one CompletionRecord per sample (its ``completion`` is the
    answer) and ``<out_path without suffix>.usage.json``; return that usage report."""
    family = bench.family(model_spec.get("prompt_format", "editforge"))
    sampling, samples = sampling_settings(settings.get("sampling")), settings.get("samples")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"evaluation.benchmarks.{bench.name}.samples must be a positive integer, got {samples!r}")
    jobs = [(problem, kind) for problem in problems for kind in bench.kinds]
    requests = [bench.request(problem, kind, family, sampling, samples) for problem, kind in jobs]
    answers, usage = _ask(target, model_spec, cache_dir, backend, requests, f"{bench.title} {target}")
    records = [
        _record(target, problem, kind, index, completion)
        for (problem, kind), completions in zip(jobs, answers)
        for index, completion in enumerate(completions)
    ]
    return _write(out_path, records, {"target": target, "format_family": family, "requests": len(requests)}, usage)


def run_benchmark_retry(
    bench: Benchmark,
    target: str,
    model_spec: Mapping[str, Any],
    problems: Sequence[BenchmarkProblem],
    executions_path: PathLike,
    settings: Mapping[str, Any],
    cache_dir: str | Path | None,
    out_path: PathLike,
    *,
    backend: Backend | None = None,
) -> dict[str, Any]:
    """The second try of every sample whose first failed (Aider's ``pass_rate_2``): the conversation
    goes on with the test output (``Benchmark.retry_request``); one answer each, same sample index."""
    family = bench.family(model_spec.get("prompt_format", "editforge"))
    sampling = sampling_settings(settings.get("sampling"))
    by_id = {problem["id"]: problem for problem in problems}
    failed = [record for record in read_jsonl(executions_path) if record["outcome"] != "pass"]
    requests = [
        bench.retry_request(by_id[r["problem_id"]], r["kind"], family, r["raw"], r["stderr_tail"], sampling)
        for r in failed
    ]
    answers, usage = _ask(target, model_spec, cache_dir, backend, requests, f"{bench.title} {target} (second try)")
    records = [
        _record(target, by_id[r["problem_id"]], r["kind"], r["sample_index"], completions[0])
        for r, completions in zip(failed, answers)
    ]
    return _write(out_path, records, {"target": target, "format_family": family, "requests": len(requests)}, usage)


def _ask(
    target: str,
    model_spec: Mapping[str, Any],
    cache_dir: str | Path | None,
    backend: Backend | None,
    requests: Sequence[Request],
    desc: str,
) -> tuple[list[list[Completion]], dict[str, Any]]:
    """The backend's answers to ``requests`` (all in one ``generate`` call) and its usage."""
    with open_backend(target, model_spec, cache_dir) if backend is None else nullcontext(backend) as model:
        answers = model.generate(list(requests), desc=desc) if requests else []
        usage = model.usage.as_dict()
    if len(answers) != len(requests) or any(len(a) != r.n for a, r in zip(answers, requests)):
        raise RuntimeError(f"{target}: the backend returned the wrong number of completions")
    return answers, usage


def _record(target: str, problem: BenchmarkProblem, kind: str, index: int, completion: Completion) -> CompletionRecord:
    return CompletionRecord(
        target=target,
        problem_id=problem["id"],
        full_name=full_name(problem),
        kind=kind,
        change_kind=None,
        sample_index=index,
        completion="" if completion.error else completion.text,
        raw=completion.text,
        finish_reason=completion.finish_reason,
        error=completion.error,
    )


def _write(
    out_path: PathLike, records: list[CompletionRecord], about: dict[str, Any], usage: dict[str, Any]
) -> dict[str, Any]:
    """Write the records and the usage report beside them; return the report."""
    write_jsonl(out_path, cast(list[dict[str, Any]], records))
    report = {
        **about,
        "samples": len(records),
        "finish_reasons": dict(Counter(str(r["finish_reason"]) for r in records)),
        "usage": usage,
    }
    write_json(Path(out_path).with_suffix(".usage.json"), report)
    return report


def run_benchmark_execute(
    bench: Benchmark,
    completions_path: PathLike,
    problems: Sequence[BenchmarkProblem],
    out_path: PathLike,
    settings: Mapping[str, Any],
) -> dict[str, int]:
    """Run every answer's program (``Benchmark.program``) in the sandbox; write ExecutionRecords.

    ``settings["family"]``: the format family the answers were asked in. An answer that gives no
    program (not well formed) and a failed generation are not run: both fail. Returns outcome counts.
    """
    isolation, limits = select_isolation(settings.get("sandbox", "auto")), _limits(settings)
    by_id = {problem["id"]: problem for problem in problems}
    records = [completion_record(r, by_id, completions_path, i) for i, r in enumerate(read_jsonl(completions_path), 1)]
    programs = [
        None
        if r["error"] is not None
        else bench.program(by_id[r["problem_id"]], r["kind"], settings["family"], r["raw"])
        for r in records
    ]
    runnable = [program for program in programs if program is not None]
    results = iter(_run(runnable, settings, isolation, f"execute {bench.name} {Path(completions_path).parent.name}"))
    described = isolation.describe(limits)
    executions = []
    for record, program in zip(records, programs):
        if program is not None:
            result = next(results)
        else:
            why = f"generation failed: {record['error']}" if record["error"] is not None else NOT_WELL_FORMED
            result = SandboxResult("error" if record["error"] is not None else "fail", None, why, "", 0.0, False)
        executions.append(
            ExecutionRecord(
                **record,
                outcome=result.outcome,
                exit_code=result.exit_code,
                stderr_tail=result.stderr_tail,
                duration_s=result.duration_s,
                tests_finished=result.tests_finished,
                coverage=None,
                coverage_missing=None,
                isolation=described,
                well_formed=program is not None,
            )
        )
    write_jsonl(out_path, cast(list[dict[str, Any]], executions))
    return dict(Counter(e["outcome"] for e in executions))


def run_benchmark_score(
    bench: Benchmark,
    problems: Sequence[BenchmarkProblem],
    execution_paths: Sequence[PathLike],
    retry_paths: Sequence[PathLike],
    preflight: PathLike,
    out_dir: PathLike,
    ks: Sequence[int],
) -> Scores:
    """Score a plug-in benchmark's execution files (one per target; ``retry_paths``: the second tries,
    where the benchmark has them) and write per_problem.csv, summary.csv and summary.md to ``out_dir``."""
    ks = check_ks([1, *ks])
    scores = score_files(execution_paths, problems, ks, read_preflight(preflight), bench.kinds, retry_paths or None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scores.per_problem.write_csv(out / "per_problem.csv")
    scores.summary.write_csv(out / "summary.csv")
    passes = json.loads(Path(preflight).read_text(encoding="utf-8")).get("anti_oracle_passes", [])
    (out / "summary.md").write_text(plugin_summary_markdown(bench, scores, ks, passes), encoding="utf-8")
    return scores
