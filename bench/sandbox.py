"""Sandbox cost and parallel speed-up on the 105 CanItEdit reference programs.

Each reference ``after`` program with its tests is run three ways: in the
sandbox with 1 and with 2 workers, and as bare ``python3 prog.py`` (subprocess,
its own temporary directory, the same program files) with 1 and 2 workers.
Each configuration is repeated (interleaved, so drift in machine load hits all
of them alike) and the median is reported.

Targets: speed-up with 2 workers >= 1.8x; sandbox time per program <= 1.25x of
bare python3 (the ratio of the summed per-program medians; the median of the
per-program ratios and the fixed cost of an empty program are printed too).
Timings on a shared machine vary; the load average is printed.

Run as root, it measures again as uid 65534 in the same run (``--nobody-python``:
an interpreter with the evaluation packages that this uid can run, e.g.
``/usr/bin/python3 -m venv /tmp/nobody-venv && /tmp/nobody-venv/bin/pip install
torch==2.13.0 tqdm -r requirements-eval.txt``); the benchmark file and the
package are copied where that uid can read them.

    python bench/sandbox.py [--repeats 3] [--benchmark path/to/canitedit.jsonl] [--nobody-python PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from editforge.sandbox import Limits, run_program, select_isolation

TIMEOUT_S = 15
BENCHMARK_ENV = "EDITFORGE_CANITEDIT"
NOBODY = "65534"
DEFAULT_BENCHMARK = Path(__file__).resolve().parents[2] / "shared/canitedit/canitedit.jsonl"

Runner = Callable[[int], tuple[str, float]]


def bare_runner(files: list[Path]) -> Runner:
    def run(index: int) -> tuple[str, float]:
        start = time.monotonic()
        try:
            code = subprocess.run(
                [sys.executable, files[index].name],
                cwd=files[index].parent,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=TIMEOUT_S,
                start_new_session=True,
            ).returncode
            outcome = "pass" if code == 0 else "fail"
        except subprocess.TimeoutExpired:
            outcome = "timeout"
        return outcome, time.monotonic() - start

    return run


def sandbox_runner(sources: list[str]) -> Runner:
    def run(index: int) -> tuple[str, float]:
        start = time.monotonic()
        outcome = run_program(sources[index], limits=Limits(timeout_s=TIMEOUT_S)).outcome
        return outcome, time.monotonic() - start

    return run


def timed(runner: Runner, count: int, workers: int) -> tuple[float, float, list[float], Counter[str]]:
    """Wall seconds of the whole set, CPU seconds of its processes, seconds of each program, outcome counts."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(runner, range(count)))
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, [seconds for _, seconds in results], Counter(outcome for outcome, _ in results)


def empty_program_ms(count: int = 40) -> tuple[float, float]:
    """Median milliseconds of an empty program in the sandbox and as bare python3 (interleaved)."""
    sandbox, bare = [], []
    for _ in range(count):
        start = time.monotonic()
        run_program("pass")
        sandbox.append(time.monotonic() - start)
        start = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.monotonic() - start)
    return statistics.median(sandbox) * 1000, statistics.median(bare) * 1000


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--benchmark", default=os.environ.get(BENCHMARK_ENV) or str(DEFAULT_BENCHMARK))
    parser.add_argument("--nobody-python", help="as root: measure again as uid 65534 with this interpreter")
    args = parser.parse_args()

    # Read as plain JSON Lines, so that the unprivileged run needs nothing but the sandbox module.
    with open(args.benchmark, encoding="utf-8") as handle:
        problems = [json.loads(line) for line in handle if line.strip()]
    sources = [p["after"] + "\n" + p["tests"] for p in problems]
    iso = select_isolation()
    print(
        f"{len(sources)} reference programs; {os.cpu_count()} cores; uid {os.geteuid()}; {sys.executable}; "
        f"isolation: {iso.describe(Limits(timeout_s=TIMEOUT_S))}; load average at start {os.getloadavg()[0]:.2f}"
    )

    with tempfile.TemporaryDirectory(prefix="editforge-bench-") as root:
        files = []
        for problem, source in zip(problems, sources):
            folder = Path(root, problem["full_name"])
            folder.mkdir()
            (folder / "prog.py").write_text(source, encoding="utf-8")
            files.append(folder / "prog.py")
        configs = {
            ("sandbox", 1): sandbox_runner(sources),
            ("sandbox", 2): sandbox_runner(sources),
            ("bare", 1): bare_runner(files),
            ("bare", 2): bare_runner(files),
        }
        walls: dict[tuple[str, int], list[float]] = {key: [] for key in configs}
        cpus: dict[tuple[str, int], list[float]] = {key: [] for key in configs}
        per_program: dict[tuple[str, int], list[list[float]]] = {key: [] for key in configs}
        for repeat in range(args.repeats):
            for (kind, workers), runner in configs.items():
                wall, cpu, seconds, counts = timed(runner, len(sources), workers)
                walls[kind, workers].append(wall)
                cpus[kind, workers].append(cpu)
                per_program[kind, workers].append(seconds)
                print(
                    f"  repeat {repeat + 1}: {kind:7} {workers} worker(s): {wall:6.1f} s wall, {cpu:6.1f} s CPU  "
                    f"{dict(counts)}",
                    flush=True,
                )

    median_wall = {key: statistics.median(values) for key, values in walls.items()}
    print(f"\nmedian of {args.repeats} repeats:")
    for (kind, workers), value in median_wall.items():
        print(
            f"  {kind:7} {workers} worker(s): {value:6.1f} s wall, {statistics.median(cpus[kind, workers]):6.1f} s CPU"
        )

    speedup = median_wall["sandbox", 1] / median_wall["sandbox", 2]
    bare_speedup = median_wall["bare", 1] / median_wall["bare", 2]
    print(f"\nspeed-up with 2 workers: sandbox {speedup:.2f}x (target >= 1.8x: {verdict(speedup >= 1.8)})")
    print(f"                         bare python3 {bare_speedup:.2f}x")
    # Below 100%: cores lost to other jobs on a shared machine, or idle while the last programs finish.
    for kind in ("sandbox", "bare"):
        busy = statistics.median(cpus[kind, 2]) / (2 * median_wall[kind, 2])
        print(f"  {kind} with 2 workers kept {busy:.0%} of the 2 cores busy")

    # Per program, 1 worker: the median over repeats, sandbox against bare.
    sandbox_each = [statistics.median(runs) for runs in zip(*per_program["sandbox", 1])]
    bare_each = [statistics.median(runs) for runs in zip(*per_program["bare", 1])]
    total_ratio = sum(sandbox_each) / sum(bare_each)
    ratios = [s / b for s, b in zip(sandbox_each, bare_each)]
    print(
        f"sandbox time per program, 1 worker: {total_ratio:.3f}x of bare in total "
        f"(target <= 1.25x: {verdict(total_ratio <= 1.25)}); median ratio {statistics.median(ratios):.2f}x"
    )
    print(
        f"  median program: bare {statistics.median(bare_each) * 1000:.0f} ms, "
        f"sandbox {statistics.median(sandbox_each) * 1000:.0f} ms"
    )
    sandbox_ms, bare_ms = empty_program_ms()
    extra = sandbox_ms - bare_ms
    print(f"  fixed cost, empty program: sandbox {sandbox_ms:.1f} ms, bare {bare_ms:.1f} ms (+{extra:.1f} ms)")
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    if args.nobody_python and os.geteuid() == 0:
        as_nobody(args)


def as_nobody(args: argparse.Namespace) -> None:
    """The same measurement as uid 65534, from copies it can read."""
    import tqdm

    import editforge

    print("\n---------------- as uid 65534 ----------------", flush=True)
    with tempfile.TemporaryDirectory(prefix="editforge-bench-nobody-") as copy:
        shutil.copytree(Path(editforge.__file__).parent, Path(copy, "editforge"))
        shutil.copytree(Path(tqdm.__file__).parent, Path(copy, "tqdm"))
        shutil.copy(__file__, copy)
        shutil.copy(args.benchmark, Path(copy, "canitedit.jsonl"))
        subprocess.run(["chmod", "-R", "a+rX", copy], check=True)
        command = ["setpriv", "--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", args.nobody_python]
        command += [str(Path(copy, Path(__file__).name)), "--repeats", str(args.repeats)]
        command += ["--benchmark", str(Path(copy, "canitedit.jsonl"))]
        env = {"PATH": os.defpath, "PYTHONPATH": copy, "HOME": copy, "LANG": "C.UTF-8"}
        subprocess.run(command, env=env, cwd=copy, check=True)


if __name__ == "__main__":
    main()
