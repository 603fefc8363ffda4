"""Benchmark: recall of decontamination on mutated benchmark problems, and the clean data it costs.

    python bench/decontamination.py [--benchmarks canitedit,humanevalfix,aider_exercism] [--benchmark PATH]
        [--humanevalfix PATH] [--exercism PATH] [--humanevalfix-docstring full|prose|none]
        [--rule strict|canitedit] [--clean 20000] [--textbook PATH] [--textbook-limit N] [--seed 0] [--show]

Every benchmark named is indexed together (``BenchmarkIndex.from_texts``; CanItEdit alone:
``BenchmarkIndex(problems)``, as before), with the texts each one contributes (``benchmark_entries``):
CanItEdit's ``before``/``after`` and instructions; HumanEvalFix's ``prompt + canonical_solution``,
``prompt + buggy_solution``, ``declaration + canonical_solution`` and ``test`` as code, the prose of its
``docstring`` (up to the first example) as an instruction (``--humanevalfix-docstring``: all of it, or none);
Exercism's ``.meta/example.py``, stub and test file as code, its instructions (introduction, instructions,
appendix, joined by blank lines) as an instruction. CanItEdit's texts keep CanItEdit's rule; the others are
strict (``BenchmarkText``; ``--rule canitedit`` puts them under CanItEdit's rule, to compare).

1. Builds, in code, triplets that each carry one mutation of one benchmark problem (every problem of
   every benchmark), the rest of the triplet clean. The program planted is CanItEdit's ``before``,
   HumanEvalFix's ``prompt + canonical_solution``, Exercism's ``.meta/example.py``:
   - ``verbatim``: the pre-edit code is the program;
   - ``renamed``: every name the program defines renamed (layout kept);
   - ``renamed_reformatted``: renamed, re-printed by ``ast.unparse`` and with
     the other quote character;
   - ``no_docstrings``: that, with every docstring removed;
   - ``half_embedded``: the first half of the program's top-level statements
     inside another module (standard-library code before and after);
   and one instruction (in a triplet of clean code) per instruction class:
   - CanItEdit ``paraphrased_descriptive``: the descriptive instruction with every
     8th to 12th word replaced; ``short_lazy_verbatim``: the lazy instruction as it
     is, for the lazy instructions of fewer than 13 words;
   - HumanEvalFix ``paraphrased_docstring``: the docstring paraphrased so;
     ``paraphrased_prose``: its prose alone (up to the first example), paraphrased;
   - Exercism ``paraphrased_instructions``: the instructions paraphrased so;
     ``paraphrased_paragraph``: the longest prose paragraph of ``instructions.md`` alone
     (not a heading, list, table or code block), paraphrased.
2. Cuts the standard library into snippets through the seeds stage (functions
   and classes) and makes clean triplets of them: the snippet is the code, the
   first sentence of a docstring the instruction.
3. Reads the textbook programs (TheAlgorithms/Python, ``shared/textbook``): each is
   both the pre- and the post-edit code of a triplet with neutral instructions, as in
   that folder's README; and again with its docstring's first paragraph as the
   descriptive instruction (prose written like HumanEval's).
4. Prints, per benchmark, recall per mutation class (and how often the problem named
   is the planted one; for ``half_embedded`` also over the halves that hold evidence
   the rule accepts: at least as many shingles as a partial match needs, or a long
   literal), false positives per 10,000 clean triplets, every textbook program dropped
   with its evidence (problem, fields, shingles in common or the literal), and the
   time per 10,000 triplets (median of three runs over the clean ones).
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
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from editforge.evaluation.benchmarks.aider_exercism import AiderExercism
from editforge.evaluation.benchmarks.humanevalfix import HumanEvalFix, docstring_prose
from editforge.filtering.decontamination import (
    MIN_LITERAL_CHARS,
    MIN_SHARED_BENCHMARK,
    STRICT_MIN_SHARED,
    BenchmarkIndex,
    BenchmarkText,
    Match,
    benchmark_texts,
    canitedit_texts,
    code_shingles,
)
from editforge.pycode.canonical import string_literals
from editforge.seeds import collect_snippets

HUMANEVALFIX_PROSE = HumanEvalFix.instruction_fields

TARGETS = {"code": 0.98, "instruction": 0.95}
TEXTBOOK_LIMIT = 0.01  # share of textbook programs that may be dropped, all benchmarks indexed
CODE_CLASSES = ("verbatim", "renamed", "renamed_reformatted", "no_docstrings", "half_embedded")
INSTRUCTION_CLASSES = {
    "canitedit": ("paraphrased_descriptive", "short_lazy_verbatim"),
    "humanevalfix": ("paraphrased_docstring", "paraphrased_prose"),
    "aider_exercism": ("paraphrased_instructions", "paraphrased_paragraph"),
}
BENCHMARKS = tuple(INSTRUCTION_CLASSES)
CLEAN_INSTRUCTIONS = (
    "Add logging to the main loop.",
    "Rewrite the parser so that it reports the line number of every syntax error it finds, and keep the old "
    "behaviour for valid input.",
)
FILLER_WORDS = "apple river quickly blue window seven marble thunder gently paper lantern orbit".split()
SHARED = "../shared"


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


# ---------------------------------------------------------------- benchmarks


def humanevalfix_texts(problem: dict[str, Any], docstring: str = "prose") -> dict[str, str]:
    """A HumanEvalFix problem's texts by field, as the plug-in gives them; its docstring as an instruction:
    the prose up to the first example (the plug-in's), ``full``, or ``none``."""
    texts = HumanEvalFix().reference_texts(problem)
    if docstring == "none":
        del texts["docstring"]
    elif docstring == "full":
        texts["docstring"] = problem["docstring"]
    return texts


def exercism_texts(exercise: dict[str, Any]) -> dict[str, str]:
    """An Exercism exercise's texts by field, as the plug-in gives them."""
    plugin = AiderExercism()
    return plugin.reference_texts(plugin.check(exercise, exercise["slug"]))


def benchmark_entries(
    benchmark: str, problems: Sequence[dict[str, Any]], docstring: str = "prose"
) -> list[BenchmarkText]:
    """The texts one benchmark contributes to the index, problems named as the plug-ins name them."""
    if benchmark == "canitedit":
        return canitedit_texts(problems)
    if benchmark == "humanevalfix":
        return [
            entry for p in problems
            for entry in benchmark_texts(benchmark, p["task_id"], humanevalfix_texts(p, docstring), HUMANEVALFIX_PROSE)
        ]
    return [
        entry
        for e in problems
        for entry in benchmark_texts(benchmark, e["slug"], exercism_texts(e), AiderExercism.instruction_fields)
    ]


class Subject(NamedTuple):
    """One benchmark problem as the bench plants it: its program, and each instruction class's text."""

    name: str
    program: str
    # instruction class -> (the triplet field it goes in, the text, whether it is paraphrased)
    instructions: dict[str, tuple[str, str, bool]]


def subjects(benchmark: str, problems: Sequence[dict[str, Any]]) -> list[Subject]:
    out = []
    for p in problems:
        if benchmark == "canitedit":
            instructions = {"paraphrased_descriptive": ("instruction_descriptive", p["instruction_descriptive"], True)}
            if len(p["instruction_lazy"].split()) < 13:
                instructions["short_lazy_verbatim"] = ("instruction_lazy", p["instruction_lazy"], False)
            out.append(Subject(p["full_name"], p["before"], instructions))
        elif benchmark == "humanevalfix":
            instructions = {
                "paraphrased_docstring": ("instruction_descriptive", p["docstring"], True),
                "paraphrased_prose": ("instruction_descriptive", docstring_prose(p["docstring"]), True),
            }
            out.append(Subject(f"humanevalfix/{p['task_id']}", p["prompt"] + p["canonical_solution"], instructions))
        else:
            texts = exercism_texts(p)
            paragraphs = prose_paragraphs(p["files"][".docs/instructions.md"])
            paragraph = max(paragraphs, key=len, default=texts["instructions"])
            instructions = {
                "paraphrased_instructions": ("instruction_descriptive", texts["instructions"], True),
                "paraphrased_paragraph": ("instruction_descriptive", paragraph, True),
            }
            out.append(Subject(f"aider_exercism/{p['slug']}", texts["example"], instructions))
    return out


def prose_paragraphs(markdown: str) -> list[str]:
    """The paragraphs of ``markdown`` that are prose: not a heading, code block, list, table or link list."""
    paragraphs = (p.strip() for p in markdown.split("\n\n"))
    return [p for p in paragraphs if p and p[0] not in "#`-*|[>" and not p[0].isdigit() and "|" not in p]


def load_jsonl(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


# ---------------------------------------------------------------- triplets


def triplet(tid: str, pre: str, lazy: str = CLEAN_INSTRUCTIONS[0], descriptive: str = CLEAN_INSTRUCTIONS[1]) -> dict:
    return {
        "id": tid, "pre_code": pre, "post_code": pre + "\n# edited\n",
        "instruction_lazy": lazy, "instruction_descriptive": descriptive,
    }


def planted(
    problems: Sequence[dict[str, Any] | Subject], hosts: list[str], seed: int
) -> dict[str, list[tuple[str, dict]]]:
    """mutation class -> [(planted problem, triplet)]; CanItEdit problems, or any benchmark's ``Subject``s."""
    rng = random.Random(seed)
    chosen = [p if isinstance(p, Subject) else subjects("canitedit", [p])[0] for p in problems]
    classes = dict.fromkeys(c for s in chosen for c in s.instructions)
    cases: dict[str, list[tuple[str, dict]]] = {name: [] for name in (*CODE_CLASSES, *classes)}
    code_mutations: dict[str, Callable[[str], str]] = {
        "verbatim": lambda s: s,
        "renamed": lambda s: renamed(s, rng),
        "renamed_reformatted": lambda s: reformatted(s, rng),
        "no_docstrings": lambda s: reformatted(s, rng, drop_docstrings=True),
        "half_embedded": lambda s: half_embedded(s, rng.choice(hosts), rng.choice(hosts)),
    }
    for subject in chosen:
        name = subject.name
        for mutation, mutate in code_mutations.items():
            cases[mutation].append((name, triplet(f"{mutation}:{name}", mutate(subject.program))))
        host = rng.choice(hosts)
        for mutation, (target, text, paraphrase) in subject.instructions.items():
            planted_text = paraphrased(text, rng) if paraphrase else text
            fields = {"lazy" if target == "instruction_lazy" else "descriptive": planted_text}
            cases[mutation].append((name, triplet(f"{mutation}:{name}", host, **fields)))
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


def textbook_triplets(path: str, limit: int | None = None, docstrings: bool = False) -> list[dict]:
    """Each textbook program as both pre- and post-edit code, neutral instructions (or its docstring's first
    paragraph as the descriptive one, when it has a docstring and ``docstrings``)."""
    triplets = []
    for row in load_jsonl(path)[:limit]:
        descriptive = CLEAN_INSTRUCTIONS[1]
        if docstrings:
            descriptive = (first_docstring(row["code"]) or descriptive).split("\n\n")[0].replace("\n", " ")
        triplets.append(
            {
                "id": f"{row['path']}:{row['name']}", "pre_code": row["code"], "post_code": row["code"],
                "instruction_lazy": CLEAN_INSTRUCTIONS[0], "instruction_descriptive": descriptive,
            }
        )
    return triplets


def first_docstring(source: str) -> str | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    docstrings = (ast.get_docstring(node) for node in ast.walk(tree) if isinstance(node, definitions))
    return next((text for text in docstrings if text), None)


# ---------------------------------------------------------------- measures


def evident_halves(index: BenchmarkIndex, subjects_: Sequence[Subject], entries: Sequence[BenchmarkText]) -> set[str]:
    """The problems whose first half holds evidence the rule accepts on its own: a long string literal of the
    benchmark's, or as many distinct canonical shingles as a part of a program needs to count
    (``MIN_SHARED_BENCHMARK``; ``STRICT_MIN_SHARED`` of those few problems share, for a strict text)."""
    strict = {e.problem: e.strict for e in entries if e.kind == "code"}
    literals = {
        literal for e in entries if e.kind == "code" for literal in string_literals(e.text)
        if len(literal) >= MIN_LITERAL_CHARS
    }
    halves = [half_embedded(s.program, "", "") for s in subjects_]
    hashes, offsets = code_shingles(halves)
    out = set()
    for number, (subject, half) in enumerate(zip(subjects_, halves)):
        own = np.unique(hashes[offsets[number] : offsets[number + 1]])
        if strict.get(subject.name, True):
            distinct, need = int((~np.isin(own, index.common_shingles)).sum()), STRICT_MIN_SHARED
        else:
            distinct, need = len(own), MIN_SHARED_BENCHMARK["code"]
        if distinct >= need or any(literal in literals for literal in string_literals(half)):
            out.add(subject.name)
    return out


def code_lines(source: str) -> int:
    """Lines that hold code: not blank, not a comment, not inside a docstring."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return len([line for line in source.splitlines() if line.strip()])
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and _is_docstring(body[0]):
            docstrings.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    lines = [line.strip() for line in source.splitlines()]
    return sum(1 for n, line in enumerate(lines, 1) if line and not line.startswith("#") and n not in docstrings)


def recall_table(
    index: BenchmarkIndex, subjects_: list[Subject], entries: Sequence[BenchmarkText],
    hosts: list[str], seed: int, show: bool,
) -> bool:
    """Print recall per mutation class of one benchmark; True when a class misses its target."""
    evident = evident_halves(index, subjects_, entries)
    print(f"{'mutation':<26} {'cases':>5} {'recall':>7} {'named':>7} {'target':>7}  by method")
    failed = False
    for mutation, cases in planted(subjects_, hosts, seed).items():
        matches = index.match([t for _, t in cases])
        caught = [m for m in matches if m is not None]
        named = sum(1 for (name, _), m in zip(cases, matches) if m is not None and m.problem == name)
        recall = len(caught) / len(cases)
        target = TARGETS["code" if mutation in CODE_CLASSES else "instruction"]
        methods = ", ".join(f"{k} {v}" for k, v in sorted(Counter(m.method for m in caught).items()))
        judged = recall
        print(f"{mutation:<26} {len(cases):>5} {recall:>7.3f} {named / len(cases):>7.3f} {target:>7.2f}  {methods}")
        if mutation == "half_embedded":
            kept = [(name, m) for (name, _), m in zip(cases, matches) if name in evident]
            judged = sum(1 for _, m in kept if m is not None) / max(len(kept), 1)
            rest = [code_lines(half_embedded(s.program, "", "")) for s in subjects_ if s.name not in evident]
            note = f"  the other {len(rest)}: {statistics.median(rest):g} lines of code (median)" if rest else ""
            print(f"{'  halves with evidence':<26} {len(kept):>5} {judged:>7.3f} {'':>7} {target:>7.2f}{note}")
        failed |= judged < target
        if show:
            for (name, _), m in zip(cases, matches):
                if m is None or m.problem != name:
                    print(f"    {name}: {m}")
    return failed


def evidence(match: Match, literals: set[str], triplet: dict) -> str:
    if match.method == "literal":
        found = (lit for lit in string_literals(triplet[match.field]) if lit in literals and len(lit) == match.shared)
        text = next(found)
        return f"a literal of {match.shared} characters: {text[:80]!r}"
    unit = "shingles" if match.method == "code" else "n-grams"
    return f"{match.shared} {unit} in common, containment {match.score:.2f}"


def textbook_drops(index: BenchmarkIndex, entries: Sequence[BenchmarkText], triplets: list[dict], label: str) -> int:
    """Print the textbook programs the index matches, each with its evidence; return how many."""
    literals = {lit for e in entries if e.kind == "code" for lit in string_literals(e.text)}
    drops = [(t, m) for t, m in zip(triplets, index.match(triplets)) if m is not None]
    per = Counter(m.problem.split("/")[0] if "/" in m.problem else "canitedit" for _, m in drops)
    share = len(drops) / max(len(triplets), 1)
    print(
        f"textbook programs dropped ({label}): {len(drops)} of {len(triplets)} ({share:.2%}; limit "
        f"{TEXTBOOK_LIMIT:.0%}); by benchmark: {dict(sorted(per.items())) or 'none'}"
    )
    for t, m in drops:
        where = f"{m.problem} [{m.benchmark_field}] in {m.field} by {m.method}"
        print(f"    {t['id']}: {where}, {evidence(m, literals, t)}")
    return len(drops)


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = os.environ.get("EDITFORGE_CANITEDIT", f"{SHARED}/canitedit/canitedit.jsonl")
    parser.add_argument("--benchmark", default=default, help="CanItEdit as JSON Lines")
    parser.add_argument("--humanevalfix", default=f"{SHARED}/benchmarks/humanevalfix/humanevalfix.jsonl")
    parser.add_argument(
        "--exercism", default=f"{SHARED}/benchmarks/aider_exercism_python/aider_exercism_python.jsonl"
    )
    parser.add_argument(
        "--benchmarks", default=",".join(BENCHMARKS), help=f"the benchmarks indexed, of {', '.join(BENCHMARKS)}"
    )
    parser.add_argument(
        "--humanevalfix-docstring", choices=("full", "prose", "none"), default="prose",
        help="index HumanEvalFix's docstring as an instruction: all of it, its prose alone, or not",
    )
    parser.add_argument(
        "--rule", choices=("strict", "canitedit"), default="strict",
        help="the new benchmarks' texts strict (as the plug-ins give them), or under CanItEdit's rule (to compare)",
    )
    parser.add_argument("--clean", type=int, default=20_000, help="clean standard-library triplets")
    parser.add_argument("--textbook", default=f"{SHARED}/textbook/thealgorithms_python.jsonl")
    parser.add_argument("--textbook-limit", type=int, default=None, help="the first N textbook programs (all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", action="store_true", help="print every miss and false positive")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.benchmarks.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown or not chosen:
        parser.error(f"--benchmarks: unknown {unknown}; choose of {', '.join(BENCHMARKS)}")
    paths = {"canitedit": args.benchmark, "humanevalfix": args.humanevalfix, "aider_exercism": args.exercism}
    problems = {name: load_jsonl(paths[name]) for name in chosen}
    entries = {name: benchmark_entries(name, problems[name], args.humanevalfix_docstring) for name in chosen}
    if args.rule == "canitedit":
        entries = {name: [e._replace(strict=False) for e in texts] for name, texts in entries.items()}
    start = time.perf_counter()
    if chosen == ["canitedit"]:
        index = BenchmarkIndex(problems["canitedit"])  # as before the other benchmarks
    else:
        index = BenchmarkIndex.from_texts([e for name in chosen for e in entries[name]])
    built = time.perf_counter() - start
    clean = clean_triplets(args.clean, args.seed)
    hosts = [t["pre_code"] for t in clean[:500]]
    if chosen == ["canitedit"]:
        counts = f"{len(problems['canitedit'])} problems"
    else:
        counts = "; ".join(f"{name} {len(problems[name])} problems" for name in chosen)
        counts += f" ({sum(map(len, entries.values()))} texts, indexed in {built:.2f} s)"
    print(f"{counts}; {len(clean)} clean triplets from the standard library; settings {index.settings}")
    failed = False
    for name in chosen:
        if len(chosen) > 1:
            print(f"\n== {name}")
        planted_subjects = subjects(name, problems[name])
        failed |= recall_table(index, planted_subjects, entries[name], hosts, args.seed, args.show)
    if len(chosen) > 1:
        print()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        flagged = index.match(clean)
        times.append(time.perf_counter() - start)
    positives = [(t, m) for t, m in zip(clean, flagged) if m is not None]
    per_code = sum(1 for _, m in positives if m.method != "instruction") * 10_000 / len(clean)
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
    if args.textbook and os.path.exists(args.textbook):
        for docstrings, label in ((False, "neutral instructions"), (True, "docstrings as instructions")):
            triplets = textbook_triplets(args.textbook, args.textbook_limit, docstrings)
            dropped = textbook_drops(index, [e for name in chosen for e in entries[name]], triplets, label)
            failed |= not docstrings and dropped > TEXTBOOK_LIMIT * len(triplets)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
