"""Stages 2-3: the two-round dialogue (or commit rewriting) with the teacher models, per model and shard.

Pair records get the two rounds of the paper. Commit records (``kind: "commit"``, from
``seeds.kind: commits``) take the other path, in the same rules and files: the code before and
after comes from a real commit, and one round rewrites its message into the two instructions.
A shard may mix both kinds; the backend is opened once per stage either way.

- ``prompts``: the round-1, round-2 and commit messages, and the fence helper.
- ``rounds``: round and step definitions, asking, the error budget, ``run_round1`` and ``run_round2``.
"""

from editforge.synthesis.rounds import run_round1, run_round2

__all__ = ["run_round1", "run_round2"]
