"""The sandbox's verdicts: outcomes, limits, the strict rule, coverage mode, settings and a worker that dies."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from editforge.evaluation.harness import parse_coverage_report
from editforge.sandbox import (
    Isolation,
    Limits,
    SandboxError,
    SandboxResult,
    run_many,
    run_program,
    select_isolation,
)
from editforge.sandbox.types import NONE, ROOT_UID_ENV, TAIL_BYTES
from editforge.sandbox.zygote import root_uid

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux")


def _run(source: str, iso: Isolation | None = None, **limits: Any) -> SandboxResult:
    return run_program(textwrap.dedent(source), limits=Limits(**limits), isolation=iso)


def test_exit_zero_passes_and_output_is_kept() -> None:
    result = _run("print('hello from the sandbox')")
    assert (result.outcome, result.exit_code, result.tests_finished) == ("pass", 0, True)
    assert result.stdout_tail == "hello from the sandbox\n"
    assert 0 < result.duration_s < 15


def test_exception_and_exit_status_fail() -> None:
    failed = _run("assert 1 + 1 == 3, 'arithmetic'")
    assert (failed.outcome, failed.exit_code, failed.tests_finished) == ("fail", 1, False)
    assert "AssertionError: arithmetic" in failed.stderr_tail
    assert _run("import sys; sys.exit(3)").exit_code == 3
    syntax = _run("def broken(:\n    pass")
    assert syntax.outcome == "fail" and "SyntaxError" in syntax.stderr_tail


def test_a_printed_missing_module_is_a_plain_failure() -> None:
    # Nothing a program prints changes how it is counted.
    source = "import sys\nsys.stderr.write(\"ModuleNotFoundError: No module named 'numpy'\\n\")\nsys.exit(1)"
    assert _run(source).outcome == "fail"
    assert _run("import package_that_is_not_installed_anywhere").outcome == "fail"


def test_killed_by_a_signal_is_an_error() -> None:
    result = _run("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert (result.outcome, result.exit_code) == ("error", -11)


def test_outputs_keep_only_their_last_2_kb() -> None:
    result = _run("print('x' * 100_000); print('THE END')")
    assert result.outcome == "pass"
    assert len(result.stdout_tail.encode()) <= TAIL_BYTES
    assert result.stdout_tail.endswith("THE END\n")


def test_cpu_limit_counts_as_timeout() -> None:
    # The CPU limit, not the wall clock, ends it: SIGXCPU (exit code -24), where the wall
    # clock would leave no exit code. A wall clock far beyond the CPU limit keeps that so
    # however loaded the machine is.
    result = _run("while True: pass", timeout_s=60, cpu_s=1)
    assert (result.outcome, result.exit_code) == ("timeout", -signal.SIGXCPU)
    assert result.duration_s < 60


@pytest.mark.parametrize(
    "early_exit",
    [
        "import sys; sys.exit(0)",
        "import os; os._exit(0)",
        "import atexit, os; atexit.register(lambda: os._exit(0))",
        "import sys, os; sys.excepthook = lambda *a: os._exit(0)",
    ],
    ids=["sys.exit", "os._exit", "atexit", "excepthook"],
)
def test_tests_that_never_finish_pass_the_exit_status_but_not_the_strict_rule(early_exit: str) -> None:
    result = _run(f"def f():\n    return 1\n{early_exit}\nassert f() == 2, 'the test fails'\n")
    assert (result.outcome, result.exit_code) == ("pass", 0)
    assert result.tests_finished is False


def test_writing_to_the_channel_does_not_fake_finished_tests() -> None:
    forged = (
        "import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'\\0' * 16)\n"
        "    except OSError:\n        pass\nos._exit(0)"
    )
    result = _run(forged)
    assert (result.outcome, result.tests_finished) == ("pass", False)


def test_coverage_mode_reports_the_harness_table() -> None:
    source = "def used(x):\n    return x + 1\n\ndef unused(x):\n    y = x * 2\n    return y\n\nassert used(1) == 2\n"
    result = run_program(source, mode="coverage")
    assert result.outcome == "pass" and result.tests_finished
    assert "Missing" in result.report
    assert parse_coverage_report(result.report) == (67, [5, 6])


def test_coverage_table_parsing() -> None:
    table = "Name    Stmts   Miss  Cover   Missing\n----\nprog.py    20      6    70%   3-5, 9, 12-13\n"
    assert parse_coverage_report(table) == (70, [3, 4, 5, 9, 12, 13])
    assert parse_coverage_report("Name Stmts Miss Cover\n----\nprog.py 3 0 100%\n") == (100, [])
    assert parse_coverage_report("No data to report.") is None


def test_programs_can_run_in_another_interpreter() -> None:
    """The harness's pinned environment lives in an interpreter of its own."""
    other = "/usr/bin/python3"
    if not os.path.exists(other) or os.path.realpath(other) == os.path.realpath(sys.executable):
        pytest.skip("no second interpreter here")
    result = run_program("import sys; print(sys.prefix, sys.version_info >= (3, 8))", python=other)
    assert (result.outcome, result.stdout_tail) == ("pass", "/usr True\n")
    assert run_many(["import sys; print(sys.prefix)"], python=other)[0].stdout_tail == "/usr\n"
    with pytest.raises(SandboxError, match="the interpreter '/nonexistent/python3' for programs is not an executable"):
        run_program("", python="/nonexistent/python3")


def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="timeout_s must be positive"):
        Limits(timeout_s=0)
    with pytest.raises(ValueError, match="memory_mb must be a positive integer"):
        Limits(memory_mb=0)
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        run_many(["pass"], workers=0)
    with pytest.raises(SandboxError, match="sandbox must be one of auto, userns, bwrap, none, got 'docker'"):
        select_isolation("docker")
    monkeypatch.setenv(ROOT_UID_ENV, "0")
    with pytest.raises(SandboxError, match="must be a non-root uid"):
        root_uid()


def test_run_many_keeps_order_and_runs_duplicates_once() -> None:
    programs = ["print(1)", "import sys; sys.exit(2)", "print(1)", "print(3)"]
    results = run_many(programs, workers=2)
    assert [r.outcome for r in results] == ["pass", "fail", "pass", "pass"]
    assert [r.stdout_tail for r in results] == ["1\n", "", "1\n", "3\n"]
    assert results[0] is results[2]  # one run, shared


def test_no_isolation_must_be_named_and_says_so() -> None:
    iso = select_isolation("none")
    assert iso == NONE
    limits = Limits(timeout_s=5)
    assert iso.describe(limits).startswith("none (NOT isolated)")
    result = _run("import os; print(os.path.basename(os.getcwd()).startswith('editforge-sandbox-'))", iso)
    assert (result.outcome, result.stdout_tail) == ("pass", "True\n")


def test_the_description_names_the_mechanism_namespaces_and_limits() -> None:
    line = select_isolation().describe(Limits(timeout_s=15, memory_mb=4096))
    assert line.startswith(f"{select_isolation().mechanism}({','.join(select_isolation().namespaces)}) ")
    for part in ("timeout=15s", "cpu=16s", "memory=4096MB", "processes=64", "file=256MB", "open_files=1024"):
        assert part in line


def _processes() -> dict[int, tuple[int, str, bytes]]:
    """Every live process here: pid -> (parent pid, state, command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            found[int(entry.name)] = (int(fields[1]), fields[0], (entry / "cmdline").read_bytes())
        except (OSError, IndexError, ValueError):
            continue  # it ended meanwhile
    return found


def _programs_marked(mark: bytes) -> dict[int, int]:
    """Live runners whose limits carry ``mark`` (a run's own open-files limit): pid -> the pid of our child above it."""
    table = _processes()
    found = {}
    for pid, (_, state, cmdline) in table.items():
        if mark in cmdline and state != "Z":
            ancestor = pid
            while ancestor in table and table[ancestor][0] not in (os.getpid(), 0, 1):
                ancestor = table[ancestor][0]
            found[pid] = ancestor
    return found


@pytest.mark.parametrize("setting", ["userns", "none"])  # the mechanisms that run programs through a zygote
def test_a_worker_killed_mid_program_ends_that_run_with_an_error_and_the_next_run_gets_a_new_one(setting: str) -> None:
    try:
        iso = select_isolation(setting)
    except SandboxError as err:
        pytest.skip(f"user namespaces do not work here: {err}")
    open_files = 900 + uuid.uuid4().int % 100  # marks this run's program among the host's processes
    mark = f"RLIMIT_NOFILE:{open_files}:{open_files}".encode()
    limits = Limits(timeout_s=120, open_files=open_files)
    with ThreadPoolExecutor(max_workers=1) as worker:  # one thread, so one zygote: killed, then replaced
        running = worker.submit(run_program, "import time\ntime.sleep(120)", limits=limits, isolation=iso)
        deadline = time.monotonic() + 60
        while not (programs := _programs_marked(mark)) and time.monotonic() < deadline and not running.done():
            time.sleep(0.05)
        assert len(programs) == 1, (programs, running.done() and running.result())
        (zygote,) = programs.values()
        assert b"-I\0-S\0-c\0" in _processes()[zygote][2], "the process above the program is not a zygote"
        os.kill(zygote, signal.SIGKILL)
        # The run ends with an error at once, not at its wall clock (120 s) or the backstop beyond it.
        error = running.exception(timeout=60)
        assert isinstance(error, SandboxError), error
        assert str(error) == "the sandbox's worker process died (exit status -9)"
        with pytest.raises(ChildProcessError):
            os.waitpid(zygote, os.WNOHANG)  # reaped by the sandbox, not left a zombie
        deadline = time.monotonic() + 30
        while _programs_marked(mark) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _programs_marked(mark) == {}, "the program outlived its worker"
        after = worker.submit(run_program, "print('after')", limits=limits, isolation=iso).result(timeout=120)
    assert (after.outcome, after.stdout_tail) == ("pass", "after\n")
