"""Hostile programs for the sandbox, run by tests/sandbox/test_hostile.py as root and as an ordinary user.

Each program exits 0 only if its attack worked (or never ends), so a contained
attack is scored as not passing. ``run_all`` runs every program followed by a
plain one, in one ``run_many`` call, and returns the outcomes by name; as a
script it takes the host's bait as JSON and prints the outcomes as JSON (the
unprivileged run).
"""

from __future__ import annotations

import json
import sys
import textwrap
from typing import Any


def programs(bait: dict[str, Any]) -> dict[str, str]:
    """Name -> source; ``bait`` names the host's listeners, files and secrets the programs go after."""
    readable = bait["readable"]  # host files the evaluator's user can read
    sources = {
        "infinite loop": "while True:\n    pass",
        "fork bomb": """
            import os, time
            while True:
                try:
                    os.fork()
                except OSError:
                    time.sleep(0.01)
            """,
        "50 GB allocation": "block = bytearray(50 * 1024**3)\nblock[-1] = 1",
        "tcp connect to a host listener": f"""
            import socket
            socket.create_connection(("127.0.0.1", {bait["port"]}), timeout=2)
            """,
        "tcp connect through _socket": f"""
            import _socket
            s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
            s.settimeout(2)
            s.connect(("127.0.0.1", {bait["port"]}))
            """,
        "unix socket on the host's filesystem": f"""
            import socket
            socket.socket(socket.AF_UNIX).connect({bait["unix_path"]!r})
            """,
        "abstract unix socket": f"""
            import socket
            socket.socket(socket.AF_UNIX).connect({bait["unix_abstract"]!r})
            """,
        "api key in the environment": f"""
            import os
            assert {bait["secret"]!r} in repr(dict(os.environ))
            """,
        "api key in any /proc/*/environ": f"""
            import os
            found = False
            for pid in os.listdir("/proc"):
                try:
                    found |= {bait["secret"]!r}.encode() in open(f"/proc/{{pid}}/environ", "rb").read()
                except OSError:
                    pass
            assert found
            """,
        "read the project tree, results/, the benchmark and home": f"""
            seen = []
            for path in {readable!r}:
                try:
                    seen.append(open(path, "rb").read(1))
                except OSError:
                    pass
            assert seen
            """,
        "walk up to the benchmark file": """
            import os
            hits = []
            for top in ("/", "/tmp", "/root", "/home", "/work", os.path.dirname(os.getcwd())):
                for folder, _, files in os.walk(top):
                    hits += [f for f in files if f.startswith("canitedit")]
                    if folder.count(os.sep) > 6:
                        break
            assert hits, "nothing found"
            """,
        "append to a file under results/": f"""
            with open({bait["results_file"]!r}, "a") as handle:
                handle.write('{{"outcome": "pass"}}\\n')
            """,
        "kill the parent and the evaluator": f"""
            import os, signal, time
            def alive(pid):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return False
                except PermissionError:
                    pass
                return True
            targets = [pid for pid in (os.getppid(), {bait["evaluator_pid"]}) if alive(pid)]
            for pid in targets:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
            time.sleep(0.2)
            assert any(not alive(pid) for pid in targets)
            """,
        "setsid daemon that outlives the program": f"""
            import os, time
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    time.sleep(1.5)
                    for path in ({bait["marker"]!r}, "/tmp/editforge-daemon-marker"):
                        try:
                            open(path, "w").write("{bait["tag"]}")
                        except OSError:
                            pass
                    time.sleep(60)
                os._exit(0)
            raise SystemExit(1)
            """,
        "output flood": """
            import sys
            while True:
                sys.stdout.write("x" * 65536)
            """,
        "ignores SIGTERM": """
            import signal, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            while True:
                time.sleep(1)
            """,
        "fill its tmpfs": """
            with open("fill.bin", "wb") as handle:
                while True:
                    handle.write(b"x" * (1 << 20))
            """,
        "fill the new root, a file at a time": """
            number = 0
            while True:  # many files: the file-size limit alone does not bound them
                with open(f"/fill{number}.bin", "wb") as handle:
                    handle.write(b"x" * (1 << 20))
                number += 1
            """,
        "exhaust file descriptors": """
            handles = []
            while True:
                handles.append(open("/dev/null"))
            """,
    }
    return {name: textwrap.dedent(source) for name, source in sources.items()}


# What each program scores when it is contained: never "pass".
EXPECTED = {
    "infinite loop": "timeout",
    "fork bomb": "timeout",
    "50 GB allocation": "fail",
    "tcp connect to a host listener": "fail",
    "tcp connect through _socket": "fail",
    "unix socket on the host's filesystem": "fail",
    "abstract unix socket": "fail",
    "api key in the environment": "fail",
    "api key in any /proc/*/environ": "fail",
    "read the project tree, results/, the benchmark and home": "fail",
    "walk up to the benchmark file": "fail",
    "append to a file under results/": "fail",
    "kill the parent and the evaluator": "fail",
    "setsid daemon that outlives the program": "fail",
    "output flood": "fail",
    "ignores SIGTERM": "timeout",
    "fill its tmpfs": "fail",
    "fill the new root, a file at a time": "fail",
    "exhaust file descriptors": "fail",
}


def run_all(bait: dict[str, Any], mechanism: str = "auto") -> dict[str, dict[str, Any]]:
    """Outcome of each hostile program and of the plain program run right after it."""
    from editforge.sandbox import Limits, run_many, select_isolation

    hostile = programs(bait)
    batch = []
    for i, source in enumerate(hostile.values()):
        batch += [source, f"print('plain program {i} after a hostile one')"]
    # An open-files limit of the bait's own marks this run's processes on the host.
    limits = Limits(timeout_s=3, memory_mb=1024, max_processes=32, open_files=bait["open_files"])
    results = run_many(batch, 2, limits=limits, isolation=select_isolation(mechanism))
    return {
        name: {
            "outcome": results[2 * i].outcome,
            "stdout_bytes": len(results[2 * i].stdout_tail.encode()),
            "next": results[2 * i + 1].outcome,
        }
        for i, name in enumerate(hostile)
    }


if __name__ == "__main__":
    arguments = json.loads(sys.argv[1])
    print(json.dumps(run_all(arguments["bait"], arguments["mechanism"])))
