"""A variant's training set: exact sizes that nest, seeded orders, blends at fixed shares, token budgets,
sets too small stopping before training, and the manifest."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from editforge.dataset.validation import split_validation
from editforge.experiments.trainset import (
    Component,
    TrainingSetError,
    build_training_set,
    conversation_tokens,
    external_provenance,
    ordered,
    run_provenance,
)
from editforge.records import read_jsonl, write_jsonl

EXACT = {"n": None, "unit": "rows", "mode": "exact"}
OFF = {"samples": 0}  # no validation split: the sizing tests count every row of a pool
PROVENANCE = {
    "sources": ["stdlib (python)"],
    "licences": ["dataset: apache-2.0", "seeds stdlib: PSF-2.0 (3)"],
    "generators": {"smollm2": "embedded"},
    "decontamination": {"contaminated": 1, "contaminated_share": 0.01},
}


def row(pool: str, i: int, *, style: str | None = None, model: str | None = None, words: int = 3) -> dict[str, Any]:
    """A training row of ``pool`` whose conversation has ``words`` + 7 tokens."""
    return {
        "id": f"{pool}-t{i}:{style or ('lazy' if i % 3 else 'descriptive')}",
        "triplet_id": f"{pool}-t{i}",
        "model": model or ("teacher-a" if i % 2 else "teacher-b"),
        "style": style or ("lazy" if i % 3 else "descriptive"),
        "pre_code": f"x = {i}\n",
        "post_code": f"x = {i + 1}\n",
        "instruction": "Increment it",
        "messages": [
            {"role": "system", "content": "You edit code."},  # 4 tokens: You, edit, code, .
            {"role": "user", "content": " ".join(["w"] * words)},
            {"role": "assistant", "content": "x=1"},  # 3 tokens
        ],
        "topic": i % 4,
    }


def pool_file(tmp_path: Path, name: str, count: int, **kwargs: Any) -> Path:
    path = tmp_path / f"{name}.jsonl"
    write_jsonl(path, [row(name, i, **kwargs) for i in range(count)])
    return path


def build(
    tmp_path: Path,
    components: list[Component],
    out: str = "out",
    seed: int = 42,
    validation: dict[str, Any] | None = OFF,
    **size: Any,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    manifest = build_training_set("v", components, EXACT | size, seed, tmp_path / out, validation=validation)
    return manifest, list(read_jsonl(tmp_path / out / "train.jsonl"))


def single(path: Path) -> list[Component]:
    return [Component("pool", 1.0, path, PROVENANCE)]


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in rows]


def test_tokens_are_words_and_single_symbols() -> None:
    assert conversation_tokens({"messages": [{"role": "user", "content": "def f(x):\n    return x_1 + 2"}]}) == 10
    assert conversation_tokens(row("p", 0, words=5)) == 12
    assert conversation_tokens({"messages": [{"role": "user", "content": "  "}]}) == 0


def test_a_set_has_exactly_n_rows_of_its_pool_unchanged(tmp_path: Path) -> None:
    path = pool_file(tmp_path, "pool", 20)
    manifest, rows = build(tmp_path, single(path), n=7)
    assert len(rows) == 7 == manifest["rows"] and len(set(ids(rows))) == 7
    by_id = {r["id"]: r for r in read_jsonl(path)}
    assert all(by_id[r["id"]] == r for r in rows)
    assert manifest["components"] == {"pool": {"share": 1.0, "available": 20, "taken": 7, "held_out": 0}}
    assert manifest["size"] == {"n": 7, "unit": "rows", "mode": "exact"}
    assert manifest["variant"] == "v" and manifest["seed"] == 42


def test_smaller_sets_are_subsets_of_larger_ones(tmp_path: Path) -> None:
    path = pool_file(tmp_path, "pool", 30)
    sets = {n: build(tmp_path, single(path), out=f"n{n}", n=n)[1] for n in (5, 10, 20)}
    assert set(ids(sets[5])) < set(ids(sets[10])) < set(ids(sets[20]))
    # each is the prefix of one seeded order, written in that order
    order = ids(ordered(list(read_jsonl(path)), 42))
    for n, rows in sets.items():
        assert ids(rows) == order[:n]


def test_the_order_depends_on_the_seed_and_the_ids_only(tmp_path: Path) -> None:
    rows = [row("pool", i) for i in range(30)]
    assert ids(ordered(rows, 1)) == ids(ordered(list(reversed(rows)), 1))  # not on the pool's order
    assert ids(ordered(rows, 1)) != ids(ordered(rows, 2))
    assert sorted(ids(ordered(rows, 1))) == sorted(ids(rows))
    path = pool_file(tmp_path, "pool", 30)
    first, rows_1 = build(tmp_path, single(path), out="s1", seed=1, n=10)
    again, _ = build(tmp_path, single(path), out="s1-again", seed=1, n=10)
    _, rows_2 = build(tmp_path, single(path), out="s2", seed=2, n=10)
    assert first["sha256"] == again["sha256"]  # the same set, byte for byte
    assert set(ids(rows_1)) != set(ids(rows_2))


def test_a_pool_too_small_stops_and_says_what_to_do(tmp_path: Path) -> None:
    path = pool_file(tmp_path, "pool", 4)
    with pytest.raises(TrainingSetError) as info:
        build(tmp_path, single(path), n=5)
    message = str(info.value)
    assert message.startswith("experiments.variants.v: pool has 4 rows, 5 asked")
    assert "size.mode: at_most" in message
    assert not (tmp_path / "out/train.jsonl").exists()


def test_at_most_takes_what_there_is(tmp_path: Path) -> None:
    path = pool_file(tmp_path, "pool", 4)
    manifest, rows = build(tmp_path, single(path), n=5, mode="at_most")
    assert len(rows) == 4 == manifest["rows"]
    assert manifest["components"]["pool"] == {"share": 1.0, "available": 4, "taken": 4, "held_out": 0}


def test_no_n_takes_the_whole_pool(tmp_path: Path) -> None:
    path = pool_file(tmp_path, "pool", 13)
    manifest, rows = build(tmp_path, single(path))
    assert sorted(ids(rows)) == sorted(ids(list(read_jsonl(path)))) and manifest["rows"] == 13


def test_an_empty_pool_is_an_error(tmp_path: Path) -> None:
    path = pool_file(tmp_path, "pool", 0)
    with pytest.raises(TrainingSetError, match="experiments.variants.v: a pool it draws from is empty"):
        build(tmp_path, single(path))
    with pytest.raises(TrainingSetError, match="experiments.variants.v: the training set is empty"):
        build(tmp_path, single(path), n=3, mode="at_most")


def blend(tmp_path: Path, a: int, b: int) -> list[Component]:
    other = {"sources": ["ext (hub)"], "licences": ["ext: MIT"], "generators": {"ext": "gpt-4o"}}
    return [
        Component("paper", 0.75, pool_file(tmp_path, "paper", a), PROVENANCE),
        Component("ext", 0.25, pool_file(tmp_path, "ext", b), other | {"decontamination": {"contaminated": 0}}),
    ]


def origins(rows: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r["triplet_id"].split("-")[0] for r in rows)


def test_a_blend_takes_each_pool_at_its_share(tmp_path: Path) -> None:
    components = blend(tmp_path, 20, 20)
    manifest, rows = build(tmp_path, components, out="8", n=8)
    assert origins(rows) == {"paper": 6, "ext": 2}
    assert manifest["components"] == {
        "paper": {"share": 0.75, "available": 20, "taken": 6, "held_out": 0},
        "ext": {"share": 0.25, "available": 20, "taken": 2, "held_out": 0},
    }
    # 6.75 + 2.25: the leftover row goes to the larger remainder
    assert origins(build(tmp_path, components, out="9", n=9)[1]) == {"paper": 7, "ext": 2}
    # 7.5 + 2.5 and 3.75 + 1.25: the sizes always add up
    assert origins(build(tmp_path, components, out="10", n=10)[1]).total() == 10
    assert origins(build(tmp_path, components, out="5", n=5)[1]) == {"paper": 4, "ext": 1}
    # every part's provenance, by part
    assert manifest["sources"] == ["stdlib (python)", "ext (hub)"]
    assert manifest["licences"] == [*PROVENANCE["licences"], "ext: MIT"]
    assert manifest["generators"] == {"smollm2": "embedded", "ext": "gpt-4o"}
    assert manifest["decontamination"] == {"paper": PROVENANCE["decontamination"], "ext": {"contaminated": 0}}


def test_a_blends_rows_are_mixed_in_the_seeded_order(tmp_path: Path) -> None:
    _, rows = build(tmp_path, blend(tmp_path, 20, 20), n=12)
    assert ids(rows) == ids(ordered(rows, 42))
    assert origins(rows[:6]) != Counter(paper=6)  # not one pool after the other


def test_a_blend_without_n_is_the_most_its_shares_allow(tmp_path: Path) -> None:
    # 10 rows at 0.75 allow 13 in all (9.75 + 3.25 -> 10 + 3)
    manifest, rows = build(tmp_path, blend(tmp_path, 10, 10))
    assert origins(rows) == {"paper": 10, "ext": 3} and manifest["rows"] == 13


def test_a_blend_part_too_small_is_named(tmp_path: Path) -> None:
    with pytest.raises(TrainingSetError, match=r"experiments.variants.v: ext has 1 rows, 2 asked"):
        build(tmp_path, blend(tmp_path, 20, 1), n=8)
    manifest, rows = build(tmp_path, blend(tmp_path, 20, 1), n=8, mode="at_most")
    assert origins(rows) == {"paper": 6, "ext": 1} and manifest["components"]["ext"]["taken"] == 1


def test_a_token_budget_keeps_the_longest_prefix_within_it(tmp_path: Path) -> None:
    path = tmp_path / "pool.jsonl"
    pool = [row("pool", i, words=i % 5 + 1) for i in range(20)]  # 8 to 12 tokens a row
    write_jsonl(path, pool)
    manifest, rows = build(tmp_path, single(path), n=50, unit="tokens")
    order = ordered(pool, 42)
    assert ids(rows) == ids(order[: len(rows)])
    assert manifest["tokens"] == sum(map(conversation_tokens, rows)) <= 50
    assert manifest["tokens"] + conversation_tokens(order[len(rows)]) > 50  # the next row would not fit
    assert manifest["rows"] == len(rows) >= 4


def test_a_token_budget_a_pool_cannot_fill_stops_unless_at_most(tmp_path: Path) -> None:
    path = pool_file(tmp_path, "pool", 3, words=3)  # 3 rows of 10 tokens
    with pytest.raises(TrainingSetError, match=r"experiments.variants.v: pool has 30 tokens, 100 asked.*at_most"):
        build(tmp_path, single(path), n=100, unit="tokens")
    manifest, rows = build(tmp_path, single(path), n=100, unit="tokens", mode="at_most")
    assert len(rows) == 3 and manifest["tokens"] == 30
    manifest, rows = build(tmp_path, single(path), out="all", unit="tokens")  # n None: the whole pool
    assert len(rows) == 3 and manifest["tokens"] == 30


def test_the_manifest_hashes_the_file_and_counts_styles_and_teachers(tmp_path: Path) -> None:
    path = pool_file(tmp_path, "pool", 30)
    manifest, rows = build(tmp_path, single(path), n=12)
    out = tmp_path / "out"
    assert manifest["sha256"] == hashlib.sha256((out / "train.jsonl").read_bytes()).hexdigest()
    assert json.loads((out / "manifest.json").read_text()) == manifest
    expected = ordered(list(read_jsonl(path)), 42)[:12]
    assert manifest["styles"] == dict(Counter(r["style"] for r in expected))
    assert manifest["teachers"] == dict(Counter(r["model"] for r in expected))
    assert sum(manifest["styles"].values()) == sum(manifest["teachers"].values()) == 12
    assert len(manifest["styles"]) == 2 and len(manifest["teachers"]) == 2
    assert manifest["tokens"] == sum(map(conversation_tokens, rows))
    assert manifest["sources"] == PROVENANCE["sources"] and manifest["licences"] == PROVENANCE["licences"]
    assert manifest["decontamination"] == {"pool": PROVENANCE["decontamination"]}


def test_run_provenance_names_sources_licences_generators_and_what_decontamination_dropped() -> None:
    seeds_stats = {
        "sources": {
            "stdlib": {"repository": "python/cpython", "licences": {"PSF-2.0": 30, "MIT": 2}},
            "local": {"licences": {}},
        }
    }
    decontamination = {
        "contaminated": [{"kept_before": True}, {"kept_before": False}, {"kept_before": True}, {}],
        "contaminated_share": 0.02,
    }
    provenance = run_provenance(seeds_stats, decontamination, "apache-2.0", {"smollm2": "embedded"})
    assert provenance == {
        "sources": ["stdlib (python/cpython)", "local (-)"],
        "licences": ["dataset: apache-2.0", "seeds stdlib: PSF-2.0 (30), MIT (2)", "seeds local: "],
        "generators": {"smollm2": "embedded"},
        "decontamination": {"contaminated": 2, "contaminated_share": 0.02},
    }
    assert run_provenance({}, {}, "mit", {}) == {
        "sources": [],
        "licences": ["dataset: mit"],
        "generators": {},
        "decontamination": {"contaminated": 0, "contaminated_share": None},
    }


def test_external_provenance_comes_from_its_report() -> None:
    report = {
        "source": "nuprl/EditPackFT",
        "licence": "MIT",
        "generator": "gpt-4o",
        "contaminated": {"count": 3},
        "rows_read": 100,
    }
    assert external_provenance(report) == {
        "sources": ["nuprl/EditPackFT"],
        "licences": ["nuprl/EditPackFT: MIT"],
        "generators": {"nuprl/EditPackFT": "gpt-4o"},
        "decontamination": {"contaminated": {"count": 3}, "rows_read": 100},
    }
    bare = external_provenance({"source": "data/local.jsonl"})
    assert bare["licences"] == ["data/local.jsonl: unknown"] and bare["generators"] == {}
    assert bare["decontamination"] == {"contaminated": None, "rows_read": None}


def test_a_row_two_blended_pools_share_is_taken_once(tmp_path: Path) -> None:
    # Two variants of one pool (say paper and a lazy-only mix) share row ids: the blend never repeats one.
    shared = pool_file(tmp_path, "paper", 12)
    parts = [Component("a", 0.5, shared, PROVENANCE), Component("b", 0.5, shared, PROVENANCE)]
    manifest, rows = build(tmp_path, parts, n=10)
    assert len(set(ids(rows))) == len(rows) == 10
    assert manifest["components"]["b"] == {"share": 0.5, "available": 7, "taken": 5, "held_out": 0}
    with pytest.raises(TrainingSetError, match=r"b has 5 rows, 7 asked"):
        build(tmp_path, parts, out="too-many", n=14)


# ---------------------------------------------------------------- the validation split

RUN = {"samples": 8, "max_share": 0.25}


def dataset_level(tmp_path: Path, name: str, triplets: int, settings: dict[str, Any] = RUN) -> tuple[Path, Path]:
    """A pool as the dataset stage leaves it: every other triplet in both styles, split with ``settings``."""
    rows = [row(name, i, style=s) for i in range(triplets) for s in (("lazy", "descriptive") if i % 2 else ("lazy",))]
    split = split_validation(rows, settings, 42)
    train, held = tmp_path / f"{name}.train.jsonl", tmp_path / f"{name}.validation.jsonl"
    write_jsonl(train, split.train)
    write_jsonl(held, split.validation)
    return train, held


def test_the_runs_settings_hold_out_the_runs_rows_at_every_size(tmp_path: Path) -> None:
    train, held = dataset_level(tmp_path, "pool", 40)
    run_held = list(read_jsonl(held))
    assert len(run_held) == 8
    parts = [Component("pool", 1.0, train, PROVENANCE, validation=held)]
    files = []
    for n in (5, 20, None):
        manifest, rows = build(tmp_path, parts, out=f"n{n}", validation=RUN, n=n)
        validation = list(read_jsonl(tmp_path / f"n{n}/validation.jsonl"))
        assert sorted(ids(validation)) == sorted(ids(run_held))  # the run's split, whatever the size
        assert not {r["triplet_id"] for r in rows} & {r["triplet_id"] for r in validation}
        assert manifest["components"]["pool"]["available"] == len(list(read_jsonl(train)))
        assert manifest["components"]["pool"]["held_out"] == 8
        files.append((tmp_path / f"n{n}/validation.jsonl").read_bytes())
        assert manifest["validation"] == {
            "rows": 8,
            "triplets": len({r["triplet_id"] for r in run_held}),
            "tokens": sum(map(conversation_tokens, run_held)),
            "sha256": hashlib.sha256(files[-1]).hexdigest(),
            "reason": None,
        }
    assert len(set(files)) == 1
    # n None: the whole remainder, i.e. exactly the run's training rows
    assert sorted(ids(rows)) == sorted(ids(list(read_jsonl(train))))


def test_other_settings_split_the_pools_full_rows_again(tmp_path: Path) -> None:
    train, held = dataset_level(tmp_path, "pool", 40)
    parts = [Component("pool", 1.0, train, PROVENANCE, validation=held)]
    manifest, rows = build(tmp_path, parts, out="off", validation=OFF)
    assert len(rows) == 60 and manifest["validation"]["rows"] == 0  # every row, the run's held-out ones too
    assert manifest["validation"]["reason"] == "switched off (dataset.validation.samples: 0)"
    assert (tmp_path / "off/validation.jsonl").read_text() == ""
    manifest, rows = build(tmp_path, parts, out="more", validation={"samples": 20, "max_share": 0.5})
    validation = list(read_jsonl(tmp_path / "more/validation.jsonl"))
    assert 19 <= len(validation) <= 20 and len(rows) + len(validation) == 60
    assert set(ids(list(read_jsonl(held)))) <= set(ids(validation))  # raising samples only adds triplets
    manifest, _ = build(tmp_path, parts, out="tiny", validation={"max_share": 0.01})
    assert manifest["validation"]["reason"] == "a share of 0.01 of 60 samples is less than one triplet"


def test_a_blend_holds_out_its_pools_rows_within_one_cap(tmp_path: Path) -> None:
    settings = {"samples": 6, "max_share": 0.5}
    paper, paper_held = dataset_level(tmp_path, "paper", 20, settings)
    external = pool_file(tmp_path, "ext", 20)  # an external pool: no held-out file, one row per triplet
    parts = [
        Component("paper", 0.75, paper, PROVENANCE, validation=paper_held),
        Component("ext", 0.25, external, PROVENANCE),
    ]
    manifest, rows = build(tmp_path, parts, validation=settings, n=8)
    assert origins(rows) == {"paper": 6, "ext": 2}
    paper_out = {r["triplet_id"] for r in read_jsonl(paper_held)}
    ext_out = {r["triplet_id"] for r in split_validation(list(read_jsonl(external)), settings, 42).validation}
    assert manifest["components"]["paper"]["held_out"] == len(list(read_jsonl(paper_held)))
    assert manifest["components"]["ext"]["held_out"] == len(ext_out) == 6
    validation = list(read_jsonl(tmp_path / "out/validation.jsonl"))
    assert 5 <= len(validation) <= 6 == settings["samples"]  # the pools held out 11 or 12: capped as one set
    assert {r["triplet_id"] for r in validation} <= paper_out | ext_out
    assert not {r["triplet_id"] for r in rows} & (paper_out | ext_out)  # nothing held out is trained on
    assert ids(validation) == ids(ordered(validation, 42))


def test_bad_validation_settings_name_the_variant(tmp_path: Path) -> None:
    path = pool_file(tmp_path, "pool", 10)
    with pytest.raises(TrainingSetError, match=r"experiments.variants.v: dataset.validation.max_share must be"):
        build(tmp_path, single(path), validation={"max_share": 0.75})
