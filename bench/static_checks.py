"""Benchmark: the static checks of filter_shard (ruff's pyflakes rules and tree-sitter): their cost and recall.

    python bench/static_checks.py [--triplets 10000] [--repeats 3] [--execution N] [--prompts 10000] [--part P]

1. Speed (``--part speed``): ``--triplets`` synthetic triplets in one shard: the programs and edits of
   bench/dedup.py (6-30 lines, a small edit, instructions from templates), with every name a function
   uses made one of its parameters, so the programs are clean, as most of a teacher's are. Then
   ``run_filter_shard`` with ``execution_check`` off, static checks all on and all off, ``--repeats``
   times interleaved; the medians, their ratio and the target (at most 1.20), the load average before
   and after. With ``--execution N``, the same on the first N triplets with the execution check on (the
   default users have), where the sandbox dominates.
2. Recall (``--part workflow``): a scripted teacher behind the fake server (in this process) answers
   ``--prompts`` dialogue prompts; Snakemake runs the workflow's seeds, synthesis, parse and filter_shard
   rules up to results/filtered/fake/<shard>.jsonl (4 shards, execution check off). The teacher writes
   the same kind of clean program and edit, and plants one defect chosen by a hash of the prompt:
   60% none; 10% each: a module used without its import (json.dumps, math.floor, os.getcwd, re.escape,
   random.random, np.zeros, pd.DataFrame), a call of a helper defined nowhere, leftover markup (a
   ``# ```python`` or ``# **Updated code:**`` first line, a ``# ````` last line, or a trailing
   ``### Explanation`` comment), and code left out (a ``# ... existing code ...`` line; in the post-edit
   program also a body cut to ``...`` or a function's tail replaced by ``# ... rest of the code
   unchanged``). Half of the defects are in the pre-edit program (and so in both), half only in the
   post-edit one. Printed: the triplets in, the drops by reason with the static checks on and off (a
   rerun of ``run_filter_shard`` on the same shards), the recall of each planted class (dropped with
   the expected reason, among the triplets that reached the static checks), the false drops of clean
   triplets, and filter_shard's time on and off (median of ``--repeats``) with the ratio.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import hashlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from dedup import Generator, record  # noqa: E402  (the programs of the dedup benchmark)

from editforge.backend.fake_server import FakeServer  # noqa: E402
from editforge.filtering import run_filter_shard  # noqa: E402
from editforge.records import read_jsonl, write_jsonl  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CANITEDIT = REPO.parent / "shared/canitedit/canitedit.jsonl"  # the preflight checks the evaluation's benchmark
SETTINGS: dict[str, Any] = {  # the config's defaults
    "min_changed_lines": 1, "max_changed_lines": 70, "max_hunks": 7, "lazy_max_sentences": 3,
    "execution_check": False, "execution_timeout_s": 10,
}  # fmt: skip
ALL_ON = dict.fromkeys(("undefined_names", "missing_imports", "leftover_markup", "truncated_code"), True)
ALL_OFF = dict.fromkeys(ALL_ON, False)
TARGET_RATIO = 1.20
BUILTINS = frozenset(dir(builtins))
# Planted classes and their share of prompts (percent), and the reason each should be dropped with.
PLANTS = {"clean": 60, "missing_import": 10, "undefined_name": 10, "leftover_markup": 10, "truncated": 10}
MODULE_USES = ("json.dumps([])", "math.floor(2.5)", "os.getcwd()", "re.escape('a')", "random.random()",
               "np.zeros(3)", "pd.DataFrame()")  # fmt: skip
MARKUP = ("first:# ```python", "first:# **Updated code:**", "last:# ```", "last:### Explanation")
CASE = re.compile(r'^"""Case ([0-9a-f]{16})\."""', re.MULTILINE)


# ---------------------------------------------------------------- clean programs


def closed(lines: list[str]) -> str:
    """The program with every name each function uses made one of its parameters (builtins it does not
    assign aside), so no name is undefined; formatted by ``ast.unparse``."""
    tree = ast.parse("\n".join(lines) + "\n")
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            names = [n for n in ast.walk(node) if isinstance(n, ast.Name)]
            stored = {n.id for n in names if isinstance(n.ctx, ast.Store)}
            used = {n.id for n in names} - (BUILTINS - stored)
            params = [a.arg for a in node.args.args]
            node.args.args = [ast.arg(name) for name in [*params, *sorted(used - set(params))]]
    return ast.unparse(tree) + "\n"


def clean_case(gen: Generator) -> tuple[str, str, str, str]:
    """(pre, post, lazy, descriptive): one clean program, its edit and the instructions."""
    functions, lines = gen.program()
    lazy, descriptive = gen.instruction(gen.rng.choice(functions))
    return closed(lines), closed(gen.edit(lines)), lazy, descriptive


def clean_triplets(count: int, seed: int) -> list[dict[str, Any]]:
    gen = Generator(seed)
    return [record(number, *clean_case(gen)) for number in range(count)]


# ---------------------------------------------------------------- part 1: speed


def timed_runs(source: Path, folder: Path, settings: dict[str, Any], repeats: int) -> dict[str, Any]:
    """run_filter_shard with the static checks on and off, interleaved (the order alternates): medians, counts."""
    seconds: dict[str, list[float]] = {"on": [], "off": []}
    counts: dict[str, dict[str, int]] = {}
    for repeat in range(repeats):
        for mode in ("on", "off") if repeat % 2 == 0 else ("off", "on"):
            switches = ALL_ON if mode == "on" else ALL_OFF
            start = time.perf_counter()
            counts[mode] = run_filter_shard(source, folder / f"{mode}.jsonl", settings | {"static_checks": switches})
            seconds[mode].append(time.perf_counter() - start)
    medians = {mode: statistics.median(values) for mode, values in seconds.items()}
    return {"medians": medians, "ratio": medians["on"] / medians["off"], "counts": counts, "seconds": seconds}


def speed(triplets: int, repeats: int, execution: int, seed: int) -> None:
    records = clean_triplets(triplets, seed)
    lines = statistics.mean(r["pre_code"].count("\n") for r in records)
    with tempfile.TemporaryDirectory(prefix="editforge-static-bench-") as tmp:
        folder = Path(tmp)
        write_jsonl(folder / "shard.jsonl", records)
        write_jsonl(folder / "warm.jsonl", records[:50])
        timed_runs(folder / "warm.jsonl", folder, SETTINGS, 1)  # imports, ruff's version and target
        load = os.getloadavg()[0]
        result = timed_runs(folder / "shard.jsonl", folder, SETTINGS, repeats)
        print(f"speed: {triplets:,} triplets ({2 * triplets:,} programs, {lines:.1f} lines on average), one shard, "
              f"execution check off, {repeats} interleaved repeats; load average {load:.2f} before, "
              f"{os.getloadavg()[0]:.2f} after")  # fmt: skip
        report_times(result)
        if execution:
            write_jsonl(folder / "run.jsonl", records[:execution])
            load = os.getloadavg()[0]
            result = timed_runs(folder / "run.jsonl", folder, SETTINGS | {"execution_check": True}, repeats)
            print(f"with the execution check (sandbox 'auto'): {execution:,} triplets; load average {load:.2f} "
                  f"before, {os.getloadavg()[0]:.2f} after")  # fmt: skip
            report_times(result)


def report_times(result: dict[str, Any]) -> None:
    on, off = result["medians"]["on"], result["medians"]["off"]
    runs = ", ".join(f"{mode} " + " ".join(f"{s:.2f}" for s in values) for mode, values in result["seconds"].items())
    verdict = "met" if result["ratio"] <= TARGET_RATIO else "MISSED"
    print(
        f"  filter_shard median: static checks on {on:.2f} s, off {off:.2f} s; ratio {result['ratio']:.3f} "
        f"(target at most {TARGET_RATIO:.2f}: {verdict}); static checks {on - off:+.2f} s; runs (s): {runs}"
    )
    print(f"  counts on: {result['counts']['on']}\n  counts off: {result['counts']['off']}")


# ---------------------------------------------------------------- part 2: the workflow with a scripted teacher


def plant_of(digest: str) -> tuple[str, str]:
    """(planted class, 'pre' or 'post') of a prompt, from its hash."""
    bucket, threshold = int(digest[:8], 16) % 100, 0
    for name, share in PLANTS.items():
        threshold += share
        if bucket < threshold:
            return name, "pre" if int(digest[8:10], 16) % 2 == 0 else "post"
    raise AssertionError("the shares add up to 100")


def after_first_def(code: str, line: str) -> str:
    return re.sub(r"^(def .*\n)", rf"\1{line}\n", code, count=1, flags=re.MULTILINE)


def plant(code: str, kind: str, variant: int, post_only: bool) -> str:
    """``code`` with a defect of class ``kind`` (``variant`` picks its form)."""
    if kind == "missing_import":
        uses = [use for use in MODULE_USES if not re.search(rf"^import {use.split('.')[0]}$", code, re.MULTILINE)]
        return after_first_def(code, f"    cached_value = {uses[variant % len(uses)]}")
    if kind == "undefined_name":
        return after_first_def(code, f"    cached_value = ensure_{('limits', 'totals', 'names')[variant % 3]}([])")
    if kind == "leftover_markup":
        where, line = MARKUP[variant % len(MARKUP)].split(":", 1)
        return f"{line}\n{code}" if where == "first" else f"{code}\n{line}\n# The function now does what was asked.\n"
    if not post_only or variant % 3 == 0:
        return after_first_def(code, "    # ... existing code ...")
    last = [node for node in ast.parse(code).body if isinstance(node, ast.FunctionDef)][-1]
    lines = code.splitlines()
    if variant % 3 == 1:  # the body cut to `...`
        lines[last.body[0].lineno - 1 : last.end_lineno] = ["    ..."]
    else:  # the tail after the first statement replaced by a placeholder
        lines[last.body[0].end_lineno : last.end_lineno] = ["    # ... rest of the code unchanged"]
    return "\n".join(lines) + "\n"


def case(digest: str) -> tuple[str, str, str, str]:
    """The teacher's (pre, post, lazy, descriptive) for a prompt, its defect planted; the same for both rounds."""
    pre, post, lazy, descriptive = clean_case(Generator(int(digest[:12], 16)))
    kind, where = plant_of(digest)
    if kind != "clean":
        variant = int(digest[10:14], 16)
        post = plant(post, kind, variant, where == "post")
        pre = pre if where == "post" else plant(pre, kind, variant, False)
    marker = f'"""Case {digest[:16]}."""\n'  # how the bench finds a triplet's plant again
    return marker + pre, marker + post, lazy, descriptive


def teacher(body: dict[str, Any], index: int) -> str:
    """Dialogue answers (as tests/helpers/workflow.py's synthesis_responder), one case per prompt."""
    users = [m["content"] for m in body["messages"] if m["role"] == "user"]
    pre, post, lazy, descriptive = case(hashlib.sha256(users[0].encode()).hexdigest())
    if len(users) == 1:
        return f"[Program Before Edit]\n```python\n{pre}```\n\n[Descriptive]\n{descriptive}\n\n[Lazy]\n{lazy}"
    return f"[Program After Edit]\n```python\n{post}```"


def write_code_tree(root: Path, files: int = 100, functions: int = 4) -> Path:
    """Seed snippets: ``files`` files of ``functions`` small functions each."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (root / f"module_{i}.py").write_text("\n\n".join(
            f"def step_{i}_{j}(values, scale={j + 2}):\n    '''Scale and filter a list ({i}, {j}).'''\n"
            f"    result = []\n    for value in values:\n        if value % {j + 2} == {i % 3}:\n"
            f"            result.append(value * scale)\n    return result\n"
            for j in range(functions)
        ) + "\n")  # fmt: skip
    return root


def workflow(prompts: int, repeats: int) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="editforge-static-workflow-") as tmp,
        FakeServer(responder=teacher) as server,
    ):
        workdir = Path(tmp)
        code = write_code_tree(workdir / "code")
        config = {
            "run_name": "static-bench",
            "cache_dir": str(workdir / "cache"),
            "models": {"fake": {"backend": "openai", "model": "fake", "base_url": server.base_url,
                                "max_concurrency": 64, "timeout_s": 60, "retry_base_s": 0.05}},
            "seeds": {
                "sources": [{"name": "code", "type": "directory", "path": str(code)}], "num_prompts": prompts,
                "num_shards": 4, "min_lines": 3, "max_lines": 15, "max_snippet_reuse": 64,
            },
            "synthesis": {"models": ["fake"], "mode": "dialogue"},
            "filtering": {"execution_check": False, "static_checks": ALL_ON},
            "evaluation": {"targets": ["fake"], "benchmark": os.environ.get("EDITFORGE_CANITEDIT", str(CANITEDIT))},
        }  # fmt: skip
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        targets = [f"results/filtered/fake/{shard:03d}.jsonl" for shard in range(4)]
        command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                   str(workdir), "--configfile", str(workdir / "config.yaml"), "--cores", "2", *targets]  # fmt: skip
        load, start = os.getloadavg()[0], time.perf_counter()
        run = subprocess.run(command, capture_output=True, text=True)
        if run.returncode != 0:
            raise SystemExit(f"snakemake failed:\n{run.stderr[-4000:]}")
        print(
            f"workflow: {prompts:,} prompts, {sum(server.calls.values()):,} teacher calls, Snakemake up to the "
            f"filtered shards in {time.perf_counter() - start:.0f} s on 2 cores; load average {load:.2f} before"
        )
        recall(workdir, targets, repeats)


def recall(workdir: Path, targets: list[str], repeats: int) -> None:
    shards = [workdir / target.replace("filtered", "triplets") for target in targets]
    incoming = [r for shard in shards for r in read_jsonl(shard)]
    on = {r["id"]: r for target in targets for r in read_jsonl(workdir / target)}
    off: dict[str, dict[str, Any]] = {}
    for shard in shards:
        run_filter_shard(shard, workdir / "off.jsonl", SETTINGS | {"static_checks": ALL_OFF})
        off.update((r["id"], r) for r in read_jsonl(workdir / "off.jsonl"))
    kept = [r for r in incoming if r["status"] == "ok"]
    print(f"  triplets in: {len(incoming):,} records, {len(kept):,} of them triplets (the rest dropped by parse)")
    print(f"  drops, static checks on:  {dict(Counter(r['reason'] for r in on.values() if r['status'] != 'ok'))}")
    print(f"  drops, static checks off: {dict(Counter(r['reason'] for r in off.values() if r['status'] != 'ok'))}")
    reached: Counter[str] = Counter()
    caught: Counter[str] = Counter()
    other: Counter[str] = Counter()
    for triplet in kept:
        marker = CASE.search(triplet["pre_code"])
        if marker is None:
            raise SystemExit(f"triplet {triplet['id']}: the teacher's case marker is gone from its pre-edit program")
        kind, where = plant_of(marker.group(1))
        if off[triplet["id"]]["status"] != "ok":
            continue  # dropped before the static checks
        label = kind if kind == "clean" else f"{kind} ({where})"
        reached[label] += 1
        outcome = on[triplet["id"]]
        expected = None if kind == "clean" else f"{where}_code_{kind}"
        if (outcome["status"] == "ok" and expected is None) or outcome.get("reason") == expected:
            caught[label] += 1
        else:
            other[label] += 1
            if other[label] <= 2:
                print(f"    {label}: got {outcome.get('reason', 'ok')} {outcome.get('static_issue', '')!r}")
    for label in sorted(reached):
        what = "kept (no false drop)" if label == "clean" else "recall"
        print(f"  {label}: {reached[label]:,} reached the static checks; {what} {caught[label] / reached[label]:.4f}")
    print(f"  false drops of clean triplets: {other['clean']}")
    merged = workdir / "all.jsonl"
    write_jsonl(merged, incoming)
    result = timed_runs(merged, workdir, SETTINGS, repeats)
    print(f"  filter_shard on the {len(incoming):,} records as one shard:")
    report_times(result)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("speed", "workflow", "both"), default="both")
    parser.add_argument("--triplets", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--execution", type=int, default=0, help="also time N triplets with the execution check")
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    if args.part in ("speed", "both"):
        speed(args.triplets, args.repeats, args.execution, args.seed)
    if args.part in ("workflow", "both"):
        workflow(args.prompts, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
