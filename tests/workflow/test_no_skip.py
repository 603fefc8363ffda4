"""Under CI (``EDITFORGE_NO_SKIP=1``) a skip of any kind fails the run, naming the skip's reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import REPO

SKIPPING = """
import pytest

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="session")
def benchmark():
    pytest.skip("no local benchmark copy at /nowhere")


def test_skips_in_a_session_fixture(benchmark):
    pass


def test_skips_itself():
    pytest.skip("no bubblewrap here")


@pytest.mark.skipif(True, reason="not on this platform")
def test_marked():
    pass


def test_passes():
    assert True
"""


def run_pytest(folder: Path, no_skip: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EDITFORGE_NO_SKIP"}
    if no_skip is not None:
        env["EDITFORGE_NO_SKIP"] = no_skip
    env["PYTHONPATH"] = str(REPO / "tests")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "helpers.no_skip",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rA",
        str(folder),
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder, timeout=120)


def test_every_kind_of_skip_fails_under_the_switch_and_names_its_reason(tmp_path: Path) -> None:
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    strict = run_pytest(tmp_path, "1")
    assert strict.returncode == 1, strict.stdout
    assert "1 failed, 1 passed, 2 errors" in strict.stdout  # a skip in setup (fixture or mark) fails as an error
    for reason in ("no local benchmark copy at /nowhere", "no bubblewrap here", "not on this platform"):
        assert f"EDITFORGE_NO_SKIP=1 forbids skipping: {reason}" in strict.stdout


def test_without_the_switch_skips_stay_skips(tmp_path: Path) -> None:
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    relaxed = run_pytest(tmp_path, None)
    assert relaxed.returncode == 0 and "1 passed, 3 skipped" in relaxed.stdout, relaxed.stdout
