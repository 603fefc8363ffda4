"""Mixing kept triplets into the training set."""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from editforge.dataset.mix import MixError, run_mix
from editforge.edit_format import training_messages
from editforge.funnel import STAGES
from editforge.records import read_jsonl, write_jsonl

# Validation off: these tests count the mix (the held-out split has tests of its own below).
OFF = {"validation": {"samples": 0}}
SETTINGS: dict[str, Any] = {"styles": ["lazy", "descriptive"], "mix": {"m1": 0.5, "m2": 0.5}, "size_per_style": 10}
SETTINGS |= OFF


def triplet(model: str, number: int, status: str = "ok") -> dict[str, Any]:
    record = {
        "id": f"{model}-{number:03d}",
        "model": model,
        "shard": "0",
        "pair_id": f"p{number}",
        "fewshot_id": "f0",
        "pre_code": f"def f():\n    return {number}\n",
        "post_code": f"def f():\n    return {number} + 1\n",
        "instruction_lazy": f"Add one ({model} {number}).",
        "instruction_descriptive": f"Make `f` return {number} + 1 instead of {number} ({model}).",
        "status": status,
    }
    return record if status == "ok" else record | {"reason": "no_change"}


@pytest.fixture
def filtered(tmp_path: Path) -> Path:
    path = tmp_path / "filtered.jsonl"
    records = [triplet("m1", i) for i in range(30)] + [triplet("m2", i) for i in range(10)]
    records += [triplet("m1", i, status="dropped") for i in range(30, 35)]
    write_jsonl(path, records)
    return path


def mix(
    filtered: Path, out: Path, settings: dict[str, Any] = SETTINGS, seed: int = 42
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    stats = run_mix(filtered, out, settings, seed)
    return stats, list(read_jsonl(out / "train.jsonl"))


def test_shares_per_style_and_model(filtered: Path, tmp_path: Path) -> None:
    stats, samples = mix(filtered, tmp_path / "out")
    assert stats["per_model_style"] == {"m1": {"lazy": 5, "descriptive": 5}, "m2": {"lazy": 5, "descriptive": 5}}
    assert stats["per_style"] == {"lazy": 10, "descriptive": 10}
    assert len(samples) == stats["total"] == 20
    assert all(s["triplet_id"].startswith(s["model"]) for s in samples)
    assert not any(int(s["triplet_id"][-3:]) >= 30 for s in samples)  # dropped triplets are never used


def test_uneven_shares_use_largest_remainder(filtered: Path, tmp_path: Path) -> None:
    stats, _ = mix(filtered, tmp_path / "out", SETTINGS | {"mix": {"m1": 2, "m2": 1}})
    assert stats["quota_per_style"] == {"m1": 7, "m2": 3}
    assert stats["per_model"] == {"m1": 14, "m2": 6}


def test_fewer_than_the_target_takes_what_exists(filtered: Path, tmp_path: Path) -> None:
    stats, _ = mix(filtered, tmp_path / "out", SETTINGS | {"size_per_style": 100})
    assert stats["per_model_style"] == {"m1": {"lazy": 30, "descriptive": 30}, "m2": {"lazy": 10, "descriptive": 10}}


def test_missing_mix_means_equal_shares(filtered: Path, tmp_path: Path) -> None:
    stats, _ = mix(filtered, tmp_path / "out", {"size_per_style": 8})
    assert stats["quota_per_style"] == {"m1": 4, "m2": 4}


def test_same_seed_same_files_other_seed_other_selection(filtered: Path, tmp_path: Path) -> None:
    mix(filtered, tmp_path / "a")
    mix(filtered, tmp_path / "b")
    assert (tmp_path / "a/train.jsonl").read_bytes() == (tmp_path / "b/train.jsonl").read_bytes()
    _, other = mix(filtered, tmp_path / "c", seed=7)
    _, first = mix(filtered, tmp_path / "d")
    assert {s["id"] for s in other} != {s["id"] for s in first}


def test_styles_draw_different_triplets(filtered: Path, tmp_path: Path) -> None:
    _, samples = mix(filtered, tmp_path / "out")
    chosen = {style: {s["triplet_id"] for s in samples if s["style"] == style} for style in ("lazy", "descriptive")}
    assert chosen["lazy"] != chosen["descriptive"]


def test_disjoint_split_never_reuses_a_triplet(filtered: Path, tmp_path: Path) -> None:
    stats, samples = mix(filtered, tmp_path / "out", SETTINGS | {"size_per_style": 100, "style_split": "disjoint"})
    assert len({s["triplet_id"] for s in samples}) == len(samples) == 40
    assert stats["triplets_in_several_styles"] == 0
    assert stats["per_model_style"]["m2"] == {"lazy": 5, "descriptive": 5}


def test_samples_use_the_shared_edit_format(filtered: Path, tmp_path: Path) -> None:
    _, samples = mix(filtered, tmp_path / "out")
    triplets = {r["id"]: r for r in read_jsonl(filtered)}
    for sample in samples:
        source = triplets[sample["triplet_id"]]
        assert sample["instruction"] == source[f"instruction_{sample['style']}"]
        assert sample["messages"] == training_messages(source["pre_code"], sample["instruction"], source["post_code"])
        assert sample["id"] == f"{sample['triplet_id']}:{sample['style']}"


def test_parquet_stats_and_card_agree_with_the_jsonl(filtered: Path, tmp_path: Path) -> None:
    stats, samples = mix(filtered, tmp_path / "out")
    table = pl.read_parquet(tmp_path / "out/train.parquet")
    assert table["id"].to_list() == [s["id"] for s in samples]
    assert table["messages"].to_list()[0] == samples[0]["messages"]
    assert json.loads((tmp_path / "out/stats.json").read_text()) == stats
    card = (tmp_path / "out/README.md").read_text()
    assert "| m1 | 5 | 5 | 10 |" in card and "Samples: 20 from" in card


def test_no_kept_triplets_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "filtered.jsonl"
    write_jsonl(path, [triplet("m1", 0, status="dropped"), triplet("m1", 1, status="dropped")])
    message = f"no triplets survived filtering; see {path} reasons: {{'no_change': 2}}"
    with pytest.raises(MixError, match=re.escape(message)):
        run_mix(path, tmp_path / "out", SETTINGS, 42)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (SETTINGS | {"styles": ["terse"]}, "dataset.styles must list some of lazy, descriptive"),
        (SETTINGS | {"mix": {"m3": 1.0}}, "none of the kept triplets come from the models in dataset.mix (m3)"),
        (SETTINGS | {"mix": {"m1": 0}}, "dataset.mix needs non-negative shares with a positive sum"),
        (SETTINGS | {"style_split": "half"}, "dataset.style_split is 'half'"),
        (SETTINGS | {"mix": {"m1": 0.01, "m3": 0.99}}, "selects no samples"),  # m1's quota rounds to 0
        (SETTINGS | {"validation": {"max_share": 0.9}}, "dataset.validation.max_share must be a number in (0, 0.5]"),
    ],
)
def test_bad_settings_are_clear_errors(filtered: Path, tmp_path: Path, settings: dict[str, Any], message: str) -> None:
    with pytest.raises(MixError, match=re.escape(message)):
        run_mix(filtered, tmp_path / "out", settings, 42)


# ---------------------------------------------------------------- topic balancing

THEMES = {
    "matrix": ("def {n}_grid(rows, cols):\n    grid = [[0] * cols for _ in range(rows)]\n    return transpose(grid)\n",
               "Make the matrix transpose skip empty grid rows"),
    "http": ("def fetch_{n}(url, timeout):\n    response = client.get(url, timeout=timeout)\n"
             "    return response.status\n",
             "Retry the http request when the server response times out"),
}


def themed(model: str, number: int, theme: str) -> dict[str, Any]:
    code, instruction = THEMES[theme]
    record = triplet(model, number)
    pre = code.format(n=f"v{number}")
    return record | {
        "pre_code": pre,
        "post_code": pre + "\n# changed\nX = 1\n",
        "instruction_lazy": f"{instruction} ({number}).",
        "instruction_descriptive": f"{instruction}, carefully ({number}).",
    }


@pytest.fixture
def unbalanced(tmp_path: Path) -> Path:
    """40 matrix triplets and 8 http ones, all from one model."""
    path = tmp_path / "unbalanced.jsonl"
    write_jsonl(path, [themed("m1", i, "matrix" if i < 40 else "http") for i in range(48)])
    return path


def theme_counts(samples: list[dict[str, Any]], style: str) -> Counter[str]:
    return Counter("http" if "fetch_" in s["pre_code"] else "matrix" for s in samples if s["style"] == style)


@pytest.mark.parametrize("method", ["lda", pytest.param("hdp", marks=pytest.mark.skipif(
    importlib.util.find_spec("gensim") is None, reason="gensim is not installed"))])
def test_topic_balancing_keeps_a_small_topic_whole(unbalanced: Path, tmp_path: Path, method: str) -> None:
    settings = {"mix": {"m1": 1.0}, "size_per_style": 16, "topics": {"method": method, "num_topics": 2}} | OFF
    stats, samples = mix(unbalanced, tmp_path / "out", settings)
    for style in ("lazy", "descriptive"):
        assert theme_counts(samples, style) == {"http": 8, "matrix": 8}  # the water level is 8
    assert stats["topic_method"] == {"lazy": method, "descriptive": method}
    topics = json.loads((tmp_path / "out/topics.json").read_text())
    lazy = topics["lazy"]
    assert lazy["method"] == method and lazy["documents"] == 48 and lazy["selected"] == 16
    assert sum(t["kept"] for t in lazy["topics"]) == 48 and sum(t["selected"] for t in lazy["topics"]) == 16
    assert all(t["top_words"] for t in lazy["topics"])
    # Each sample records its topic, the one topics.json lists it under.
    topic_sizes = {t["topic"]: t["selected"] for t in lazy["topics"]}
    assert Counter(s["topic"] for s in samples if s["style"] == "lazy") == {t: n for t, n in topic_sizes.items() if n}


def test_without_topics_the_draw_is_a_plain_random_sample(unbalanced: Path, tmp_path: Path) -> None:
    settings = {"mix": {"m1": 1.0}, "size_per_style": 16, "topics": {"method": "none"}} | OFF
    _, samples = mix(unbalanced, tmp_path / "out", settings)
    assert theme_counts(samples, "lazy")["http"] < 8
    assert {s["topic"] for s in samples} == {0}


def test_size_per_style_may_differ_by_style(filtered: Path, tmp_path: Path) -> None:
    stats, _ = mix(filtered, tmp_path / "out", SETTINGS | {"size_per_style": {"lazy": 4, "descriptive": 10}})
    assert stats["per_style"] == {"lazy": 4, "descriptive": 10}
    assert stats["quota_per_style"] == {"lazy": {"m1": 2, "m2": 2}, "descriptive": {"m1": 5, "m2": 5}}


def test_bad_topic_settings_are_clear_errors(filtered: Path, tmp_path: Path) -> None:
    with pytest.raises(MixError, match="dataset.topics: topic method 'kmeans'"):
        run_mix(filtered, tmp_path / "out", SETTINGS | {"topics": {"method": "kmeans"}}, 42)


# ---------------------------------------------------------------- exports and the card


def test_exports_hold_the_same_samples_in_both_layouts(filtered: Path, tmp_path: Path) -> None:
    _, samples = mix(filtered, tmp_path / "out")
    out = tmp_path / "out"
    alpaca = list(read_jsonl(out / "train_alpaca.jsonl"))
    assert [a["id"] for a in alpaca] == [s["id"] for s in samples]
    for sample, row in zip(samples, alpaca):
        system, user, assistant = (m["content"] for m in sample["messages"])
        assert (row["system"], row["instruction"], row["input"], row["output"]) == (system, user, "", assistant)
    assert pl.read_parquet(out / "train_alpaca.parquet")["output"].to_list() == [a["output"] for a in alpaca]
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["editforge_train"]["file_name"] == "train.jsonl"
    assert info["editforge_train"]["formatting"] == "sharegpt"
    assert info["editforge_train_alpaca"]["columns"]["prompt"] == "instruction"
    for entry in info.values():
        assert (out / entry["file_name"]).is_file()


def test_the_unfiltered_set_keeps_every_triplet_with_its_reason(filtered: Path, tmp_path: Path) -> None:
    mix(filtered, tmp_path / "out")
    out = tmp_path / "out"
    triplets = list(read_jsonl(out / "unfiltered_triplets.jsonl"))
    assert len(triplets) == 45 and Counter(t["status"] for t in triplets) == {"ok": 40, "dropped": 5}
    assert {t["reason"] for t in triplets if t["status"] == "dropped"} == {"no_change"}
    assert pl.read_parquet(out / "unfiltered_triplets.parquet").height == 45
    conversations = list(read_jsonl(out / "unfiltered.jsonl"))
    assert len(conversations) == 90  # every triplet, both styles
    assert sum(c["status"] == "dropped" for c in conversations) == 10
    assert pl.read_parquet(out / "unfiltered_alpaca.parquet").height == 90


def test_card_has_stage_model_style_and_topic_counts_and_the_funnel_plot(filtered: Path, tmp_path: Path) -> None:
    stats, _ = mix(filtered, tmp_path / "out")
    card = (tmp_path / "out/README.md").read_text()
    assert "| m1 | 5 | 5 | 10 |" in card
    assert "| diff | 40 | 30 | 10 | no_change: 5 |" in card
    assert "![funnel](funnel.png)" in card and "## Topic balancing" in card
    assert (tmp_path / "out/funnel.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [s["stage"] for s in stats["stages"]] == list(STAGES[:-1])  # no judge ran: no "judged" stage
    assert sum(stats["triplets_per_model"].values()) == stats["distinct_triplets"]


def test_the_folder_loads_as_a_hub_dataset_in_every_config(filtered: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    _, samples = mix(filtered, tmp_path / "out", SETTINGS | {"validation": {"max_share": 0.25}})
    out = str(tmp_path / "out")
    # A cache of its own: the library keys a local folder's cache by its name and files, not its path.
    load = functools.partial(datasets.load_dataset, cache_dir=str(tmp_path / "hf-cache"))
    default = load(out, split="train")
    assert default["id"] == [s["id"] for s in samples] and default[0]["messages"] == samples[0]["messages"]
    validation = load(out, split="validation")
    assert validation["id"] == [r["id"] for r in read_jsonl(tmp_path / "out/validation.jsonl")] and validation.num_rows
    alpaca = load(out, "alpaca", split="train")
    assert alpaca["output"] == [s["messages"][2]["content"] for s in samples]
    assert load(out, "unfiltered", split="train").num_rows == 90
    assert load(out, "unfiltered_alpaca", split="train").num_rows == 90
    assert load(out, "unfiltered_triplets", split="train").num_rows == 45


def test_the_card_carries_the_hub_metadata_and_the_generating_models(filtered: Path, tmp_path: Path) -> None:
    import yaml

    run_mix(filtered, tmp_path / "out", SETTINGS | {"license": "apache-2.0"}, 42, generators={"m1": "org/coder-7b"})
    card = (tmp_path / "out/README.md").read_text()
    header, body = card.removeprefix("---\n").split("\n---\n", 1)
    metadata = yaml.safe_load(header)
    assert metadata["license"] == "apache-2.0" and metadata["task_categories"] == ["text-generation"]
    assert metadata["generated_by"] == {"m1": "org/coder-7b"}
    configs = {c["config_name"]: c["data_files"][0]["path"] for c in metadata["configs"]}
    assert configs["default"] == "train.parquet" and configs["alpaca"] == "train_alpaca.parquet"
    assert all((tmp_path / "out" / path).is_file() for path in configs.values())
    assert "m1 (`org/coder-7b`)" in body and "## Decontamination" in body


def test_the_card_lists_the_seed_sources_and_their_licences(filtered: Path, tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.json"
    seeds.write_text(json.dumps({"sources": {
        "lib": {"type": "directory", "repository": "https://example.org/lib", "snippets": 30,
                "licences": {"MIT": 20, "unstated": 10}},
        "std": {"type": "stdlib", "repository": "CPython 3.11.7 standard library", "snippets": 5,
                "licences": {"PSF-2.0": 5}},
    }}))
    run_mix(filtered, tmp_path / "out", SETTINGS, 42, seeds_path=seeds)
    card = (tmp_path / "out/README.md").read_text()
    assert "## Seed sources" in card
    assert "| lib | https://example.org/lib | 30 | MIT (20), unstated (10) |" in card
    assert "| std | CPython 3.11.7 standard library | 5 | PSF-2.0 (5) |" in card


def test_contaminated_triplets_are_in_no_export_and_the_card_counts_them(filtered: Path, tmp_path: Path) -> None:
    records = list(read_jsonl(filtered))
    # One matched while kept, one matched after another filter had dropped it.
    records[0] |= {"status": "dropped", "reason": "contaminated", "contaminated_by": "1_cipher"}
    records[-1] |= {"contaminated_by": "7_words"}
    write_jsonl(filtered, records)
    report = tmp_path / "decontamination.json"
    report.write_text(json.dumps({"decontamination": "done", "contaminated": [
        {"id": records[0]["id"], "problem": "1_cipher", "method": "code", "kept_before": True},
        {"id": records[-1]["id"], "problem": "7_words", "method": "instruction", "kept_before": False},
    ]}))
    run_mix(filtered, tmp_path / "out", SETTINGS, 42, decontamination_path=report)
    out = tmp_path / "out"
    marked = {records[0]["id"], records[-1]["id"]}
    for name in ("train", "train_alpaca", "unfiltered", "unfiltered_alpaca", "unfiltered_triplets"):
        rows = list(read_jsonl(out / f"{name}.jsonl"))
        ids = {r.get("triplet_id", r["id"]) for r in rows}
        assert not ids & marked, name
        assert pl.read_parquet(out / f"{name}.parquet").height == len(rows)
    assert len(list(read_jsonl(out / "unfiltered_triplets.jsonl"))) == 43
    card = (out / "README.md").read_text()
    assert "2 triplets overlapped the benchmark" in card and "1 by their code" in card and "1 by an instruction" in card
    assert "1 of them had passed every other filter" in card


# ---------------------------------------------------------------- the LLM judge's per-style verdicts


def judged(record: dict[str, Any], failed: dict[str, str] | None = None) -> dict[str, Any]:
    """The record as the judge leaves it: both styles judged, those in ``failed`` (style -> reason) not passed."""
    failed = failed or {}
    verdicts = {name: {"verdict": "PASS", "reason": ""} for name in ("edit_needed", "edit_complete", "edit_focused")}
    entries = {}
    for style in ("lazy", "descriptive"):
        reason = failed.get(style)
        entry_verdicts = verdicts | ({"edit_complete": {"verdict": "FAIL", "reason": "half done"}} if reason else {})
        entries[style] = {"passed": reason is None, "reason": reason, "verdicts": entry_verdicts, "error": None,
                          "model": "judge1", "uncertain": "fail"}
    return record | {"judge": entries}


@pytest.fixture
def judged_filtered(tmp_path: Path) -> Path:
    """The filtered fixture's triplets judged: m1-000 failed for descriptive, m2-000 for lazy, the rest passed."""
    records = [triplet("m1", i) for i in range(30)] + [triplet("m2", i) for i in range(10)]
    failures = {"m1-000": {"descriptive": "judge_edit_incomplete"}, "m2-000": {"lazy": "judge_edit_incomplete"}}
    path = tmp_path / "judged.jsonl"
    write_jsonl(path, [judged(r, failures.get(r["id"])) for r in records])
    return path


def test_a_style_draws_only_the_triplets_that_passed_the_judge_for_it(judged_filtered: Path, tmp_path: Path) -> None:
    stats, samples = mix(judged_filtered, tmp_path / "out", SETTINGS | {"size_per_style": 100})
    ids = {s["id"] for s in samples}
    assert "m1-000:lazy" in ids and "m1-000:descriptive" not in ids
    assert "m2-000:descriptive" in ids and "m2-000:lazy" not in ids
    assert stats["per_model_style"] == {"m1": {"lazy": 30, "descriptive": 29}, "m2": {"lazy": 9, "descriptive": 10}}
    topics = json.loads((tmp_path / "out/topics.json").read_text())
    assert (topics["lazy"]["documents"], topics["descriptive"]["documents"]) == (39, 39)
    judge = stats["judge"]
    assert judge["excluded_per_style"] == {"lazy": 1, "descriptive": 1}
    assert stats["stages"][-1]["stage"] == "judged"  # the funnel's last stage, where the judge ran
    assert (judge["models"], judge["uncertain"]) == (["judge1"], ["fail"])
    m1_descriptive = judge["by_teacher"]["m1"]["descriptive"]
    assert (m1_descriptive["judged"], m1_descriptive["passed"]) == (30, 29)
    assert m1_descriptive["dropped"] == {"judge_edit_incomplete": 1}
    assert m1_descriptive["verdicts"]["edit_complete"] == {"PASS": 29, "FAIL": 1, "UNCERTAIN": 0}
    card = (tmp_path / "out/README.md").read_text()
    assert "## LLM judge" in card and "A model (`judge1`) judged" in card and "UNCERTAIN counted as fail" in card
    assert "kept triplets left out: 1 lazy, 1 descriptive" in card
    assert "| m1 | descriptive | 29 / 30 | 30 / 0 / 0 | 29 / 1 / 0 | 30 / 0 / 0 | judge_edit_incomplete: 1 |" in card
    assert "| m2 | descriptive | 10 / 10 | 10 / 0 / 0 | 10 / 0 / 0 | 10 / 0 / 0 | - |" in card


def test_the_disjoint_split_deals_a_triplet_to_a_style_it_passed(judged_filtered: Path, tmp_path: Path) -> None:
    _, samples = mix(judged_filtered, tmp_path / "out", SETTINGS | {"size_per_style": 100, "style_split": "disjoint"})
    ids = {s["id"] for s in samples}
    assert {"m1-000:lazy", "m2-000:descriptive"} <= ids and len(ids) == 40  # every triplet used once


def test_a_judge_that_passes_everything_changes_no_sample(filtered: Path, tmp_path: Path) -> None:
    records = list(read_jsonl(filtered))
    write_jsonl(tmp_path / "judged.jsonl", [judged(r) if r["status"] == "ok" else r for r in records])
    plain, _ = mix(filtered, tmp_path / "plain")
    with_judge, _ = mix(tmp_path / "judged.jsonl", tmp_path / "judged")
    for name in ("train.jsonl", "topics.json", "unfiltered.jsonl"):
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "judged" / name).read_bytes(), name
    assert "judge" not in plain and with_judge["judge"]["excluded_per_style"] == {"lazy": 0, "descriptive": 0}
    assert "## LLM judge" not in (tmp_path / "plain/README.md").read_text()


# ---------------------------------------------------------------- the held-out validation split


def test_whole_triplets_are_held_out_of_every_training_file(filtered: Path, tmp_path: Path) -> None:
    settings = SETTINGS | {"size_per_style": 100}
    _, everything = mix(filtered, tmp_path / "all", settings)
    stats, train = mix(filtered, tmp_path / "out", settings | {"validation": {"max_share": 0.25}})
    out = tmp_path / "out"
    held = list(read_jsonl(out / "validation.jsonl"))
    assert 19 <= len(held) <= 20 == int(0.25 * len(everything))  # a quarter of 80, in whole triplets
    assert [s["id"] for s in train] == [s["id"] for s in everything if s not in held]  # the order is kept
    assert {s["id"] for s in train} | {s["id"] for s in held} == {s["id"] for s in everything}
    assert not {s["triplet_id"] for s in train} & {s["triplet_id"] for s in held}
    assert pl.read_parquet(out / "train.parquet")["id"].to_list() == [s["id"] for s in train]
    assert pl.read_parquet(out / "validation.parquet")["id"].to_list() == [s["id"] for s in held]
    assert [a["id"] for a in read_jsonl(out / "train_alpaca.jsonl")] == [s["id"] for s in train]
    triplets = len({s["triplet_id"] for s in held})
    assert stats["validation"] == {"rows": len(held), "triplets": triplets, "limit": 20, "reason": None}
    assert stats["total"] == len(train) and sum(stats["per_style"].values()) == len(train)
    card = (out / "README.md").read_text()
    assert f"- Validation: {len(held)} samples from {triplets} triplets held out" in card
    assert f"; {triplets} more ({len(held)} samples) are held out for validation." in card
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["editforge_validation"]["file_name"] == "validation.jsonl"


def test_none_held_out_the_files_are_empty_and_the_card_says_why(filtered: Path, tmp_path: Path) -> None:
    import yaml

    stats, train = mix(filtered, tmp_path / "off")
    assert len(train) == 20 and stats["validation"]["rows"] == 0
    card = (tmp_path / "off/README.md").read_text()
    assert "- Validation: none held out (switched off (dataset.validation.samples: 0))" in card
    metadata = yaml.safe_load(card.removeprefix("---\n").split("\n---\n", 1)[0])
    assert metadata["configs"][0]["data_files"] == [{"split": "train", "path": "train.parquet"}]
    assert (tmp_path / "off/validation.jsonl").read_text() == ""
    assert pl.read_parquet(tmp_path / "off/validation.parquet").height == 0
    assert "editforge_validation" not in json.loads((tmp_path / "off/dataset_info.json").read_text())
    # The defaults (256, a tenth) on 8 samples: a tenth is less than one triplet.
    tiny = {"mix": {"m1": 1.0}, "size_per_style": 4, "style_split": "disjoint"}
    stats, train = mix(filtered, tmp_path / "tiny", tiny)
    assert len(train) == 8 and stats["validation"]["reason"] == "a tenth of 8 samples is less than one triplet"
