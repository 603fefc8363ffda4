"""The filter_shard stage: every triplet of one shard checked on its own, statically, then optionally run.

``run_filter_shard`` checks each triplet on its own (``filter_triplet``), then both of its programs
statically (``static_issues``: undefined names, missing imports, leftover markup, code left out; one
analyzer run per shard), then runs the optional execution checks: the post-edit program must run,
and, with ``generated_tests``, pass tests that a model writes for the edit
(``editforge.filtering.generated_tests``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from editforge.filtering.checks import TRIPLET_FIELDS, filter_triplet, is_kept, require_fields
from editforge.filtering.generated_tests import check_generated_tests
from editforge.filtering.static import static_issues
from editforge.records import PathLike, drop, read_jsonl, status_counts, write_jsonl
from editforge.sandbox import Isolation, Limits, run_many, select_isolation


def run_filter_shard(
    triplets_path: PathLike,
    out_path: PathLike,
    settings: Mapping[str, Any],
    *,
    tests_model: tuple[str, Mapping[str, Any]] | None = None,
    cache_dir: PathLike | None = None,
    sandbox: str = "auto",
) -> dict[str, int]:
    """Check every kept triplet of one shard; write all records; return status counts.

    Records the triplet stage dropped stay dropped. The static checks (``static_checks``, each on
    unless switched off) drop a triplet by its first issue and keep why in ``static_issue``. With
    ``execution_check`` the post-edit program of each triplet that passed the other checks is run
    in the sandbox and must exit cleanly. With ``generated_tests`` (off by default) a model then
    writes tests for each survivor (``check_generated_tests``); ``tests_model`` names it and gives
    its ``models:`` entry, and ``cache_dir`` is the LLM cache.
    """
    isolation = None
    if settings.get("execution_check", False) or settings.get("generated_tests", False):
        isolation = select_isolation(sandbox)  # before any model call: a refusal costs nothing
    records = list(read_jsonl(triplets_path))
    for record in records:
        if is_kept(record, triplets_path):
            require_fields(record, TRIPLET_FIELDS, triplets_path)
            reason = filter_triplet(record, settings)
            if reason is not None:
                drop(record, reason)
    passed = [r for r in records if r["status"] == "ok"]
    for record, issue in zip(passed, static_issues(passed, settings.get("static_checks"))):
        if issue is not None:
            drop(record, issue.reason)
            record["static_issue"] = issue.detail
    timeout_s = settings.get("execution_timeout_s", 10)
    if settings.get("execution_check", False):
        _check_execution([r for r in records if r["status"] == "ok"], timeout_s, isolation)
    if settings.get("generated_tests", False):
        if tests_model is None:
            raise ValueError("filtering.generated_tests is on but no model to write the tests was given")
        from editforge.backend import open_backend  # only this optional check talks to a model

        kept = [r for r in records if r["status"] == "ok"]
        if kept:
            with open_backend(tests_model[0], tests_model[1], cache_dir) as backend:
                check_generated_tests(
                    kept,
                    backend,
                    timeout_s=timeout_s,
                    max_tokens=settings.get("generated_tests_max_tokens", 1024),
                    isolation=isolation,
                )
    write_jsonl(out_path, records)
    return status_counts(records)


def _check_execution(records: list[dict[str, Any]], timeout_s: float, isolation: Isolation | None) -> None:
    limits = Limits(timeout_s=timeout_s)
    results = run_many([r["post_code"] for r in records], os.cpu_count() or 1, limits=limits, isolation=isolation)
    for record, result in zip(records, results):
        if result.outcome != "pass":
            drop(record, "post_code_fails_to_run")
