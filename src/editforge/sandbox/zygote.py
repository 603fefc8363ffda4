"""The zygote's parent side, and the new root a program sees: its binds, links, /etc and environment.

One zygote per worker thread (``programs/zygote_main.py``, run as ``python -I -S
-c`` with its configuration marshalled in hex; C modules only). It waits on a
unix socket for runs; for each it forks a child that takes the run's output
files, makes the namespaces (the zygote, outside them, writes their id maps),
and forks the namespace's init, which builds the new root and starts the
runner. The zygote times the run, kills it on timeout and answers with (wait
status, timed out, seconds). A setup failure exits with SETUP_EXIT and a
SETUP_MARK line, so it is never mistaken for a verdict on the program.
"""

from __future__ import annotations

import functools
import json
import marshal
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from editforge.sandbox.types import (
    CHANNEL_FD,
    DEFAULT_ROOT_UID,
    DEVICES,
    ETC_ENTRIES,
    ROOT_UID_ENV,
    SETUP_EXIT,
    SETUP_MARK,
    SYSTEM_ENTRIES,
    TOKEN_FD,
    WORKDIR,
    Isolation,
    SandboxError,
    program_source,
)


class Zygote:
    """A worker's zygote process (see ``programs/zygote_main.py``) and the socket to it."""

    def __init__(self, iso: Isolation, interpreter: Interpreter) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        cfg = {
            "mechanism": iso.mechanism,
            "binds": root_binds(interpreter),
            "links": root_links(),
            "etc": etc_files(),
            "devices": DEVICES,
            # No isolation means none at all: the program runs as the caller, root included.
            "drop_to": root_uid() if os.geteuid() == 0 and iso.mechanism != "none" else None,
            "parent": os.getpid(),
            "python": interpreter.executable,
            "env": environment(interpreter),
            "socket": theirs.fileno(),
            "channel_fd": CHANNEL_FD,
            "token_fd": TOKEN_FD,
            "setup_exit": SETUP_EXIT,
            "setup_mark": SETUP_MARK,
        }
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", program_source("zygote_main.py"), marshal.dumps(cfg).hex()],
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
        kill_group(self.process.pid)
        self.process.wait()


_zygotes = threading.local()


def zygote(iso: Isolation, interpreter: Interpreter) -> Zygote:
    """This thread's zygote for ``iso`` and ``interpreter`` (started at first use; it dies with the thread)."""
    mine: dict[tuple[str, str], Zygote] = _zygotes.__dict__.setdefault("by_kind", {})
    zygote = mine.get((iso.mechanism, interpreter.executable))
    if zygote is None or zygote.process.poll() is not None:
        zygote = mine[iso.mechanism, interpreter.executable] = Zygote(iso, interpreter)
    return zygote


def kill_group(pgid: int) -> None:
    """SIGKILL to the process group ``pgid``, if it is still there."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone


def root_uid() -> int:
    """Who programs run as when the caller is root: ``EDITFORGE_SANDBOX_UID``, by default nobody."""
    raw = os.environ.get(ROOT_UID_ENV, str(DEFAULT_ROOT_UID))
    try:
        uid = int(raw)
    except ValueError:
        raise SandboxError(f"{ROOT_UID_ENV} must be an integer uid, got {raw!r}") from None
    if not 1 <= uid < 2**32 - 1:
        raise SandboxError(f"{ROOT_UID_ENV}={uid} must be a non-root uid")
    return uid


def environment(interpreter: Interpreter) -> dict[str, str]:
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


@dataclass(frozen=True)
class Interpreter:
    executable: str
    paths: tuple[str, ...]  # what it needs, outermost only, outside the system directories


@functools.cache
def program_interpreter(python: str) -> Interpreter:
    """The interpreter that runs programs, and the directories it needs (asked of it once)."""
    executable = shutil.which(python) if os.sep not in python else os.path.abspath(python)
    if executable is None or not os.access(executable, os.X_OK):
        raise SandboxError(f"the interpreter {python!r} for programs is not an executable; name a python3 by its path")
    query = program_source("paths_query.py")  # asked of the interpreter: the directories it needs
    try:
        answer = subprocess.run([executable, "-I", "-c", query], capture_output=True, text=True, check=True, timeout=60)
        found = json.loads(answer.stdout)
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as err:
        raise SandboxError(f"the interpreter {executable} for programs does not run: {err}") from None
    system = tuple(f"/{name}" for name in SYSTEM_ENTRIES)
    paths = sorted(p for p in found if os.path.isdir(p) and p != "/" and not p.startswith(system))
    outermost: list[str] = []
    for path in paths:
        if not any(path == kept or path.startswith(kept + os.sep) for kept in outermost):
            outermost.append(path)
    return Interpreter(executable, tuple(outermost))


@functools.cache
def root_binds(interpreter: Interpreter) -> list[tuple[str, str, bool]]:
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
def root_links() -> list[tuple[str, str]]:
    """(name, target) for the top-level system entries that are symbolic links (merged /usr)."""
    return [(f"/{name}", os.readlink(f"/{name}")) for name in SYSTEM_ENTRIES if os.path.islink(f"/{name}")]


@functools.cache
def etc_files() -> dict[str, str]:
    """The /etc files written for the program: its account and a loopback-only host table."""
    uid = root_uid() if os.geteuid() == 0 else os.getuid()
    gid = root_uid() if os.geteuid() == 0 else os.getgid()
    return {
        "passwd": f"root:x:0:0:root:/:/usr/sbin/nologin\nsandbox:x:{uid}:{gid}:sandbox:{WORKDIR}:/usr/sbin/nologin\n",
        "group": f"root:x:0:\nsandbox:x:{gid}:\n",
        "hostname": "sandbox\n",
        "hosts": "127.0.0.1 localhost sandbox\n::1 localhost ip6-localhost ip6-loopback\n",
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
    }
