"""Run untrusted Python programs (model completions plus hidden tests) in isolation.

One isolation path, the same for root and for an ordinary user, needing neither
root nor a setuid helper (Linux 5.3 or later; 5.14 or later for the process cap
to count per run):

* **Namespaces** (``userns``): each worker thread has a zygote, a small
  long-lived process (``python -I -S``, C modules only), so that no interpreter
  starts per program but the program's own. For each program it forks a child
  that creates an unprivileged user namespace with new mount, PID, network, IPC
  and UTS namespaces (the zygote, outside them, writes the id maps); it times the
  run and kills it on timeout. An ordinary caller's uid and gid are mapped to themselves;
  for root they are mapped too, and the program runs as ``nobody`` (65534, or
  ``EDITFORGE_SANDBOX_UID``), because the kernel exempts uid 0 from the process
  cap. The first process in the PID namespace (a small init that reaps orphans)
  builds a new root and ``pivot_root``s into it:

  - read-only bind mounts of what a program needs: the interpreter's prefixes
    and site-packages, the system directories (``/usr``, ``/lib*``, ``/bin``,
    ``/sbin``), a few files of ``/etc`` (the dynamic linker's cache, time zone,
    certificates, fonts) and a written ``passwd``, ``group``, ``hosts``;
  - ``/dev`` with only ``null``, ``zero``, ``full``, ``random``, ``urandom`` and
    the ``fd`` links; a fresh ``/proc`` showing only the program's processes;
  - one private, size-capped tmpfs on ``/tmp`` holding the working directory
    ``/tmp/work`` (also HOME and TMPDIR) and backing ``/dev/shm``.

  Nothing else exists inside: not the project tree, ``results/``, the benchmark
  file, the home directory, ``/run``, the host's ``/tmp`` or ``/dev/shm``. The
  network namespace has only its own loopback (abstract unix sockets are per
  network namespace too). Before the program starts, the init drops every
  capability, and the program runs with no capabilities, ``PR_SET_NO_NEW_PRIVS``
  and its limits. When the program ends (or the wall clock runs out and the
  child is killed) the init exits and the kernel kills everything left in the
  PID namespace, daemons included.
* **bubblewrap** (``bwrap``): where unprivileged user namespaces are disabled,
  the same layout through ``bwrap`` if it is on the PATH (a setuid ``bwrap``
  works without them).
* Where neither works, ``select_isolation`` refuses with one line naming the
  cause and the remedy. Running without isolation (``none``: limits, a fresh
  directory and a scrubbed environment only) must be asked for by name.

Limits, set on the program and applying to each of its processes: address space
(``memory_mb``, 4 GiB by default as in EvalPlus), CPU time, processes
(``max_processes``, counted per run), file size, open files, no core files; the
wall clock (``timeout_s``).

Each program runs as ``python -c RUNNER`` in its directory, with the program in
``prog.py``: the runner executes it as ``__main__`` (as ``python prog.py`` would,
in the module ``__main__`` with its ``__file__``) and, only when
the program's code ran to its end without raising or exiting, writes a token it
got through a pipe to a channel that the caller reads. That is
``tests_finished``: an early ``sys.exit(0)``, ``os._exit(0)``, an ``atexit``
handler or an exit-0 ``sys.excepthook`` leaves it false while the exit status
says pass. It guards against exits, not against a program that goes looking for
the token in the runner's memory.

Outcomes (a ``SandboxResult``), by exit status only, as the CanItEdit harness
counts them (nothing a program prints changes its outcome):

* ``pass``: exit status 0.
* ``fail``: a non-zero exit status (an uncaught exception, ``sys.exit(n)``,
  ``MemoryError`` at the address-space limit, ...).
* ``timeout``: still running after ``timeout_s`` of wall-clock time
  (``exit_code`` None), or stopped by the CPU-time limit (SIGXCPU, ``exit_code``
  -24).
* ``error``: killed by a signal (``exit_code`` is minus the signal number), or
  the sandbox could not start it (exit status 125 with an
  ``editforge-sandbox:`` line on stderr).
"""

from __future__ import annotations

import functools
import json
import marshal
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from tqdm import tqdm

Outcome = Literal["pass", "fail", "timeout", "error"]
OUTCOMES: tuple[Outcome, ...] = ("pass", "fail", "timeout", "error")
Mechanism = Literal["userns", "bwrap", "none"]
MECHANISMS: tuple[Mechanism, ...] = ("userns", "bwrap", "none")
# What a config may ask for: "auto" is the first of userns and bwrap that works.
SANDBOX_SETTINGS = ("auto", *MECHANISMS)

TAIL_BYTES = 2048  # as the CanItEdit harness keeps, but the end of each stream
FILE_SIZE_MB = 256  # RLIMIT_FSIZE: the largest file (stdout included) a program may write
TMPFS_MB = 256  # the private /tmp: the working directory and /dev/shm
OPEN_FILES = 1024  # RLIMIT_NOFILE
ROOT_UID_ENV = "EDITFORGE_SANDBOX_UID"
DEFAULT_ROOT_UID = 65534  # nobody: who programs run as when the caller is root
SETUP_EXIT = 125  # the bootstrap's exit status when it cannot set up the sandbox
SETUP_MARK = "editforge-sandbox:"
PROGRAM = "prog.py"
WORKDIR = "/tmp/work"
NAMESPACES = ("user", "mount", "pid", "net", "ipc", "uts")
CHANNEL_FD, TOKEN_FD = 3, 4  # in the program: where the runner reports, where it reads its token
# Entries of the host's /etc a program may need, bound read-only where they exist.
ETC_ENTRIES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "alternatives",
    "ssl",
    "ca-certificates",
    "pki",
    "fonts",
    "mime.types",
    "os-release",
)
SYSTEM_ENTRIES = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
DEVICES = ("null", "zero", "full", "random", "urandom")
REMEDY = (
    "allow unprivileged user namespaces (sysctl user.max_user_namespaces=15000; on Ubuntu also "
    "kernel.apparmor_restrict_unprivileged_userns=0), or put bubblewrap (bwrap) on the PATH, "
    "or set `sandbox: none` in the config to run untrusted code without isolation"
)


class SandboxError(RuntimeError):
    """The sandbox cannot run programs here (not a verdict on a program)."""


@dataclass(frozen=True)
class SandboxResult:
    outcome: Outcome
    exit_code: int | None  # None on a wall-clock timeout; minus the signal number when killed
    stderr_tail: str  # the last TAIL_BYTES of each stream
    stdout_tail: str
    duration_s: float
    tests_finished: bool  # the program's code ran to its end (see the module docstring)
    report: str = ""  # what a runner mode other than "run" reports (coverage's table)


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 15
    memory_mb: int = 4096
    max_processes: int = 64
    cpu_s: int | None = None  # default: the wall-clock timeout rounded up, plus one second
    file_size_mb: int = FILE_SIZE_MB
    open_files: int = OPEN_FILES
    tmpfs_mb: int = TMPFS_MB

    def __post_init__(self) -> None:
        if isinstance(self.timeout_s, bool) or not isinstance(self.timeout_s, (int, float)) or not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s!r}")
        for name in ("memory_mb", "max_processes", "cpu_s", "file_size_mb", "open_files", "tmpfs_mb"):
            value = getattr(self, name)
            if name == "cpu_s" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    @property
    def cpu(self) -> int:
        return self.cpu_s if self.cpu_s is not None else math.ceil(self.timeout_s) + 1


@dataclass(frozen=True)
class Isolation:
    """How programs are isolated: the mechanism and the namespaces it gives."""

    mechanism: Mechanism
    namespaces: tuple[str, ...] = field(default=())

    def describe(self, limits: Limits | None = None) -> str:
        """One line for records, tables and the report, e.g. ``userns(user,mount,...) memory=4096MB ...``."""
        text = f"{self.mechanism}({','.join(self.namespaces)})" if self.namespaces else "none (NOT isolated)"
        if limits is not None:
            text += (
                f" timeout={limits.timeout_s:g}s cpu={limits.cpu}s memory={limits.memory_mb}MB"
                f" processes={limits.max_processes} file={limits.file_size_mb}MB"
                f" open_files={limits.open_files} tmpfs={limits.tmpfs_mb}MB"
            )
        return text


USERNS = Isolation("userns", NAMESPACES)
BWRAP = Isolation("bwrap", NAMESPACES)
NONE = Isolation("none")


# The program's runner, `python -c _RUNNER <mode> <limits> <channel fd> <token fd>`, started in the
# program's directory: sets the limits, reads its token, runs prog.py as __main__
# (as `python prog.py` would) and reports the token only when the code ran to its
# end. Mode "coverage" runs it under coverage.py and also reports the table of
# `coverage report -m`.
_RUNNER = r"""
def _run(mode, limits, channel, token):
    import os, resource, sys
    for item in limits.split(","):
        name, soft, hard = item.split(":")
        resource.setrlimit(getattr(resource, name), (int(soft), int(hard)))
    channel, token_fd = int(channel), int(token)
    token = os.read(token_fd, 64)
    os.close(token_fd)
    path = os.path.join(os.getcwd(), "prog.py")
    sys.argv = [path]
    sys.path[0] = os.getcwd()
    import __main__
    scope = __main__.__dict__
    del scope["_run"]
    scope.update(__file__=path, __cached__=None, __spec__=None, __package__=None, __doc__=None)
    with open(path, "rb") as handle:
        code = compile(handle.read(), path, "exec")
    if mode == "coverage":
        import coverage, io
        # As the harness's .coveragerc: abstract methods' bodies are not counted as missing.
        cov = coverage.Coverage(data_file=None, config_file=False)
        cov.exclude(r"@(abc\.)?abstractmethod")
        cov.start()
        try:
            exec(code, scope)
        finally:
            cov.stop()
        table = io.StringIO()
        cov.report(morfs=[path], show_missing=True, file=table)
        os.write(channel, token + b"\n" + table.getvalue().encode())
    else:
        exec(code, scope)
        os.write(channel, token)
import sys
_run(*(sys.argv.pop(1) for _ in range(4)))
"""

# One per worker: `python -I -S -c _ZYGOTE <cfg, marshalled, in hex>` (C modules
# only). It waits on a unix socket for runs; for each it forks a child that takes
# the run's output files, makes the namespaces (the zygote, outside them, writes
# their id maps), and forks the namespace's init, which builds the new root and
# starts the runner. The zygote times the run, kills it on timeout and answers
# with (wait status, timed out, seconds). A setup failure exits with SETUP_EXIT and
# a SETUP_MARK line, so it is never mistaken for a verdict on the program.
_ZYGOTE = r"""
import ctypes, marshal, os, select, socket, sys, time, _signal, _socket, fcntl
cfg = marshal.loads(bytes.fromhex(sys.argv[1]))
libc = ctypes.CDLL(None, use_errno=True)
NEWNS, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET = 0x20000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000
RDONLY, NOSUID, NODEV, NOEXEC, REMOUNT, BIND, REC, PRIVATE = 1, 2, 4, 8, 32, 0x1000, 0x4000, 0x40000
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SYS = {"x86_64": {"pivot_root": 155, "capset": 126}, "aarch64": {"pivot_root": 41, "capset": 91}}[os.uname().machine]
# statvfs flag -> mount flag, to keep a mount's locked flags when it is remounted read-only
KEEP = ((1, RDONLY), (2, NOSUID), (4, NODEV), (8, NOEXEC), (1024, 1024), (2048, 2048), (4096, 1 << 21))


def check(rc, what):
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def enc(text):
    return None if text is None else text.encode()


def mount(source, target, fstype, flags, options=None):
    check(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(options)), f"mount {target}")


def place_fds(moves):
    # Each (fd, number): fd becomes the inheritable fd `number`; first out of the way, so none is overwritten.
    high = [(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10), number) for fd, number in moves]
    for fd, _ in moves:
        os.close(fd)
    for fd, number in high:
        os.dup2(fd, number)
        os.close(fd)


def setup_failed(err):
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f" (line {tb.tb_lineno})" if tb is not None else ""
    os.write(2, f"{cfg['setup_mark']} {type(err).__name__}: {err}{where}\n".encode())
    os._exit(cfg["setup_exit"])


def write(path, text):
    with open(path, "w") as handle:
        handle.write(text)


def map_ids(pid):
    # From outside the new user namespace: only there may root map several ids.
    uid, gid, inner = os.getuid(), os.getgid(), cfg["drop_to"]
    if inner is not None:
        write(f"/proc/{pid}/uid_map", f"0 0 1\n{inner} {inner} 1\n")
        write(f"/proc/{pid}/gid_map", f"0 0 1\n{inner} {inner} 1\n")
    else:
        write(f"/proc/{pid}/setgroups", "deny")
        write(f"/proc/{pid}/uid_map", f"{uid} {uid} 1\n")
        write(f"/proc/{pid}/gid_map", f"{gid} {gid} 1\n")


def bind(fd, target, is_dir):
    if is_dir:
        os.makedirs(target, 0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
        open(target, "a").close()
    mount(f"/proc/self/fd/{fd}", target, None, BIND | REC)
    kept = os.statvfs(target).f_flag
    flags = RDONLY | NOSUID | NODEV
    for st_flag, ms_flag in KEEP:
        if kept & st_flag:
            flags |= ms_flag
    mount("none", target, None, REMOUNT | BIND | flags)


def build_root(tmpfs_mb):
    # Assembled on a tmpfs over /tmp (private to this mount namespace); what it
    # binds is opened first, since the tmpfs hides /tmp.
    mount("none", "/", None, REC | PRIVATE)
    binds = [(target, os.open(source, os.O_PATH), is_dir) for source, target, is_dir in cfg["binds"]]
    new = "/tmp"
    mount("tmpfs", new, "tmpfs", NOSUID | NODEV, "mode=0755,size=4m")
    work = new + "/tmp"
    os.mkdir(work)
    mount("tmpfs", work, "tmpfs", NOSUID | NODEV, f"mode=0755,size={tmpfs_mb}m")
    os.mkdir(work + "/work", 0o700)
    os.mkdir(work + "/shm")
    os.chmod(work + "/shm", 0o1777)
    for name, target in cfg["links"]:
        os.symlink(target, new + name)
    # An interpreter under /tmp (a virtualenv there) is bound inside the private /tmp.
    for target, fd, is_dir in binds:
        bind(fd, new + target, is_dir)
        os.close(fd)
    os.makedirs(new + "/etc", 0o755, exist_ok=True)
    for name, text in cfg["etc"].items():
        write(f"{new}/etc/{name}", text)
    dev = new + "/dev"
    os.mkdir(dev)
    mount("tmpfs", dev, "tmpfs", NOSUID | NOEXEC, "mode=0755,size=64k")
    for name in cfg["devices"]:
        open(f"{dev}/{name}", "a").close()
        mount(f"/dev/{name}", f"{dev}/{name}", None, BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{dev}/{name}")
    os.mkdir(dev + "/shm")
    mount(work + "/shm", dev + "/shm", None, BIND)
    os.mkdir(new + "/proc")
    # The fresh /proc is mounted while the old one is still visible (the kernel
    # allows a new proc in a user namespace only then), then the old root goes.
    mount("proc", new + "/proc", "proc", NOSUID | NODEV | NOEXEC)
    mount("none", new, None, REMOUNT | BIND | RDONLY | NOSUID | NODEV)
    os.chdir(new)
    check(libc.syscall(SYS["pivot_root"], b".", b"."), "pivot_root")
    check(libc.umount2(b".", 2), "umount the old root")  # MNT_DETACH
    os.chdir("/")


def loopback_up():
    # As with `docker --network none`: a struct ifreq is the name in 16 bytes, then
    # the flags (a short) in a 24-byte union.
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    name = b"lo".ljust(16, b"\0")
    flags = int.from_bytes(fcntl.ioctl(sock.fileno(), 0x8913, name + bytes(24))[16:18], sys.byteorder)
    fcntl.ioctl(sock.fileno(), 0x8914, name + (flags | 1).to_bytes(2, sys.byteorder) + bytes(22))
    sock.close()


def drop_capabilities():
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    check(libc.syscall(SYS["capset"], header, (ctypes.c_uint32 * 6)()), "capset")


def start_program(run):
    # Becomes the runner: its token on its fd, its identity, no new privileges.
    read_end, write_end = os.pipe()
    os.write(write_end, run["token"])
    os.close(write_end)
    place_fds([(read_end, cfg["token_fd"])])
    if cfg["drop_to"] is not None:
        os.setgroups([])
        os.setresgid(cfg["drop_to"], cfg["drop_to"], cfg["drop_to"])
        os.setresuid(cfg["drop_to"], cfg["drop_to"], cfg["drop_to"])
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    check(libc.prctl(PR_SET_PDEATHSIG, _signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    os.chdir(run["workdir"])
    os.execve(cfg["python"], run["argv"], cfg["env"] | {"HOME": run["workdir"], "TMPDIR": run["workdir"]})


def place_program(run):
    path = run["workdir"] + "/prog.py"
    with open(path, "wb") as handle:
        handle.write(run["source"])
    if cfg["drop_to"] is not None:
        os.chown(run["workdir"], cfg["drop_to"], cfg["drop_to"])
        os.chown(path, cfg["drop_to"], cfg["drop_to"])


def init(run, report):
    # PID 1 of the namespace: the new root, then the program; reap until it ends.
    try:
        check(libc.prctl(PR_SET_PDEATHSIG, _signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
        build_root(run["tmpfs_mb"])
        loopback_up()
        check(libc.sethostname(b"sandbox", 7), "sethostname")
        place_program(run)
        program = os.fork()
        if program == 0:
            start_program(run)
        drop_capabilities()
    except BaseException as err:
        setup_failed(err)
    while True:
        pid, status = os.wait()
        if pid == program:
            os.write(report, str(status).encode())
            os._exit(0)


def child(run, fds, maps):
    # One run, in a new session; its exit status is the program's.
    try:
        check(libc.prctl(PR_SET_PDEATHSIG, _signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
        os.setsid()
        sock.close()
        place_fds([(os.open(os.devnull, os.O_RDONLY), 0), (fds[0], 1), (fds[1], 2), (fds[2], cfg["channel_fd"])])
        if cfg["mechanism"] == "none":
            place_program(run)
            start_program(run)
        ready, mapped = maps
        check(libc.unshare(NEWUSER | NEWNS | NEWNET | NEWIPC | NEWUTS | NEWPID), "unshare")
        os.write(ready, b"1")
        if os.read(mapped, 1) != b"1":
            raise RuntimeError("the id maps could not be written")
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            init(run, write_end)
        os.close(write_end)
    except BaseException as err:
        setup_failed(err)
    os.waitpid(pid, 0)
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


def serve_one(run, fds):
    ready_read, ready_write = os.pipe()
    mapped_read, mapped_write = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(ready_read)
        os.close(mapped_write)
        child(run, fds, (ready_write, mapped_read))
    for fd in (*fds, ready_write, mapped_read):
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    if cfg["mechanism"] != "none":
        ok = b"0"
        if os.read(ready_read, 1) == b"1":
            try:
                map_ids(pid)
                ok = b"1"
            except OSError as err:
                os.write(2, f"{cfg['setup_mark']} writing the id maps: {err}\n".encode())
        try:
            os.write(mapped_write, ok)
        except BrokenPipeError:
            pass  # the child failed before; its exit status and stderr say why
    os.close(ready_read)
    os.close(mapped_write)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    timed_out = not poller.poll(max(0.0, start + run["timeout_s"] - time.monotonic()) * 1000)
    # The session, by its leader's id: still unreaped, so the id cannot have been reused.
    try:
        os.killpg(pid, _signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    os.close(pidfd)
    _, status = os.waitpid(pid, 0)
    return status, timed_out, time.monotonic() - start


sock = socket.socket(fileno=cfg["socket"])
check(libc.prctl(PR_SET_PDEATHSIG, _signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
if os.getppid() != cfg["parent"]:
    os._exit(1)  # the caller has gone
while True:
    header = sock.recv(16)
    if not header:
        os._exit(0)
    size = int(header)
    message, fds, _, _ = socket.recv_fds(sock, size, 3)
    while len(message) < size:
        message += sock.recv(size - len(message))
    sock.sendall(marshal.dumps(serve_one(marshal.loads(message), fds)))
"""


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
    """
    limits = limits or Limits()
    iso = isolation or select_isolation()
    interpreter = _interpreter(python or sys.executable)
    token = os.urandom(16)
    argv = [interpreter.executable, "-c", _RUNNER, mode, _rlimit_argument(limits)]
    channel_read, channel_write = os.pipe()
    os.set_blocking(channel_read, False)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            if iso.mechanism == "bwrap":
                status, timed_out, seconds = _run_bwrap(
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
                    status, timed_out, seconds = _zygote(iso, interpreter).run(run, fds, limits.timeout_s)
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
    _interpreter(python or sys.executable)  # checked once, too

    def run(source: str) -> SandboxResult:
        return run_program(source, limits=limits, isolation=iso, mode=mode, python=python)

    unique = list(dict.fromkeys(programs))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(tqdm(pool.map(run, unique), total=len(unique), desc=desc, disable=desc is None))
    by_source = dict(zip(unique, results))
    return [by_source[source] for source in programs]


_selected: dict[str, Isolation] = {}
_select_lock = threading.Lock()


def select_isolation(setting: str = "auto") -> Isolation:
    """The isolation a config's ``sandbox`` setting gives here, checked by running an empty program.

    ``auto``: user namespaces, else bubblewrap; ``userns`` or ``bwrap``: only that
    one; ``none``: no isolation (asked for by name only). Raises SandboxError,
    one line with the cause and the remedy, when the asked isolation does not work.
    """
    if setting not in SANDBOX_SETTINGS:
        raise SandboxError(f"sandbox must be one of {', '.join(SANDBOX_SETTINGS)}, got {setting!r}")
    with _select_lock:
        if setting not in _selected:
            _selected[setting] = _select(setting)
        return _selected[setting]


def _select(setting: str) -> Isolation:
    if sys.platform != "linux" or not hasattr(os, "pidfd_open"):
        raise SandboxError("the sandbox needs Linux 5.3 or later (pidfd_open)")
    if setting == "none":
        return NONE
    failures = []
    # bwrap as root makes no user namespace (see _run_bwrap).
    bwrap = Isolation("bwrap", NAMESPACES[1:]) if os.geteuid() == 0 else BWRAP
    for candidate in (USERNS, bwrap):
        if setting not in ("auto", candidate.mechanism):
            continue
        problem = _probe(candidate)
        if problem is None:
            return candidate
        failures.append(problem)
    raise SandboxError(f"cannot isolate untrusted programs here: {'; '.join(failures)}; {REMEDY}")


def _probe(candidate: Isolation) -> str | None:
    """None when an empty program passes under ``candidate``; else why not, in a few words."""
    if candidate.mechanism == "bwrap" and _bwrap() is None:
        return "bwrap is not on the PATH"
    result = run_program("", limits=Limits(timeout_s=30), isolation=candidate)
    if result.outcome == "pass":
        return None
    detail = result.stderr_tail.strip().splitlines()[-1:] or [result.outcome]
    why = detail[0].replace(SETUP_MARK, "").strip()
    if candidate.mechanism == "userns":
        return f"user namespaces do not work ({why}{_userns_settings()})"
    return f"bwrap does not work ({why})"


def _userns_settings() -> str:
    """The kernel settings that commonly disable unprivileged user namespaces, where they do."""
    found = []
    for path, off in (
        ("/proc/sys/user/max_user_namespaces", "0"),
        ("/proc/sys/kernel/unprivileged_userns_clone", "0"),
        ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1"),
    ):
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value == off:
            found.append(f"{path.removeprefix('/proc/sys/').replace('/', '.')} = {value}")
    return "; " + ", ".join(found) if found else ""


# ---------------------------------------------------------------- internals


class _Zygote:
    """A worker's zygote process (see ``_ZYGOTE``) and the socket to it."""

    def __init__(self, iso: Isolation, interpreter: _Interpreter) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        cfg = {
            "mechanism": iso.mechanism,
            "binds": _binds(interpreter),
            "links": _links(),
            "etc": _etc_files(),
            "devices": DEVICES,
            # No isolation means none at all: the program runs as the caller, root included.
            "drop_to": _root_uid() if os.geteuid() == 0 and iso.mechanism != "none" else None,
            "parent": os.getpid(),
            "python": interpreter.executable,
            "env": _environment(interpreter),
            "socket": theirs.fileno(),
            "channel_fd": CHANNEL_FD,
            "token_fd": TOKEN_FD,
            "setup_exit": SETUP_EXIT,
            "setup_mark": SETUP_MARK,
        }
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _ZYGOTE, marshal.dumps(cfg).hex()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env={"PATH": os.defpath, "LANG": "C.UTF-8"},
                cwd="/",
                start_new_session=True,
                close_fds=True,
                pass_fds=(theirs.fileno(),),
            )
        finally:
            theirs.close()
        self.socket = ours
        self.mechanism = iso.mechanism

    def run(self, run: dict[str, Any], fds: tuple[int, int, int], timeout_s: float) -> tuple[int, bool, float]:
        """(wait status, timed out, seconds) of one run."""
        message = marshal.dumps(run)
        try:
            self.socket.sendall(b"%-16d" % len(message))
            socket.send_fds(self.socket, [message], list(fds))
            # The zygote answers once the run has ended; a generous backstop beyond its own timeout.
            self.socket.settimeout(timeout_s + 60)
            answer = self.socket.recv(4096)
        except OSError as err:
            self.close()
            raise SandboxError(f"the sandbox's worker process failed: {err}") from None
        if not answer:
            try:
                status = self.process.wait(timeout=5)
            finally:
                self.close()
            raise SandboxError(f"the sandbox's worker process died (exit status {status})")
        status, timed_out, seconds = marshal.loads(answer)
        return status, timed_out, seconds

    def close(self) -> None:
        self.socket.close()
        _kill_group(self.process.pid)
        self.process.wait()


_zygotes = threading.local()


def _zygote(iso: Isolation, interpreter: _Interpreter) -> _Zygote:
    """This thread's zygote for ``iso`` and ``interpreter`` (started at first use; it dies with the thread)."""
    mine: dict[tuple[str, str], _Zygote] = _zygotes.__dict__.setdefault("by_kind", {})
    zygote = mine.get((iso.mechanism, interpreter.executable))
    if zygote is None or zygote.process.poll() is not None:
        zygote = mine[iso.mechanism, interpreter.executable] = _Zygote(iso, interpreter)
    return zygote


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


def _root_uid() -> int:
    raw = os.environ.get(ROOT_UID_ENV, str(DEFAULT_ROOT_UID))
    try:
        uid = int(raw)
    except ValueError:
        raise SandboxError(f"{ROOT_UID_ENV} must be an integer uid, got {raw!r}") from None
    if not 1 <= uid < 2**32 - 1:
        raise SandboxError(f"{ROOT_UID_ENV}={uid} must be a non-root uid")
    return uid


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


def _environment(interpreter: _Interpreter) -> dict[str, str]:
    """The program's whole environment (HOME and TMPDIR are its directory): nothing from the caller."""
    return {
        "PATH": f"{os.path.dirname(interpreter.executable)}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        "PYTHONHASHSEED": "0",  # reruns of a program see the same set/dict order
        "PYTHONDONTWRITEBYTECODE": "1",
        # One thread per numeric library: runs go side by side, one per worker.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


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


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone


@dataclass(frozen=True)
class _Interpreter:
    executable: str
    paths: tuple[str, ...]  # what it needs, outermost only, outside the system directories


# Asked of an interpreter (`python -I -c`): the directories it needs.
_PATHS_QUERY = r"""
import json, os, site, sys, sysconfig
needed = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, os.path.dirname(sys.executable)}
needed |= set(site.getsitepackages())
needed.add(sysconfig.get_config_var("LIBDIR") or sys.base_prefix)
found = {os.path.realpath(p) for p in needed} | {os.path.abspath(p) for p in needed}
found.add(os.path.dirname(os.path.realpath(sys.executable)))
print(json.dumps(sorted(found)))
"""


@functools.cache
def _interpreter(python: str) -> _Interpreter:
    """The interpreter that runs programs, and the directories it needs (asked of it once)."""
    executable = shutil.which(python) if os.sep not in python else os.path.abspath(python)
    if executable is None or not os.access(executable, os.X_OK):
        raise SandboxError(f"the interpreter {python!r} for programs is not an executable; name a python3 by its path")
    try:
        answer = subprocess.run(
            [executable, "-I", "-c", _PATHS_QUERY], capture_output=True, text=True, check=True, timeout=60
        )
        found = json.loads(answer.stdout)
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as err:
        raise SandboxError(f"the interpreter {executable} for programs does not run: {err}") from None
    system = tuple(f"/{name}" for name in SYSTEM_ENTRIES)
    paths = sorted(p for p in found if os.path.isdir(p) and p != "/" and not p.startswith(system))
    outermost: list[str] = []
    for path in paths:
        if not any(path == kept or path.startswith(kept + os.sep) for kept in outermost):
            outermost.append(path)
    return _Interpreter(executable, tuple(outermost))


@functools.cache
def _binds(interpreter: _Interpreter) -> list[tuple[str, str, bool]]:
    """(source, target, is a directory) for every read-only bind of the new root."""
    binds = [(f"/{name}", f"/{name}", True) for name in SYSTEM_ENTRIES if _is_real_dir(f"/{name}")]
    # Debian's interpreters read their sitecustomize from /etc/python3.X.
    pythons = sorted(str(path) for path in Path("/etc").glob("python3*"))
    for path in [f"/etc/{name}" for name in ETC_ENTRIES] + pythons:
        if os.path.exists(path):
            binds.append((path, path, os.path.isdir(path)))
    binds += [(path, path, True) for path in interpreter.paths]
    return binds


def _is_real_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


@functools.cache
def _links() -> list[tuple[str, str]]:
    """(name, target) for the top-level system entries that are symbolic links (merged /usr)."""
    return [(f"/{name}", os.readlink(f"/{name}")) for name in SYSTEM_ENTRIES if os.path.islink(f"/{name}")]


@functools.cache
def _etc_files() -> dict[str, str]:
    """The /etc files written for the program: its account and a loopback-only host table."""
    uid = _root_uid() if os.geteuid() == 0 else os.getuid()
    gid = _root_uid() if os.geteuid() == 0 else os.getgid()
    return {
        "passwd": f"root:x:0:0:root:/:/usr/sbin/nologin\nsandbox:x:{uid}:{gid}:sandbox:{WORKDIR}:/usr/sbin/nologin\n",
        "group": f"root:x:0:\nsandbox:x:{gid}:\n",
        "hostname": "sandbox\n",
        "hosts": "127.0.0.1 localhost sandbox\n::1 localhost ip6-localhost ip6-loopback\n",
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
    }


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


@functools.cache
def _bwrap() -> str | None:
    return shutil.which("bwrap")


def _run_bwrap(
    source: str,
    argv: list[str],
    token: bytes,
    limits: Limits,
    streams: tuple[IO[bytes], IO[bytes], int],
    interpreter: _Interpreter,
) -> tuple[int, bool, float]:
    """One run through bubblewrap, with the same layout; (wait status, timed out, seconds)."""
    bwrap = _bwrap()
    if bwrap is None:
        raise SandboxError(f"bwrap is not on the PATH; {REMEDY}")
    data = [source.encode("utf-8", errors="surrogateescape"), token, *(t.encode() for t in _etc_files().values())]
    fds = [_data_fd(item) for item in data]
    program_fd, token_fd, etc_fds = fds[0], fds[1], fds[2:]
    root = os.geteuid() == 0
    args = [bwrap, "--die-with-parent", "--new-session", "--hostname", "sandbox", "--cap-drop", "ALL"]
    if root:
        # bwrap as root makes no user namespace of its own; the shim drops to the
        # sandbox uid (and with it these two capabilities) before the runner starts.
        args += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-all"]
    args += ["--clearenv", "--setenv", "HOME", WORKDIR, "--setenv", "TMPDIR", WORKDIR]
    for name, value in _environment(interpreter).items():
        args += ["--setenv", name, value]
    for name, target in _links():
        args += ["--symlink", target, name]
    args += ["--dev", "/dev", "--proc", "/proc", "--perms", "0755", "--size", str(limits.tmpfs_mb * 1024 * 1024)]
    args += ["--tmpfs", "/tmp"]
    # bwrap would give the folders it makes for a bind their host modes (/root: 0700).
    binds = _binds(interpreter)
    for folder in sorted({str(p) for _, target, _ in binds for p in Path(target).parents if str(p) != "/"}):
        args += ["--perms", "0755", "--dir", folder]
    for source_path, target, _ in binds:
        args += ["--ro-bind", source_path, target]
    for fd, name in zip(etc_fds, _etc_files()):
        args += ["--perms", "0644", "--ro-bind-data", str(fd), f"/etc/{name}"]
    # The directory is the program's alone (the tmpfs is private), whichever uid it runs as.
    args += ["--perms", "0777", "--dir", WORKDIR, "--perms", "0644", "--file", str(program_fd), f"{WORKDIR}/{PROGRAM}"]
    args += ["--chdir", WORKDIR]
    args += ["--", *([interpreter.executable, "-I", "-S", "-c", _DROP_SHIM, str(_root_uid())] if root else [])]
    args += [*argv, str(streams[2]), str(token_fd)]
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=streams[0],
            stderr=streams[1],
            cwd="/",
            env={"PATH": os.defpath, "LANG": "C.UTF-8"},
            start_new_session=True,
            close_fds=True,
            pass_fds=(*fds, streams[2]),
        )
    finally:
        for fd in fds:
            os.close(fd)
    try:
        proc.wait(timeout=limits.timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    _kill_group(proc.pid)
    proc.wait()
    status = proc.returncode
    wait_status = (status & 0xFF) << 8 if status >= 0 else -status
    return wait_status, timed_out, time.monotonic() - start


# Under bwrap as root: drop to the sandbox uid (and with it the two capabilities
# bwrap kept for this), then become the runner.
_DROP_SHIM = r"""
import os, sys
uid = int(sys.argv[1])
os.setgroups([])
os.setresgid(uid, uid, uid)
os.setresuid(uid, uid, uid)
os.execv(sys.argv[2], sys.argv[2:])
"""


def _data_fd(data: bytes) -> int:
    """A pipe's read end holding ``data`` (small: it must fit the pipe's buffer)."""
    read_end, write_end = os.pipe()
    os.write(write_end, data)
    os.close(write_end)
    os.set_inheritable(read_end, True)
    return read_end
