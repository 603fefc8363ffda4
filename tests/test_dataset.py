"""Mixing kept triplets into the training set."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from editforge.dataset import MixError, run_mix
from editforge.edit_format import training_messages
from editforge.records import read_jsonl, write_jsonl

SETTINGS: dict[str, Any] = {"styles": ["lazy", "descriptive"], "mix": {"m1": 0.5, "m2": 0.5}, "size_per_style": 10}


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
    card = (tmp_path / "out/card.md").read_text()
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
    ],
)
def test_bad_settings_are_clear_errors(filtered: Path, tmp_path: Path, settings: dict[str, Any], message: str) -> None:
    with pytest.raises(MixError, match=re.escape(message)):
        run_mix(filtered, tmp_path / "out", settings, 42)
