"""The seeds stage's sources: the files of a folder or of this Python's standard library, and the
file contents in a column of a table's rows; and the check, before any file is parsed, that they
can make pairs.

Files are skipped, and counted by reason, when they are binary, not UTF-8, too
large (known from their size, before they are read) or, later, not valid
Python; and when a path filter (``editforge.seeds.filters``) catches them.
"""

from __future__ import annotations

import fnmatch
import os
import random
import sysconfig
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from editforge.records import jsonl_lines
from editforge.seeds.filters import path_reason
from editforge.seeds.provenance import LICENCE_COLUMNS, STDLIB_LICENCE, PackageLicences, row_licence
from editforge.seeds.settings import Document, SeedError, SeedSettings, Tally, checked
from editforge.seeds.tables import Table, cap, max_row_bytes, source_rows

PRUNED_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn", ".tox", ".venv", "venv"})
# A row of a CommitPackFT-style table names its file in one of these columns.
FILE_NAME_COLUMNS = ("old_file", "new_file", "path")


def normalised_newlines(text: str) -> str:
    """``text`` with every line ending ("\\r\\n", a lone "\\r") made "\\n"."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def not_utf8(text: str) -> bool:
    """Whether ``text`` holds lone surrogates (from \\ud800-style escapes), which UTF-8 cannot encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    """fnmatch, where a leading ``**/`` may also match nothing."""
    return any(
        fnmatch.fnmatchcase(rel, p) or (p.startswith("**/") and fnmatch.fnmatchcase(rel, p[3:])) for p in patterns
    )


def _decode(data: bytes) -> str | None:
    """UTF-8 text with newlines normalised, or None for binary or other encodings."""
    if b"\x00" in data:
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    return normalised_newlines(text)


def _directory_listing(name: str, root: Path, include: Sequence[str], exclude: Sequence[str]) -> list[str]:
    """The files under ``root`` that the patterns select, as sorted relative paths."""
    if not root.is_dir():
        raise SeedError(f"source {name!r}: {root} is not a directory")
    prunable = [p for p in exclude if p.endswith("*")]
    listed: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        # Skip whole excluded folders instead of listing every file inside them.
        dirnames[:] = sorted(d for d in dirnames if d not in PRUNED_DIRS and not _matches(f"{prefix}{d}/", prunable))
        for filename in filenames:
            rel = prefix + filename
            if _matches(rel, include) and not _matches(rel, exclude):
                listed.append(rel)
    return sorted(listed)


def _small_enough(path: Path, settings: SeedSettings) -> bool | None:
    """Whether the file is within ``max_file_bytes``, from its size alone (None: unreadable)."""
    try:
        return path.stat().st_size <= settings.max_file_bytes
    except OSError:
        return None


def _directory_documents(
    name: str,
    root: Path,
    include: Sequence[str],
    exclude: Sequence[str],
    settings: SeedSettings,
    rng: random.Random,
    tally: Tally,
) -> Iterator[Document]:
    listed = _directory_listing(name, root, include, exclude)
    tally.files_seen += len(listed)
    candidates = []
    for rel in listed:
        reason = path_reason(rel, settings.filters)
        if reason:
            tally.files_skipped[reason] += 1
        else:
            candidates.append(rel)
    licences = PackageLicences(root)
    for rel in cap(candidates, settings.max_files, rng, tally):
        path = root / rel
        small = _small_enough(path, settings)  # before the file is read whole
        if not small:
            tally.files_skipped["too_large" if small is False else "unreadable"] += 1
            continue
        try:
            data = path.read_bytes()
        except OSError:
            tally.files_skipped["unreadable"] += 1
            continue
        text = _decode(data)
        if text is None:
            tally.files_skipped["binary_or_not_utf8"] += 1
            continue
        yield Document(rel, text, licences.of(rel))


def _row_document(
    label: str, value: Any, file_name: Any, licence: str | None, settings: SeedSettings, tally: Tally
) -> Document | None:
    """One table row's file contents, or None (counted) when it cannot be used."""
    if not isinstance(value, str):
        tally.files_skipped["not_text" if value is not None else "empty"] += 1
        return None
    if not value.strip():
        tally.files_skipped["empty"] += 1
        return None
    if len(value.encode("utf-8", "surrogatepass")) > settings.max_file_bytes:
        tally.files_skipped["too_large"] += 1
        return None
    if "\x00" in value or not_utf8(value):
        tally.files_skipped["binary_or_not_utf8"] += 1
        return None
    if isinstance(file_name, str) and file_name:
        reason = path_reason(file_name, settings.filters)
        if reason:
            tally.files_skipped[reason] += 1
            return None
        label = f"{label}: {file_name}"
    return Document(label, normalised_newlines(value), licence)


def _row_documents(
    name: str, rows: Iterator[tuple[Table, int, dict[str, Any]]], column: str, settings: SeedSettings, tally: Tally
) -> Iterator[Document]:
    """The file contents in ``column`` of each row; rows without it are counted."""
    with_column = 0
    tables: dict[Path, None] = {}
    for table, number, row in rows:
        tables[table.path] = None
        if column not in row:
            tally.files_skipped["missing_column"] += 1
            continue
        with_column += 1
        file_name = next((row[c] for c in FILE_NAME_COLUMNS if isinstance(row.get(c), str)), None)
        document = _row_document(table.row_label(number), row[column], file_name, row_licence(row), settings, tally)
        if document:
            yield document
    read = tally.files_seen - tally.files_skipped["over_max_files"]
    if read and not with_column:
        where = ", ".join(str(p) for p in tables) or "the source"
        raise SeedError(f"source {name!r}: no row of {where} has the column {column!r}")


def documents(source: dict[str, Any], settings: SeedSettings, seed: int, tally: Tally) -> Iterator[Document]:
    """The files of a source, as documents: a folder's, the standard library's, or a table's rows'."""
    name, kind = source["name"], source["type"]
    rng = random.Random(f"{seed}:files:{name}")
    column = source.get("column", "old_contents")
    if kind == "directory" and not source.get("path"):
        raise SeedError(f"source {name!r}: type {kind!r} needs 'path'")
    if kind == "stdlib":
        root = Path(sysconfig.get_paths()["stdlib"])
        found = _directory_documents(name, root, ["**/*.py"], source.get("exclude", []), settings, rng, tally)
        return (replace(doc, licence=doc.licence or STDLIB_LICENCE) for doc in found)
    if kind == "directory":
        include = source.get("include", ["**/*.py"])
        return _directory_documents(
            name, Path(source["path"]), include, source.get("exclude", []), settings, rng, tally
        )
    rows = source_rows(source, [column], (*FILE_NAME_COLUMNS, *LICENCE_COLUMNS), settings, rng, tally)
    return _row_documents(name, rows, column, settings, tally)


def _files_within_limits(source: dict[str, Any], settings: SeedSettings, enough: int) -> int | None:
    """How many of the source's files (or rows) pass the checks that need no parsing, counted up
    to ``enough``; None where that is unknown before the rows are downloaded (an ``hf`` source)."""
    name, kind = source["name"], source["type"]
    limit = settings.max_files or enough
    if kind in ("stdlib", "directory"):
        if kind == "directory" and not source.get("path"):
            raise SeedError(f"source {name!r}: type {kind!r} needs 'path'")
        root = Path(source["path"]) if kind == "directory" else Path(sysconfig.get_paths()["stdlib"])
        include = source.get("include", ["**/*.py"]) if kind == "directory" else ["**/*.py"]
        found = 0
        for rel in _directory_listing(name, root, include, source.get("exclude", [])):
            if found >= min(enough, limit):
                break
            found += bool(path_reason(rel, settings.filters) is None and _small_enough(root / rel, settings))
        return found
    if kind == "jsonl" and source.get("path"):
        path, longest, found = Path(source["path"]), max_row_bytes(settings), 0
        if not path.is_file():
            raise SeedError(f"source {name!r}: {path} is not a file")
        try:
            for _, line in jsonl_lines(path, binary=True):
                if found >= min(enough, limit):
                    break
                found += bool(len(line) <= longest)
        except (OSError, EOFError) as err:
            raise SeedError(f"source {name!r}: cannot read {path} ({err})") from None
        return found
    return None


def check_sources(sources: list[dict[str, Any]], settings: dict[str, Any] | SeedSettings) -> None:
    """Fail before any file is parsed when the sources cannot make pairs: snippets of two
    different files are needed, and fewer than two files are readable within the limits."""
    config = checked(sources, settings)
    counts = {source["name"]: _files_within_limits(source, config, 2) for source in sources}
    known = [count for count in counts.values() if count is not None]
    if len(known) < len(counts) or sum(known) >= 2:
        return
    found = ", ".join(f"{name!r}: {count}" for name, count in counts.items())
    raise SeedError(
        f"seeds: pairs need snippets from two different files, but the sources have {sum(known)} "
        f"file(s) within seeds.max_file_bytes = {config.max_file_bytes}"
        f"{f' and seeds.max_files = {config.max_files}' if config.max_files else ''} ({found}); "
        "add files or sources, or raise the limits"
    )
