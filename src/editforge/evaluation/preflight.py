"""The evaluation preflight: before any generation, each selected problem's reference
``after`` program runs with its tests in the evaluation sandbox.

A problem whose reference fails says nothing about a model (a package missing
from this environment, say vllm for problem 78), and nothing a completion prints
may decide that. So the environment is judged here, once, from the references
alone: by default the run stops with one line naming the problems and the cause;
with ``evaluation.reference_failures: exclude`` they are left out for every target
alike, and ``preflight.json`` (read by generation and scoring) names them. Two
references compare timings (47_merge_sort, 60_unique_number), so a reference that
fails is run twice more and counts as failing only if it fails every time. The
sandbox's isolation is checked here too, before anything is paid for.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from typing import Any

from editforge.evaluation.benchmark import Problem
from editforge.records import PathLike, write_json
from editforge.sandbox import Isolation, Limits, SandboxResult, run_many, select_isolation

REFERENCE_FAILURES = ("stop", "exclude")
TRIES = 3  # a reference must fail this many runs in a row to count as failing


class EvalPreflightError(RuntimeError):
    """Reference programs fail in this environment, and the config says to stop."""


def run_preflight(
    problems: Sequence[Problem],
    report_path: PathLike,
    excluded_path: PathLike,
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """Run the references of ``problems``; write the report (``preflight.json``) and the
    excluded problems alone (``excluded.json``, which generation reads); return the report.

    ``settings``: ``timeout_s``, ``workers``, and optionally ``memory_mb``,
    ``sandbox``, ``python`` (the interpreter that runs programs) and
    ``reference_failures`` (``stop``, the default, or ``exclude``).
    Raises EvalPreflightError when references fail and the setting is ``stop``.
    """
    mode = settings.get("reference_failures", "stop")
    if mode not in REFERENCE_FAILURES:
        raise ValueError(f"evaluation.reference_failures must be stop or exclude, got {mode!r}")
    isolation = select_isolation(settings.get("sandbox", "auto"))
    limits = Limits(timeout_s=settings["timeout_s"], memory_mb=settings.get("memory_mb", 4096))
    programs = [p["after"] + "\n" + p["tests"] for p in problems]
    by_index = failing_references(programs, settings, limits, isolation, "preflight")
    failing = {problems[i]["id"]: result for i, result in by_index.items()}
    failures = [
        {"problem_id": p["id"], "full_name": p["full_name"], "reason": failure_cause(failing[p["id"]], limits)}
        for p in problems
        if p["id"] in failing
    ]
    report = {
        "checked": len(problems),
        "isolation": isolation.describe(limits),
        "kernel": platform.release(),  # the per-run process cap needs Linux 5.14
        "failing": failures,
        "excluded": failures if mode == "exclude" else [],
    }
    write_json(report_path, report)
    write_json(excluded_path, {"excluded": report["excluded"]})
    if failures and mode == "stop":
        names = "; ".join(f"{f['full_name']} ({f['reason']})" for f in failures)
        raise EvalPreflightError(
            f"evaluation preflight: the reference programs of {len(failures)} of {len(problems)} problems fail "
            f"in this environment: {names}; install what they need in the evaluation environment "
            "(requirements-eval.txt; vllm on GPU nodes only), or set evaluation.reference_failures: exclude "
            "to leave them out for every target"
        )
    return report


def failing_references(
    programs: Sequence[str], settings: Mapping[str, Any], limits: Limits, isolation: Isolation, desc: str
) -> dict[int, SandboxResult]:
    """The reference programs that fail every one of ``TRIES`` runs (a failure is run again: two of
    CanItEdit's references compare timings), by their index in ``programs``."""
    failing: dict[int, SandboxResult] = {}
    pending = list(range(len(programs)))
    for _ in range(TRIES):
        results = run_many(
            [programs[i] for i in pending],
            settings["workers"],
            desc=desc,
            limits=limits,
            isolation=isolation,
            python=settings.get("python"),
        )
        failing = {i: result for i, result in zip(pending, results) if result.outcome != "pass"}
        pending = list(failing)
        if not pending:
            break
    return failing


def failure_cause(result: SandboxResult, limits: Limits) -> str:
    """A reference's failure in a few words: the last line of its stderr, or how it ended."""
    if result.outcome == "timeout":
        return f"timed out after {limits.timeout_s:g} s" if result.exit_code is None else "CPU time limit"
    lines = [line.strip() for line in result.stderr_tail.splitlines() if line.strip()]
    if lines:
        return lines[-1][:200]
    if result.exit_code is not None and result.exit_code < 0:
        return f"killed by signal {-result.exit_code}"
    return f"exit status {result.exit_code}"

