"""Benchmark: exact and near (MinHash LSH) deduplication of synthetic triplets.

    python bench/dedup.py [--triplets 100000] [--subset 2000] [--seed 0] [--benchmark PATH]

1. Writes ``--triplets`` synthetic triplets as 4 JSONL shards: programs of 6-30
   lines built from random statement templates and identifiers, a small edit
   each, and instructions from sentence templates. About 12% are planted
   duplicates of an earlier triplet: exact copies (reformatted, re-cased),
   copies with a renamed identifier or an extra statement, reworded
   instructions, or the same edit in another program. Some are planted near
   the threshold on purpose.
2. Runs ``editforge.filtering.run_dedup`` over the shards in a child process
   (so its peak memory is measured alone) and prints triplets/s and the
   child's peak resident memory. ``--benchmark`` adds decontamination against
   that benchmark file (CanItEdit JSONL); by default only dedup runs, which is
   what the target (5,000 triplets/s on 2 cores) is about. Code is compared
   in the canonical form of ``editforge.pycode.canonical``, so renamed copies are near
   duplicates.
3. On the first ``--subset`` triplets, runs the same greedy dedup with exact
   Jaccard similarities over the same shingles (all pairs, as a sparse
   matrix product) and compares: recall and precision of the dropped set
   against the exact result, and whether every drop names the same reason.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from editforge.filtering import run_dedup
from editforge.filtering.decontamination import code_shingles
from editforge.filtering.dedup import diff_tokens
from editforge.filtering.exact import exact_key
from editforge.filtering.minhash import words
from editforge.pycode.canonical import identifiers
from editforge.records import read_jsonl, write_jsonl

SETTINGS: dict[str, Any] = {
    "minhash": {"num_perm": 128, "threshold": 0.8, "shingle_words": 5},
    "decontamination": {"code_containment": 0.25, "instruction_containment": 0.6, "max_contaminated_share": 1.0},
}

# ---------------------------------------------------------------- synthetic triplets

_NOUNS = (
    "user account order item price total count index value name path file line word token record row column "
    "cache queue node tree edge graph matrix vector point score weight label result buffer stream message event "
    "config option setting key entry table report summary invoice customer product stock balance rate limit "
    "timeout retry session request response header payload batch chunk page offset cursor window span range"
).split()
_VERBS = (
    "get set load save parse build compute update remove add find check validate format render merge split "
    "sort filter count collect read write send fetch process convert normalize reset clear flush scan"
).split()
_ADJECTIVES = "max min total last first next raw new old current default active pending valid empty".split()
_INSTRUCTION_OPENERS = (
    "Change", "Update", "Modify", "Refactor", "Fix", "Make", "Adjust", "Rewrite", "Extend", "Improve",
)
_INSTRUCTION_BODIES = (
    "{fn} so that it {what}.",
    "the {fn} function to {what2} when {cond}.",
    "{fn} to handle the case where {cond}.",
    "the loop in {fn} so it {what}.",
    "{fn}: it should {what2} instead of failing.",
)
_WHATS = (
    "skips {adj} {noun}s", "returns the {adj} {noun}", "raises a ValueError for an empty {noun}",
    "caches the {noun} lookup", "sorts the {noun}s by {noun2}", "counts each {noun} once",
    "ignores {noun}s without a {noun2}", "logs the {adj} {noun2}",
)
_CONDS = (
    "the {noun} is missing", "the {noun} list is empty", "{noun2} is negative", "the {adj} {noun} is None",
    "two {noun}s share a {noun2}",
)


class Generator:
    """Random Python programs, small edits and instructions (deterministic for a seed)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def name(self) -> str:
        r = self.rng
        style = r.random()
        if style < 0.6:
            return f"{r.choice(_ADJECTIVES)}_{r.choice(_NOUNS)}" if r.random() < 0.5 else r.choice(_NOUNS)
        if style < 0.9:
            return f"{r.choice(_NOUNS)}_{r.choice(_NOUNS)}"
        return r.choice(_NOUNS) + r.choice(_NOUNS).capitalize()

    def statement(self, names: list[str], depth: int) -> list[str]:
        r = self.rng
        a, b, c = r.choice(names), r.choice(names), r.choice(names)
        pad = "    " * depth
        kind = r.randrange(10)
        if kind == 0:
            return [f"{pad}{a} = {b} + {r.randrange(100)}"]
        if kind == 1:
            return [f"{pad}{a} = [{b}.{r.choice(_VERBS)}() for {c} in {b}s]"]
        if kind == 2:
            return [f"{pad}if {a} > {r.randrange(50)}:", f"{pad}    {b} = {a} * {r.randrange(2, 9)}"]
        if kind == 3:
            return [f"{pad}for {c} in {a}:", f"{pad}    {b}.append({c})"]
        if kind == 4:
            return [f"{pad}{a} = {r.choice(_VERBS)}_{r.choice(_NOUNS)}({b}, {c})"]
        if kind == 5:
            return [f"{pad}{a} = {{'{r.choice(_NOUNS)}': {b}, '{r.choice(_NOUNS)}': {r.randrange(1000)}}}"]
        if kind == 6:
            return [f"{pad}if not {a}:", f"{pad}    raise ValueError('{r.choice(_ADJECTIVES)} {r.choice(_NOUNS)}')"]
        if kind == 7:
            return [f"{pad}{a} = sorted({b}, key=lambda x: x.{c})"]
        if kind == 8:
            return [f"{pad}{a} += len({b})"]
        return [f"{pad}print('{r.choice(_VERBS)}', {a}, {b})"]

    def function(self) -> tuple[str, list[str]]:
        r = self.rng
        fn = f"{r.choice(_VERBS)}_{r.choice(_NOUNS)}"
        params = list(dict.fromkeys(self.name() for _ in range(r.randrange(1, 4))))
        names = params + [self.name() for _ in range(r.randrange(2, 5))]
        lines = [f"def {fn}({', '.join(params)}):"]
        for _ in range(r.randrange(2, 7)):
            lines += self.statement(names, 1)
        lines.append(f"    return {r.choice(names)}")
        return fn, lines

    def program(self) -> tuple[list[str], list[str]]:
        functions, lines = [], []
        if self.rng.random() < 0.4:
            lines += [f"import {self.rng.choice(['os', 're', 'json', 'math', 'itertools'])}", ""]
        for _ in range(self.rng.randrange(1, 4)):
            fn, body = self.function()
            functions.append(fn)
            lines += [*body, "", ""]
        return functions, lines[:-2]

    def edit(self, lines: list[str]) -> list[str]:
        r = self.rng
        out = list(lines)

        def simple(i: int) -> bool:  # a one-line statement directly in a function body
            nested = i + 1 < len(out) and out[i + 1].startswith("        ")
            return out[i].startswith("    ") and not out[i].startswith("     ") and not out[i].endswith(":") \
                and not nested and not out[i].lstrip().startswith("return")

        def opener(i: int) -> bool:  # a line at function-body depth that a statement may precede
            return out[i].startswith("    ") and not out[i].startswith("     ")

        names = [self.name() for _ in range(3)]
        kind = r.randrange(3)
        if kind == 0 and (spots := [i for i in range(len(out)) if simple(i)]):  # replace one statement
            at = r.choice(spots)
            out[at : at + 1] = self.statement(names, 1)
        elif kind == 1:  # insert two statements
            at = r.choice([i for i in range(len(out)) if opener(i)])
            out[at:at] = self.statement(names, 1) + self.statement(names, 1)
        else:  # insert one statement and change the last return
            at = r.choice([i for i in range(len(out)) if opener(i)])
            out[at:at] = self.statement(names, 1)
            out[-1] = f"    return {r.choice(names)}"
        return out

    def instruction(self, fn: str) -> tuple[str, str]:
        r = self.rng

        def fill(text: str) -> str:
            return text.format(
                fn=f"`{fn}`", adj=r.choice(_ADJECTIVES), noun=r.choice(_NOUNS), noun2=r.choice(_NOUNS),
                what=fill(r.choice(_WHATS)) if "{what}" in text else "", what2=fill(r.choice(_WHATS)).split(" ", 1)[1]
                if "{what2}" in text else "", cond=fill(r.choice(_CONDS)) if "{cond}" in text else "",
            )

        lazy = f"{r.choice(_INSTRUCTION_OPENERS)} {fill(r.choice(_INSTRUCTION_BODIES))}"
        descriptive = " ".join(
            f"{r.choice(_INSTRUCTION_OPENERS)} {fill(r.choice(_INSTRUCTION_BODIES))}" for _ in range(r.randrange(2, 4))
        )
        return lazy, descriptive

    def triplet(self, number: int) -> dict[str, Any]:
        functions, lines = self.program()
        lazy, descriptive = self.instruction(self.rng.choice(functions))
        return record(number, "\n".join(lines) + "\n", "\n".join(self.edit(lines)) + "\n", lazy, descriptive)

    def duplicate(self, number: int, original: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """A planted duplicate of ``original`` and the kind of copy."""
        r = self.rng
        pre, post = original["pre_code"], original["post_code"]
        lazy, descriptive = original["instruction_lazy"], original["instruction_descriptive"]
        kind = r.choice(("exact", "rename", "extra_line", "reworded", "same_edit_elsewhere", "new_instructions"))
        if kind == "exact":  # formatting, comments and case only
            pre = "# copied\n" + pre.replace(", ", ",  ")
            lazy, descriptive = lazy.upper(), "  " + descriptive
        elif kind == "rename":
            names = sorted({w for w in identifiers(pre) if "_" in w})
            if names:
                old, new = re.compile(rf"\b{r.choice(names)}\b"), self.name()
                pre, post = old.sub(new, pre), old.sub(new, post)
        elif kind == "extra_line":
            pre = pre + f"\n\n{self.name()} = {r.randrange(100)}\n"
            post = post + f"\n\n{self.name()} = {r.randrange(100)}\n"
        elif kind == "reworded":
            lazy = lazy.replace("the ", "this ", 1) + " Please."
            descriptive = descriptive.rstrip(".") + ", and keep the rest as is."
        elif kind == "same_edit_elsewhere":  # the same diff with context, in a longer program
            _, extra = self.program()
            head = "\n".join(extra) + "\n\n\n"
            pre, post = head + pre, head + post
            lazy, descriptive = self.instruction(self.name())
        else:  # same programs, new instructions: the code sketch should match
            lazy, descriptive = self.instruction(self.name())
        return record(number, pre, post, lazy, descriptive), kind


def record(number: int, pre: str, post: str, lazy: str, descriptive: str) -> dict[str, Any]:
    return {
        "id": f"syn:{number:06d}", "model": "synthetic", "shard": f"{number % 4:03d}", "pair_id": f"p{number:06d}",
        "fewshot_id": "f0", "pre_code": pre, "post_code": post, "instruction_lazy": lazy,
        "instruction_descriptive": descriptive, "status": "ok",
    }


def synthetic_triplets(count: int, seed: int, duplicate_share: float = 0.12) -> tuple[list[dict[str, Any]], dict]:
    gen = Generator(seed)
    records: list[dict[str, Any]] = []
    planted: dict[str, int] = {}
    for number in range(count):
        if records and gen.rng.random() < duplicate_share:
            copy, kind = gen.duplicate(number, gen.rng.choice(records[-5000:]))
            records.append(copy)
            planted[kind] = planted.get(kind, 0) + 1
        else:
            records.append(gen.triplet(number))
    return records, planted


# ---------------------------------------------------------------- the timed run (child process)


def run_child(folder: Path, benchmark: str | None) -> None:
    shards = sorted(folder.glob("shard*.jsonl"))
    problems = list(read_jsonl(benchmark)) if benchmark else None
    start = time.perf_counter()
    counts = run_dedup(shards, folder / "out.jsonl", folder / "report.json", SETTINGS, problems)
    elapsed = time.perf_counter() - start
    print(json.dumps({"seconds": elapsed, "peak_rss_mib": peak_rss_kib() / 1024, "counts": counts}))


def peak_rss_kib() -> int:
    """This process's peak resident memory.

    VmHWM, not ``ru_maxrss``: Linux carries ``ru_maxrss`` over from the parent
    across fork and exec, so a child would report the parent's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# ---------------------------------------------------------------- exact check


def exact_dedup(records: list[dict[str, Any]], threshold: float, shingle_words: int) -> dict[str, str]:
    """The greedy dedup of ``editforge.filtering.dedup`` with exact Jaccard similarity: id -> reason."""
    from scipy import sparse

    def word_shingles(tokens: list[str]) -> set[Any]:
        k = shingle_words
        return {" ".join(tokens[j : j + k]) for j in range(max(1, len(tokens) - k + 1))} if tokens else set()

    hashes, offsets = code_shingles([r["pre_code"] for r in records])
    fields = {
        "near_duplicate_code": lambda i, r: set(hashes[offsets[i] : offsets[i + 1]].tolist()),
        "near_duplicate_diff": lambda i, r: word_shingles(diff_tokens(r["pre_code"], r["post_code"])),
        "near_duplicate_instruction": lambda i, r: word_shingles(
            words(r["instruction_lazy"]) + words(r["instruction_descriptive"])
        ),
    }
    similarity: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    for reason, shingles_of in fields.items():
        vocabulary: dict[Any, int] = {}
        rows, cols = [], []
        for i, rec in enumerate(records):
            for shingle in shingles_of(i, rec):
                rows.append(i)
                cols.append(vocabulary.setdefault(shingle, len(vocabulary)))
        matrix = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(records), len(vocabulary)))
        inter = (matrix @ matrix.T).toarray()
        size = np.asarray(matrix.sum(axis=1)).ravel()
        union = size[:, None] + size[None, :] - inter
        similarity[reason] = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        present[reason] = size > 0
    dropped: dict[str, str] = {}
    kept_by_reason: dict[str, list[int]] = {reason: [] for reason in fields}
    seen: set[bytes] = set()
    for i, rec in enumerate(records):
        key = exact_key(rec)
        if key in seen:
            dropped[rec["id"]] = "exact_duplicate"
            continue
        seen.add(key)
        hit = next(
            (
                reason
                for reason in fields
                if present[reason][i]
                and kept_by_reason[reason]
                and similarity[reason][i, kept_by_reason[reason]].max() >= threshold
            ),
            None,
        )
        if hit:
            dropped[rec["id"]] = hit
            continue
        for reason in fields:
            if present[reason][i]:
                kept_by_reason[reason].append(i)
    return dropped


def compare(folder: Path, records: list[dict[str, Any]]) -> None:
    minhash = SETTINGS["minhash"]
    write_jsonl(folder / "subset.jsonl", records)
    run_dedup([folder / "subset.jsonl"], folder / "subset_out.jsonl", folder / "subset_report.json",
              SETTINGS, None)
    approx = {r["id"]: r["reason"] for r in read_jsonl(folder / "subset_out.jsonl") if r["status"] == "dropped"}
    start = time.perf_counter()
    exact = exact_dedup(records, minhash["threshold"], minhash["shingle_words"])
    elapsed = time.perf_counter() - start
    both = approx.keys() & exact.keys()
    recall = len(both) / len(exact) if exact else 1.0
    precision = len(both) / len(approx) if approx else 1.0
    same_reason = sum(approx[i] == exact[i] for i in both)
    print(f"exact pairwise check on {len(records):,} triplets ({elapsed:.1f} s): exact drops {len(exact)}, "
          f"MinHash drops {len(approx)}, in both {len(both)}; recall {recall:.4f}, precision {precision:.4f}; "
          f"same reason for {same_reason} of {len(both)}")
    if approx.keys() != exact.keys():
        print(f"  only exact: {sorted(exact.keys() - approx.keys())[:10]}; "
              f"only MinHash: {sorted(approx.keys() - exact.keys())[:10]}")
    print("  identical result" if approx == exact else "  results differ (see above)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triplets", type=int, default=100_000)
    parser.add_argument("--subset", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--benchmark", help="a CanItEdit JSONL: decontaminate too")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(Path(args.child), args.benchmark)
        return 0

    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        records, planted = synthetic_triplets(args.triplets, args.seed)
        for shard in range(4):
            write_jsonl(folder / f"shard{shard}.jsonl", records[shard::4])
        print(f"generated {len(records):,} triplets in {time.perf_counter() - start:.1f} s; planted duplicates: "
              f"{sum(planted.values()):,} {dict(sorted(planted.items()))}")
        benchmark = ["--benchmark", args.benchmark] if args.benchmark else []
        command = [sys.executable, __file__, "--child", tmp, *benchmark]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        rate = len(records) / result["seconds"]
        what = "dedup + decontamination" if args.benchmark else "dedup"
        print(
            f"{what}: {len(records):,} triplets in {result['seconds']:.1f} s = {rate:,.0f} triplets/s; "
            f"peak memory {result['peak_rss_mib']:,.0f} MiB (child process RSS); load average "
            f"{os.getloadavg()[0]:.2f} at end"
        )
        print(f"  counts: {result['counts']}")
        if args.subset:
            compare(folder, records[: args.subset])
    return 0


if __name__ == "__main__":
    sys.exit(main())
