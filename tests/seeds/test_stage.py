"""The stage: settings checked with clear errors, shard files matching the shard count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from editforge.seeds import SeedError, collect_snippets, run_seeds
from helpers.seed_corpus import SETTINGS, source


@pytest.mark.parametrize(
    ("sources", "settings", "message"),
    [
        ([{"name": "x", "type": "ftp"}], SETTINGS, "each source needs"),
        ([{"name": "x", "type": "directory"}], SETTINGS, "needs 'path'"),
        ([{"name": "x", "type": "directory", "path": "no/such/dir"}], SETTINGS, "is not a directory"),
        ([{"name": "x", "type": "jsonl", "path": "no/such.jsonl"}], SETTINGS, "is not a file"),
        ([], SETTINGS, "at least one source"),
        (None, {**SETTINGS, "min_lines": 20}, "min_lines: must not exceed"),
        (None, {**SETTINGS, "snippet_mode": "lines"}, "snippet_mode"),
        (None, {**SETTINGS, "max_lnes": 3}, "unknown setting"),
        (None, {**SETTINGS, "num_prompts": 0}, "num_prompts"),
    ],
)
def test_bad_configuration_is_a_clear_error(tree: Path, sources: Any, settings: dict[str, Any], message: str) -> None:
    with pytest.raises(SeedError, match=message):
        collect_snippets(source(tree) if sources is None else sources, settings, seed=1)


def test_shard_count_must_match(tmp_path: Path, tree: Path) -> None:
    with pytest.raises(SeedError, match="num_shards is 2 but 1 shard files"):
        run_seeds(source(tree), SETTINGS, 1, [tmp_path / "000.jsonl"], tmp_path / "stats.json")
