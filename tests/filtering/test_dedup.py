"""The dedup stage: exact and near duplicates, decontamination of the kept and dropped records, the report."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from editforge.filtering import run_dedup
from editforge.filtering.decontamination import ContaminationError, code_shingles
from editforge.filtering.dedup import NEAR_TOKENS
from editforge.filtering.exact import exact_key
from editforge.filtering.minhash import jaccard
from editforge.records import read_jsonl, write_jsonl
from helpers.triplets import INVENTORY, INVENTORY_AFTER, MATRIX, SETTINGS, TEXT_STATS, triplet


def dedup(
    tmp_path: Path,
    shards: list[list[dict[str, Any]]],
    benchmark: list[dict[str, Any]] | None = None,
    settings: dict[str, Any] = SETTINGS,
) -> tuple[dict[str, int], dict[str, dict[str, Any]], dict[str, Any]]:
    paths = []
    for number, records in enumerate(shards):
        paths.append(tmp_path / f"shard{number}.jsonl")
        write_jsonl(paths[-1], records)
    counts = run_dedup(paths, tmp_path / "dedup.jsonl", tmp_path / "report.json", settings, benchmark)
    out = {r["id"]: r for r in read_jsonl(tmp_path / "dedup.jsonl")}
    return counts, out, json.loads((tmp_path / "report.json").read_text())


def distinct_triplets() -> list[dict[str, Any]]:
    return [
        triplet("inventory"),
        triplet(
            "text",
            pre_code=TEXT_STATS,
            post_code=TEXT_STATS.replace("max(words, key=len)", "max(sorted(words), key=len)"),
            instruction_lazy="Break ties between longest words alphabetically.",
            instruction_descriptive="In `longest_word`, when several words share the greatest length, "
            "return the alphabetically first one by sorting the words before taking the maximum.",
        ),
        triplet(
            "matrix",
            pre_code=MATRIX,
            post_code=MATRIX.replace(
                "    rows, cols",
                '    if len(a[0]) != len(b):\n        raise ValueError("shape mismatch")\n    rows, cols',
            ),
            instruction_lazy="Check the matrix shapes before multiplying.",
            instruction_descriptive="At the start of `multiply`, raise a ValueError with the message "
            "'shape mismatch' when the column count of `a` differs from the row count of `b`.",
        ),
    ]


def test_dedup_keeps_distinct_triplets_and_first_of_each_duplicate(tmp_path: Path) -> None:
    first, text, matrix = distinct_triplets()
    reformatted = INVENTORY.replace("class Inventory:", "# stock\nclass Inventory:")
    reformatted = reformatted.replace('"not enough "', "'not enough '")
    exact = triplet(
        "exact",
        pre_code=reformatted,
        instruction_lazy=first["instruction_lazy"].upper(),
        instruction_descriptive="  " + first["instruction_descriptive"].replace(" ", "  "),
    )
    same_code = triplet(
        "same_code",
        post_code=INVENTORY.replace("sum(self.items.values())", "sum(max(v, 0) for v in self.items.values())"),
        instruction_lazy="Ignore negative counts in the total.",
        instruction_descriptive="Make `total` skip negative counts by clamping each count at zero before summing.",
    )
    same_instruction = triplet(
        "same_instruction",
        pre_code=MATRIX.replace("multiply", "matmul").replace("transpose", "flip"),
        post_code=MATRIX.replace("multiply", "matmul").replace("transpose", "flip") + "\n\nI = [[1, 0], [0, 1]]\n",
    )
    # The inventory's edit, with its 3 lines of context, in a different program.
    stranger = TEXT_STATS + "\n\n" + INVENTORY
    same_diff = triplet(
        "same_diff",
        pre_code=stranger,
        post_code=TEXT_STATS + "\n\n" + INVENTORY_AFTER,
        instruction_lazy="Report the largest stock.",
        instruction_descriptive="Give the stock class a way to find which product has the highest quantity.",
    )
    earlier_drop = {"id": "gone", "model": "m1", "status": "dropped", "reason": "post_code_syntax"}
    shards = [[first, text, exact, earlier_drop], [same_code, same_instruction, matrix, same_diff]]
    counts, out, report = dedup(tmp_path, shards, benchmark=None)

    assert counts == {
        "exact_duplicate": 1,
        "near_duplicate_code": 1,
        "near_duplicate_diff": 1,
        "near_duplicate_instruction": 1,
        "ok": 3,
        "post_code_syntax": 1,
    }
    assert {i for i, r in out.items() if r["status"] == "ok"} == {"inventory", "text", "matrix"}
    assert out["exact"]["reason"] == "exact_duplicate"
    assert out["same_code"]["reason"] == "near_duplicate_code"
    assert out["same_instruction"]["reason"] == "near_duplicate_instruction"
    assert out["same_diff"]["reason"] == "near_duplicate_diff"
    assert all(out[i]["duplicate_of"] == "inventory" for i in ("exact", "same_code", "same_instruction", "same_diff"))
    assert len(out) == 8  # every input record, dropped ones too
    assert {d["id"] for d in report["duplicates"]} == {"exact", "same_code", "same_instruction", "same_diff"}
    assert report["decontamination"].startswith("skipped")


def test_dedup_keeps_the_first_in_input_order(tmp_path: Path) -> None:
    a, b = triplet("a"), triplet("b")
    _, out, _ = dedup(tmp_path, [[b], [a]])
    assert (out["b"]["status"], out["a"]["reason"]) == ("ok", "exact_duplicate")


def problem_like(name: str, before: str, after: str) -> dict[str, Any]:
    return {
        "full_name": name,
        "before": before,
        "after": after,
        "instruction_lazy": "Make it better.",
        "instruction_descriptive": "Change the program so that it does what the tests expect of it in every case.",
    }


def test_renamed_copy_of_a_benchmark_problem_is_contaminated(tmp_path: Path) -> None:
    benchmark = [problem_like("7_words", TEXT_STATS, TEXT_STATS.replace("[a-z']+", "[a-z0-9']+"))]
    # Every identifier renamed: no 13-word run survives, the name-blind sketch still matches.
    renamed = (
        TEXT_STATS.replace("word_counts", "tally")
        .replace("longest_word", "widest")
        .replace("counts", "seen")
        .replace("words", "tokens")
        .replace("word", "tok")
        .replace("text", "body")
    )
    planted = triplet("planted", pre_code=renamed, post_code=renamed + "\n\nSEP = ' '\n")
    others = [r for r in distinct_triplets() if r["id"] != "text"]  # "text" is that very problem
    counts, out, report = dedup(tmp_path, [[*others, planted]], benchmark=benchmark)
    assert counts == {"contaminated": 1, "ok": 2}
    assert out["planted"]["contaminated_by"] == "7_words"
    [match] = report["contaminated"]
    assert (match["id"], match["problem"], match["method"], match["field"]) == (
        "planted", "7_words", "code", "pre_code"
    )


def test_too_much_contamination_is_an_error(tmp_path: Path) -> None:
    records = distinct_triplets()
    benchmark = [problem_like(f"{i}_p", r["pre_code"], r["post_code"]) for i, r in enumerate(records[:2])]
    with pytest.raises(ContaminationError, match=r"2 of 3 kept triplets \(66\.7%\).*max_contaminated_share = 0\.5"):
        dedup(tmp_path, [records], benchmark=benchmark)
    assert not (tmp_path / "dedup.jsonl").exists()


def test_benchmark_problem_without_a_field_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'1_x' lacks the text field 'after'"):
        dedup(tmp_path, [distinct_triplets()], benchmark=[{"full_name": "1_x", "before": "x = 1"}])


def test_planted_canitedit_problem_is_caught_and_distinct_triplets_are_not(
    tmp_path: Path, benchmark_path: Path
) -> None:
    benchmark = list(read_jsonl(benchmark_path))
    problem = next(p for p in benchmark if p["full_name"] == "1_cipher")
    # Light renaming, as a synthesis model paraphrasing a memorised problem might do.
    rename = {"Cipher": "Codebook", "translate": "encode", "add_cipher": "register", "dic": "table"}
    pattern = re.compile(r"\b(" + "|".join(rename) + r")\b")
    planted = triplet(
        "planted",
        pre_code=pattern.sub(lambda m: rename[m.group()], problem["before"]),
        post_code=pattern.sub(lambda m: rename[m.group()], problem["after"]),
    )
    counts, out, report = dedup(tmp_path, [[*distinct_triplets(), planted]], benchmark=benchmark)
    assert counts == {"contaminated": 1, "ok": 3}
    assert out["planted"]["contaminated_by"] == "1_cipher"
    assert report["contaminated"][0]["problem"] == "1_cipher"



def test_exact_key_ignores_layout_comments_and_quotes_but_not_behaviour() -> None:
    base = triplet()
    same = triplet(pre_code="# header\n" + INVENTORY.replace('"not enough "', "'not enough '").replace("):", ") :"))
    assert exact_key(base) == exact_key(same)
    assert exact_key(base) != exact_key(triplet(pre_code=INVENTORY.replace("0) < count", "0) <= count")))
    assert exact_key(base) != exact_key(triplet(instruction_lazy="Something else."))
    # Parses but does not compile: keyed by its AST, still blind to layout.
    outside = "return  1\n"
    assert exact_key(triplet(pre_code=outside)) == exact_key(triplet(pre_code="return 1  # x\n"))


def random_triplets(count: int, seed: int) -> list[dict[str, Any]]:
    """Varied small triplets with planted near copies (renamed, extended, reworded)."""
    rng = random.Random(seed)
    nouns = ["price", "total", "order", "item", "stock", "user", "name", "path", "line", "word", "count", "value"]
    records: list[dict[str, Any]] = []
    for number in range(count):
        if records and rng.random() < 0.3:
            source = rng.choice(records)
            kind = rng.randrange(3)
            pre, post = source["pre_code"], source["post_code"]
            lazy, desc = source["instruction_lazy"], source["instruction_descriptive"]
            if kind == 0:
                pre, post = pre + f"\n{rng.choice(nouns)}_x = {number}\n", post + f"\n{rng.choice(nouns)}_x = 1\n"
            elif kind == 1:
                lazy, desc = lazy + " Thanks.", desc + " Keep the rest."
            else:
                pre, post = pre.replace("def ", "def my_"), post.replace("def ", "def my_")
                lazy = f"{rng.choice(nouns)} {lazy}"
            records.append(triplet(f"t{number:04d}", pre_code=pre, post_code=post, instruction_lazy=lazy,
                                   instruction_descriptive=desc))
            continue
        names = rng.sample(nouns, 4)
        body = "\n".join(f"    {n} = {rng.choice(names)} + {rng.randrange(99)}" for n in names)
        pre = f"def {names[0]}_{names[1]}({names[2]}, {names[3]}):\n{body}\n    return {names[0]}\n"
        post = pre.replace(f"return {names[0]}", f"return {names[1]} * {rng.randrange(2, 9)}")
        lazy = f"Return the {names[1]} scaled instead, please {rng.choice(nouns)}."
        desc = f"In `{names[0]}_{names[1]}`, return {names[1]} times a factor and not {names[0]} ({number})."
        records.append(triplet(f"t{number:04d}", pre_code=pre, post_code=post, instruction_lazy=lazy,
                               instruction_descriptive=desc))
    return records


def greedy_exact(records: list[dict[str, Any]], threshold: float, shingle_words: int) -> dict[str, str]:
    """The dedup decisions with exact Jaccard over all earlier kept records (the reference for LSH)."""
    def shingles(tokens: list[str]) -> set[Any]:
        k = shingle_words
        return {" ".join(tokens[i : i + k]) for i in range(max(1, len(tokens) - k + 1))}

    kept: list[dict[str, set[Any]]] = []
    seen: set[bytes] = set()
    decisions: dict[str, str] = {}
    for record in records:
        key = exact_key(record)
        if key in seen:
            decisions[record["id"]] = "exact_duplicate"
            continue
        seen.add(key)
        hashes, offsets = code_shingles([record["pre_code"]])
        tokens = {reason: tokens_of(record) for reason, tokens_of in NEAR_TOKENS.items()}
        own = {"near_duplicate_code": set(hashes.tolist())} if len(hashes) else {}
        own |= {reason: shingles(t) for reason, t in tokens.items() if t}
        hit = next(
            (r for r in own if any(r in k and jaccard(own[r], k[r]) >= threshold for k in kept)), None  # type: ignore[arg-type]
        )
        if hit:
            decisions[record["id"]] = hit
        else:
            kept.append(own)
            decisions[record["id"]] = "ok"
    return decisions


def test_lsh_dedup_matches_the_exact_pairwise_check(tmp_path: Path) -> None:
    records = random_triplets(400, seed=3)
    expected = greedy_exact(records, SETTINGS["minhash"]["threshold"], SETTINGS["minhash"]["shingle_words"])
    assert 50 < sum(d != "ok" for d in expected.values()) < 200  # the planted copies make a real test
    _, out, _ = dedup(tmp_path, [records])
    assert {i: r["reason"] if r["status"] == "dropped" else "ok" for i, r in out.items()} == expected
    # Every drop names a kept triplet.
    assert all(out[r["duplicate_of"]]["status"] == "ok" for r in out.values() if "duplicate_of" in r)


def test_an_exact_copy_of_a_near_duplicate_names_the_kept_triplet(tmp_path: Path) -> None:
    first = triplet("first")
    near = triplet("near", post_code=INVENTORY_AFTER + "\n\nLIMIT = 10\n")  # same pre-edit code: near_duplicate_code
    near["instruction_lazy"] = "Add a method for the top item."
    copy = dict(near, id="copy", pre_code="# again\n" + INVENTORY)
    _, out, _ = dedup(tmp_path, [[first, near, copy]])
    assert (out["near"]["reason"], out["near"]["duplicate_of"]) == ("near_duplicate_code", "first")
    assert (out["copy"]["reason"], out["copy"]["duplicate_of"]) == ("exact_duplicate", "first")


def test_planted_problem_among_many_distinct_triplets_is_the_only_match(tmp_path: Path) -> None:
    benchmark = [problem_like("7_words", TEXT_STATS, TEXT_STATS.replace("[a-z']+", "[a-z0-9']+"))]
    renamed = TEXT_STATS.replace("word_counts", "tally").replace("longest_word", "widest").replace("text", "body")
    records = random_triplets(300, seed=5)
    records.insert(150, triplet("planted", pre_code=renamed, post_code=renamed + "\nSEP = ' '\n"))
    settings = SETTINGS | {"decontamination": SETTINGS["decontamination"] | {"max_contaminated_share": 0.05}}
    counts, out, report = dedup(tmp_path, [records], benchmark=benchmark, settings=settings)
    assert counts["contaminated"] == 1 and out["planted"]["contaminated_by"] == "7_words"
    assert [m["id"] for m in report["contaminated"]] == ["planted"]
