"""Stages 2-3: the two-round dialogue (or commit rewriting) with the teacher models."""

from editforge.synthesis.core import (
    run_round1,
    run_round2,
)

__all__ = ["run_round1", "run_round2"]
