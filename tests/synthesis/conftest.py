"""Fixtures of the synthesis tests: a shard of pair records and one of commit records."""

from __future__ import annotations

from pathlib import Path

import pytest

from editforge.records import write_jsonl
from editforge.templates import load_fewshot
from helpers.scripted import commit_row, commit_seeds, pair


@pytest.fixture()
def pairs_file(tmp_path: Path) -> Path:
    ids = sorted(load_fewshot())
    path = tmp_path / "pairs" / "000.jsonl"
    write_jsonl(path, [pair(i, ids[i % len(ids)]) for i in range(4)])
    return path


@pytest.fixture()
def commits_file(tmp_path: Path) -> Path:
    rows = [commit_row(0), commit_row(1), "{not json", commit_row(2), commit_row(9, message=""), commit_row(3)]
    rows.append(commit_row(4))
    stats, (path,) = commit_seeds(tmp_path, rows)
    assert stats["files_skipped"] == {"empty_message": 1, "not_json": 1} and stats["commits"] == 5
    return path
