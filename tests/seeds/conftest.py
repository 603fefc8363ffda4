"""Fixtures of the seeds tests: the hand-made tree of files (helpers/seed_corpus.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.seed_corpus import make_tree


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "corpus")
