"""Decontamination: benchmark text found through renaming, reformatting, embedding and paraphrase, and kept out
of every file of the dataset."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from editforge.dataset.mix import run_mix
from editforge.evaluation.benchmarks.humanevalfix import docstring_prose
from editforge.filtering import run_dedup
from editforge.filtering.decontamination import BenchmarkIndex, BenchmarkText, Match, canitedit_texts
from editforge.records import read_jsonl, write_jsonl
from helpers import REPO, SHARED

_spec = importlib.util.spec_from_file_location("bench_decontamination", REPO / "bench/decontamination.py")
mutations = importlib.util.module_from_spec(_spec)  # the bench's mutations of benchmark problems
_spec.loader.exec_module(mutations)  # type: ignore[union-attr]

SETTINGS: dict[str, Any] = {
    "minhash": {"num_perm": 128, "threshold": 0.8, "shingle_words": 5},
    "decontamination": {"code_containment": 0.25, "instruction_containment": 0.6, "max_contaminated_share": 1.0},
}
HOST = '''def moving_average(values, window):
    """Means of each run of `window` values."""
    sums = [0]
    for value in values:
        sums.append(sums[-1] + value)
    return [(sums[i + window] - sums[i]) / window for i in range(len(sums) - window)]


class Ledger:
    def __init__(self, owner):
        self.owner = owner
        self.entries = []

    def record(self, amount, note=""):
        self.entries.append((amount, note))
        return sum(a for a, _ in self.entries)
'''


@pytest.fixture(scope="module")
def benchmark(benchmark_path: Path) -> list[dict[str, Any]]:
    return list(read_jsonl(benchmark_path))


def shared_benchmark(relative: str) -> list[dict[str, Any]]:
    path = SHARED / "benchmarks" / relative
    if not path.exists():
        pytest.skip(f"no shared copy of the benchmark at {path}")
    return list(read_jsonl(path))


@pytest.fixture(scope="module")
def humanevalfix() -> dict[str, dict[str, Any]]:
    return {p["task_id"]: p for p in shared_benchmark("humanevalfix/humanevalfix.jsonl")}


@pytest.fixture(scope="module")
def exercism() -> dict[str, dict[str, Any]]:
    return {e["slug"]: e for e in shared_benchmark("aider_exercism_python/aider_exercism_python.jsonl")}


@pytest.fixture(scope="module")
def all_three(
    benchmark: list[dict[str, Any]], humanevalfix: dict[str, dict[str, Any]], exercism: dict[str, dict[str, Any]]
) -> list[BenchmarkText]:
    """Every text of CanItEdit, HumanEvalFix and Exercism, as the plug-ins give them (the bench builds them)."""
    return [
        *mutations.benchmark_entries("canitedit", benchmark),
        *mutations.benchmark_entries("humanevalfix", list(humanevalfix.values())),
        *mutations.benchmark_entries("aider_exercism", list(exercism.values())),
    ]


@pytest.fixture(scope="module")
def full_index(all_three: list[BenchmarkText]) -> BenchmarkIndex:
    return BenchmarkIndex.from_texts(all_three, SETTINGS["decontamination"])


@pytest.fixture(scope="module")
def index(benchmark: list[dict[str, Any]]) -> BenchmarkIndex:
    return BenchmarkIndex(benchmark, SETTINGS["decontamination"])


def problem(benchmark: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(p for p in benchmark if p["full_name"] == name)


def matched(index: BenchmarkIndex, **fields: str) -> Match | None:
    [match] = index.match([mutations.triplet("t", HOST) | fields])
    return match


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s, rng: mutations.renamed(s, rng),
        lambda s, rng: mutations.reformatted(s, rng),
        lambda s, rng: mutations.reformatted(s, rng, drop_docstrings=True),
        lambda s, rng: mutations.half_embedded(s, HOST, HOST),
    ],
    ids=["renamed", "renamed-reformatted-other-quotes", "no-docstrings", "half-embedded"],
)
def test_a_disguised_benchmark_program_is_found_and_named(
    benchmark: list[dict[str, Any]], index: BenchmarkIndex, mutate: Any
) -> None:
    for name in ("45_double_consonant", "1_cipher", "29_genetic_algorithm"):
        source = mutate(problem(benchmark, name)["before"], random.Random(1))
        match = matched(index, pre_code=source)
        assert match is not None and (match.problem, match.method, match.field) == (name, "code", "pre_code"), name


def test_the_issue_case_renamed_with_other_quotes_scores_as_a_copy(
    benchmark: list[dict[str, Any]], index: BenchmarkIndex
) -> None:
    source = mutations.reformatted(problem(benchmark, "45_double_consonant")["before"], random.Random(0))
    assert "'" not in source  # every string now in double quotes
    match = matched(index, post_code=source)
    assert match is not None and match.score == 1.0 and match.benchmark_field == "before"


def test_paraphrased_and_short_instructions_are_found(benchmark: list[dict[str, Any]], index: BenchmarkIndex) -> None:
    rng = random.Random(0)
    for entry in benchmark[:30]:
        paraphrase = mutations.paraphrased(entry["instruction_descriptive"], rng)
        match = matched(index, instruction_descriptive=paraphrase)
        assert match is not None and (match.problem, match.method) == (entry["full_name"], "instruction")
    shortest = min(benchmark, key=lambda p: len(p["instruction_lazy"]))  # two words
    match = matched(index, instruction_lazy=shortest["instruction_lazy"])
    assert match is not None and match.problem == shortest["full_name"]


def test_a_long_literal_of_a_benchmark_program_is_evidence_on_its_own(
    benchmark: list[dict[str, Any]], index: BenchmarkIndex
) -> None:
    before = problem(benchmark, "66_product_analysis")["before"]
    data = before[before.index('"""') : before.index('"""', before.index('"""') + 3) + 3]  # its CSV table
    match = matched(index, post_code=f"{HOST}\n\nTABLE = {data}\n")
    assert match is not None
    assert (match.problem, match.method, match.field) == ("66_product_analysis", "literal", "post_code")
    note = '\nNOTE = "a string literal of forty characters or more, but not a benchmark one"\n'
    assert matched(index, post_code=HOST + note) is None


def test_a_triplet_planted_from_one_problem_is_not_named_after_a_sibling(
    benchmark: list[dict[str, Any]], index: BenchmarkIndex
) -> None:
    # 36 and 40 share their pre-edit program; the instructions tell them apart.
    planted = problem(benchmark, "40_adjacency")
    fields = {f: planted[f] for f in ("instruction_lazy", "instruction_descriptive")}
    match = matched(index, pre_code=planted["before"], post_code=planted["after"], **fields)
    assert match is not None and match.problem == "40_adjacency"


def test_clean_code_and_instructions_are_not_matched(index: BenchmarkIndex) -> None:
    clean = mutations.clean_triplets(600, seed=0, max_files=150)
    assert len(clean) == 600
    flagged = [(t["id"], m) for t, m in zip(clean, index.match(clean)) if m is not None]
    assert flagged == []


def test_a_benchmark_entry_without_text_is_an_error() -> None:
    with pytest.raises(ValueError, match="'1_x' lacks the text field 'after'"):
        BenchmarkIndex([{"full_name": "1_x", "before": "x = 1"}])


def test_no_file_of_the_dataset_holds_planted_benchmark_text(benchmark: list[dict[str, Any]], tmp_path: Path) -> None:
    rng = random.Random(3)
    clean = mutations.clean_triplets(60, seed=1, max_files=20)
    names = ["1_cipher", "45_double_consonant", "66_product_analysis", "86_pyast", "113_schnorr_zk"]
    planted = []
    for number, name in enumerate(names):
        entry = problem(benchmark, name)
        planted += [
            mutations.triplet(f"code{number}", mutations.reformatted(entry["before"], rng)),
            mutations.triplet(f"after{number}", clean[number]["pre_code"]) | {"post_code": entry["after"]},
            mutations.triplet(
                f"instruction{number}", clean[number + 10]["pre_code"], lazy=entry["instruction_lazy"],
                descriptive=mutations.paraphrased(entry["instruction_descriptive"], rng),
            ),
        ]
    records = []
    for number, record in enumerate(clean[20:] + planted):
        fields = {"model": "m", "shard": "000", "pair_id": f"p{number}", "fewshot_id": "f", "status": "ok"}
        records.append(record | fields)
    records[-1] |= {"status": "dropped", "reason": "no_change"}  # dropped before dedup: still kept out of exports
    write_jsonl(tmp_path / "shard.jsonl", records)
    run_dedup([tmp_path / "shard.jsonl"], tmp_path / "triplets.jsonl", tmp_path / "report.json", SETTINGS, benchmark)
    report = json.loads((tmp_path / "report.json").read_text())
    assert sorted(m["id"] for m in report["contaminated"]) == sorted(r["id"] for r in planted)
    out = tmp_path / "dataset"
    report_path = tmp_path / "report.json"
    run_mix(tmp_path / "triplets.jsonl", out, {"size_per_style": 100}, 42, decontamination_path=report_path)

    # Lines of benchmark text long enough to be evidence, and every instruction.
    needles = {
        line.strip()
        for name in names
        for field in ("before", "after")
        for line in problem(benchmark, name)[field].splitlines()
        if len(line.strip()) >= 30
    } | {problem(benchmark, name)[f] for name in names for f in ("instruction_lazy", "instruction_descriptive")}
    files = sorted(p for p in out.iterdir())
    assert {p.suffix for p in files} == {".jsonl", ".parquet", ".json", ".md", ".png"}
    for path in files:
        if path.suffix == ".png":
            continue
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
            text = "\n".join(json.dumps(row) for row in frame.to_dicts())
        else:
            text = path.read_text(encoding="utf-8")
        text = text + "\n" + text.encode().decode("unicode_escape", errors="ignore")  # JSON escapes too
        leaked = [needle for needle in needles if needle in text]
        assert leaked == [], f"{path.name} holds benchmark text: {leaked[:3]}"
    assert "15 triplets overlapped the benchmark" in (out / "README.md").read_text()


# ---------------------------------------------------------------- any benchmark

TOY_PROGRAM = '''def schedule_rotations(crew, days):
    """Assign each day a crew member, never the same one twice in a row."""
    plan = {}
    previous = None
    for offset, day in enumerate(days):
        member = crew[offset % len(crew)]
        if member == previous:
            member = crew[(offset + 1) % len(crew)]
        plan[day] = member
        previous = member
    return plan
'''
TOY_TASK = (
    "Write a function that assigns every day of a schedule to one member of the crew, rotating through the crew "
    "and never giving the same member two days in a row."
)


def test_the_generic_constructor_indexes_any_benchmarks_texts() -> None:
    index = BenchmarkIndex.from_texts(
        [("toy/1", "solution", "code", TOY_PROGRAM), ("toy/1", "task", "instruction", TOY_TASK)]
    )
    assert index.problems == ["toy/1"]
    disguised = mutations.reformatted(TOY_PROGRAM, random.Random(0), drop_docstrings=True)
    code = matched(index, pre_code=disguised)
    assert code is not None and (code.problem, code.benchmark_field, code.method) == ("toy/1", "solution", "code")
    words = mutations.paraphrased(TOY_TASK, random.Random(0))
    prose = matched(index, instruction_descriptive=words)
    assert prose is not None
    assert (prose.problem, prose.benchmark_field, prose.method) == ("toy/1", "task", "instruction")
    assert matched(index) is None
    assert BenchmarkText("toy/1", "solution", "code", TOY_PROGRAM).strict  # a new benchmark's text is strict
    with pytest.raises(ValueError, match="kind must be 'code' or 'instruction', not 'prose'"):
        BenchmarkIndex.from_texts([("toy/1", "task", "prose", TOY_TASK)])


def test_canitedit_through_the_generic_constructor_is_unchanged(
    benchmark: list[dict[str, Any]], index: BenchmarkIndex
) -> None:
    entries = canitedit_texts(benchmark)
    assert len(entries) == 4 * len(benchmark) and not any(e.strict for e in entries)
    assert entries[0][:3] == (benchmark[0]["full_name"], "before", "code")
    generic = BenchmarkIndex.from_texts(entries, SETTINGS["decontamination"])
    clean = mutations.clean_triplets(200, seed=2, max_files=60)
    triplets = clean + [t for cases in mutations.planted(benchmark[:40], [HOST], 0).values() for _, t in cases]
    assert generic.match(triplets) == index.match(triplets)
    assert generic.problems == index.problems


def test_a_humanevalfix_program_verbatim_or_renamed_is_found_and_named(
    humanevalfix: dict[str, dict[str, Any]], full_index: BenchmarkIndex
) -> None:
    rng = random.Random(0)
    for task in ("Python/0", "Python/31", "Python/105", "Python/147"):
        problem = humanevalfix[task]
        program = problem["prompt"] + problem["canonical_solution"]
        disguises = {
            "verbatim": program,
            "renamed": mutations.renamed(program, rng),
            "no docstring": mutations.reformatted(program, rng, drop_docstrings=True),
            "buggy, tests variant": problem["declaration"] + problem["buggy_solution"],
        }
        for label, source in disguises.items():
            match = matched(full_index, pre_code=source)
            assert match is not None and match.problem == f"humanevalfix/{task}", (task, label, match)
        prose = docstring_prose(problem["docstring"])
        match = matched(full_index, instruction_descriptive=mutations.paraphrased(prose, rng))
        assert match is not None and (match.problem, match.benchmark_field) == (f"humanevalfix/{task}", "docstring")


def test_an_exercism_solution_and_its_instructions_are_found_and_named(
    exercism: dict[str, dict[str, Any]], full_index: BenchmarkIndex
) -> None:
    rng = random.Random(0)
    for slug in ("accumulate", "bank-account", "sieve", "zipper"):
        texts = mutations.exercism_texts(exercism[slug])
        for source in (texts["example"], mutations.renamed(texts["example"], rng)):
            match = matched(full_index, post_code=source)
            assert match is not None and (match.problem, match.field) == (f"aider_exercism/{slug}", "post_code"), slug
        for instruction in (texts["instructions"], mutations.paraphrased(texts["instructions"], rng)):
            match = matched(full_index, instruction_descriptive=instruction)
            assert match is not None and match.problem == f"aider_exercism/{slug}", slug
            assert (match.method, match.benchmark_field) == ("instruction", "instructions")


TEXTBOOK_IS_PRIME = '''def is_prime(n):
    if n < 2:
        return False
    for divisor in range(2, int(n ** 0.5) + 1):
        if n % divisor == 0:
            return False
    return True
'''
TEXTBOOK_PRIMES = '''def is_prime(candidate):
    """Check whether candidate is a prime number."""
    if candidate < 2:
        return False
    for factor in range(2, candidate):
        if candidate % factor == 0:
            return False
    return True


def primes_below(limit):
    return [n for n in range(limit) if is_prime(n)]
'''


def test_a_textbook_prime_test_is_not_humanevals(all_three: list[BenchmarkText], full_index: BenchmarkIndex) -> None:
    # HumanEval/31's is_prime loops to n - 1; these are everyone's. A quarter of a tiny program in common, which
    # CanItEdit's rule would take as a match, is not enough against a textbook exercise's program.
    lenient = BenchmarkIndex.from_texts([e._replace(strict=False) for e in all_three])
    for source in (TEXTBOOK_IS_PRIME, TEXTBOOK_PRIMES):
        assert matched(full_index, pre_code=source, post_code=source) is None
        found = matched(lenient, pre_code=source)
        assert found is not None and found.problem.startswith("humanevalfix/")
