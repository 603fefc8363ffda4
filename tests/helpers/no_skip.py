"""A pytest plugin: with ``EDITFORGE_NO_SKIP=1`` (``.ci/run`` sets it) a test that would be skipped fails
instead, with the skip's own reason.

CI must run the whole suite, so a missing benchmark copy, tool or wheel shows up as a failure naming
it rather than as a quiet "skipped" and exit 0. It acts on the report, so it catches a skip from a
test, a fixture (however early it runs) or a whole module alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

NO_SKIP = os.environ.get("EDITFORGE_NO_SKIP") == "1"


def _failed_instead(report: pytest.TestReport | pytest.CollectReport) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    report.outcome = "failed"
    report.longrepr = f"skipped, and EDITFORGE_NO_SKIP=1 forbids skipping: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if NO_SKIP and report.skipped and not hasattr(report, "wasxfail"):
        _failed_instead(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if NO_SKIP and report.skipped:
        _failed_instead(report)
