"""Running programs: ``run_program``, ``run_many``, the limits, the runner and the outcome rules.

Limits, on each of the program's processes: address space (``memory_mb``, 4 GiB
by default as in EvalPlus), CPU time, processes (``max_processes``, counted per
run), file size, open files, no core files; the wall clock (``timeout_s``).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import IO, Literal

from tqdm import tqdm

from editforge.sandbox.bwrap import run_bwrap
from editforge.sandbox.isolation import select_isolation
from editforge.sandbox.types import (
    CHANNEL_FD,
    SETUP_EXIT,
    SETUP_MARK,
    TAIL_BYTES,
    TOKEN_FD,
    WORKDIR,
    Isolation,
    Limits,
    Outcome,
    SandboxResult,
    program_source,
)
from editforge.sandbox.zygote import program_interpreter, zygote


def run_program(
    source: str,
    *,
    limits: Limits | None = None,
    isolation: Isolation | None = None,
    mode: Literal["run", "coverage"] = "run",
    python: str | None = None,
) -> SandboxResult:
    """Run ``source`` as a Python program in the sandbox and classify the result.

    ``isolation`` defaults to ``select_isolation("auto")``; ``mode="coverage"``
    runs it under coverage.py and returns ``coverage report -m``'s table in
    ``report``. ``python``: the interpreter that runs it (default: this one), such
    as one with the benchmark harness's pinned packages.

    Each program runs as ``python -c RUNNER <mode> <limits> <channel fd> <token fd>``
    (``programs/runner.py``) in its directory, with the program in ``prog.py``. The
    runner sets the limits, reads its token from a pipe, executes the program as
    ``__main__`` (as ``python prog.py`` would, with its ``__file__``) and, only when
    the program's code ran to its end without raising or exiting, writes the token
    to a channel that the caller reads. That is ``tests_finished``: an early
    ``sys.exit(0)``, ``os._exit(0)``, an ``atexit`` handler or an exit-0
    ``sys.excepthook`` leaves it false while the exit status says pass. It guards
    against exits, not against a program that goes looking for the token in the
    runner's memory. Mode ``coverage`` also reports ``coverage report -m``'s table.
    """
    limits = limits or Limits()
    iso = isolation or select_isolation()
    interpreter = program_interpreter(python or sys.executable)
    token = os.urandom(16)
    argv = [interpreter.executable, "-c", program_source("runner.py"), mode, _rlimit_argument(limits)]
    channel_read, channel_write = os.pipe()
    os.set_blocking(channel_read, False)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            if iso.mechanism == "bwrap":
                status, timed_out, seconds = run_bwrap(
                    source, argv, token, limits, (out, err, channel_write), interpreter
                )
            else:
                with _workdir(iso) as workdir:
                    run = {
                        "source": source.encode("utf-8", errors="surrogateescape"),
                        "token": token,
                        "argv": [*argv, str(CHANNEL_FD), str(TOKEN_FD)],
                        "workdir": workdir,
                        "tmpfs_mb": limits.tmpfs_mb,
                        "timeout_s": limits.timeout_s,
                    }
                    fds = (out.fileno(), err.fileno(), channel_write)
                    status, timed_out, seconds = zygote(iso, interpreter).run(run, fds, limits.timeout_s)
        finally:
            os.close(channel_write)
        reported = _drain(channel_read)
        stdout, stderr = _tail(out), _tail(err)
    exit_code = None if timed_out else os.waitstatus_to_exitcode(status)
    tests_finished = reported.startswith(token)
    report = reported[len(token) + 1 :].decode("utf-8", errors="replace") if tests_finished else ""
    return SandboxResult(
        _classify(exit_code, stderr), exit_code, stderr, stdout, round(seconds, 4), tests_finished, report
    )


def run_many(
    programs: Sequence[str],
    workers: int = 1,
    *,
    desc: str | None = None,
    limits: Limits | None = None,
    isolation: Isolation | None = None,
    mode: Literal["run", "coverage"] = "run",
    python: str | None = None,
) -> list[SandboxResult]:
    """Run programs ``workers`` at a time; results in input order.

    Identical programs run once and share the result. Each worker thread has
    its own zygote process, so runs go side by side. ``desc`` shows a progress
    bar with that label. ``python`` as for ``run_program``.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    limits = limits or Limits()
    iso = isolation or select_isolation()  # chosen once, before the threads start
    program_interpreter(python or sys.executable)  # checked once, too

    def run(source: str) -> SandboxResult:
        return run_program(source, limits=limits, isolation=iso, mode=mode, python=python)

    unique = list(dict.fromkeys(programs))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(tqdm(pool.map(run, unique), total=len(unique), desc=desc, disable=desc is None))
    by_source = dict(zip(unique, results))
    return [by_source[source] for source in programs]


def _rlimit_argument(limits: Limits) -> str:
    """The runner's limits, ``NAME:soft:hard,...``."""
    # (soft, hard): SIGXCPU at the soft CPU limit (a "timeout"), SIGKILL a second later.
    values = {
        "RLIMIT_AS": (limits.memory_mb * 1024 * 1024,) * 2,
        "RLIMIT_CPU": (limits.cpu, limits.cpu + 1),
        "RLIMIT_FSIZE": (limits.file_size_mb * 1024 * 1024,) * 2,
        "RLIMIT_NOFILE": (limits.open_files,) * 2,
        "RLIMIT_CORE": (0, 0),
        # Counted per user namespace (Linux 5.14+), so it caps this run's processes.
        "RLIMIT_NPROC": (limits.max_processes,) * 2,
    }
    return ",".join(f"{name}:{soft}:{hard}" for name, (soft, hard) in values.items())


@contextmanager
def _workdir(iso: Isolation) -> Iterator[str]:
    """The program's directory: inside the namespaces' private /tmp, else a fresh host temp dir."""
    if iso.mechanism != "none":
        yield WORKDIR
        return
    path = tempfile.mkdtemp(prefix="editforge-sandbox-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _drain(fd: int) -> bytes:
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            if sum(map(len, chunks)) > 1 << 20:
                break
    except BlockingIOError:
        pass  # a process left behind (no isolation) still holds it open
    finally:
        os.close(fd)
    return b"".join(chunks)


def _tail(handle: IO[bytes]) -> str:
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - TAIL_BYTES))
    return handle.read().decode("utf-8", errors="replace")


def _classify(exit_code: int | None, stderr: str) -> Outcome:
    if exit_code is None or exit_code == -signal.SIGXCPU:
        return "timeout"
    if exit_code == 0:
        return "pass"
    if exit_code < 0 or (exit_code == SETUP_EXIT and SETUP_MARK in stderr):
        return "error"
    return "fail"
