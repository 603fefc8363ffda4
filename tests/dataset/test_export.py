"""The dataset stage's exports: Alpaca form, the unfiltered set, LLaMA-Factory's registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from editforge.dataset.export import (
    TRIPLET_COLUMNS,
    alpaca_record,
    dataset_info,
    triplet_rows,
    unfiltered_samples,
    write_exports,
    write_table,
)
from editforge.edit_format import SYSTEM_PROMPT, edit_answer, edit_user_prompt, training_messages
from editforge.records import read_jsonl

PRE, POST = "def f():\n    return 1\n", "def f():\n    return 2\n"


def record(id_: str, status: str = "ok", **fields: Any) -> dict[str, Any]:
    base = {
        "id": id_, "model": "m", "shard": "0", "pair_id": "p", "fewshot_id": "f", "pre_code": PRE, "post_code": POST,
        "instruction_lazy": "Return two.", "instruction_descriptive": "Make `f` return 2 instead of 1.",
        "status": status,
    }
    return base | ({"reason": "no_change"} if status == "dropped" else {}) | fields


def test_alpaca_record_is_the_chat_sample_in_alpaca_columns() -> None:
    sample = {"id": "t:lazy", "triplet_id": "t", "model": "m", "style": "lazy", "topic": 3,
              "messages": training_messages(PRE, "Return two.", POST), "pre_code": PRE}
    row = alpaca_record(sample)
    assert row == {
        "id": "t:lazy", "triplet_id": "t", "model": "m", "style": "lazy", "topic": 3, "system": SYSTEM_PROMPT,
        "instruction": edit_user_prompt(PRE, "Return two."), "input": "", "output": edit_answer(POST),
    }


def test_unfiltered_samples_cover_dropped_triplets_but_not_empty_ones() -> None:
    records = [
        record("kept"),
        record("dropped", status="dropped"),
        record("parse_failure", status="dropped", pre_code="", reason="missing_program_before"),
        record("no_lazy", instruction_lazy="  "),
    ]
    samples = unfiltered_samples(records, ["lazy", "descriptive"])
    assert [s["id"] for s in samples] == [
        "kept:lazy", "kept:descriptive", "dropped:lazy", "dropped:descriptive", "no_lazy:descriptive",
    ]
    assert samples[2]["status"] == "dropped" and samples[2]["reason"] == "no_change"
    assert samples[0]["messages"] == training_messages(PRE, "Return two.", POST)


def test_triplet_rows_have_one_shape() -> None:
    rows = triplet_rows([record("a"), record("b", status="dropped", duplicate_of="a", extra="x")])
    assert all(tuple(row) == TRIPLET_COLUMNS for row in rows)
    assert rows[0]["reason"] is None and rows[1]["duplicate_of"] == "a"


def test_write_table_writes_the_same_rows_as_jsonl_and_parquet(tmp_path: Path) -> None:
    rows = triplet_rows([record("a"), record("b", status="dropped")] * 200)  # nulls after the first 100 rows too
    assert write_table(tmp_path, "t", rows) == ["t.jsonl", "t.parquet"]
    assert list(read_jsonl(tmp_path / "t.jsonl")) == rows
    assert pl.read_parquet(tmp_path / "t.parquet").to_dicts() == rows
    write_table(tmp_path, "empty", [])
    assert (tmp_path / "empty.jsonl").read_text() == "" and pl.read_parquet(tmp_path / "empty.parquet").height == 0


def test_dataset_info_is_llama_factory_registry() -> None:
    info = dataset_info()
    sharegpt, alpaca = info["editforge_train"], info["editforge_train_alpaca"]
    assert sharegpt == {
        "file_name": "train.jsonl",
        "formatting": "sharegpt",
        "columns": {"messages": "messages"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                 "system_tag": "system"},
    }
    assert alpaca["columns"] == {"prompt": "instruction", "query": "input", "response": "output", "system": "system"}
    assert set(info) == {"editforge_train", "editforge_train_alpaca", "editforge_unfiltered",
                         "editforge_unfiltered_alpaca"}


def test_write_exports_writes_every_registered_file(tmp_path: Path) -> None:
    records = [record("a"), record("b", status="dropped")]
    samples = [{"id": "a:lazy", "triplet_id": "a", "model": "m", "style": "lazy", "topic": 0,
                "messages": training_messages(PRE, "Return two.", POST)}]
    files = write_exports(tmp_path, samples, records, ["lazy"])
    assert "dataset_info.json" in files and all((tmp_path / f).is_file() for f in files)
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert all((tmp_path / e["file_name"]).is_file() or e["file_name"] == "train.jsonl" for e in info.values())
    assert [r["id"] for r in read_jsonl(tmp_path / "unfiltered.jsonl")] == ["a:lazy", "b:lazy"]


def test_held_out_rows_are_written_and_registered_only_where_there_are_some(tmp_path: Path) -> None:
    sample = {"id": "a:lazy", "triplet_id": "a", "model": "m", "style": "lazy", "topic": 0,
              "messages": training_messages(PRE, "Return two.", POST)}
    files = write_exports(tmp_path / "none", [sample], [record("a")], ["lazy"])
    assert {"validation.jsonl", "validation.parquet"} <= set(files)
    assert (tmp_path / "none/validation.jsonl").read_text() == ""
    assert "editforge_validation" not in json.loads((tmp_path / "none/dataset_info.json").read_text())
    held = sample | {"id": "b:lazy", "triplet_id": "b"}
    write_exports(tmp_path / "some", [sample], [record("a"), record("b")], ["lazy"], validation=[held])
    assert [r["id"] for r in read_jsonl(tmp_path / "some/validation.jsonl")] == ["b:lazy"]
    assert pl.read_parquet(tmp_path / "some/validation.parquet")["id"].to_list() == ["b:lazy"]
    info = json.loads((tmp_path / "some/dataset_info.json").read_text())
    assert info["editforge_validation"] == info["editforge_train"] | {"file_name": "validation.jsonl"}
    assert dataset_info(validation=True).keys() - dataset_info().keys() == {"editforge_validation"}
