"""The sandbox's vocabulary: outcomes, limits, the isolation, its constants and the programs run inside.

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
import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Literal

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
    tests_finished: bool  # the program's code ran to its end (see editforge.sandbox.run)
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


@functools.cache
def program_source(name: str) -> str:
    """The text of ``programs/<name>``, a program run inside (passed with ``-c``), read once.

    Each file is, byte for byte, the program as it was held in a string: the
    line numbers of the runner's frames end up in the tracebacks records keep.
    """
    return resources.files("editforge.sandbox").joinpath("programs", name).read_text(encoding="utf-8")
