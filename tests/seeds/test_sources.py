"""Seed sources: folders, the standard library, JSON Lines and parquet tables; what is skipped and why,
the early check that sources can make pairs, and each snippet's provenance."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import pytest

from editforge.pycode import syntax
from editforge.seeds import SeedError, collect_snippets
from helpers.seed_corpus import FILES, SETTINGS, distinct_functions, functions_file, run, source


def test_skips_are_counted_by_reason(tmp_path: Path, tree: Path) -> None:
    stats, _ = run(tmp_path, source(tree))
    assert stats["files_seen"] == 13  # every .py file; readme.txt is not included
    assert stats["files_skipped"] == {
        "binary_or_not_utf8": 2,
        "generated": 2,
        "vendored": 1,
        "syntax_error": 1,
        "too_large": 1,
    }
    assert stats["files_used"] == 6
    assert stats["snippets_skipped"] == {
        "data_only": 1,
        "import_only": 1,
        "licence_header": 1,
        "mostly_comments": 1,
        "too_long": 1,
        "too_short": 3,
    }
    # hypotenuse, clamp, clamp again, Square, Polygon.__init__, Polygon.perimeter
    assert stats["snippets_found"] == 6
    assert stats["duplicates_removed"] == 1
    assert stats["snippets"] == 5
    assert stats["snippets_by_kind"] == {"class": 1, "function": 2, "method": 2}
    assert stats["sources"]["corpus"]["snippets"] == 5


def test_max_files_is_a_counted_seeded_sample(tmp_path: Path) -> None:
    root = distinct_functions(tmp_path / "many", 20)
    settings = {**SETTINGS, "max_files": 5}
    snippets, stats = collect_snippets(source(root), settings, seed=11)
    assert stats["files_seen"] == 20 and stats["files_skipped"] == {"over_max_files": 15}
    assert stats["files_used"] == 5
    assert snippets == collect_snippets(source(root), settings, seed=11)[0]
    assert {s["path"] for s in snippets} != {s["path"] for s in collect_snippets(source(root), settings, seed=12)[0]}


def test_jsonl_source_counts_bad_rows(tmp_path: Path) -> None:
    good = "def area(w, h):\n    if w < 0 or h < 0:\n        raise ValueError('negative')\n    return w * h\n"
    other = "def greet(name):\n    name = name.strip()\n    text = 'hi ' + name\n    return text\n"
    rows = [
        json.dumps({"old_contents": good, "old_file": "geo/area.py"}),
        "this line is not JSON",
        json.dumps({"new_contents": good}),
        json.dumps({"old_contents": other}),
        json.dumps({"old_contents": 42}),
        json.dumps({"old_contents": other.replace("hi", "hello"), "old_file": "third_party/x.py"}),
        json.dumps([1, 2]),
    ]
    path = tmp_path / "commits.jsonl"
    path.write_text("\n".join(rows) + "\n\n", encoding="utf-8")
    snippets, stats = collect_snippets([{"name": "cpft", "type": "jsonl", "path": str(path)}], SETTINGS, seed=1)
    assert stats["files_seen"] == 7
    assert stats["files_skipped"] == {"missing_column": 1, "not_json": 2, "not_text": 1, "vendored": 1}
    assert [s["path"] for s in snippets] == ["row 1: geo/area.py", "row 4"]
    # The malformed lines are named, file and line, with what is wrong.
    assert stats["malformed_lines"] == [
        f"{path}:2: not JSON: Expecting value at column 1",
        f"{path}:7: a JSON list, not an object",
    ]


def test_a_jsonl_line_longer_than_a_row_can_be_is_skipped_unparsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = "def area(w, h):\n    if w < 0 or h < 0:\n        raise ValueError('negative')\n    return w * h\n"
    path = tmp_path / "rows.jsonl"
    huge = json.dumps({"old_contents": "x = 1\n" * 200_000})  # 1.2 MB, over 4 x max_file_bytes
    path.write_text("\n".join([json.dumps({"old_contents": good}), huge]) + "\n", encoding="utf-8")
    parsed: list[int] = []
    real_loads = json.loads
    monkeypatch.setattr(json, "loads", lambda text, **kw: parsed.append(len(text)) or real_loads(text, **kw))
    _, stats = collect_snippets([{"name": "rows", "type": "jsonl", "path": str(path)}],
                                {**SETTINGS, "max_file_bytes": 100_000}, seed=1)
    assert stats["files_skipped"] == {"too_large": 1} and max(parsed) < 1000


def test_parquet_source(tmp_path: Path) -> None:
    polars = pytest.importorskip("polars")
    code = "def double(values):\n    out = []\n    for v in values:\n        out.append(v * 2)\n    return out\n"
    path = tmp_path / "commits.parquet"
    polars.DataFrame({"old_contents": [code, "def f(:\n"], "old_file": ["a.py", "b.py"]}).write_parquet(path)
    snippets, stats = collect_snippets([{"name": "pq", "type": "parquet", "path": str(path)}], SETTINGS, seed=1)
    assert [s["path"] for s in snippets] == ["row 1: a.py"]
    assert stats["files_skipped"] == {"syntax_error": 1}
    with pytest.raises(SeedError, match="no column 'content'"):
        collect_snippets([{"name": "pq", "type": "parquet", "path": str(path), "column": "content"}], SETTINGS, 1)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(SeedError, match="cannot read"):
        collect_snippets([{"name": "pq", "type": "parquet", "path": str(bad)}], SETTINGS, 1)


def test_stdlib_source_reads_this_python() -> None:
    snippets, stats = collect_snippets(
        [{"name": "stdlib", "type": "stdlib", "exclude": ["[!j]*", "json/tool.py"]}], SETTINGS, seed=1
    )
    assert stats["files_seen"] >= 4 and all(s["path"].startswith("json/") for s in snippets)
    assert "json/tool.py" not in {s["path"] for s in snippets}


def test_empty_or_junk_sources_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SeedError, match="no usable snippets in source 'corpus'"):
        collect_snippets(source(empty), SETTINGS, seed=1)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.py").write_bytes(b"\x00\x01\x02")
    with pytest.raises(SeedError, match="binary_or_not_utf8"):
        collect_snippets(source(junk), SETTINGS, seed=1)
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"content": "def f():\n    pass\n"}) + "\n")
    with pytest.raises(SeedError, match="no row of .* has the column 'old_contents'"):
        collect_snippets([{"name": "r", "type": "jsonl", "path": str(rows)}], SETTINGS, seed=1)


def test_sources_that_cannot_make_pairs_fail_before_any_file_is_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "src"
    root.mkdir()
    (root / "small.py").write_text(textwrap.dedent(FILES["pkg/math_utils.py"]))
    (root / "huge.py").write_text("x = 1\n" * 100_000)  # 600 kB, over max_file_bytes
    monkeypatch.setattr(syntax, "parse", lambda text: pytest.fail("a file was parsed"))
    with pytest.raises(SeedError) as info:
        run(tmp_path, source(root), {**SETTINGS, "max_file_bytes": 300_000})
    assert str(info.value) == (
        "seeds: pairs need snippets from two different files, but the sources have 1 file(s) within "
        "seeds.max_file_bytes = 300000 ('corpus': 1); add files or sources, or raise the limits"
    )
    with pytest.raises(SeedError, match=r"have 1 file\(s\) within .* and seeds.max_files = 1 "):
        run(tmp_path, source(root), {**SETTINGS, "max_file_bytes": 10**6, "max_files": 1})


def test_each_snippet_keeps_where_it_came_from_its_licence_and_a_hash(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "pkg").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "pkg"\nlicense = "Apache-2.0"\n')
    (root / "pkg/a.py").write_text(functions_file(1))
    (root / "pkg/b.py").write_text("# SPDX-License-Identifier: MIT OR BSD-3-Clause\n" + functions_file(1, offset=1))
    sources = [{"name": "proj", "type": "directory", "path": str(root), "repository": "https://example.org/proj"}]
    snippets, stats = collect_snippets(sources, {**SETTINGS, "min_lines": 3}, seed=1)
    by_path = {s["path"]: s for s in snippets}
    assert by_path["pkg/a.py"]["licence"] == "Apache-2.0"
    assert by_path["pkg/b.py"]["licence"] == "MIT OR BSD-3-Clause"
    assert {s["repository"] for s in snippets} == {"https://example.org/proj"}
    assert all(s["sha256"] == hashlib.sha256(s["text"].encode()).hexdigest() for s in snippets)
    assert stats["sources"]["proj"]["licences"] == {"Apache-2.0": 1, "MIT OR BSD-3-Clause": 1}
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps({"old_contents": functions_file(1, offset=i), "license": "mit"})
                              for i in range(2)) + "\n")
    snippets, _ = collect_snippets([{"name": "rows", "type": "jsonl", "path": str(rows)}], SETTINGS, seed=1)
    assert {s["licence"] for s in snippets} == {"mit"}
    stdlib, _ = collect_snippets([{"name": "std", "type": "stdlib"}], {**SETTINGS, "max_files": 3}, seed=1)
    assert {s["licence"] for s in stdlib} <= {"PSF-2.0"} and stdlib[0]["repository"].startswith("CPython 3.")
