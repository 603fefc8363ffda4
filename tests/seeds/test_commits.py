"""Commit seeds: row checks, dedup, sampling, records and clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from editforge.seeds import SeedError, collect_commits, run_seeds
from editforge.templates import load_fewshot
from helpers.seed_corpus import (
    COMMIT_SETTINGS,
    GREET_NEW,
    GREET_OLD,
    MEAN_NEW,
    MEAN_OLD,
    SHAPES_NEW,
    SHAPES_OLD,
    commit_lines,
    commit_row,
    commit_source,
    run,
    write_commits,
)


def test_commit_seeds_check_dedup_and_shard(tmp_path: Path) -> None:
    path = write_commits(tmp_path / "commits.jsonl", commit_lines())
    stats, shards = run(tmp_path, commit_source(path), COMMIT_SETTINGS)
    assert stats["kind"] == "commits" and stats["files_seen"] == 21
    assert stats["files_skipped"] == {
        "binary_or_not_utf8": 2,
        "diff_too_large": 1,
        "empty_code": 2,
        "empty_message": 2,
        "identical": 2,
        "no_code_change": 1,
        "not_json": 2,
        "not_text": 1,
        "syntax_error": 1,
        "too_long": 1,
        "vendored": 1,
    }
    assert stats["files_used"] == 5 and stats["duplicates_removed"] == 2
    assert stats["commits_found"] == stats["commits"] == 3 and stats["commits_requested"] == 10
    assert stats["shards"] == {"000": 2, "001": 1}
    assert stats["sources"]["cpft"] == {"type": "jsonl", "rows_seen": 21, "rows_used": 5, "commits": 3}
    records = [r for shard in shards for r in shard]
    assert [r["id"] for r in shards[0]] == ["c000000", "c000002"] and [r["id"] for r in shards[1]] == ["c000001"]
    first = shards[0][0]
    assert set(first) == {"id", "shard", "kind", "commit", "fewshot_id"} and first["kind"] == "commit"
    assert first["shard"] == "000" and first["fewshot_id"] in load_fewshot()
    assert first["commit"] == {
        "source": "cpft",
        "row": "row 1",
        "commit": "a1",
        "path": "geo/shapes.py",
        "message": "Validate sizes\n\nNegative sizes are errors.",
        "old_code": SHAPES_OLD.rstrip(),
        "new_code": SHAPES_NEW.rstrip(),
        "changed_lines": 2,
    }
    last = shards[0][1]["commit"]
    assert (last["row"], last["commit"], last["path"], last["new_code"]) == ("row 21", "", "", MEAN_NEW.rstrip())
    assert all("snippets" not in r for r in records)


def test_commit_seeds_missing_column_is_an_error_naming_it(tmp_path: Path) -> None:
    rows = [commit_row(GREET_OLD, GREET_NEW, "ok"), json.dumps({"old_contents": GREET_OLD, "new_contents": GREET_NEW})]
    path = write_commits(tmp_path / "commits.jsonl", rows)
    with pytest.raises(SeedError, match=r"row 2 of .*commits.jsonl has no column 'message'"):
        collect_commits(commit_source(path), COMMIT_SETTINGS, seed=1)
    polars = pytest.importorskip("polars")
    table = tmp_path / "commits.parquet"
    polars.DataFrame({"old_contents": [GREET_OLD], "message": ["m"]}).write_parquet(table)
    with pytest.raises(SeedError, match="has no column 'new_contents'"):
        collect_commits(commit_source(table, "parquet"), COMMIT_SETTINGS, seed=1)


def test_commit_seeds_from_parquet(tmp_path: Path) -> None:
    polars = pytest.importorskip("polars")
    table = tmp_path / "commits.parquet"
    polars.DataFrame(
        {
            "old_contents": [GREET_OLD, MEAN_OLD, "print 'x'\n"],
            "new_contents": [GREET_NEW, MEAN_NEW, "print('x')\n"],
            "message": ["strip", "empty input", "py3"],
            "commit": ["h1", "h2", "h3"],
            "new_file": ["g.py", "m.py", "p.py"],
        }
    ).write_parquet(table)
    commits, stats = collect_commits(commit_source(table, "parquet"), COMMIT_SETTINGS, seed=1)
    assert [(c["row"], c["commit"], c["path"]) for c in commits] == [("row 1", "h1", "g.py"), ("row 2", "h2", "m.py")]
    assert stats["files_skipped"] == {"syntax_error": 1}


def test_commit_seeds_sample_is_seeded_and_in_order(tmp_path: Path) -> None:
    rows = [
        commit_row(
            f"def f{i}(x):\n    return x + {i}\n", f"def f{i}(x):\n    return x - {i}\n", f"fix f{i}", commit=f"h{i}"
        )
        for i in range(12)
    ]
    path = write_commits(tmp_path / "commits.jsonl", rows)
    settings = {**COMMIT_SETTINGS, "num_prompts": 5, "num_shards": 1}
    first, records = run(tmp_path, commit_source(path), settings, seed=1, tag="a")
    again = run(tmp_path, commit_source(path), settings, seed=1, tag="b")[1]
    other = run(tmp_path, commit_source(path), settings, seed=2, tag="c")[1]
    assert first["commits_found"] == 12 and first["commits"] == len(records[0]) == 5
    rows_kept = [int(r["commit"]["row"].split()[-1]) for r in records[0]]
    assert rows_kept == sorted(rows_kept) and [r["id"] for r in records[0]] == [f"c{i:06d}" for i in range(5)]
    assert records == again and records != other


@pytest.mark.parametrize(
    ("sources", "settings", "message"),
    [
        ([{"name": "x", "type": "stdlib"}], COMMIT_SETTINGS, "type must be one of"),
        ([{"name": "x", "type": "jsonl"}], COMMIT_SETTINGS, "needs 'path'"),
        ([{"name": "x", "type": "jsonl", "path": "no/such.jsonl"}], COMMIT_SETTINGS, "is not a file"),
        ([], COMMIT_SETTINGS, "at least one source"),
        (None, {**COMMIT_SETTINGS, "kind": "diffs"}, "seeds.kind"),
        (None, {**COMMIT_SETTINGS, "max_diff_lines": 0}, "max_diff_lines"),
    ],
)
def test_bad_commit_configuration_is_a_clear_error(
    tmp_path: Path, sources: Any, settings: dict[str, Any], message: str
) -> None:
    path = write_commits(tmp_path / "c.jsonl", commit_lines())
    with pytest.raises(SeedError, match=message):
        collect_commits(commit_source(path) if sources is None else sources, settings, seed=1)


def test_no_usable_commit_is_a_clear_error(tmp_path: Path) -> None:
    path = write_commits(tmp_path / "c.jsonl", [commit_row(GREET_OLD, GREET_OLD, "touch")])
    with pytest.raises(
        SeedError, match=r"no usable commits in source 'cpft' \(1 rows seen; skipped: \{'identical': 1\}"
    ):
        run_seeds(
            commit_source(path), {**COMMIT_SETTINGS, "num_shards": 1}, 1, [tmp_path / "0.jsonl"], tmp_path / "s.json"
        )


def test_max_diff_lines_counts_changed_lines_as_filtering_does(tmp_path: Path) -> None:
    """Two lines replaced by two: 2 changed lines (filtering.max_changed_lines's count), not the 4 lines
    the unified diff adds or removes."""
    old = "def f(a, b):\n    x = a + b\n    y = a * b\n    return x, y\n"
    new = "def f(a, b):\n    x = a - b\n    y = a / b\n    return x, y\n"
    path = write_commits(tmp_path / "c.jsonl", [commit_row(old, new, "Subtract and divide")])
    kept, _ = collect_commits(commit_source(path), {**COMMIT_SETTINGS, "max_diff_lines": 2}, seed=1)
    assert [commit["changed_lines"] for commit in kept] == [2]
    with pytest.raises(SeedError, match=r"skipped: \{'diff_too_large': 1\}"):
        collect_commits(commit_source(path), {**COMMIT_SETTINGS, "max_diff_lines": 1}, seed=1)
