"""Lint in one place: ruff over the Python (settings in pyproject.toml's [tool.ruff]),
`snakemake --lint` over the workflow and the catalog's `snakefmt --check` over its rules."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPO
from helpers.workflow import SNAKEMAKE


def test_ruff_is_clean() -> None:
    """pycodestyle, pyflakes, import order and absolute imports in src/, tests/, bench/ and scripts/."""
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"run `ruff check --fix .`:\n{result.stdout[-4000:]}{result.stderr[-2000:]}"


def test_lint_is_clean() -> None:
    result = subprocess.run(
        [*SNAKEMAKE, "--lint", "--snakefile", str(REPO / "Snakefile")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt_is_clean() -> None:
    """The formatting check the workflow catalog runs (line length in pyproject.toml's [tool.snakefmt])."""
    result = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "--diff", "Snakefile", "rules"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"run `snakefmt Snakefile rules`:\n{result.stdout[-4000:]}{result.stderr[-2000:]}"
