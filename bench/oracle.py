"""The oracle and the anti-oracle of each benchmark through the workflow's own evaluation rules.

A fake OpenAI-compatible server answers every prompt as a perfect model would (the oracle: the
reference solution) or as one that changes nothing (the anti-oracle: the input unchanged), in the
benchmark's harness format (targets ``*-harness``, prompt format ``canitedit-chat``) and in ours
(``*-editforge``); for CanItEdit also in its direct format (``*-direct``, which the other benchmarks
read as their harness format). Snakemake then runs the preflight, generation, execution and scoring
rules and the combined report, as a user's run would: as the caller, or with ``--as-user`` as uid
65534 (through ``setpriv``, on copies of the data it can read). Expected, with every problem:

* CanItEdit: the oracle scores 100.0 under both rules on every problem the preflight keeps, the
  preflight names 78_llm_inference where vllm is absent, and the anti-oracle passes at most 1 of
  105 per instruction kind (60_unique_number's timing test is flaky);
* HumanEvalFix: the oracle 100.0 in both kinds, the anti-oracle (the buggy function) 0;
* Aider's Exercism set: the oracle 100.0, the anti-oracle (the stub) 2 of 133: ledger and markdown,
  refactoring exercises whose stub already works.

It prints the pass@1 table (benchmark x target x split), the anti-oracle samples that pass, the
sandbox time per 1,000 executions of each benchmark and the run's wall time with the load average,
and exits 1 when an expectation fails.

    python bench/oracle.py [--benchmark NAME]... [--problems N] [--workdir DIR] [--as-user]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from editforge.backend.fake_answers import Role, benchmark_responder, reference_answer_maps
from editforge.backend.fake_server import FakeServer, Responder, reference_responder
from editforge.evaluation.benchmarks.registry import benchmark

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
# benchmark -> (the environment variable naming a local copy, the shared copy used otherwise)
SOURCES = {
    "canitedit": ("EDITFORGE_CANITEDIT", SHARED / "canitedit/canitedit.jsonl"),
    "humanevalfix": ("EDITFORGE_HUMANEVALFIX", SHARED / "benchmarks/humanevalfix/humanevalfix.jsonl"),
    "aider_exercism": (
        "EDITFORGE_AIDER_EXERCISM",
        SHARED / "benchmarks/aider_exercism_python/aider_exercism_python.jsonl",
    ),
}
# target -> (prompt format, role)
TARGETS: dict[str, tuple[str, Role]] = {
    "oracle-harness": ("canitedit-chat", "oracle"),
    "oracle-editforge": ("editforge", "oracle"),
    "anti-oracle-harness": ("canitedit-chat", "anti-oracle"),
    "anti-oracle-editforge": ("editforge", "anti-oracle"),
}
DIRECT_TARGETS: dict[str, tuple[str, Role]] = {
    "oracle-direct": ("canitedit-direct", "oracle"),
    "anti-oracle-direct": ("canitedit-direct", "anti-oracle"),
}
FREE_PASSES = {"aider_exercism": {"ledger", "markdown"}}  # anti-oracle passes expected (when selected)
NOBODY = "65534"
SETPRIV = ("setpriv", "--reuid", NOBODY, "--regid", NOBODY, "--clear-groups")
CORES = 2


def sources(names: list[str]) -> dict[str, Path]:
    """Each benchmark's local copy: its environment variable, else the shared copy."""
    return {name: Path(os.environ.get(SOURCES[name][0]) or SOURCES[name][1]) for name in names}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def targets(names: list[str]) -> dict[str, tuple[str, Role]]:
    return {**TARGETS, **(DIRECT_TARGETS if "canitedit" in names else {})}


def responder(paths: Mapping[str, Path], models: Mapping[str, tuple[str, Role]]) -> Responder:
    """The plug-ins' reference answers per target; CanItEdit's prompts by ``reference_responder``."""
    tables: dict[str, dict[str, str]] = {model: {} for model in models}
    for name, path in paths.items():
        if name != "canitedit":
            bench = benchmark(name)
            for model, table in reference_answer_maps(bench, bench.load(str(path)), models).items():
                tables[model].update(table)
    fallback = None
    if "canitedit" in paths:
        rows = read_jsonl(paths["canitedit"])
        fields = {model: "after" if role == "oracle" else "before" for model, (_, role) in models.items()}
        fallback = reference_responder(rows, fields)
    return benchmark_responder(tables, fallback)


def config(workdir: Path, base_url: str, paths: Mapping[str, Path], problems: int | None) -> dict[str, Any]:
    models = {
        name: {"backend": "openai", "model": name, "base_url": base_url, "prompt_format": fmt, "max_concurrency": 16}
        for name, (fmt, _) in targets(list(paths)).items()
    }
    return {
        "run_name": "oracle",
        "cache_dir": str(workdir / "cache"),
        "models": models,
        "seeds": {"sources": [{"name": "stdlib", "type": "stdlib"}]},
        "synthesis": {"models": ["oracle-harness"]},
        "evaluation": {
            "benchmark": str(paths.get("canitedit", SOURCES["canitedit"][1])),
            "problems": problems,
            "targets": list(models),
            "samples": 1,
            "workers": 2,
            "reference_failures": "exclude",
            "benchmarks": {name: {} for name in paths},
        },
    }


def user_can_run(python: str) -> bool:
    """Whether uid 65534 can start ``python`` from a shell (as Snakemake starts its jobs) with the packages."""
    start = 'exec "$0" -c "import editforge, snakemake"'
    return subprocess.run([*SETPRIV, "/bin/sh", "-c", start, python], capture_output=True, cwd="/").returncode == 0


def user_python(workdir: Path) -> str:
    """An interpreter uid 65534 can start, with this one's packages: this one, or else a virtual
    environment in ``workdir`` on the system's Python of the same version whose site-packages is this
    one's (as where this interpreter lives under a private home)."""
    if user_can_run(sys.executable):
        return sys.executable
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(f"python{version}", path="/usr/local/bin:/usr/bin")
    if system is None:
        raise SystemExit(f"--as-user: uid {NOBODY} cannot run {sys.executable}, and there is no system python{version}")
    venv = workdir / "venv"
    site = venv / "lib" / f"python{version}" / "site-packages"
    site.parent.mkdir(parents=True, exist_ok=True)
    (venv / "bin").mkdir(exist_ok=True)
    for link, target in ((site, sysconfig.get_paths()["purelib"]), (venv / "bin/python", system)):
        if not link.is_symlink():
            link.symlink_to(target)
    home = Path(system).parent
    (venv / "pyvenv.cfg").write_text(f"home = {home}\ninclude-system-site-packages = false\nversion = {version}\n")
    give_to_user(workdir)
    if not user_can_run(str(venv / "bin/python")):
        raise SystemExit(f"--as-user: uid {NOBODY} can run neither {sys.executable} nor {system} with the packages")
    return str(venv / "bin/python")


def give_to_user(folder: Path) -> None:
    """``folder`` and what it holds owned by uid 65534 (links themselves, never what they point to)."""
    for root, folders, files in os.walk(folder):
        for path in (root, *(os.path.join(root, name) for name in (*folders, *files))):
            os.lchown(path, int(NOBODY), int(NOBODY))


def run(workdir: Path, paths: dict[str, Path], problems: int | None, as_user: bool) -> float:
    """Run the evaluation rules up to the combined summary; the wall time of the Snakemake run."""
    python = sys.executable
    if as_user:  # copies that uid 65534 can read, in a folder it owns
        (workdir / "data").mkdir(exist_ok=True)
        for name, path in paths.items():
            paths[name] = Path(shutil.copy(path, workdir / "data" / f"{name}.jsonl"))
        python = user_python(workdir)
        print(f"running Snakemake as uid {NOBODY} with {python}", flush=True)
    answer = responder(paths, targets(list(paths)))
    with FakeServer(responder=answer) as server:
        (workdir / "config.yaml").write_text(yaml.safe_dump(config(workdir, server.base_url, paths, problems)))
        command = [python, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                   str(workdir), "--configfile", str(workdir / "config.yaml"), "--cores", str(CORES),
                   "results/report/summary.csv"]
        copies = {SOURCES[name][0]: str(path) for name, path in paths.items()}
        env = {**os.environ, **copies}
        if as_user:
            give_to_user(workdir)
            command = [*SETPRIV, *command]
            passed = {key: value for key, value in os.environ.items() if key.startswith(("EDITFORGE_", "HF_"))}
            env = {**passed, **copies, "PATH": os.environ["PATH"], "HOME": str(workdir), "LANG": "C.UTF-8"}
        started = time.monotonic()
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir)
        wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"snakemake failed:\n{result.stderr[-4000:]}")
    return wall


def read_results(workdir: Path, names: list[str]) -> dict[str, Any]:
    """The combined summary's rows, and each benchmark's preflight report and executions per target."""
    with open(workdir / "results/report/summary.csv", encoding="utf-8") as handle:
        summary = list(csv.DictReader(handle))
    evaluation = workdir / "results/evaluation"
    preflight = {name: json.loads((evaluation / name / "preflight.json").read_text()) for name in names}
    executions = {
        name: {
            target: read_jsonl(evaluation / name / target / "executions.jsonl") for target in targets(names)
        }
        for name in names
    }
    return {"summary": summary, "preflight": preflight, "executions": executions}


def splits(name: str) -> tuple[str, ...]:
    return (*benchmark(name).kinds, "overall")


def label(record: Mapping[str, Any]) -> str:
    return f"{record.get('full_name') or record['problem_id']} ({record['kind']})"


def checks(outcome: Mapping[str, Any]) -> list[str]:
    """The expectations that fail: oracle rows at 100.0 under both rules, the anti-oracle's passes."""
    failed = [
        f"{row['benchmark']} {row['target']} {row['split']}: pass@1 {row['pass@1']}, strict {row['strict_pass@1']}"
        for row in outcome["summary"]
        if row["target"].startswith("oracle")
        and row["split"] in splits(row["benchmark"])
        and {float(row["pass@1"] or 0), float(row["strict_pass@1"] or 0)} != {100.0}
    ]
    for name, by_target in outcome["executions"].items():
        for target, records in by_target.items():
            if not target.startswith("anti"):
                continue
            passing = [r for r in records if r["outcome"] == "pass"]
            if name == "canitedit":
                for kind in benchmark(name).kinds:
                    if sum(r["kind"] == kind for r in passing) > 1:
                        failed.append(f"canitedit {target}: more than 1 anti-oracle pass in kind {kind}")
                continue
            expected = FREE_PASSES.get(name, set()) & {str(r["problem_id"]) for r in records}
            if {str(r["problem_id"]) for r in passing} != expected:
                failed.append(f"{name} {target}: anti-oracle passes {sorted(label(r) for r in passing)}")
    return failed


def report(outcome: Mapping[str, Any], wall: float, loads: tuple[tuple[float, ...], ...], as_user: bool) -> None:
    for name, preflight in outcome["preflight"].items():
        print(f"{name} preflight: {preflight['checked']} references checked, isolation {preflight['isolation']}")
        for entry in preflight["excluded"]:
            print(f"  excluded: {entry.get('full_name') or entry['problem_id']} ({entry['reason']})")
        free = [f"{entry['problem_id']} ({entry['kind']})" for entry in preflight.get("anti_oracle_passes", [])]
        if free:
            print(f"  unchanged input passes: {', '.join(free)}")
    print("\n| benchmark | target | split | problems | samples | well-formed | pass@1 (official) | pass@1 (strict) "
          "| early exits |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in outcome["summary"]:
        if row["split"] in splits(row["benchmark"]):
            official, strict = (f"{float(row[c]):.1f}" if row[c] else "-" for c in ("pass@1", "strict_pass@1"))
            print(f"| {row['benchmark']} | {row['target']} | {row['split']} | {row['problems']} | {row['samples']} "
                  f"| {row['well_formed']} | {official} | {strict} | {row['early_exits']} |")
    print()
    for name, by_target in outcome["executions"].items():
        for target, records in by_target.items():
            if target.startswith("anti"):
                passing = sorted({label(r) for r in records if r["outcome"] == "pass"})
                print(f"{name} {target} passes: {', '.join(passing) or 'none'}")
    print("\n| benchmark | executions | sandbox time (s) | per 1,000 executions (s) |\n|---|---|---|---|")
    total = 0
    for name, by_target in outcome["executions"].items():
        records = [r for rows in by_target.values() for r in rows]
        seconds = sum(float(r["duration_s"]) for r in records)
        total += len(records)
        print(f"| {name} | {len(records)} | {seconds:.1f} | {1000 * seconds / max(len(records), 1):.1f} |")
    who = f"uid {NOBODY}" if as_user else f"uid {os.geteuid()}"
    start, end = (" ".join(f"{value:.2f}" for value in load) for load in loads)
    print(f"\nrun: {wall:.0f} s wall for {total} executions ({1000 * wall / max(total, 1):.0f} s per 1,000, with "
          f"generation, preflight and scoring), {CORES} cores, 2 workers, as {who}; load average {start} at the "
          f"start, {end} at the end ({os.cpu_count()} CPUs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmark", action="append", choices=list(SOURCES), help="repeatable (default: all three)")
    parser.add_argument("--problems", type=int, default=None, help="the first N problems of each (default: all)")
    parser.add_argument("--workdir", type=Path, help="keep the run here (default: a temporary folder)")
    parser.add_argument("--as-user", action="store_true", help=f"run Snakemake as uid {NOBODY} (needs root)")
    args = parser.parse_args()
    if args.as_user and os.geteuid() != 0:
        raise SystemExit(f"--as-user switches to uid {NOBODY} with setpriv, which needs root")
    names = list(dict.fromkeys(args.benchmark or SOURCES))
    with tempfile.TemporaryDirectory(prefix="editforge-oracle-") as scratch:
        workdir = (args.workdir or Path(scratch)).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        before = os.getloadavg()
        wall = run(workdir, sources(names), args.problems, args.as_user)
        loads = (before, os.getloadavg())
        outcome = read_results(workdir, names)
    report(outcome, wall, loads, args.as_user)
    failed = checks(outcome)
    print("\nexpectations: " + ("all met" if not failed else "FAILED\n  " + "\n  ".join(failed)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
