"""Choosing the isolation: the first mechanism that runs an empty program, or one line saying why none does.

``auto`` tries user namespaces, then bubblewrap; ``none`` (no isolation) is
given only when asked for by name. A failure names the kernel settings that
commonly disable unprivileged user namespaces, where they do, and the remedy.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from editforge.sandbox.bwrap import bwrap_path
from editforge.sandbox.types import (
    BWRAP,
    NAMESPACES,
    NONE,
    REMEDY,
    SANDBOX_SETTINGS,
    SETUP_MARK,
    USERNS,
    Isolation,
    Limits,
    SandboxError,
)

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
    # bwrap as root makes no user namespace (see editforge.sandbox.bwrap).
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
    if candidate.mechanism == "bwrap" and bwrap_path() is None:
        return "bwrap is not on the PATH"
    from editforge.sandbox.run import run_program  # here: run.py imports this module

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
