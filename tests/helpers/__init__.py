"""Test support shared by the test folders: paths to the checkout and the shared benchmark copies."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
