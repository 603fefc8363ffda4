"""Fixtures of the workflow tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.workflow import write_code_tree


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small source tree to cut seed snippets from."""
    return write_code_tree(tmp_path_factory.mktemp("code"))
