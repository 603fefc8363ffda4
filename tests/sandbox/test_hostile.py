"""Hostile programs (tests/helpers/hostile_programs.py) are contained, as the caller and as an ordinary user.

They run under every isolation that works here, as the caller and, when the caller
is root, again as uid 65534 (through ``setpriv``, from a copy of the package that
uid can read); the verdicts must be the same. Under CI (EDITFORGE_REQUIRE_BWRAP=1,
EDITFORGE_REQUIRE_UNPRIVILEGED=1) the bubblewrap and ordinary-user runs must happen.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from editforge.sandbox.types import TAIL_BYTES
from helpers import REPO
from helpers.hostile_programs import EXPECTED, run_all

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux")
NOBODY = 65534
Require = Callable[[str, str], NoReturn]


@pytest.fixture(scope="module")
def bait() -> Iterator[dict[str, Any]]:
    """What the hostile programs go after, open to any uid on the host so that only the sandbox stops them."""
    folder = Path(tempfile.mkdtemp(prefix="editforge-bait-"))
    folder.chmod(0o755)
    secret = f"sk-test-{uuid.uuid4().hex}"
    (folder / "results" / "benchmark").mkdir(parents=True)
    (folder / "results" / "benchmark" / "canitedit.jsonl").write_text('{"id": 1}\n')
    results_file = folder / "results" / "executions.jsonl"
    results_file.write_text("")
    results_file.chmod(0o666)
    home_file = Path.home() / f".editforge-bait-{uuid.uuid4().hex}"
    home_file.write_text("private")
    (folder / "home").mkdir()
    (folder / "home" / ".netrc").write_text("machine example.org password secret\n")
    for path in folder.rglob("*"):
        path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.is_dir() else 0))
    tcp = socket.create_server(("127.0.0.1", 0))
    tcp.setblocking(False)
    unix_path = str(folder / "host.sock")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(unix_path)
    unix.listen()
    unix.setblocking(False)
    os.chmod(unix_path, 0o777)
    abstract_name = f"\0editforge-bait-{uuid.uuid4().hex}"
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(abstract_name)
    abstract.listen()
    abstract.setblocking(False)
    readable = [
        str(folder / "results" / "benchmark" / "canitedit.jsonl"),
        str(REPO / "pyproject.toml"),
        str(home_file),
        str(folder / "home" / ".netrc"),  # the home of the unprivileged run
    ]
    shared = REPO.parent / "shared" / "canitedit" / "canitedit.jsonl"
    if shared.exists():
        readable.append(str(shared))
    values = {
        "port": tcp.getsockname()[1],
        "unix_path": unix_path,
        "unix_abstract": abstract_name,
        "secret": secret,
        "readable": readable,
        "results_file": str(results_file),
        "evaluator_pid": os.getpid(),
        "marker": str(folder / "daemon-marker"),
        "tag": uuid.uuid4().hex,
        "open_files": 900 + uuid.uuid4().int % 100,
        "_home": str(folder / "home"),
        "_listeners": (tcp, unix, abstract),
    }
    os.environ["EDITFORGE_BAIT_API_KEY"] = secret
    try:
        yield values
    finally:
        del os.environ["EDITFORGE_BAIT_API_KEY"]
        for listener in (tcp, unix, abstract):
            listener.close()
        home_file.unlink()
        shutil.rmtree(folder)


def _runner_processes(bait: dict[str, Any]) -> list[str]:
    """Live processes of any uid left by the hostile runs (marked by the bait's open-files limit)."""
    mark = f"RLIMIT_NOFILE:{bait['open_files']}:{bait['open_files']}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if mark in cmdline and state != "Z":
            found.append(entry.name)
    return found


def _assert_no_trace(bait: dict[str, Any]) -> None:
    time.sleep(2)  # the daemon would have written its marker by now
    assert not Path(bait["marker"]).exists()
    assert not Path("/tmp/editforge-daemon-marker").exists()
    assert Path(bait["results_file"]).read_text() == ""
    assert _runner_processes(bait) == []
    for listener in bait["_listeners"]:
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    # The host still forks after the fork bomb: no process of it is left to exhaust the table (a
    # failure raises here; a hang is caught by the timeout, not by a load-dependent bound).
    subprocess.run(["true"], check=True, timeout=60)


def _assert_contained(verdicts: dict[str, dict[str, Any]]) -> None:
    assert {name: v["outcome"] for name, v in verdicts.items()} == EXPECTED
    assert all(v["next"] == "pass" for v in verdicts.values()), verdicts
    assert verdicts["output flood"]["stdout_bytes"] <= TAIL_BYTES


def _setpriv() -> list[str]:
    return ["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups"]


def _python_for_nobody(require: Require) -> str:
    """An interpreter (3.11+) that uid 65534 can run: the system's, or this one."""
    if shutil.which("setpriv") is None:
        require("EDITFORGE_REQUIRE_UNPRIVILEGED", "setpriv (util-linux) is not installed")
    switch = subprocess.run([*_setpriv(), "true"], capture_output=True, text=True, cwd="/")
    if switch.returncode != 0:
        require("EDITFORGE_REQUIRE_UNPRIVILEGED", f"setpriv cannot switch to uid {NOBODY}: {switch.stderr.strip()}")
    why = []
    for candidate in ("/usr/bin/python3", sys.executable):
        check = subprocess.run(
            [*_setpriv(), candidate, "-c", "import sys; assert sys.version_info >= (3, 11), sys.version"],
            capture_output=True,
            text=True,
            cwd="/",
        )
        if check.returncode == 0:
            return candidate
        why.append(f"{candidate}: {(check.stderr.strip().splitlines() or [f'exit status {check.returncode}'])[-1]}")
    require("EDITFORGE_REQUIRE_UNPRIVILEGED", f"no Python 3.11+ that uid {NOBODY} can run ({'; '.join(why)})")


def _as_nobody(bait: dict[str, Any], mechanism: str, require: Require) -> dict[str, dict[str, Any]]:
    """The same hostile run as uid 65534, from a copy of the package it can read."""
    python = _python_for_nobody(require)
    import tqdm

    with tempfile.TemporaryDirectory(prefix="editforge-nobody-") as copy:
        shutil.copytree(REPO / "src" / "editforge", Path(copy, "editforge"))
        shutil.copytree(Path(tqdm.__file__).parent, Path(copy, "tqdm"))
        shutil.copy(REPO / "tests/helpers/hostile_programs.py", copy)
        subprocess.run(["chmod", "-R", "a+rX", copy], check=True)
        arguments = {"bait": {k: v for k, v in bait.items() if not k.startswith("_")}, "mechanism": mechanism}
        env = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": copy,
            "HOME": bait["_home"],
            "EDITFORGE_BAIT_API_KEY": bait["secret"],
        }
        result = subprocess.run(
            [*_setpriv(), python, str(Path(copy, "hostile_programs.py")), json.dumps(arguments)],
            capture_output=True,
            text=True,
            env=env,
            cwd="/",
            timeout=300,
        )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_hostile_programs_are_contained_as_root_and_as_an_ordinary_user(
    mechanism: str, bait: dict[str, Any], require: Require
) -> None:
    as_caller = run_all(bait, mechanism)
    _assert_contained(as_caller)
    _assert_no_trace(bait)
    if os.geteuid() != 0:
        why = f"the suite runs as uid {os.geteuid()}, not root: it cannot run the same programs as uid {NOBODY}"
        require("EDITFORGE_REQUIRE_UNPRIVILEGED", why)
    as_nobody = _as_nobody(bait, mechanism, require)
    _assert_contained(as_nobody)
    _assert_no_trace(bait)
    assert as_nobody == as_caller
