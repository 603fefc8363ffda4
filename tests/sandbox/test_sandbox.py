"""The sandbox: outcomes, limits, the filesystem a program sees, and hostile programs.

The hostile programs (tests/helpers/hostile_programs.py) run twice: as the caller and,
when the caller is root, as an ordinary user (uid 65534 through ``setpriv``),
under every isolation that works here; the verdicts must be the same.
EDITFORGE_REQUIRE_UNPRIVILEGED=1 and EDITFORGE_REQUIRE_BWRAP=1 (set by CI) turn
the skips of those runs into failures.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from editforge.sandbox import core as sandbox
from editforge.evaluation.harness import parse_coverage_report
from helpers import REPO
from helpers.hostile_programs import EXPECTED, run_all
from editforge.sandbox.core import (
    NONE,
    Isolation,
    Limits,
    SandboxError,
    run_many,
    run_program,
    select_isolation,
)


pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux")
NOBODY = 65534


def _run(source: str, iso: Isolation | None = None, **limits: Any) -> sandbox.SandboxResult:
    return run_program(textwrap.dedent(source), limits=Limits(**limits), isolation=iso)


def _require(variable: str, reason: str) -> None:
    if os.environ.get(variable) == "1":
        pytest.fail(f"{reason} ({variable}=1)")
    pytest.skip(reason)


def _mechanisms() -> list[str]:
    found = []
    for mechanism in ("userns", "bwrap"):
        try:
            select_isolation(mechanism)
            found.append(mechanism)
        except SandboxError:
            pass
    return found


MECHANISMS = _mechanisms() if sys.platform == "linux" else []


# ---------------------------------------------------------------- outcomes


def test_user_namespaces_are_the_isolation_here() -> None:
    if subprocess.run(["unshare", "--user", "--map-root-user", "true"], capture_output=True).returncode != 0:
        pytest.skip("unprivileged user namespaces are not available here")
    iso = select_isolation()
    assert iso.mechanism == "userns"
    assert iso.namespaces == ("user", "mount", "pid", "net", "ipc", "uts")


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
    assert len(result.stdout_tail.encode()) <= sandbox.TAIL_BYTES
    assert result.stdout_tail.endswith("THE END\n")


def test_cpu_limit_counts_as_timeout() -> None:
    result = _run("while True: pass", timeout_s=10, cpu_s=1)
    assert result.outcome == "timeout"
    assert result.duration_s < 5


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
    forged = "import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'\\0' * 16)\n    except OSError:\n        pass\nos._exit(0)"
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


def test_the_program_sees_only_what_it_needs() -> None:
    if select_isolation().mechanism != "userns":
        pytest.skip("the layout is checked under user namespaces")
    binds = sandbox._binds(sandbox._interpreter(sys.executable))
    top = {"etc", "dev", "proc", "tmp"} | {target.split("/")[1] for _, target, _ in binds}
    top |= {name.strip("/") for name, _ in sandbox._links()}
    in_tmp = {"shm", "work"} | {target.split("/")[2] for _, target, _ in binds if target.startswith("/tmp/")}
    result = _run(
        f"""
        import os, socket, tempfile
        here = os.getcwd()
        assert here == "/tmp/work", here
        assert os.environ["HOME"] == here and os.environ["TMPDIR"] == here, os.environ
        assert tempfile.gettempdir() == here
        assert os.listdir(here) == ["prog.py"], os.listdir(here)
        open("scratch.txt", "w").write("mine")
        assert set(os.listdir("/")) == {top!r}, os.listdir("/")
        assert set(os.listdir("/tmp")) == {in_tmp!r}, os.listdir("/tmp")
        assert sorted(os.listdir("/dev")) == [
            "fd", "full", "null", "random", "shm", "stderr", "stdin", "stdout", "urandom", "zero"
        ], os.listdir("/dev")
        assert sorted(p for p in os.listdir("/proc") if p.isdigit()) == ["1", "2"], os.listdir("/proc")
        assert socket.gethostname() == "sandbox"
        status = open("/proc/self/status").read()
        assert "CapEff:\\t0000000000000000" in status and "NoNewPrivs:\\t1" in status, status
        for path in ("/usr/escaped", "/escaped", "/etc/escaped"):
            try:
                open(path, "w")
            except OSError:
                continue
            raise SystemExit(path + " is writable")
        """
    )
    assert result.outcome == "pass", result.stderr_tail


def test_programs_run_as_nobody_when_the_caller_is_root() -> None:
    result = _run("import os; print(os.getuid(), os.getgid(), os.getgroups())")
    expected = f"{NOBODY} {NOBODY} []" if os.geteuid() == 0 else f"{os.getuid()} {os.getgid()} []"
    assert result.stdout_tail.strip() == expected


def test_multiprocessing_and_shared_memory_work_inside() -> None:
    result = _run(
        """
        import multiprocessing
        def square(x):
            return x * x
        if __name__ == "__main__":
            with multiprocessing.Pool(2) as pool:
                assert pool.map(square, range(5)) == [0, 1, 4, 9, 16]
            lock = multiprocessing.Lock()  # a POSIX semaphore in /dev/shm
            with lock:
                pass
        """
    )
    assert result.outcome == "pass", result.stderr_tail


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
    monkeypatch.setenv(sandbox.ROOT_UID_ENV, "0")
    with pytest.raises(SandboxError, match="must be a non-root uid"):
        sandbox._root_uid()


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


# ---------------------------------------------------------------- refusing to run unisolated


def _in_a_namespace_without_user_namespaces(code: str, path: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` where creating user namespaces fails, as on hosts with user.max_user_namespaces=0."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("util-linux's unshare is not here")
    script = f'echo 0 > /proc/sys/user/max_user_namespaces && exec "{sys.executable}" -c "$0"'
    env = {**os.environ, "PATH": path, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run(
        [unshare, "--user", "--map-root-user", "/bin/sh", "-c", script, code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if "max_user_namespaces" in result.stderr and "Permission denied" in result.stderr:
        pytest.skip("cannot lower user.max_user_namespaces in a namespace here")
    return result


REFUSE = """
from editforge.sandbox.core import SandboxError, select_isolation
try:
    select_isolation()
except SandboxError as err:
    print(err)
else:
    print("ran unisolated")
"""


def test_without_user_namespaces_or_bwrap_it_refuses_in_one_line(tmp_path: Path) -> None:
    result = _in_a_namespace_without_user_namespaces(REFUSE, str(tmp_path))  # a PATH with no bwrap
    message = result.stdout.strip()
    assert len(message.splitlines()) == 1, result
    assert message.startswith("cannot isolate untrusted programs here: user namespaces do not work"), message
    assert "user.max_user_namespaces = 0" in message
    assert "bwrap is not on the PATH" in message
    assert "sandbox: none" in message and "sysctl user.max_user_namespaces" in message


def test_a_bwrap_that_cannot_work_is_reported_too() -> None:
    if shutil.which("bwrap") is None:
        _require("EDITFORGE_REQUIRE_BWRAP", "bubblewrap is not installed")
    result = _in_a_namespace_without_user_namespaces(REFUSE, os.environ["PATH"])
    message = result.stdout.strip()
    if message == "ran unisolated" and os.stat(shutil.which("bwrap") or "").st_mode & stat.S_ISUID:
        pytest.skip("a setuid bwrap works without user namespaces")
    assert "user namespaces do not work" in message and "bwrap does not work" in message, message


# ---------------------------------------------------------------- hostile programs


@pytest.fixture(scope="module")
def bait() -> Iterator[dict[str, Any]]:
    """What the hostile programs go after, open to any uid on the host so that only the sandbox stops them."""
    folder = Path(tempfile.mkdtemp(prefix="editforge-bait-"))
    folder.chmod(0o755)
    secret = f"sk-test-{uuid.uuid4().hex}"
    (folder / "results" / "benchmark").mkdir(parents=True)
    (folder / "results" / "benchmark" / "canitedit.jsonl").write_text('{"id": 1}\n')
    results_file = folder / "results" / "executions.jsonl"
    results_file.write_text("")
    results_file.chmod(0o666)
    home_file = Path.home() / f".editforge-bait-{uuid.uuid4().hex}"
    home_file.write_text("private")
    (folder / "home").mkdir()
    (folder / "home" / ".netrc").write_text("machine example.org password secret\n")
    for path in folder.rglob("*"):
        path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.is_dir() else 0))
    tcp = socket.create_server(("127.0.0.1", 0))
    tcp.setblocking(False)
    unix_path = str(folder / "host.sock")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(unix_path)
    unix.listen()
    unix.setblocking(False)
    os.chmod(unix_path, 0o777)
    abstract_name = f"\0editforge-bait-{uuid.uuid4().hex}"
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(abstract_name)
    abstract.listen()
    abstract.setblocking(False)
    readable = [
        str(folder / "results" / "benchmark" / "canitedit.jsonl"),
        str(REPO / "pyproject.toml"),
        str(home_file),
        str(folder / "home" / ".netrc"),  # the home of the unprivileged run
    ]
    shared = REPO.parent / "shared" / "canitedit" / "canitedit.jsonl"
    if shared.exists():
        readable.append(str(shared))
    values = {
        "port": tcp.getsockname()[1],
        "unix_path": unix_path,
        "unix_abstract": abstract_name,
        "secret": secret,
        "readable": readable,
        "results_file": str(results_file),
        "evaluator_pid": os.getpid(),
        "marker": str(folder / "daemon-marker"),
        "tag": uuid.uuid4().hex,
        "open_files": 900 + uuid.uuid4().int % 100,
        "_home": str(folder / "home"),
        "_listeners": (tcp, unix, abstract),
    }
    os.environ["EDITFORGE_BAIT_API_KEY"] = secret
    try:
        yield values
    finally:
        del os.environ["EDITFORGE_BAIT_API_KEY"]
        for listener in (tcp, unix, abstract):
            listener.close()
        home_file.unlink()
        shutil.rmtree(folder)


def _runner_processes(bait: dict[str, Any]) -> list[str]:
    """Live processes of any uid left by the hostile runs (marked by the bait's open-files limit)."""
    mark = f"RLIMIT_NOFILE:{bait['open_files']}:{bait['open_files']}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if mark in cmdline and state != "Z":
            found.append(entry.name)
    return found


def _assert_no_trace(bait: dict[str, Any]) -> None:
    time.sleep(2)  # the daemon would have written its marker by now
    assert not Path(bait["marker"]).exists()
    assert not Path("/tmp/editforge-daemon-marker").exists()
    assert Path(bait["results_file"]).read_text() == ""
    assert _runner_processes(bait) == []
    for listener in bait["_listeners"]:
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    started = time.monotonic()
    subprocess.run(["true"], check=True)  # the host still forks (after the fork bomb)
    assert time.monotonic() - started < 2


def _assert_contained(verdicts: dict[str, dict[str, Any]]) -> None:
    assert {name: v["outcome"] for name, v in verdicts.items()} == EXPECTED
    assert all(v["next"] == "pass" for v in verdicts.values()), verdicts
    assert verdicts["output flood"]["stdout_bytes"] <= sandbox.TAIL_BYTES


def _python_for_nobody() -> str | None:
    """An interpreter (3.11+) that uid 65534 can run: the system's, or this one."""
    for candidate in ("/usr/bin/python3", sys.executable):
        check = subprocess.run(
            [*_setpriv(), candidate, "-c", "import sys; assert sys.version_info >= (3, 11)"],
            capture_output=True,
            cwd="/",
        )
        if check.returncode == 0:
            return candidate
    return None


def _setpriv() -> list[str]:
    return ["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups"]


def _as_nobody(bait: dict[str, Any], mechanism: str) -> dict[str, dict[str, Any]]:
    """The same hostile run as uid 65534, from a copy of the package it can read."""
    if os.geteuid() != 0:
        pytest.skip("the suite already runs as an ordinary user")
    if shutil.which("setpriv") is None:
        _require("EDITFORGE_REQUIRE_UNPRIVILEGED", "setpriv is not installed")
    python = _python_for_nobody()
    if python is None:
        _require("EDITFORGE_REQUIRE_UNPRIVILEGED", "no Python 3.11+ that uid 65534 can run")
    import tqdm

    with tempfile.TemporaryDirectory(prefix="editforge-nobody-") as copy:
        shutil.copytree(REPO / "src" / "editforge", Path(copy, "editforge"))
        shutil.copytree(Path(tqdm.__file__).parent, Path(copy, "tqdm"))
        shutil.copy(REPO / "tests/helpers/hostile_programs.py", copy)
        subprocess.run(["chmod", "-R", "a+rX", copy], check=True)
        arguments = {"bait": {k: v for k, v in bait.items() if not k.startswith("_")}, "mechanism": mechanism}
        env = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": copy,
            "HOME": bait["_home"],
            "EDITFORGE_BAIT_API_KEY": bait["secret"],
        }
        result = subprocess.run(
            [*_setpriv(), python, str(Path(copy, "hostile_programs.py")), json.dumps(arguments)],
            capture_output=True,
            text=True,
            env=env,
            cwd="/",
            timeout=300,
        )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("mechanism", ["userns", "bwrap"])
def test_hostile_programs_are_contained_as_root_and_as_an_ordinary_user(
    mechanism: str, bait: dict[str, Any]
) -> None:
    if mechanism not in MECHANISMS:
        if mechanism == "bwrap":
            _require("EDITFORGE_REQUIRE_BWRAP", "bubblewrap does not work here")
        pytest.skip(f"{mechanism} does not work here")
    as_caller = run_all(bait, mechanism)
    _assert_contained(as_caller)
    _assert_no_trace(bait)
    as_nobody = _as_nobody(bait, mechanism)
    _assert_contained(as_nobody)
    _assert_no_trace(bait)
    assert as_nobody == as_caller
