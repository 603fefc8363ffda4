"""Commit seeds (``kind: commits``): real commits whose message the model rewrites into instructions.

This seeds the other synthesis mode (the reference's ``rewrite_commit``, whose
output it never used): the code before and after comes from a real commit, and
the model only rewrites the commit message into a lazy and a descriptive
instruction. Sources are tables of CommitPackFT-style rows (``jsonl``,
``parquet`` or ``hf``) with the columns ``old_contents``, ``new_contents`` and
``message``, and optionally ``commit`` and ``old_file``/``new_file``; a row
without one of the three is an error that names the column. Duplicates (same
hash and file, or the same code before and after ignoring layout) are dropped;
when more commits remain than ``num_prompts``, a seeded sample is kept, in
source order. ``snippet_mode``, ``min_lines`` and ``max_lines`` do not apply.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import Any

from editforge.pycode import syntax
from editforge.pycode.diff import diff_stats
from editforge.records import CommitRecord, CommitSeed
from editforge.seeds.filters import file_reason, path_reason
from editforge.seeds.settings import TABLE_SOURCE_TYPES, Document, SeedError, SeedSettings, Tally, checked
from editforge.seeds.snippets import WORD_OR_SYMBOL
from editforge.seeds.sources import FILE_NAME_COLUMNS, normalised_newlines, not_utf8
from editforge.seeds.tables import Table, source_rows

COMMIT_COLUMNS = ("old_contents", "new_contents", "message")
COMMIT_OPTIONAL = ("commit", *FILE_NAME_COLUMNS)


def _commit_seed(
    name: str, table: Table, number: int, row: dict[str, Any], settings: SeedSettings, tally: Tally
) -> CommitSeed | None:
    """One row's commit, checked; None (counted by reason) when it cannot seed a prompt.

    Rows are skipped, and counted by reason, when the code or the message is
    empty, the code is not text or not UTF-8, the file is a test file (by path,
    with the ``tests`` filter), vendored or generated, larger than
    ``max_file_bytes`` or longer than ``max_code_lines`` lines (before or
    after), the two versions are identical, the commit changes more than
    ``max_diff_lines`` lines (counted as filtering counts them: ``pycode.diff.diff_stats``,
    a replaced line once), either version is not valid Python, or
    the commit changes only comments and layout (the same tokens).
    """
    label = table.row_label(number)
    for column in COMMIT_COLUMNS:
        if column not in row:
            where = f"{label} of {table.path}" if table.fmt != "datasets" else label
            raise SeedError(
                f"source {name!r}: {where} has no column {column!r} (a commit row needs {', '.join(COMMIT_COLUMNS)})"
            )
    old, new, message = (row[c] for c in COMMIT_COLUMNS)

    def skip(reason: str) -> None:
        tally.files_skipped[reason] += 1

    if not all(isinstance(v, str) or v is None for v in (old, new, message)):
        return skip("not_text")
    if not (old or "").strip() or not (new or "").strip():
        return skip("empty_code")
    if not (message or "").strip():
        return skip("empty_message")
    if any("\x00" in v or not_utf8(v) for v in (old, new, message)):
        return skip("binary_or_not_utf8")
    file_name = next((row[c] for c in FILE_NAME_COLUMNS if isinstance(row.get(c), str) and row[c]), "")
    reason = path_reason(file_name, settings.filters) if file_name else None
    if reason:
        return skip(reason)
    if max(len(old.encode("utf-8")), len(new.encode("utf-8"))) > settings.max_file_bytes:
        return skip("too_large")
    old, new = _commit_code(old), _commit_code(new)
    if old == new:
        return skip("identical")
    if max(old.count("\n"), new.count("\n")) + 1 > settings.max_code_lines:
        return skip("too_long")
    if file_reason(Document(label, old), settings.filters):
        return skip("generated")
    changed = diff_stats(old, new).changed_lines
    if changed > settings.max_diff_lines:
        return skip("diff_too_large")
    same = syntax.same_code(old, new)
    if same is None:
        return skip("syntax_error")
    if same:
        return skip("no_code_change")  # comments, blank lines or layout only
    commit = row.get("commit")
    return CommitSeed(
        source=name,
        row=label,
        commit=commit if isinstance(commit, str) else "",
        path=file_name,
        message=normalised_newlines(message.strip()),
        old_code=old,
        new_code=new,
        changed_lines=changed,
    )


def _commit_code(text: str) -> str:
    """A file's contents as a commit record holds them: newlines normalised, no trailing blank space."""
    return normalised_newlines(text).rstrip()


def _normalised_layout(text: str) -> str:
    """The text's tokens, comments and literals kept: what two copies of a file share whatever the spacing."""
    return " ".join(WORD_OR_SYMBOL.findall(text))


def collect_commits(
    sources: list[dict[str, Any]], settings: dict[str, Any] | SeedSettings, seed: int
) -> tuple[list[CommitSeed], dict[str, Any]]:
    """All unique usable commits of the sources, in source order, and the statistics.

    Two commits are the same when they have the same hash and file, or the
    same code before and after (ignoring layout). Raises SeedError for a source
    that is not a table, is unreadable, lacks a commit column, or yields no
    usable commit.
    """
    config = checked(sources, settings)
    total = Tally()
    per_source: dict[str, dict[str, Any]] = {}
    commits: list[CommitSeed] = []
    seen: set[bytes] = set()
    duplicates = 0
    for source in sources:
        name, kind = source["name"], source["type"]
        if kind not in TABLE_SOURCE_TYPES:
            raise SeedError(
                f"source {name!r}: seeds.kind 'commits' reads tables of commits, "
                f"so the type must be one of {TABLE_SOURCE_TYPES}, not {kind!r}"
            )
        tally = Tally()
        rng = random.Random(f"{seed}:files:{name}")
        found = 0
        for table, number, row in source_rows(source, COMMIT_COLUMNS, COMMIT_OPTIONAL, config, rng, tally):
            commit = _commit_seed(name, table, number, row, config, tally)
            if commit is None:
                continue
            tally.files_used += 1
            content = f"{_normalised_layout(commit['old_code'])}\0{_normalised_layout(commit['new_code'])}"
            keys = [hashlib.sha1(content.encode("utf-8")).digest()]
            if commit["commit"]:
                keys.append(hashlib.sha1(f"{commit['commit']}\0{commit['path']}".encode("utf-8")).digest())
            if any(key in seen for key in keys):
                duplicates += 1
                continue
            seen.update(keys)
            commits.append(commit)
            found += 1
        if not found:
            reasons = dict(tally.files_skipped)
            raise SeedError(
                f"no usable commits in source {name!r} ({tally.files_seen} rows seen; skipped: {reasons or 'none'})"
            )
        per_source[name] = {
            "type": kind,
            "rows_seen": tally.files_seen,
            "rows_used": tally.files_used,
            "commits": found,
        }
        total.add(tally)
    stats = {
        "seed": seed,
        "kind": "commits",
        "sources": per_source,
        "files_seen": total.files_seen,  # rows: one changed file each
        "files_used": total.files_used,
        "files_skipped": dict(sorted(total.files_skipped.items())),
        "malformed_lines": total.malformed_lines,
        "duplicates_removed": duplicates,
        "commits_found": len(commits),
    }
    return commits, stats


def make_commit_records(
    commits: list[CommitSeed], count: int, fewshot_ids: Sequence[str], seed: int
) -> list[CommitRecord]:
    """Commit records (without ``shard``) for ``count`` prompts: a seeded sample, in source order.

    Each commit becomes one record in the same shard files as pairs (round robin)::

        {"id": "c000017", "shard": "000", "kind": "commit",
         "commit": {"source": "cpft", "row": "row 18", "commit": "<hash or ''>",
                    "path": "<old_file or ''>", "message": "...",
                    "old_code": "...", "new_code": "...", "changed_lines": 4},
         "fewshot_id": "fs03-..."}

    A pair record has no ``kind`` key (read it as ``"pair"``). The few-shot
    example is drawn as for pairs; the commit prompt shows only its instructions.
    """
    if not fewshot_ids:
        raise SeedError("seeds: no few-shot examples to choose from")
    chosen = range(len(commits))
    if len(commits) > count:
        chosen = sorted(random.Random(f"{seed}:commits").sample(range(len(commits)), count))
    examples = random.Random(f"{seed}:fewshot")
    width = max(6, len(str(len(chosen) - 1)))
    return [
        CommitRecord(
            id=f"c{i:0{width}d}",
            shard="",
            kind="commit",
            commit=commits[index],
            fewshot_id=examples.choice(list(fewshot_ids)),
        )
        for i, index in enumerate(chosen)
    ]
