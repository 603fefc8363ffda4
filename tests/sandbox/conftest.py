"""Fixtures of the sandbox tests: each isolation mechanism in turn, and skips that CI turns into failures.

EDITFORGE_REQUIRE_BWRAP=1 and EDITFORGE_REQUIRE_UNPRIVILEGED=1 (``.ci/run`` sets both)
turn the skips of the bubblewrap runs and of the runs that need an ordinary user or
an unprivileged user namespace into failures that name the cause.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

import pytest

from editforge.sandbox import SandboxError, select_isolation


def _require(variable: str, reason: str) -> NoReturn:
    """Skip for ``reason``, or fail for it where ``variable`` is 1."""
    if os.environ.get(variable) == "1":
        pytest.fail(f"{reason} ({variable}=1)")
    pytest.skip(reason)


@pytest.fixture
def require() -> Callable[[str, str], NoReturn]:
    """``require(variable, reason)``: skip for ``reason``, or fail for it where ``variable`` is 1."""
    return _require


@pytest.fixture(params=["userns", "bwrap"])
def mechanism(request: pytest.FixtureRequest) -> str:
    """Each isolation mechanism that works here; one that does not skips naming why (bwrap: fails under CI)."""
    name: str = request.param
    if sys.platform != "linux":
        pytest.skip("the sandbox needs Linux")
    try:
        select_isolation(name)
    except SandboxError as err:
        if name == "bwrap":
            _require("EDITFORGE_REQUIRE_BWRAP", f"bubblewrap does not work here: {err}")
        pytest.skip(f"user namespaces do not work here: {err}")
    return name
