"""The sandbox: outcomes, limits, and hostile programs that must be contained."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from editforge import sandbox
from editforge.sandbox import Isolation, SandboxError, isolation, run_many, run_program

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux")


def _works(candidate: Isolation) -> bool:
    return run_program("", isolation=candidate).outcome == "pass"


def _modes() -> list[Isolation]:
    """The detected isolation and, where it also works here, the weaker socket-guard mode."""
    best = isolation()
    modes = [best]
    guard = Isolation(namespaces=False, drop_privileges=best.drop_privileges)
    if best.namespaces and _works(guard):
        modes.append(guard)
    return modes


MODES = _modes() if sys.platform == "linux" else []
PRIVILEGED = [m for m in MODES if m.drop_privileges]


def _run(source: str, mode: Isolation | None = None, **limits: object) -> sandbox.SandboxResult:
    return run_program(textwrap.dedent(source), isolation=mode, **limits)  # type: ignore[arg-type]


def _sandbox_processes() -> list[str]:
    """Live (non-zombie) processes running under one of the sandbox's uids."""
    base = int(os.environ.get(sandbox.UID_BASE_ENV, sandbox.DEFAULT_UID_BASE))
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        uid = int(fields["Uid"].split()[0])
        if base <= uid < base + 1000 and not fields["State"].strip().startswith("Z"):
            found.append(entry.name)
    return found


# ---------------------------------------------------------------- outcomes


def test_uses_namespaces_where_the_kernel_allows_them() -> None:
    if os.geteuid() != 0 or subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("network namespaces are not available to this user")
    assert isolation() == Isolation(namespaces=True, drop_privileges=True)
    assert isolation().network == "netns"


def test_exit_zero_passes_and_output_is_kept() -> None:
    result = _run("print('hello from the sandbox')")
    assert result.outcome == "pass"
    assert result.exit_code == 0
    assert result.stdout_tail == "hello from the sandbox\n"
    assert 0 < result.duration_s < 15


def test_exception_and_exit_status_fail() -> None:
    failed = _run("assert 1 + 1 == 3, 'arithmetic'")
    assert (failed.outcome, failed.exit_code) == ("fail", 1)
    assert "AssertionError: arithmetic" in failed.stderr_tail
    assert _run("import sys; sys.exit(3)").exit_code == 3
    syntax = _run("def broken(:\n    pass")
    assert syntax.outcome == "fail" and "SyntaxError" in syntax.stderr_tail


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


def test_missing_package_is_an_environment_error_only_when_expected() -> None:
    source = "import package_that_is_not_installed_anywhere.sub"
    assert _run(source).outcome == "env_error"  # default: any module outside the standard library
    expected = _run(source, env_modules={"package_that_is_not_installed_anywhere"})
    assert expected.outcome == "env_error"
    assert sandbox.missing_module(expected.stderr_tail) == "package_that_is_not_installed_anywhere"
    # A module the benchmark never needs, or a made-up submodule of an installed
    # package, is the program's own mistake.
    assert _run(source, env_modules={"numpy"}).outcome == "fail"
    made_up = _run("import json.no_such_part", env_modules={"json"})
    assert made_up.outcome == "fail" and sandbox.missing_module(made_up.stderr_tail) == "json.no_such_part"


def test_program_sees_a_fresh_private_directory_as_home_and_tmpdir() -> None:
    result = _run(
        """
        import os, tempfile
        here = os.getcwd()
        assert os.environ["HOME"] == here and os.environ["TMPDIR"] == here, os.environ
        assert tempfile.gettempdir() == here
        assert sorted(os.listdir(here)) == ["prog.py"], os.listdir(here)
        open("scratch.txt", "w").write("mine")
        """
    )
    assert result.outcome == "pass", result.stderr_tail


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="timeout_s must be positive"):
        run_program("", timeout_s=0)
    with pytest.raises(ValueError, match="memory_mb must be a positive integer"):
        run_program("", memory_mb=0)
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        run_many(["pass"], workers=0)


def test_a_uid_that_belongs_to_an_account_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    if not isolation().drop_privileges:
        pytest.skip("programs run as the caller here")
    monkeypatch.setenv(sandbox.UID_BASE_ENV, "65534")
    import pwd

    try:
        account = pwd.getpwuid(65534).pw_name
    except KeyError:
        pytest.skip("no account with uid 65534 here")
    with pytest.raises(SandboxError, match=f"uid 65534 belongs to the account '{account}'"):
        run_program("")


def test_concurrent_runs_get_different_uids_across_processes() -> None:
    if not isolation().drop_privileges:
        pytest.skip("programs run as the caller here")
    program = "import os, time; print(os.getuid()); time.sleep(1.5)"
    other = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from editforge.sandbox import run_program; print(run_program({program!r}).stdout_tail)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)  # the other process is running its program by now
    mine = run_many([program, program + " "], workers=2)
    theirs, _ = other.communicate(timeout=30)
    uids = [int(r.stdout_tail) for r in mine] + [int(theirs)]
    assert len(set(uids)) == 3, uids


def test_run_many_keeps_order_and_runs_duplicates_once() -> None:
    programs = ["print(1)", "import sys; sys.exit(2)", "print(1)", "print(3)"]
    results = run_many(programs, workers=2)
    assert [r.outcome for r in results] == ["pass", "fail", "pass", "pass"]
    assert [r.stdout_tail for r in results] == ["1\n", "", "1\n", "3\n"]
    assert results[0] is results[2]  # one run, shared


# ---------------------------------------------------------------- hostile programs


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.network)
def test_infinite_loop_times_out(mode: Isolation) -> None:
    result = _run("while True:\n    pass", mode, timeout_s=2)
    assert (result.outcome, result.exit_code) == ("timeout", None)
    assert 2 <= result.duration_s < 4


@pytest.mark.parametrize("mode", PRIVILEGED, ids=lambda m: m.network)
def test_fork_bomb_is_capped_and_fully_killed(mode: Isolation) -> None:
    source = """
        import os, time
        while True:
            try:
                os.fork()
            except OSError:
                time.sleep(0.01)
        """
    result = _run(source, mode, timeout_s=3, max_processes=32)
    assert result.outcome in ("timeout", "fail", "error")
    time.sleep(0.2)
    assert _sandbox_processes() == []
    assert _run("print('still fine')").outcome == "pass"


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.network)
def test_daemon_that_leaves_the_process_group_is_killed(mode: Isolation) -> None:
    if not mode.drop_privileges:
        pytest.skip("leftovers outside the process group are reaped by uid, which needs root")
    source = """
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(300)
            os._exit(0)
        """
    assert _run(source, mode).outcome == "pass"
    time.sleep(0.2)
    assert _sandbox_processes() == []


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.network)
def test_allocating_50_gb_fails_inside(mode: Isolation) -> None:
    result = _run("block = bytearray(50 * 1024**3)", mode, memory_mb=1024)
    assert result.outcome == "fail"
    assert "MemoryError" in result.stderr_tail


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.network)
def test_cannot_connect_to_a_listener_on_the_host(mode: Isolation) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        result = _run(
            f"""
            import socket, sys
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=3)
            except OSError as err:
                print("refused:", err)
                sys.exit(0)
            sys.exit(7)  # connected: the sandbox leaked
            """,
            mode,
        )
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    assert result.outcome == "pass", result.stderr_tail
    assert result.stdout_tail.startswith("refused:")


@pytest.mark.parametrize("mode", PRIVILEGED, ids=lambda m: m.network)
def test_cannot_write_outside_its_directory(mode: Isolation) -> None:
    name = f"editforge-sandbox-test-{uuid.uuid4().hex}"
    targets = [Path(REPO, name), Path(REPO, "src", name)]
    if mode.namespaces:
        targets += [Path("/tmp", name), Path("/var/tmp", name)]
    try:
        result = _run(
            f"""
            written = []
            for path in {[str(t) for t in targets]!r}:
                try:
                    with open(path, "w") as handle:
                        handle.write("escaped")
                    written.append(path)
                except OSError:
                    pass
            with open("inside.txt", "w") as handle:  # its own directory stays writable
                handle.write("fine")
            print(written)
            """,
            mode,
        )
        assert result.outcome == "pass", result.stderr_tail
        assert [str(t) for t in targets if t.exists()] == []
    finally:
        for target in targets:
            target.unlink(missing_ok=True)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.network)
def test_api_keys_of_the_caller_are_invisible(mode: Isolation, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"sk-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    result = _run(
        f"""
        import os
        assert "OPENAI_API_KEY" not in os.environ
        assert {secret!r} not in repr(dict(os.environ))
        for pid in (os.getppid(), {os.getpid()}):
            try:
                data = open(f"/proc/{{pid}}/environ", "rb").read()
            except OSError:
                continue
            assert {secret!r}.encode() not in data, pid
        """,
        mode,
    )
    assert result.outcome == "pass", result.stderr_tail


@pytest.mark.parametrize("mode", PRIVILEGED, ids=lambda m: m.network)
def test_cannot_kill_its_parent_or_the_caller(mode: Isolation) -> None:
    result = _run(
        f"""
        import os, signal, sys
        killed = []
        for pid in (os.getppid(), {os.getpid()}):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                pass
        sys.exit(1 if killed else 0)
        """,
        mode,
    )
    assert result.outcome == "pass", result.stderr_tail
    assert _run("print('the caller lives')").stdout_tail == "the caller lives\n"


def test_socket_guard_blocks_internet_sockets_but_not_unix_ones() -> None:
    # The fallback where namespaces are not allowed, run here as the caller.
    guard = Isolation(namespaces=False, drop_privileges=False)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        result = _run(
            f"""
            import socket, urllib.request
            left, right = socket.socketpair()  # unix sockets (multiprocessing) still work
            left.sendall(b"ok")
            assert right.recv(2) == b"ok"
            for attempt in (
                lambda: socket.create_connection(("127.0.0.1", {port}), timeout=3),
                lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM),
                lambda: urllib.request.urlopen("http://127.0.0.1:{port}/", timeout=3),
            ):
                try:
                    attempt()
                except OSError as err:
                    assert "disabled in the sandbox" in str(err), err
                else:
                    raise SystemExit("a socket was created")
            """,
            guard,
        )
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert result.outcome == "pass", result.stderr_tail
