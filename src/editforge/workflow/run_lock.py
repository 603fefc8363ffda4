"""Resuming after a hard kill with the same command: Snakemake's lock of a dead run.

Snakemake locks the working directory while it runs and leaves the lock behind
when it is killed with SIGKILL, so the next run stops with a ``LockException``
until ``snakemake --unlock``. The workflow records which process holds the
lock (``OWNER_FILE``: its host, pid and start time, written when a run starts
and removed when it ends); when a run finds a lock whose recorded owner no longer
exists, it removes that lock before Snakemake looks for it. A lock whose owner
is alive, runs on another host (whose processes cannot be seen from here), or is
unknown (a run of another tool) is left alone. Only the main Snakemake process
looks: the job processes of a cluster run parse the workflow too, on other hosts.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

OWNER_FILE = Path(".snakemake/editforge-run.json")
LOCKS = Path(".snakemake/locks")


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (tells a reused pid apart), or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the command name may hold spaces


def record_owner(workdir: Path = Path()) -> None:
    """Note this process as the holder of the lock (at the start of a run)."""
    path = workdir / OWNER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "start": process_start(os.getpid())}))


def release_owner(workdir: Path = Path()) -> None:
    """Forget the holder (at the end of a run, whether it succeeded or failed)."""
    (workdir / OWNER_FILE).unlink(missing_ok=True)


def clear_stale_lock(workdir: Path = Path()) -> str | None:
    """Remove the lock of a run that was killed; return a line saying so, or None if nothing was stale."""
    locks, owner = workdir / LOCKS, workdir / OWNER_FILE
    if not (locks.is_dir() and any(locks.iterdir()) and owner.is_file()):
        return None
    try:
        holder = json.loads(owner.read_text())
        host, pid, start = holder["host"], int(holder["pid"]), holder["start"]
    except (ValueError, KeyError, TypeError):
        return None
    if host != socket.gethostname():
        return None  # its processes cannot be seen from here
    if process_start(pid) is not None and process_start(pid) == start:
        return None  # still running
    shutil.rmtree(locks)
    owner.unlink(missing_ok=True)
    return f"editforge: removed the lock left by a run that was killed (pid {pid}); resuming"
