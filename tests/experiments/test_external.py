"""External datasets as experiment variants: every format, the field map, skips, errors, and the pool
(decontaminated like our triplets, written in the training-row format)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from editforge.edit_format import training_messages
from editforge.experiments import external_sources
from editforge.experiments.external import ExternalDatasetError, load_external, run_external_pool
from editforge.hub import HubError
from editforge.records import read_jsonl, write_jsonl
from helpers.triplets import INVENTORY, INVENTORY_AFTER, MATRIX, SETTINGS, TEXT_STATS

PRE, POST = "def f(x):\n    return x\n", "def f(x):\n    return x + 1\n"
TRAINING_KEYS = {"id", "triplet_id", "model", "style", "pre_code", "post_code", "instruction", "messages", "topic"}


def jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    write_jsonl(path, rows)
    return str(path)


def edits(rows: Any) -> list[tuple[str, str, str, str, str]]:
    """(model, style, pre, instruction, post) of each record."""
    return [
        (r["model"], r["style"], r["pre_code"], r[f"instruction_{r['style']}"], r["post_code"]) for r in rows.records
    ]


def test_flat_rows_become_triplet_records_and_bad_rows_are_counted(tmp_path: Path) -> None:
    source = jsonl(
        tmp_path / "flat.jsonl",
        [
            {"pre_code": PRE, "instruction": " Add one. ", "post_code": POST},
            {"pre_code": PRE, "instruction": "Add one", "post_code": POST, "style": "lazy"},
            {"pre_code": PRE, "instruction": "Nothing", "post_code": PRE + "\n\n"},  # unchanged
            {"pre_code": PRE, "instruction": "Gone", "post_code": "  "},  # empty
            {"pre_code": PRE, "instruction": "", "post_code": POST},
            {"pre_code": PRE, "instruction": "In JS", "post_code": POST, "language": "JavaScript"},
        ],
    )
    rows = load_external("flat", {"source": source, "licence": "MIT", "generator": "gpt-4o"})
    assert rows.rows_read == 6
    assert rows.skipped == {"unchanged": 1, "empty_code": 1, "empty_instruction": 1, "not_python": 1}
    first, second = rows.records
    assert first == {
        "id": "flat:0",
        "model": "gpt-4o",
        "style": "descriptive",
        "pre_code": PRE,
        "post_code": POST,
        "instruction_lazy": None,
        "instruction_descriptive": "Add one.",
        "status": "ok",
        "source": source,
        "licence": "MIT",
    }
    assert (second["id"], second["style"], second["instruction_lazy"]) == ("flat:1", "lazy", "Add one")
    assert second["instruction_descriptive"] is None


def test_field_map_renames_columns_and_settings_style_labels_rows(tmp_path: Path) -> None:
    source = jsonl(tmp_path / "mine.jsonl", [{"old": PRE, "ask": "Add one", "new": POST, "who": "llama"}])
    settings = {"source": source, "style": "lazy", "fields": {"pre": "old", "post": "new", "instruction": "ask"}}
    assert edits(load_external("v", settings)) == [("v", "lazy", PRE, "Add one", POST)]
    settings["fields"] |= {"teacher": "who"}
    assert edits(load_external("v", settings))[0][0] == "llama"


def test_sharegpt_takes_old_and_new_code_beside_messages_or_parses_the_turns(tmp_path: Path) -> None:
    user = f"## Code Before:\n{PRE}\n## Instruction:\nAdd one to the result.\n## Code After:\n"
    opencodeedit = {
        "messages": [
            {"role": "system", "content": "You are a code editor."},
            {"role": "user", "content": user},
            {"role": "assistant", "content": f"```python\n{POST}```"},
        ],
        "commit": "abc",
        "instr_type": "qwen3_lazy",
        "old_code": PRE,
        "new_code": POST,
    }
    conversations = {
        "conversations": [
            {"from": "human", "value": f"Make it add one.\n```python\n{PRE}```"},
            {"from": "gpt", "value": f"Here:\n```python\n{POST}```"},
        ]
    }
    raw_code = {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": POST}]}
    source = jsonl(tmp_path / "sharegpt.jsonl", [opencodeedit, conversations, raw_code])
    assert edits(load_external("oce", {"source": source, "format": "sharegpt"})) == [
        ("qwen3", "lazy", PRE, "Add one to the result.", POST),
        ("oce", "descriptive", PRE.rstrip("\n"), "Make it add one.", POST.rstrip("\n")),  # a fence's code
        ("oce", "descriptive", PRE.rstrip("\n"), "Add one to the result.", POST.strip()),
    ]


def test_alpaca_from_a_json_list(tmp_path: Path) -> None:
    source = tmp_path / "instructcoder.json"
    source.write_text(json.dumps([{"instruction": "Add one", "input": PRE, "output": POST}]))
    rows = load_external("ic", {"source": str(source), "format": "alpaca", "generator": "gpt-3.5"})
    assert edits(rows) == [("gpt-3.5", "descriptive", PRE, "Add one", POST)]


def test_editpackft_from_parquet_falls_back_to_subject_and_skips_other_languages(tmp_path: Path) -> None:
    source = tmp_path / "editpackft.parquet"
    columns = ["old_contents", "new_contents", "subject", "message", "instruction", "lang"]
    rows = [
        (PRE, POST, "Add one", "Add one\n\nLong body.", None, "Python"),
        (PRE, POST, "Add one", "Add one", "Increment the result", "Python"),
        ("var x = 1;", "var x = 2;", "Bump", "Bump", None, "JavaScript"),
    ]
    pl.DataFrame(rows, schema=columns, orient="row").write_parquet(source)
    loaded = load_external("epft", {"source": str(source), "format": "editpackft", "licence": "MIT"})
    assert edits(loaded) == [
        ("epft", "descriptive", PRE, "Add one", POST),
        ("epft", "descriptive", PRE, "Increment the result", POST),
    ]
    assert loaded.skipped == {"not_python": 1}
    assert [r["id"] for r in loaded.records] == ["epft:0", "epft:1"]


def test_ocedata_instr_type_gives_teacher_and_style_and_styles_filters(tmp_path: Path) -> None:
    def row(instr_type: str) -> dict[str, str]:
        return {
            "commit": "abc",
            "code_before_purify": PRE,
            "code_after_purify": POST,
            "instruct_purify": f"Add one ({instr_type})",
            "instr_type": instr_type,
        }

    source = jsonl(tmp_path / "ocedataft.jsonl", [row("qwen3_lazy"), row("ds_descriptive"), row("ds_lazy")])
    everything = load_external("oce", {"source": source, "format": "ocedata"})
    assert [(m, s) for m, s, *_ in edits(everything)] == [("qwen3", "lazy"), ("ds", "descriptive"), ("ds", "lazy")]
    lazy = load_external("oce", {"source": source, "format": "ocedata", "styles": ["lazy"]})
    assert [r["id"] for r in lazy.records] == ["oce:0", "oce:2"]
    assert lazy.skipped == {"other_style": 1}
    untyped = row("ds_lazy")
    del untyped["instr_type"]
    with pytest.raises(ExternalDatasetError, match=r"no style column \(instr_type\).*external.fields"):
        load_external("oce", {"source": jsonl(tmp_path / "untyped.jsonl", [untyped]), "format": "ocedata"})


def test_a_folder_source_reads_the_split_or_the_files_glob(tmp_path: Path) -> None:
    folder = tmp_path / "download"
    jsonl(folder / "data" / "train-00000.jsonl", [{"pre_code": PRE, "instruction": "train", "post_code": POST}])
    jsonl(folder / "data" / "test-00000.jsonl", [{"pre_code": PRE, "instruction": "test", "post_code": POST}])
    assert [e[3] for e in edits(load_external("f", {"source": str(folder)}))] == ["train"]
    assert [e[3] for e in edits(load_external("f", {"source": str(folder), "split": "test"}))] == ["test"]
    assert [e[3] for e in edits(load_external("f", {"source": str(folder), "files": "test-*.jsonl"}))] == ["test"]
    with pytest.raises(ExternalDatasetError, match="no data file for the split 'validation'.*external.files"):
        load_external("f", {"source": str(folder), "split": "validation"})


def test_a_missing_field_names_the_row_the_field_and_the_fields_fix(tmp_path: Path) -> None:
    source = jsonl(tmp_path / "flat.jsonl", [{"pre_code": PRE, "prompt": "Add one", "post_code": POST}])
    with pytest.raises(ExternalDatasetError) as caught:
        load_external("mine", {"source": source})
    message = str(caught.value)
    assert "'mine'" in message and f"{source}:1" in message and "instruction column (instruction)" in message
    assert "external.fields" in message and "fields: {instruction: <column>}" in message and "\n" not in message


def test_settings_errors(tmp_path: Path) -> None:
    source = jsonl(tmp_path / "flat.jsonl", [{"pre_code": PRE, "instruction": "x", "post_code": POST}])
    for settings, expected in [
        ({}, "external.source is required"),
        ({"source": source, "format": "csv"}, "external.format is 'csv'; use one of flat, sharegpt"),
        ({"source": source, "fields": {"code": "x"}}, "external.fields must map some of pre, post"),
        ({"source": source, "style": "terse"}, "external.style is 'terse'"),
        ({"source": source, "sorce": "x"}, "unknown external key"),
    ]:
        with pytest.raises(ExternalDatasetError, match=expected):
            load_external("v", settings)
    concise = jsonl(
        tmp_path / "s.jsonl", [{"pre_code": PRE, "instruction": "x", "post_code": POST, "style": "concise"}]
    )
    with pytest.raises(ExternalDatasetError, match="style 'concise' is neither.*fields: {style: null}"):
        load_external("v", {"source": concise})


def test_a_missing_local_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "data.jsonl"
    with pytest.raises(ExternalDatasetError, match=f"external.source {missing} does not exist"):
        load_external("v", {"source": str(missing)})


def test_hub_offline_says_so_and_suggests_a_local_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ExternalDatasetError) as caught:
        load_external("oce", {"source": "zkzhang88/OCEData", "format": "ocedata"})
    message = str(caught.value)
    assert "'oce'" in message and "offline" in message and "HF_HUB_OFFLINE" in message
    assert "hf download zkzhang88/OCEData --repo-type dataset" in message and "external.source" in message
    assert "local" in message or "folder" in message


def test_hub_files_are_chosen_by_the_files_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = jsonl(tmp_path / "ocedataft.jsonl", [{"pre_code": PRE, "instruction": "x", "post_code": POST}])
    asked: list[tuple[str, str, str | None]] = []
    monkeypatch.setattr(external_sources, "hub_offline", lambda: False)
    monkeypatch.setattr(external_sources, "list_dataset_files", lambda repo, revision: ["README.md", "ocedataft.jsonl"])

    def download(repo: str, path: str, revision: str | None) -> Path:
        asked.append((repo, path, revision))
        return Path(local)

    monkeypatch.setattr(external_sources, "download_dataset_file", download)
    settings = {"source": "zkzhang88/OCEData", "files": "ocedataft.jsonl", "revision": "v1"}
    assert len(load_external("oce", settings).records) == 1
    assert asked == [("zkzhang88/OCEData", "ocedataft.jsonl", "v1")]

    def unreachable(repo: str, revision: str | None) -> list[str]:
        raise HubError("unreachable", OSError("no route\nto host"))

    monkeypatch.setattr(external_sources, "list_dataset_files", unreachable)
    with pytest.raises(ExternalDatasetError, match="unreachable: OSError: no route to host.*no local path"):
        load_external("oce", settings)


def test_pool_drops_benchmark_copies_and_writes_training_rows(tmp_path: Path, benchmark_path: Path) -> None:
    problem = next(p for p in read_jsonl(benchmark_path) if p["full_name"] == "1_cipher")
    texts = jsonl(
        tmp_path / "toybench.texts.jsonl",
        [{"problem": "toybench/7", "field": "before", "kind": "code", "text": TEXT_STATS, "strict": True}],
    )
    clean = [
        {"pre_code": INVENTORY, "instruction": "Add most_common.", "post_code": INVENTORY_AFTER, "style": "lazy"},
        {
            "pre_code": MATRIX,
            "instruction": "Rename transpose to flip.",
            "post_code": MATRIX.replace("transpose", "flip"),
        },
    ]
    planted = [
        {"pre_code": problem["before"], "instruction": "Add a caesar cipher.", "post_code": problem["after"]},
        {"pre_code": TEXT_STATS, "instruction": "Sort ties.", "post_code": TEXT_STATS.replace("len)", "len) or 0")},
    ]
    source = jsonl(tmp_path / "ext.jsonl", [clean[0], planted[0], clean[1], planted[1]])
    settings = {"source": source, "licence": "apache-2.0", "generator": "qwen3"}
    report = run_external_pool(
        "ext",
        settings,
        benchmark_path,
        [texts],
        SETTINGS["decontamination"],
        tmp_path / "pool.jsonl",
        tmp_path / "r.json",
    )
    assert json.loads((tmp_path / "r.json").read_text()) == report
    assert (report["rows_read"], report["loaded"], report["kept"]) == (4, 4, 2)
    contaminated = report["contaminated"]
    assert contaminated["count"] == 2
    assert contaminated["by_benchmark"] == {"canitedit": 1, "toybench": 1}
    assert contaminated["by_problem"] == {"1_cipher": 1, "toybench/7": 1}
    assert {m["id"] for m in contaminated["matches"]} == {"ext:1", "ext:3"}
    assert report["styles"] == {"descriptive": 1, "lazy": 1} and report["teachers"] == {"qwen3": 2}
    assert (report["source"], report["licence"], report["generator"]) == (source, "apache-2.0", "qwen3")
    rows = list(read_jsonl(tmp_path / "pool.jsonl"))
    assert [(r["id"], r["triplet_id"], r["style"], r["topic"]) for r in rows] == [
        ("ext:0:lazy", "ext:0", "lazy", -1),
        ("ext:2:descriptive", "ext:2", "descriptive", -1),
    ]
    for row, edit in zip(rows, clean):
        assert set(row) == TRAINING_KEYS
        assert row["messages"] == training_messages(edit["pre_code"], edit["instruction"], edit["post_code"])
        assert (row["pre_code"], row["instruction"], row["post_code"]) == tuple(edit.values())[:3]
        assert row["model"] == "qwen3"


def test_pool_with_nothing_left_writes_the_report_and_fails(tmp_path: Path, benchmark_path: Path) -> None:
    source = jsonl(tmp_path / "ext.jsonl", [{"pre_code": PRE, "instruction": "x", "post_code": PRE}])
    with pytest.raises(ExternalDatasetError, match="no row of .* is left"):
        run_external_pool(
            "ext", {"source": source}, benchmark_path, [], SETTINGS["decontamination"], tmp_path / "p", tmp_path / "r"
        )
    assert json.loads((tmp_path / "r").read_text())["skipped"] == {"unchanged": 1}
