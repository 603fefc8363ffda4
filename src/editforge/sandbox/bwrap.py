"""The bubblewrap path: the same layout through ``bwrap``, where unprivileged user namespaces are disabled.

A setuid ``bwrap`` works without them. Run as root, ``bwrap`` makes no user
namespace of its own: the program starts through ``programs/drop_uid.py``, which
drops to the sandbox uid (and with it the two capabilities ``bwrap`` kept for
this), then becomes the runner.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import IO

from editforge.sandbox.types import PROGRAM, REMEDY, WORKDIR, Limits, SandboxError, program_source
from editforge.sandbox.zygote import Interpreter, environment, etc_files, kill_group, root_binds, root_links, root_uid


@functools.cache
def bwrap_path() -> str | None:
    """``bwrap`` on the PATH (looked up once), or None."""
    return shutil.which("bwrap")


def run_bwrap(
    source: str,
    argv: list[str],
    token: bytes,
    limits: Limits,
    streams: tuple[IO[bytes], IO[bytes], int],
    interpreter: Interpreter,
) -> tuple[int, bool, float]:
    """One run through bubblewrap, with the same layout; (wait status, timed out, seconds)."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxError(f"bwrap is not on the PATH; {REMEDY}")
    data = [source.encode("utf-8", errors="surrogateescape"), token, *(t.encode() for t in etc_files().values())]
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
    for name, value in environment(interpreter).items():
        args += ["--setenv", name, value]
    for name, target in root_links():
        args += ["--symlink", target, name]
    args += ["--dev", "/dev", "--proc", "/proc", "--perms", "0755", "--size", str(limits.tmpfs_mb * 1024 * 1024)]
    args += ["--tmpfs", "/tmp"]
    # bwrap would give the folders it makes for a bind their host modes (/root: 0700).
    binds = root_binds(interpreter)
    for folder in sorted({str(p) for _, target, _ in binds for p in Path(target).parents if str(p) != "/"}):
        args += ["--perms", "0755", "--dir", folder]
    for source_path, target, _ in binds:
        args += ["--ro-bind", source_path, target]
    for fd, name in zip(etc_fds, etc_files()):
        args += ["--perms", "0644", "--ro-bind-data", str(fd), f"/etc/{name}"]
    # The directory is the program's alone (the tmpfs is private), whichever uid it runs as.
    args += ["--perms", "0777", "--dir", WORKDIR, "--perms", "0644", "--file", str(program_fd), f"{WORKDIR}/{PROGRAM}"]
    # bwrap's new root is a tmpfs of its own, without a size cap and writable by its owner (an ordinary
    # caller's program): read-only, as under user namespaces, so only the capped /tmp takes writes.
    args += ["--remount-ro", "/", "--chdir", WORKDIR]
    # As root, the program starts through the shim that drops to the sandbox uid.
    shim = [interpreter.executable, "-I", "-S", "-c", program_source("drop_uid.py"), str(root_uid())] if root else []
    args += ["--", *shim]
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
    kill_group(proc.pid)
    proc.wait()
    status = proc.returncode
    wait_status = (status & 0xFF) << 8 if status >= 0 else -status
    return wait_status, timed_out, time.monotonic() - start


def _data_fd(data: bytes) -> int:
    """A pipe's read end holding ``data`` (small: it must fit the pipe's buffer)."""
    read_end, write_end = os.pipe()
    os.write(write_end, data)
    os.close(write_end)
    os.set_inheritable(read_end, True)
    return read_end
