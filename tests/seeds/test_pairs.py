"""Pairing: two different files per pair, no repeats, capped reuse, sharding and determinism."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import pytest

from editforge.seeds import SeedError, collect_snippets, make_pairs
from editforge.templates import load_fewshot
from helpers.seed_corpus import FILES, SETTINGS, distinct_functions, functions_file, run, source


def test_pairs_are_from_different_files_unique_and_sharded(tmp_path: Path, tree: Path) -> None:
    stats, shards = run(tmp_path, source(tree))
    pairs = [p for shard in shards for p in shard]
    # 5 snippets in 3 files (3 in shapes.py): 10 pairs minus the 3 inside shapes.py
    assert stats["pairs"] == len(pairs) == 7
    keys = set()
    for pair in pairs:
        first, second = pair["snippets"]
        assert (first["source"], first["path"]) != (second["source"], second["path"])
        key = frozenset((first["path"], first["start_line"], second["path"], second["start_line"]))
        assert key not in keys
        keys.add(key)
        assert pair["fewshot_id"] in load_fewshot()
    assert [len(s) for s in shards] == [stats["shards"]["000"], stats["shards"]["001"]]
    assert abs(len(shards[0]) - len(shards[1])) <= 1
    assert all(p["shard"] == "000" for p in shards[0]) and all(p["shard"] == "001" for p in shards[1])
    ids = sorted(p["id"] for p in pairs)
    assert ids == [f"p{i:06d}" for i in range(len(pairs))]
    assert shards[0][0]["id"] == "p000000" and shards[1][0]["id"] == "p000001"  # round robin


def test_pair_shortfall_lists_every_possible_pair(tmp_path: Path, tree: Path) -> None:
    stats, shards = run(tmp_path, source(tree), {**SETTINGS, "num_prompts": 50})
    assert stats["pairs_requested"] == 50
    assert stats["pairs"] == sum(len(s) for s in shards) == 7


def test_same_seed_same_output_other_seed_differs(tmp_path: Path) -> None:
    sources = source(distinct_functions(tmp_path / "many", 12))
    settings = {**SETTINGS, "num_prompts": 20}
    _, first = run(tmp_path, sources, settings, seed=1, tag="a")
    _, again = run(tmp_path, sources, settings, seed=1, tag="b")
    _, other = run(tmp_path, sources, settings, seed=2, tag="c")
    assert first == again
    assert first != other


def test_single_file_cannot_be_paired(tmp_path: Path) -> None:
    root = tmp_path / "one"
    root.mkdir()
    (root / "a.py").write_text(textwrap.dedent(FILES["pkg/math_utils.py"]))
    snippets, _ = collect_snippets(source(root), SETTINGS, seed=1)
    with pytest.raises(SeedError, match="two different files"):
        make_pairs(snippets, 3, ["fs"], seed=1)


def test_snippet_reuse_is_capped_and_a_shortfall_is_said(tmp_path: Path) -> None:
    root = tmp_path / "small"
    root.mkdir()
    for i in range(3):
        (root / f"m{i}.py").write_text(functions_file(2, offset=i))  # 6 snippets in all
    settings = {**SETTINGS, "min_lines": 3, "num_prompts": 12, "max_snippet_reuse": 2}
    stats, shards = run(tmp_path, source(root), settings)
    pairs = [pair for shard in shards for pair in shard]
    uses = Counter(snippet["sha256"] for pair in pairs for snippet in pair["snippets"])
    assert max(uses.values()) <= 2 and stats["most_reused_snippet"] == max(uses.values())
    assert stats["pairs"] == len(pairs) <= 6  # 6 snippets x 2 uses / 2 per pair
    assert stats["pairs_short"].startswith(f"{len(pairs)} of 12 pairs: 6 snippets, each in at most 2 pairs")
