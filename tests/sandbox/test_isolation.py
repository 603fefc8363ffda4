"""What a program sees inside, under user namespaces and under bubblewrap, and refusing to run unisolated.

The expected filesystem is written out here as the threat model (editforge.sandbox's
docstring) allows it, not taken from the code under test: a change that shows a
program more of the host fails.
"""

from __future__ import annotations

import os
import shutil
import site
import stat
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest

from editforge.sandbox import run_program, select_isolation
from helpers import REPO

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux")
NOBODY = 65534
Require = Callable[[str, str], NoReturn]

# The system directories: each is, inside, a read-only bind of the host's, or the
# host's symbolic link into /usr (merged /usr); absent where the host has none.
SYSTEM = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
# Entries of the host's /etc bound read-only where they exist (the dynamic linker's
# cache, time zone, certificates, fonts, ...), and Debian's /etc/python3*.
ETC_BOUND = (
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
# The /etc files written for the program: its account and a loopback-only host table.
ETC_WRITTEN = ("passwd", "group", "hostname", "hosts", "nsswitch.conf")
DEVICES = ["full", "null", "random", "urandom", "zero"]
DEV_LINKS = ["fd", "stderr", "stdin", "stdout"]


def _interpreter_prefixes() -> list[str]:
    """Where this interpreter lives outside the system directories, outermost only: its prefixes,
    site-packages, library directory and the directory of its executable, as given and resolved."""
    needed = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *site.getsitepackages()}
    needed |= {sysconfig.get_config_var("LIBDIR") or sys.base_prefix, os.path.dirname(sys.executable)}
    found = {os.path.realpath(p) for p in needed} | {os.path.abspath(p) for p in needed}
    found.add(os.path.dirname(os.path.realpath(sys.executable)))
    outside = sorted(p for p in found if os.path.isdir(p) and p != "/" and p.split("/")[1] not in SYSTEM)
    outermost: list[str] = []
    for path in outside:
        if not any(path.startswith(kept + "/") for kept in outermost):
            outermost.append(path)
    return outermost


def _expected_layout(mechanism: str) -> dict[str, Any]:
    """What a program may see under ``mechanism``, here: each entry of `/` and of /etc with what it is
    ("bind/ro": a read-only bind of the host's; "link:<target>"; "dir", "file": made for the program
    on the new root; "tmpfs", "proc": a fresh mount), the listings of /dev, /tmp and of every folder
    on the way to the interpreter's prefixes, and the paths a program must not be able to write."""
    # The new root: a read-only tmpfs under both (bwrap's own root is remounted read-only, or an
    # ordinary caller's program could fill it without the /tmp cap).
    root: dict[str, str] = {"/": "tmpfs/ro"}
    root |= {"etc": "dir", "dev": "tmpfs", "proc": "proc", "tmp": "tmpfs"}
    for name in SYSTEM:
        host = f"/{name}"
        if os.path.islink(host):
            root[name] = f"link:{os.readlink(host)}"
        elif os.path.isdir(host):
            root[name] = "bind/ro"
    etc = {name: "bind/ro" for name in ETC_BOUND if os.path.exists(f"/etc/{name}")}
    etc |= {path.name: "bind/ro" for path in Path("/etc").glob("python3*")}
    # Written on the new root under user namespaces; bwrap binds them read-only from its own tmpfs.
    etc |= {name: "file" if mechanism == "userns" else "bind/ro" for name in ETC_WRITTEN}
    # /dev: the devices and the fd links; /dev/shm is backed by /tmp/shm under user namespaces, while
    # bwrap's --dev has its own /dev/shm and adds a terminal (tty, pts, ptmx) and the core link.
    dev = [*DEVICES, *DEV_LINKS, "shm"] + (["core", "ptmx", "pts", "tty"] if mechanism == "bwrap" else [])
    tmp = ["work", "shm"] if mechanism == "userns" else ["work"]
    folders: dict[str, set[str]] = {}
    for prefix in _interpreter_prefixes():
        parts = prefix.strip("/").split("/")
        if len(parts) == 1:
            root[parts[0]] = "bind/ro"
        elif parts[0] == "tmp":
            tmp.append(parts[1])
        else:
            root.setdefault(parts[0], "dir")
        for depth in range(1, len(parts)):
            folders.setdefault("/" + "/".join(parts[:depth]), set()).add(parts[depth])
    folders.pop("/tmp", None)
    return {
        "root": root,
        "etc": etc,
        "dev": sorted(dev),
        "tmp": sorted(tmp),
        "folders": {path: sorted(names) for path, names in folders.items()},
        "read_only": ["/usr/escaped", "/escaped", "/etc/escaped"],
    }


LAYOUT_CHECK = r"""
import os, socket, tempfile

mounts = {}
for line in open("/proc/self/mountinfo"):
    fields, fs = line.split(" - ")
    fields = fields.split()
    mounts[fields[4]] = (fields[3], fs.split()[0], "ro" in fields[5].split(","))


def kind(path):
    if os.path.islink(path):
        return "link:" + os.readlink(path)
    if path in mounts:
        within, fs, ro = mounts[path]
        fresh = fs in ("tmpfs", "proc") and (within == "/" or path == "/")  # else a bind of the host's
        return (fs if fresh else "bind") + ("/ro" if ro else "")
    return "dir" if os.path.isdir(path) else "file"


seen = {
    "root": {"/": kind("/"), **{name: kind("/" + name) for name in os.listdir("/")}},
    "etc": {name: kind("/etc/" + name) for name in os.listdir("/etc")},
    "dev": sorted(os.listdir("/dev")),
    "tmp": sorted(os.listdir("/tmp")),
    "folders": {path: sorted(os.listdir(path)) for path in EXPECTED["folders"]},
}
wrong = [f"{key}: expected {EXPECTED[key]}, saw {seen[key]}" for key in seen if seen[key] != EXPECTED[key]]
assert not wrong, "\n".join(wrong)
here = os.getcwd()
assert here == "/tmp/work", here
assert os.environ["HOME"] == here and os.environ["TMPDIR"] == here, os.environ
assert tempfile.gettempdir() == here
assert os.listdir(here) == ["prog.py"], os.listdir(here)
open("scratch.txt", "w").write("mine")
assert sorted(p for p in os.listdir("/proc") if p.isdigit()) == ["1", "2"], os.listdir("/proc")
assert socket.gethostname() == "sandbox"
status = open("/proc/self/status").read()
assert "CapEff:\t0000000000000000" in status and "NoNewPrivs:\t1" in status, status
for path in EXPECTED["read_only"]:
    try:
        open(path, "w")
    except OSError:
        continue
    raise SystemExit(path + " is writable")
"""


def test_the_program_sees_only_what_it_needs(mechanism: str) -> None:
    expected = _expected_layout(mechanism)
    result = run_program(f"EXPECTED = {expected!r}\n{LAYOUT_CHECK}", isolation=select_isolation(mechanism))
    assert result.outcome == "pass", result.stderr_tail


def test_user_namespaces_are_the_isolation_here() -> None:
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"unprivileged user namespaces are not available here: {probe.stderr.strip()}")
    iso = select_isolation()
    assert iso.mechanism == "userns"
    assert iso.namespaces == ("user", "mount", "pid", "net", "ipc", "uts")


def test_programs_run_as_nobody_when_the_caller_is_root() -> None:
    result = run_program("import os; print(os.getuid(), os.getgid(), os.getgroups())")
    expected = f"{NOBODY} {NOBODY} []" if os.geteuid() == 0 else f"{os.getuid()} {os.getgid()} []"
    assert result.stdout_tail.strip() == expected


def test_multiprocessing_and_shared_memory_work_inside() -> None:
    source = """
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
    result = run_program(textwrap.dedent(source))
    assert result.outcome == "pass", result.stderr_tail


LOWERING_FAILED = 97  # the shell's exit status when it cannot lower user.max_user_namespaces


def _without_user_namespaces(code: str, path: str, variable: str, require: Require) -> subprocess.CompletedProcess[str]:
    """Run ``code`` where creating user namespaces fails, as on hosts with user.max_user_namespaces=0.

    The setting is lowered inside a user namespace made for it; where no such namespace can be made,
    or the setting cannot be lowered in it, this skips naming why (fails where ``variable`` is 1).
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        require(variable, "util-linux's unshare is not installed: no user namespace to lower the setting in")
    script = f'echo 0 > /proc/sys/user/max_user_namespaces || exit {LOWERING_FAILED}\nexec "{sys.executable}" -c "$0"'
    env = {**os.environ, "PATH": path, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run(
        [unshare, "--user", "--map-root-user", "/bin/sh", "-c", script, code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if result.returncode == LOWERING_FAILED:
        require(variable, f"cannot lower user.max_user_namespaces in a user namespace here: {result.stderr.strip()}")
    if result.returncode != 0 and result.stderr.startswith("unshare: "):
        require(variable, f"cannot make a user namespace to lower the setting in: {result.stderr.strip()}")
    return result


REFUSE = """
from editforge.sandbox import SandboxError, select_isolation
try:
    iso = select_isolation()
except SandboxError as err:
    print(err)
else:
    print("selected " + iso.mechanism)
"""


def test_without_user_namespaces_or_bwrap_it_refuses_in_one_line(tmp_path: Path, require: Require) -> None:
    result = _without_user_namespaces(REFUSE, str(tmp_path), "EDITFORGE_REQUIRE_UNPRIVILEGED", require)  # no bwrap
    message = result.stdout.strip()
    assert len(message.splitlines()) == 1, result
    assert message.startswith("cannot isolate untrusted programs here: user namespaces do not work"), message
    assert "user.max_user_namespaces = 0" in message
    assert "bwrap is not on the PATH" in message
    assert "sandbox: none" in message and "sysctl user.max_user_namespaces" in message


def test_a_bwrap_that_cannot_work_is_reported_too(require: Require) -> None:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        require("EDITFORGE_REQUIRE_BWRAP", "bubblewrap is not installed")
    result = _without_user_namespaces(REFUSE, os.environ["PATH"], "EDITFORGE_REQUIRE_BWRAP", require)
    message = result.stdout.strip()
    if message == "selected bwrap" and os.stat(bwrap).st_mode & stat.S_ISUID:
        require("EDITFORGE_REQUIRE_BWRAP", f"{bwrap} is setuid, so it works without user namespaces")
    assert "user namespaces do not work" in message and "bwrap does not work" in message, message
