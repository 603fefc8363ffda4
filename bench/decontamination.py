"""Benchmark: recall of decontamination on mutated benchmark problems, false positives on clean code.

    python bench/decontamination.py [--benchmark PATH] [--clean 20000] [--seed 0]

1. Builds, in code, triplets that each carry one mutation of one CanItEdit
   problem (all 105), the rest of the triplet clean:
   - ``verbatim``: the pre-edit code is the problem's ``before``;
   - ``renamed``: every name the program defines renamed (layout kept);
   - ``renamed_reformatted``: renamed, re-printed by ``ast.unparse`` and with
     the other quote character;
   - ``no_docstrings``: that, with every docstring removed;
   - ``half_embedded``: the first half of the program's top-level statements
     inside another module (standard-library code before and after);
   - ``paraphrased_descriptive``: the descriptive instruction with every
     8th to 12th word replaced;
   - ``short_lazy_verbatim``: the lazy instruction as it is, for the lazy
     instructions of fewer than 13 words.
2. Cuts the standard library into snippets through the seeds stage (functions
   and classes) and makes clean triplets of them: the snippet is the code, the
   first sentence of a docstring the instruction.
3. Prints recall per mutation class (and how often the problem named is the
   planted one), false positives per 10,000 clean triplets, and the time per
   10,000 triplets (median of three runs over the clean ones).
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import random
import statistics
import sys
import time
import tokenize
from collections.abc import Callable
from typing import Any

from editforge.filtering.decontamination import BenchmarkIndex
from editforge.seeds import collect_snippets

TARGETS = {"code": 0.98, "instruction": 0.95}
CODE_CLASSES = ("verbatim", "renamed", "renamed_reformatted", "no_docstrings", "half_embedded")
INSTRUCTION_CLASSES = ("paraphrased_descriptive", "short_lazy_verbatim")
CLEAN_INSTRUCTIONS = (
    "Add logging to the main loop.",
    "Rewrite the parser so that it reports the line number of every syntax error it finds, and keep the old "
    "behaviour for valid input.",
)
FILLER_WORDS = "apple river quickly blue window seven marble thunder gently paper lantern orbit".split()


# ---------------------------------------------------------------- mutations


def defined_names(tree: ast.AST) -> set[str]:
    """Names the program itself binds: functions, classes, arguments, assigned names and attributes."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return {n for n in names if not (n.startswith("__") and n.endswith("__")) and n not in ("self", "cls")}


def renaming(source: str, rng: random.Random) -> dict[str, str]:
    names = sorted(defined_names(ast.parse(source)))
    fresh = [f"{rng.choice(FILLER_WORDS)}_{i}" for i in range(len(names))]
    return dict(zip(names, fresh))


def renamed(source: str, rng: random.Random) -> str:
    """Every defined name renamed, token by token: layout, comments and quotes stay."""
    mapping = renaming(source, rng)
    tokens = [
        tok._replace(string=mapping.get(tok.string, tok.string)) if tok.type == tokenize.NAME else tok
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
    ]
    return tokenize.untokenize(tokens)


class _Rename(ast.NodeTransformer):
    def __init__(self, mapping: dict[str, str], drop_docstrings: bool) -> None:
        self.mapping, self.drop_docstrings = mapping, drop_docstrings

    def generic_visit(self, node: ast.AST) -> ast.AST:
        for field in ("name", "id", "arg", "attr"):
            value = getattr(node, field, None)
            if isinstance(value, str) and value in self.mapping:
                setattr(node, field, self.mapping[value])
        body = getattr(node, "body", None)
        if self.drop_docstrings and isinstance(body, list) and body and _is_docstring(body[0]):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
        return super().generic_visit(node)


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def reformatted(source: str, rng: random.Random, drop_docstrings: bool = False) -> str:
    """Renamed, printed anew by ``ast.unparse``, and every string in the other quote character."""
    tree = _Rename(renaming(source, rng), drop_docstrings).visit(ast.parse(source))
    printed = ast.unparse(tree)
    tokens = []
    for tok in tokenize.generate_tokens(io.StringIO(printed).readline):
        text = tok.string
        if tok.type == tokenize.STRING and text.startswith("'") and not text.startswith("'''") and '"' not in text:
            text = '"' + text[1:-1] + '"'
        tokens.append(tok._replace(string=text))
    return tokenize.untokenize(tokens)


def half_embedded(source: str, host_before: str, host_after: str) -> str:
    """The program's first half between two other pieces of code.

    The half is the first statements that reach half of the program's lines;
    a statement that would overshoot by far (a class holding everything) is
    cut inside its body, so the half is still a program's beginning.
    """
    lines = source.splitlines()
    end = _half_end(ast.parse(source).body, len(lines) / 2)
    return f"{host_before}\n\n{chr(10).join(lines[:end])}\n\n{host_after}\n"


def _half_end(body: list[ast.stmt], half: float) -> int:
    for node in body:
        end = node.end_lineno or node.lineno
        if end >= half:
            inner = getattr(node, "body", None)
            if end > 1.5 * half and isinstance(inner, list) and inner and inner[0].lineno > node.lineno:
                return _half_end(inner, half)
            return end
    return body[-1].end_lineno or body[-1].lineno


def paraphrased(text: str, rng: random.Random) -> str:
    words = text.split()
    step = rng.randint(8, 12)
    for position in range(step - 1, len(words), step):
        words[position] = rng.choice(FILLER_WORDS)
    return " ".join(words)


# ---------------------------------------------------------------- triplets


def triplet(tid: str, pre: str, lazy: str = CLEAN_INSTRUCTIONS[0], descriptive: str = CLEAN_INSTRUCTIONS[1]) -> dict:
    return {
        "id": tid, "pre_code": pre, "post_code": pre + "\n# edited\n",
        "instruction_lazy": lazy, "instruction_descriptive": descriptive,
    }


def planted(problems: list[dict[str, Any]], hosts: list[str], seed: int) -> dict[str, list[tuple[str, dict]]]:
    """mutation class -> [(planted problem, triplet)]."""
    rng = random.Random(seed)
    cases: dict[str, list[tuple[str, dict]]] = {name: [] for name in (*CODE_CLASSES, *INSTRUCTION_CLASSES)}
    code_mutations: dict[str, Callable[[str], str]] = {
        "verbatim": lambda s: s,
        "renamed": lambda s: renamed(s, rng),
        "renamed_reformatted": lambda s: reformatted(s, rng),
        "no_docstrings": lambda s: reformatted(s, rng, drop_docstrings=True),
        "half_embedded": lambda s: half_embedded(s, rng.choice(hosts), rng.choice(hosts)),
    }
    for problem in problems:
        name = problem["full_name"]
        for mutation, mutate in code_mutations.items():
            cases[mutation].append((name, triplet(f"{mutation}:{name}", mutate(problem["before"]))))
        host = rng.choice(hosts)
        cases["paraphrased_descriptive"].append(
            (name, triplet(f"para:{name}", host, descriptive=paraphrased(problem["instruction_descriptive"], rng)))
        )
        if len(problem["instruction_lazy"].split()) < 13:
            cases["short_lazy_verbatim"].append(
                (name, triplet(f"lazy:{name}", host, lazy=problem["instruction_lazy"]))
            )
    return cases


def clean_triplets(limit: int, seed: int, max_files: int | None = None) -> list[dict]:
    """Up to ``limit`` triplets of standard-library code (from ``max_files`` files drawn at random; None: all)."""
    settings = {
        "snippet_mode": "syntactic", "min_lines": 5, "max_lines": 40, "max_file_bytes": 300_000, "max_files": max_files,
    }
    source = {"name": "stdlib", "type": "stdlib", "exclude": ["site-packages/*", "test/*", "*/tests/*"]}
    snippets, _ = collect_snippets([source], settings, seed=seed)
    random.Random(seed).shuffle(snippets)
    triplets = []
    for n, snippet in enumerate(snippets[:limit]):
        text = snippet["text"]
        sentence = (first_docstring(text) or CLEAN_INSTRUCTIONS[1]).split("\n\n")[0].replace("\n", " ")
        triplets.append(triplet(f"clean:{n}:{snippet['path']}:{snippet['start_line']}", text, descriptive=sentence))
    return triplets


def first_docstring(source: str) -> str | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    docstrings = (ast.get_docstring(node) for node in ast.walk(tree) if isinstance(node, definitions))
    return next((text for text in docstrings if text), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = os.environ.get("EDITFORGE_CANITEDIT", "../shared/canitedit/canitedit.jsonl")
    parser.add_argument("--benchmark", default=default, help="CanItEdit as JSON Lines")
    parser.add_argument("--clean", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", action="store_true", help="print every miss and false positive")
    args = parser.parse_args()
    with open(args.benchmark, encoding="utf-8") as handle:
        problems = [json.loads(line) for line in handle if line.strip()]
    index = BenchmarkIndex(problems)
    clean = clean_triplets(args.clean, args.seed)
    hosts = [t["pre_code"] for t in clean[:500]]
    print(f"{len(problems)} problems; {len(clean)} clean triplets from the standard library; settings {index.settings}")
    print(f"{'mutation':<24} {'cases':>5} {'recall':>7} {'named':>7} {'target':>7}")
    failed = False
    for mutation, cases in planted(problems, hosts, args.seed).items():
        matches = index.match([t for _, t in cases])
        caught = [m for m in matches if m is not None]
        named = sum(1 for (name, _), m in zip(cases, matches) if m is not None and m.problem == name)
        recall = len(caught) / len(cases)
        target = TARGETS["code" if mutation in CODE_CLASSES else "instruction"]
        failed |= recall < target
        print(f"{mutation:<24} {len(cases):>5} {recall:>7.3f} {named / len(cases):>7.3f} {target:>7.2f}")
        if args.show:
            for (name, _), m in zip(cases, matches):
                if m is None or m.problem != name:
                    print(f"    {name}: {m}")
    times = []
    for _ in range(3):
        start = time.perf_counter()
        flagged = index.match(clean)
        times.append(time.perf_counter() - start)
    positives = [(t, m) for t, m in zip(clean, flagged) if m is not None]
    per_code = sum(1 for _, m in positives if m.method == "code") * 10_000 / len(clean)
    per_instruction = sum(1 for _, m in positives if m.method == "instruction") * 10_000 / len(clean)
    print(
        f"false positives per 10,000 clean triplets: code {per_code:.1f}, instructions {per_instruction:.1f} "
        "(target <= 1 in all)"
    )
    print(f"time per 10,000 triplets: {statistics.median(times) * 10_000 / len(clean):.2f} s (median of 3)")
    if args.show:
        for t, m in positives:
            print(f"    {t['id']}: {m}")
    failed |= per_code + per_instruction > 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
