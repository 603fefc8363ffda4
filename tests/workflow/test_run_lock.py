"""The lock a killed run leaves: removed when its owner is gone, kept otherwise."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from editforge.workflow.run_lock import LOCKS, OWNER_FILE, clear_stale_lock, process_start, record_owner, release_owner


def _locked(workdir: Path, owner: dict | None) -> None:
    (workdir / LOCKS).mkdir(parents=True)
    (workdir / LOCKS / "0.input.lock").write_text("results/x\n")
    if owner is not None:
        (workdir / OWNER_FILE).write_text(json.dumps(owner))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_lock_of_a_dead_run_is_removed(tmp_path: Path) -> None:
    pid = _dead_pid()
    _locked(tmp_path, {"host": socket.gethostname(), "pid": pid, "start": "123"})
    message = clear_stale_lock(tmp_path)
    assert message == f"editforge: removed the lock left by a run that was killed (pid {pid}); resuming"
    assert not (tmp_path / LOCKS).exists() and not (tmp_path / OWNER_FILE).exists()


def test_a_reused_pid_is_told_apart_by_its_start_time(tmp_path: Path) -> None:
    _locked(tmp_path, {"host": socket.gethostname(), "pid": os.getpid(), "start": "not-my-start-time"})
    assert clear_stale_lock(tmp_path) is not None


def test_a_live_run_a_run_on_another_host_and_an_unknown_owner_keep_their_lock(tmp_path: Path) -> None:
    record_owner(tmp_path)  # this process: alive
    _locked(tmp_path, None)
    assert json.loads((tmp_path / OWNER_FILE).read_text())["start"] == process_start(os.getpid())
    assert clear_stale_lock(tmp_path) is None
    (tmp_path / OWNER_FILE).write_text(json.dumps({"host": "login-node-2", "pid": _dead_pid(), "start": "1"}))
    assert clear_stale_lock(tmp_path) is None  # its processes cannot be seen from here
    release_owner(tmp_path)
    assert clear_stale_lock(tmp_path) is None  # no owner recorded: another tool's lock
    assert any((tmp_path / LOCKS).iterdir())
