"""Run untrusted Python programs (model completions plus hidden tests) safely.

Each program runs as ``python3 prog.py`` (this interpreter, ``sys.executable``)
in a separate process, in a fresh working directory that is also its HOME and
TMPDIR, with stdin from /dev/null, in a new session, with a scrubbed environment
(PATH, LANG, HOME, TMPDIR, USER, PYTHONHASHSEED=0, one thread per numeric
library; no API keys or anything else from the caller). A small bootstrap
(``python -I -S``, small C modules only) starts first in the child, sets up the
isolation and ``exec``s the program. Linux 5.3 or later is needed.

* **Namespaces** (where the kernel allows them: root with CAP_SYS_ADMIN). The
  program gets new network, mount and PID namespaces:

  - network: only its own loopback (brought up, as under
    ``docker --network none``); nothing on the host or beyond is reachable;
  - files: fresh, private tmpfs on /tmp, /var/tmp, /run/lock and /dev/shm; the
    working directory is ``/tmp/work`` inside that tmpfs (size-capped, gone with
    the namespace). /tmp and the others are root-owned, so the program can write
    only to its directory and the private /dev/shm (POSIX shared memory needs
    it). A root-only directory on the interpreter's path (a pyenv under /root)
    is covered by an empty tmpfs with only the interpreter bound back in;
  - processes: the program is PID 2 under a small init (PID 1) that reaps
    orphans; it sees a fresh /proc with only its own processes. When the program
    ends the init exits and the kernel kills everything it left behind, daemons
    that left the process group included.

  Where namespaces are not allowed, a socket guard makes ``socket.socket`` refuse
  internet families instead; it stops ordinary library use, not a program that
  sets out to bypass it (``ctypes``, ``_socket``). The working directory is then a
  fresh host temporary directory, and world-writable host directories such as
  /tmp stay writable. ``isolation()`` detects once which mode works.
* **Account.** As root the program drops to an unprivileged uid/gid with no
  supplementary groups, so it cannot write root-owned files, signal the caller,
  or read other processes' environments, and RLIMIT_NPROC applies (it does not
  apply to root). Every concurrent run, in this process or another, has its own
  uid (held by a lock file), from a range starting at
  ``EDITFORGE_SANDBOX_UID_BASE`` (default 2,000,000,000, uids with no account), so
  a fork bomb cannot use up another run's process budget, and without a PID
  namespace every process of the uid is killed when the run ends. A uid that
  belongs to an account is refused. Without root the program runs as the caller
  (no process limit, and it can signal the caller).
* **Limits**, set in the child and applying to each of its processes:
  RLIMIT_AS (``memory_mb``), RLIMIT_CPU,
  RLIMIT_NPROC (``max_processes``), RLIMIT_FSIZE (``FILE_SIZE_MB``) and
  RLIMIT_CORE 0; ``PR_SET_NO_NEW_PRIVS``; the parent-death signal, so programs die
  with the caller. On timeout and at the end the process group is SIGKILLed.

Outcomes (a ``SandboxResult``):

* ``pass``: exit status 0.
* ``fail``: a non-zero exit status: an uncaught exception (AssertionError,
  SyntaxError, MemoryError when the address-space limit is hit, ...) or
  ``sys.exit(n)``.
* ``timeout``: still running after ``timeout_s`` of wall-clock time
  (``exit_code`` None), or stopped by the CPU-time limit (SIGXCPU, ``exit_code``
  -24).
* ``error``: killed by a signal (SIGKILL, SIGSEGV, ...; ``exit_code`` is minus the
  signal number), or the sandbox could not start it (exit status 125 with an
  ``editforge-sandbox:`` line on stderr).
* ``env_error``: the program stopped on ``ModuleNotFoundError`` for a package that
  this environment lacks (see ``run_program``'s ``env_modules``): a fault of the
  environment, not of the program.

Only ``pass`` counts as success; scoring leaves ``env_error`` samples out.
"""

from __future__ import annotations

import fcntl
import functools
import marshal
import math
import os
import pwd
import re
import select
import shutil
import signal
import site
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from tqdm import tqdm

Outcome = Literal["pass", "fail", "timeout", "error", "env_error"]
OUTCOMES: tuple[Outcome, ...] = ("pass", "fail", "timeout", "error", "env_error")

TAIL_BYTES = 2048  # as the CanItEdit harness keeps, but the end of each stream
FILE_SIZE_MB = 256  # RLIMIT_FSIZE: the largest file (stdout included) a program may write
TMPFS_MB = 512  # the size of the private /tmp that holds the working directory
UID_BASE_ENV = "EDITFORGE_SANDBOX_UID_BASE"
DEFAULT_UID_BASE = 2_000_000_000
UID_SLOTS = 1024  # the most runs at once, across all processes of this machine
SETUP_EXIT = 125  # the bootstrap's exit status when it cannot set up the sandbox
SETUP_MARK = "editforge-sandbox:"
PROGRAM = "prog.py"
NS_WORKDIR = "/tmp/work"
# Mounted over with private tmpfs; mode 1777 where programs legitimately need to write.
PRIVATE_TMPFS = (("/tmp", "0755"), ("/var/tmp", "0755"), ("/run/lock", "0755"), ("/dev/shm", "1777"))

_MISSING_MODULE = re.compile(r"^ModuleNotFoundError: No module named '([^']+)'")


class SandboxError(RuntimeError):
    """The sandbox cannot run programs here (not a verdict on a program)."""


@dataclass(frozen=True)
class SandboxResult:
    outcome: Outcome
    exit_code: int | None  # None on a wall-clock timeout; minus the signal number when killed
    stderr_tail: str  # the last TAIL_BYTES of each stream
    stdout_tail: str
    duration_s: float


@dataclass(frozen=True)
class Isolation:
    """How programs are isolated; ``isolation()`` gives the strongest that works."""

    namespaces: bool  # private network, mount and PID namespaces (else the socket guard)
    drop_privileges: bool  # run as a per-run unprivileged uid (needs root)

    @property
    def network(self) -> str:
        return "netns" if self.namespaces else "socket-guard"


# Runs in the child as `python -I -S -c _BOOTSTRAP <cfg, marshalled, in hex>`, reads the
# program from stdin, sets up the isolation and execs the program. With
# namespaces it also starts a new PID namespace: its first process (a small init
# that reaps orphans) starts the program, and when the program ends the init
# exits, so the kernel kills whatever the program left behind; the program's
# exit status is passed back and reproduced. Any failure of the setup exits with
# SETUP_EXIT and a SETUP_MARK line, so it is never mistaken for a verdict on the
# program.
_BOOTSTRAP = r"""
import ctypes, fcntl, marshal, os, resource, sys, _signal, _socket  # small modules: started per program
cfg = marshal.loads(bytes.fromhex(sys.argv[1]))
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID = 0x20000, 0x40000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 32, 0x1000, 0x4000, 0x40000
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38


def check(rc, what):
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source, target, fstype, flags, options):
    enc = lambda text: None if text is None else text.encode()
    check(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(options)), f"mount {target}")


def setup_failed(err):
    sys.stderr.write(f"{cfg['setup_mark']} {type(err).__name__}: {err}\n")
    sys.stderr.flush()
    os._exit(cfg["setup_exit"])


def enter_namespaces():
    check(libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID), "unshare")
    # Private propagation first, so nothing mounted here reaches the host.
    mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    # The interpreter may live under a directory the uid cannot enter (a pyenv
    # under /root): cover that directory with an empty tmpfs and bind back only
    # what the interpreter needs, which also hides everything else in it.
    handles = [(parent, child, os.open(child, os.O_PATH)) for parent, child in cfg["expose"]]
    covered = set()
    for parent, child, fd in handles:
        if parent not in covered:
            covered.add(parent)
            mount("tmpfs", parent, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.mkdir(child)
        else:
            open(child, "x").close()
        mount(f"/proc/self/fd/{fd}", child, None, MS_BIND | MS_REC, None)
    targets = {os.path.realpath(path): mode for path, mode in cfg["tmpfs"] if os.path.isdir(path)}
    # An interpreter inside one of those (a virtualenv under /tmp) is bound back in.
    kept = [(path, os.open(path, os.O_PATH)) for path in cfg["keep"]]
    for target, mode in targets.items():
        mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode},size={cfg['tmpfs_mb']}m")
    for path, fd in kept:
        os.makedirs(path, 0o755, exist_ok=True)
        mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
        mount("none", path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, None)
    os.mkdir(cfg["workdir"], 0o700)
    # The loopback up, as with `docker --network none`: a struct ifreq is the name
    # in 16 bytes, then the flags (a short) in a 24-byte union.
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    name = b"lo".ljust(16, b"\0")
    flags = int.from_bytes(fcntl.ioctl(sock.fileno(), 0x8913, name + bytes(24))[16:18], sys.byteorder)  # SIOCGIFFLAGS
    up = name + (flags | 1).to_bytes(2, sys.byteorder) + bytes(22)  # IFF_UP
    fcntl.ioctl(sock.fileno(), 0x8914, up)  # SIOCSIFFLAGS
    sock.close()


def write_program(source):
    os.chdir(cfg["workdir"])
    with open(cfg["program"], "wb") as handle:
        handle.write(source)
    if cfg["uid"] is not None:
        os.chown(cfg["workdir"], cfg["uid"], cfg["uid"])


def exec_program():
    for name, (soft, hard) in cfg["limits"].items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    uid = cfg["uid"]
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    # Again: a change of uid clears the parent-death signal.
    check(libc.prctl(PR_SET_PDEATHSIG, _signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    os.execv(cfg["python"], cfg["argv"])


def init(report):
    # PID 1 of the namespace: a fresh /proc, then the program; reap until it ends.
    try:
        check(libc.prctl(PR_SET_PDEATHSIG, _signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
        program = os.fork()
        if program == 0:
            exec_program()
    except BaseException as err:
        setup_failed(err)
    while True:
        pid, status = os.wait()
        if pid == program:
            os.write(report, str(status).encode())
            os._exit(0)


try:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    check(libc.prctl(PR_SET_PDEATHSIG, _signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != cfg["parent"]:
        raise RuntimeError("the caller has gone")
    source = sys.stdin.buffer.read()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    if not cfg["namespaces"]:
        write_program(source)
        exec_program()
    enter_namespaces()
    write_program(source)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_end)
        init(write_end)
except BaseException as err:
    setup_failed(err)
os.close(write_end)
os.waitpid(child, 0)
reported = os.read(read_end, 32)
if not reported:
    setup_failed(RuntimeError("the namespace init died before the program ended"))
status = int(reported)
if os.WIFEXITED(status):
    os._exit(os.WEXITSTATUS(status))
number = os.WTERMSIG(status)
if number not in (_signal.SIGKILL, _signal.SIGSTOP):
    _signal.signal(number, _signal.SIG_DFL)
os.kill(os.getpid(), number)
os._exit(128 + number)
"""

# Without a network namespace: run the program after making socket.socket refuse
# internet families (unix sockets, used by multiprocessing, still work).
_SOCKET_GUARD = r"""
import runpy, socket, sys

class _GuardedSocket(socket.socket):
    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        if fileno is None and family in (-1, socket.AF_INET, socket.AF_INET6):
            raise PermissionError(1, "network access is disabled in the sandbox")
        super().__init__(family, type, proto, fileno)

socket.socket = socket.SocketType = _GuardedSocket
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_program(
    source: str,
    *,
    timeout_s: float = 15,
    memory_mb: int = 4096,
    max_processes: int = 64,
    cpu_s: int | None = None,
    env_modules: Collection[str] | None = None,
    isolation: Isolation | None = None,
) -> SandboxResult:
    """Run ``source`` as a Python program in the sandbox and classify the result.

    ``cpu_s`` defaults to the wall-clock timeout rounded up plus one second (a
    backstop: the wall clock normally ends a run first). A final
    ``ModuleNotFoundError`` for a top-level package ``X`` is an ``env_error`` when
    ``X`` is in ``env_modules``; with ``env_modules=None``, when ``X`` is not in the
    standard library. Callers that know which packages a program may need (the
    benchmark) pass them, so a made-up import stays the program's failure; so
    does a missing submodule of an installed package.
    ``isolation`` defaults to ``isolation()``.
    """
    _check_limits(timeout_s, memory_mb, max_processes, cpu_s)
    iso = isolation or _detected_isolation()
    cpu = cpu_s if cpu_s is not None else math.ceil(timeout_s) + 1
    # (soft, hard): SIGXCPU at the soft CPU limit (a "timeout"), SIGKILL a second later.
    limits = {
        "RLIMIT_AS": (memory_mb * 1024 * 1024,) * 2,
        "RLIMIT_CPU": (cpu, cpu + 1),
        "RLIMIT_FSIZE": (FILE_SIZE_MB * 1024 * 1024,) * 2,
    }
    if iso.drop_privileges:
        limits["RLIMIT_NPROC"] = (max_processes, max_processes)
    with _uid_for(iso) as uid, _workdir(iso) as workdir:
        cfg = {
            "namespaces": iso.namespaces,
            "tmpfs": PRIVATE_TMPFS,
            "expose": _hidden_interpreter_paths(),
            "keep": _interpreter_paths_in_tmpfs(),
            "tmpfs_mb": TMPFS_MB,
            "workdir": workdir,
            "program": PROGRAM,
            "limits": limits,
            "uid": uid,
            "parent": os.getpid(),
            "python": sys.executable,
            "argv": [sys.executable, PROGRAM] if iso.namespaces else [sys.executable, "-c", _SOCKET_GUARD, PROGRAM],
            "setup_exit": SETUP_EXIT,
            "setup_mark": SETUP_MARK,
        }
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            exit_code, duration = _execute(source, cfg, _environment(workdir), (out, err), timeout_s, uid)
            stdout, stderr = _tail(out), _tail(err)
    outcome = _classify(exit_code, stderr, env_modules)
    return SandboxResult(outcome, exit_code, stderr, stdout, round(duration, 4))


def run_many(
    programs: Sequence[str],
    workers: int = 1,
    *,
    desc: str | None = None,
    timeout_s: float = 15,
    memory_mb: int = 4096,
    max_processes: int = 64,
    cpu_s: int | None = None,
    env_modules: Collection[str] | None = None,
) -> list[SandboxResult]:
    """Run programs ``workers`` at a time; results in input order.

    Identical programs run once and share the result. Each run is its own
    subprocess, so a thread pool gives real parallelism. ``desc`` shows a
    progress bar with that label.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    _check_limits(timeout_s, memory_mb, max_processes, cpu_s)
    _detected_isolation()  # detect once, before the threads start

    def run(source: str) -> SandboxResult:
        return run_program(
            source,
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            max_processes=max_processes,
            cpu_s=cpu_s,
            env_modules=env_modules,
        )

    unique = list(dict.fromkeys(programs))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(tqdm(pool.map(run, unique), total=len(unique), desc=desc, disable=desc is None))
    by_source = dict(zip(unique, results))
    return [by_source[source] for source in programs]


def isolation() -> Isolation:
    """The strongest isolation that works on this machine (detected once)."""
    return _detected_isolation()


def missing_module(stderr: str) -> str | None:
    """The module named by a final ``ModuleNotFoundError``, if any.

    Python names the first part of a dotted import that is missing: ``import
    vllm.x`` without vllm names ``vllm``; a missing submodule of an installed
    package names the submodule (``numpy.nope``).
    """
    lines = [line for line in stderr.splitlines() if line.strip()]
    match = _MISSING_MODULE.match(lines[-1]) if lines else None
    return match.group(1) if match else None


# ---------------------------------------------------------------- internals


def _check_limits(timeout_s: float, memory_mb: int, max_processes: int, cpu_s: int | None) -> None:
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
    counts = {"memory_mb": memory_mb, "max_processes": max_processes}
    if cpu_s is not None:
        counts["cpu_s"] = cpu_s
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


_detect_lock = threading.Lock()
_detected: Isolation | None = None


def _detected_isolation() -> Isolation:
    global _detected
    with _detect_lock:
        if _detected is None:
            _detected = _detect()
        return _detected


def _detect() -> Isolation:
    """Try namespaces, then the socket guard, with an empty program."""
    if not hasattr(os, "pidfd_open"):
        raise SandboxError("the sandbox needs Linux 5.3 or later (pidfd_open)")
    root = os.geteuid() == 0
    failures = []
    for candidate in (
        Isolation(namespaces=True, drop_privileges=root),
        Isolation(namespaces=False, drop_privileges=root),
    ):
        result = run_program("", timeout_s=30, isolation=candidate)
        if result.outcome == "pass":
            return candidate
        failures.append(f"{candidate.network}: {result.stderr_tail.strip() or result.outcome}")
    raise SandboxError("cannot run programs in the sandbox here; " + "; ".join(failures))


def _uid_base() -> int:
    raw = os.environ.get(UID_BASE_ENV, str(DEFAULT_UID_BASE))
    try:
        base = int(raw)
    except ValueError:
        raise SandboxError(f"{UID_BASE_ENV} must be an integer uid, got {raw!r}") from None
    if not 1000 <= base < 2**32 - 1_000_000:
        raise SandboxError(f"{UID_BASE_ENV}={base} is outside 1000..{2**32 - 1_000_000}")
    return base


@functools.cache
def _check_unused(uid: int) -> None:
    # The end-of-run cleanup can kill every process of the uid, so it must be nobody's.
    try:
        account = pwd.getpwuid(uid).pw_name
    except KeyError:
        return
    raise SandboxError(f"uid {uid} belongs to the account {account!r}; set {UID_BASE_ENV} to a range of unused uids")


@contextmanager
def _uid_for(iso: Isolation) -> Iterator[int | None]:
    """A uid no other run holds, in this process or another (a lock file per uid)."""
    if not iso.drop_privileges:
        yield None
        return
    base = _uid_base()
    folder = _lock_folder()
    for uid in range(base, base + UID_SLOTS):
        fd = os.open(folder / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            _check_unused(uid)
            yield uid
        finally:
            os.close(fd)  # releases the lock
        return
    raise SandboxError(f"all {UID_SLOTS} sandbox uids from {base} are in use")


@functools.cache
def _lock_folder() -> Path:
    folder = Path(tempfile.gettempdir(), "editforge-sandbox-uids")
    folder.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise SandboxError(f"{folder} must be a directory of this user that only it can use")
    return folder


@contextmanager
def _workdir(iso: Isolation) -> Iterator[str]:
    """The program's directory: made by the bootstrap in its private /tmp, else a host temp dir."""
    if iso.namespaces:
        yield NS_WORKDIR
        return
    path = tempfile.mkdtemp(prefix="editforge-sandbox-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _environment(workdir: str) -> dict[str, str]:
    """The program's whole environment: nothing is inherited from the caller."""
    return {
        "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": workdir,
        "TMPDIR": workdir,
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        "PYTHONHASHSEED": "0",  # reruns of a program see the same set/dict order
        "PYTHONDONTWRITEBYTECODE": "1",
        # One thread per numeric library: runs go side by side, one per worker.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _execute(
    source: str,
    cfg: dict[str, Any],
    env: dict[str, str],
    streams: tuple[IO[bytes], IO[bytes]],
    timeout_s: float,
    uid: int | None,
) -> tuple[int | None, float]:
    """Start the bootstrap, feed it the program, wait; return (exit code, seconds).

    The wait is on a pidfd: it wakes the moment the process ends (Popen's own
    timed wait polls, adding up to 50 ms), and the process is not yet reaped
    when its group is killed, so the group id cannot have been reused.
    """
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _BOOTSTRAP, marshal.dumps(cfg).hex()],
        stdin=subprocess.PIPE,
        stdout=streams[0],
        stderr=streams[1],
        cwd="/" if cfg["namespaces"] else cfg["workdir"],
        env=env,
        start_new_session=True,
        close_fds=True,
    )
    pidfd = os.pidfd_open(proc.pid)
    try:
        try:
            assert proc.stdin is not None
            with proc.stdin:
                proc.stdin.write(source.encode("utf-8", errors="surrogateescape"))
        except BrokenPipeError:
            pass  # the bootstrap died early; its exit status says why
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        finished = bool(poller.poll(max(0.0, start + timeout_s - time.monotonic()) * 1000))
    finally:
        os.close(pidfd)
        _kill_group(proc.pid)
        # A PID namespace is emptied by the kernel; otherwise end what escaped the group.
        if uid is not None and not cfg["namespaces"]:
            _kill_uid(uid)
        exit_code = proc.wait()
    return (exit_code if finished else None), time.monotonic() - start


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid``: kill(-1) as that uid reaches exactly those."""
    subprocess.run(
        [_kill_binary(), "-9", "-1"],
        user=uid,
        group=uid,
        extra_groups=[],
        env={},
        cwd="/",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )


@functools.cache
def _kill_binary() -> str:
    # An executable any uid can run (the interpreter may not be one).
    found = shutil.which("kill", path=os.defpath)
    if found is None:
        raise SandboxError(f"no 'kill' program in {os.defpath}; it ends a run's leftover processes")
    return found


@functools.cache
def _hidden_interpreter_paths() -> list[tuple[str, str]]:
    """(directory others cannot enter, its entry the interpreter needs), outermost first."""
    steps: set[tuple[str, str]] = set()
    for path in _interpreter_paths():
        parts = Path(os.path.realpath(path)).parts
        for depth in range(1, len(parts) - 1):
            parent = os.path.join(*parts[:depth])
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                steps.add((parent, os.path.join(parent, parts[depth])))
    return sorted(steps, key=lambda step: (step[0].count(os.sep), step))


def _interpreter_paths() -> set[str]:
    needed = {sys.executable, sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    needed |= set(site.getsitepackages())
    needed.add(sysconfig.get_config_var("LIBDIR") or sys.base_prefix)
    return {os.path.realpath(path) for path in needed} | {os.path.abspath(path) for path in needed}


@functools.cache
def _interpreter_paths_in_tmpfs() -> list[str]:
    """The interpreter's directories that a private tmpfs would hide, outermost only."""
    tmpfs = [os.path.realpath(path) for path, _ in PRIVATE_TMPFS]
    inside = sorted(
        path if os.path.isdir(path) else os.path.dirname(path)
        for path in _interpreter_paths()
        if any(path.startswith(root + os.sep) for root in tmpfs)
    )
    outermost: list[str] = []
    for path in inside:
        if not any(path == kept or path.startswith(kept + os.sep) for kept in outermost):
            outermost.append(path)
    return outermost


def _tail(handle: IO[bytes]) -> str:
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - TAIL_BYTES))
    return handle.read().decode("utf-8", errors="replace")


def _classify(exit_code: int | None, stderr: str, env_modules: Collection[str] | None) -> Outcome:
    if exit_code is None or exit_code == -signal.SIGXCPU:
        return "timeout"
    if exit_code == 0:
        return "pass"
    if exit_code < 0 or (exit_code == SETUP_EXIT and SETUP_MARK in stderr):
        return "error"
    module = missing_module(stderr)
    # Only a missing top-level package is the environment's fault.
    if module is not None and "." not in module:
        expected = module in env_modules if env_modules is not None else module not in sys.stdlib_module_names
        if expected:
            return "env_error"
    return "fail"
