"""Stage 1: cut seed snippets from real Python code and pair them for synthesis.

The reference cuts a random 5-15 line window from each of two random commits,
with no content check, so many prompts are seeded with licence headers, import
lists or blank lines, and the same pair can recur. Here:

* Files are parsed with tree-sitter (``editforge.pycode.syntax``): the current Python
  grammar (3.12 generics, 3.14 ``except A, B:``), whatever interpreter runs the stage.
* ``snippet_mode: syntactic`` (default) cuts whole units: functions, classes (a
  class too long to fit yields its methods instead) and top-level blocks (a
  compound statement, or a run of simple statements).
  ``snippet_mode: window`` cuts as many windows as a file holds, end to end and
  without overlap, each as long as a length drawn uniformly from [min_lines,
  max_lines]: runs of whole sibling statements (``window_alignment: statements``,
  the default; a statement too long for a window is entered, block by block, and
  every window parses once dedented), or the paper's raw line windows
  (``window_alignment: lines``). A file keeps at most ``max_windows_per_file`` of
  them (a seeded sample, in order).
* Files are skipped, and counted by reason, when they are binary, not UTF-8,
  too large (known from their size, before they are read), not valid Python, or
  caught by a content filter: test files by path (``test_file``), generated and
  vendored files.
* Snippets are skipped, and counted by reason, when they are too short (fewer
  than ``min_lines`` non-blank lines) or too long (more than ``max_lines``
  lines), or caught by a content filter: at least half comments and docstrings
  (``mostly_comments``), the file's licence header (``licence_header``), a
  ``__main__`` guard (``main_guard``), an ``if TYPE_CHECKING:`` block
  (``type_checking``), test functions and classes by name (``test_code``),
  only imports (``import_only``) or only literal data (``data_only``). Each
  filter has a switch under ``filters`` (``SeedFilters``), all on by default.
* Duplicate snippets are removed before pairing: two snippets are the same when
  their tokens are, ignoring layout, comments and the values of literals (which
  also catches templated boilerplate).
* Each pair takes two snippets from two different files: two distinct files are
  drawn uniformly, then one snippet from each, so a file with many functions is
  not over-represented. No pair repeats, and no snippet seeds more than
  ``max_snippet_reuse`` pairs; when that leaves fewer pairs than ``num_prompts``,
  the stats (``pairs_short``), the log and the funnel say so. Everything is
  determined by ``seed``.
* Each snippet keeps its provenance: the source and where its code comes from
  (``repository``), the path and lines, the licence where the file (an SPDX
  header), its package (``pyproject.toml``, ``setup.cfg``, ``PKG-INFO``) or its
  row (a ``license`` column) states one, and a sha256 of its text. The stats
  count each source's snippets per licence, and the dataset card lists them.

``kind: commits`` seeds the other synthesis mode instead (the reference's
``rewrite_commit``, whose output it never used): the code before and after
comes from a real commit, and the model only rewrites the commit message into
a lazy and a descriptive instruction. Sources are tables of CommitPackFT-style
rows (``jsonl``, ``parquet`` or ``hf``) with the columns ``old_contents``,
``new_contents`` and ``message``, and optionally ``commit`` and
``old_file``/``new_file``; a row without one of the three is an error that
names the column. Rows are skipped, and counted by reason, when the code or the
message is empty, the code is not text or not UTF-8, the file is a test file
(by path, with the ``tests`` filter), vendored or generated, larger than
``max_file_bytes`` or longer than ``max_code_lines`` lines (before or after),
the two versions are identical, the diff adds or removes more than
``max_diff_lines`` lines, either version is not valid Python, or the commit
changes only comments and layout (the same tokens).
Duplicates (same hash and file, or the same code before and after ignoring
layout) are dropped; when more commits remain than ``num_prompts``, a seeded
sample is kept, in source order. ``snippet_mode``, ``min_lines`` and
``max_lines`` do not apply. Each commit becomes one record in the same shard
files as pairs (round robin)::

    {"id": "c000017", "shard": "000", "kind": "commit",
     "commit": {"source": "cpft", "row": "row 18", "commit": "<hash or ''>",
                "path": "<old_file or ''>", "message": "...",
                "old_code": "...", "new_code": "...", "changed_lines": 4},
     "fewshot_id": "fs03-..."}

A pair record has no ``kind`` key (read it as ``"pair"``). The few-shot
example is drawn as for pairs; the commit prompt shows only its instructions.

Table sources (both kinds): ``hf`` lists the dataset repo's files with
``huggingface_hub`` and reads the parquet or JSON Lines files of the
configured ``config_name`` and ``split`` (``select_hf_files``), without the
``datasets`` package; that package is tried only when it is installed and the
repo's layout shows no such files. With ``HF_HUB_OFFLINE`` set or no network,
the error says to download the files and use a ``jsonl``/``parquet`` source.
``max_files`` caps the rows of all of a source's files together.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import importlib.util
import json
import logging
import os
import random
import re
import sys
import sysconfig
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from editforge.pycode import syntax as pysyntax
from editforge.seeds.provenance import (
    LICENCE_COLUMNS,
    STDLIB_LICENCE,
    PackageLicences,
    licence_of,
    row_licence,
    source_repository,
)
from editforge.records import PathLike, CommitRecord, CommitSeed, PairRecord, Snippet, write_json, write_jsonl
from editforge.pycode.diff import added_removed_lines, unified_diff
from editforge.templates import load_fewshot

log = logging.getLogger(__name__)


SEED_KINDS = ("snippets", "commits")
SNIPPET_MODES = ("syntactic", "window")
SOURCE_TYPES = ("stdlib", "directory", "jsonl", "parquet", "hf")
TABLE_SOURCE_TYPES = ("jsonl", "parquet", "hf")
WINDOW_ALIGNMENTS = ("statements", "lines")
COMMENT_SHARE = 0.5  # a snippet with at least this share of comment lines is skipped
# Path components that mark third-party code copied into a tree.
VENDORED_DIRS = frozenset(
    {
        "vendor",
        "vendored",
        "_vendor",
        "third_party",
        "thirdparty",
        "third-party",
        "site-packages",
        "dist-packages",
        "node_modules",
    }
)
PRUNED_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn", ".tox", ".venv", "venv"})
GENERATED_NAME = re.compile(r"(_pb2|_pb2_grpc|_generated)\.py$")
# Looked for in a file's first lines only: markers that tools write there. "Generated
# by/from" also occurs in prose, so it counts only when the line names a file.
GENERATED_MARK = re.compile(
    r"do not edit|auto-?generated|automatically generated|@generated"
    r"|generated (?:by|from|with|using)\b[^\n]*\.(?:py|txt|proto|json|xml|ya?ml|in)\b",
    re.IGNORECASE,
)
GENERATED_HEAD_LINES = 10
# A row of a CommitPackFT-style table names its file in one of these columns.
FILE_NAME_COLUMNS = ("old_file", "new_file", "path")
# Test code by its path: a folder of tests, or a file named as pytest and unittest find them.
TEST_DIRS = frozenset({"test", "tests", "testing"})
TEST_NAME = re.compile(r"^(test_.*|.*_test|conftest)\.py$")
# For the duplicate check: string literals (any prefix and quotes), comments, numbers.
_LITERAL_OR_COMMENT = re.compile(
    r"[rRbBuUfF]{0,2}"
    r"(?:'''[\s\S]*?'''"
    r'|"""[\s\S]*?"""'
    r"""|'(?:\\.|[^'\\\n])*'"""
    r"""|"(?:\\.|[^"\\\n])*")"""
    r"|#[^\n]*"
    r"|\b\d[\w.]*"
)
_WORD_OR_SYMBOL = re.compile(r"\w+|[^\w\s]")


class SeedError(ValueError):
    """A seeds setting or source that cannot be used, with the reason."""


@dataclass(frozen=True)
class SeedFilters:
    """Which content filters run; each counts what it drops under its reason in the stats."""

    tests: bool = True  # test files (by path) and test functions and classes (by name): test_code, test_file
    comments: bool = True  # snippets that are at least half comments and docstrings: mostly_comments
    main_guard: bool = True  # `if __name__ == "__main__":` blocks: main_guard
    type_checking: bool = True  # `if TYPE_CHECKING:` import blocks: type_checking
    import_only: bool = True  # snippets of imports, or of imports and literal data only: import_only, data_only
    generated: bool = True  # generated files, by name or a marker in their first lines: generated
    vendored: bool = True  # files under vendor/, third_party/, site-packages/ and the like: vendored
    licence_header: bool = True  # a file's leading licence comments or docstring: licence_header


@dataclass(frozen=True)
class SeedSettings:
    kind: str = "snippets"  # "commits": one record per real commit
    snippet_mode: str = "syntactic"
    window_alignment: str = "statements"  # snippet_mode window: "lines" for the paper's raw line windows
    max_windows_per_file: int = 8
    max_snippet_reuse: int = 4  # pairs one snippet may seed
    min_lines: int = 5
    max_lines: int = 15
    max_file_bytes: int = 300_000
    max_files: int | None = None  # per source; a seeded sample when there are more
    num_prompts: int = 100  # pairs, or commits for kind "commits"
    num_shards: int = 1
    max_code_lines: int = 200  # kind "commits": lines of the file before or after the commit
    max_diff_lines: int = 100  # kind "commits": lines the commit adds or removes
    filters: SeedFilters = field(default_factory=SeedFilters)

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> SeedSettings:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(settings) - known)
        if unknown:
            raise SeedError(f"seeds: unknown setting(s) {', '.join(unknown)}")
        filters = settings.get("filters") or {}
        unknown = sorted(set(filters) - set(SeedFilters.__dataclass_fields__))
        if unknown or not all(isinstance(value, bool) for value in filters.values()):
            names = ", ".join(SeedFilters.__dataclass_fields__)
            raise SeedError(f"seeds.filters: expected switches (true or false) among {names}")
        made = cls(**{**settings, "filters": SeedFilters(**filters)})
        if made.kind not in SEED_KINDS:
            raise SeedError(f"seeds.kind: expected one of {SEED_KINDS}, got {made.kind!r}")
        if made.snippet_mode not in SNIPPET_MODES:
            raise SeedError(f"seeds.snippet_mode: expected one of {SNIPPET_MODES}, got {made.snippet_mode!r}")
        if made.window_alignment not in WINDOW_ALIGNMENTS:
            raise SeedError(
                f"seeds.window_alignment: expected one of {WINDOW_ALIGNMENTS}, got {made.window_alignment!r}"
            )
        positive = (
            "min_lines", "max_lines", "max_file_bytes", "num_prompts", "num_shards", "max_windows_per_file",
            "max_snippet_reuse",
        )
        for name in (*positive, "max_code_lines", "max_diff_lines"):
            value = getattr(made, name)
            if not isinstance(value, int) or value < 1:
                raise SeedError(f"seeds.{name}: expected a positive integer, got {value!r}")
        if made.max_files is not None and (not isinstance(made.max_files, int) or made.max_files < 1):
            raise SeedError(f"seeds.max_files: expected a positive integer or null, got {made.max_files!r}")
        if made.min_lines > made.max_lines:
            raise SeedError("seeds.min_lines: must not exceed seeds.max_lines")
        return made


# Malformed lines named in the stats and the log, the rest only counted.
MAX_NAMED_LINES = 20


@dataclass
class Tally:
    """What the extraction saw and why it skipped things."""

    files_seen: int = 0
    files_used: int = 0
    snippets_found: int = 0
    files_skipped: Counter[str] = field(default_factory=Counter)
    snippets_skipped: Counter[str] = field(default_factory=Counter)
    malformed_lines: list[str] = field(default_factory=list)  # "file:line: what is wrong"

    def add(self, other: Tally) -> None:
        self.files_seen += other.files_seen
        self.files_used += other.files_used
        self.snippets_found += other.snippets_found
        self.files_skipped.update(other.files_skipped)
        self.snippets_skipped.update(other.snippets_skipped)
        self.malformed_lines.extend(other.malformed_lines[: MAX_NAMED_LINES - len(self.malformed_lines)])

    def skip_line(self, path: Path, number: int, reason: str, what: str) -> None:
        """Count a line of a JSON Lines source that holds no row, and name the first ones."""
        self.files_skipped[reason] += 1
        if len(self.malformed_lines) < MAX_NAMED_LINES:
            where = f"{path}:{number}: {what}"
            self.malformed_lines.append(where)
            log.warning("skipped %s", where)


@dataclass(frozen=True)
class _Document:
    path: str  # inside the source: a relative file path or a row label
    text: str
    licence: str | None = None  # as the source states it: the package's metadata, a row's column


# ---------------------------------------------------------------- sources


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    """fnmatch, where a leading ``**/`` may also match nothing."""
    return any(
        fnmatch.fnmatchcase(rel, p) or (p.startswith("**/") and fnmatch.fnmatchcase(rel, p[3:])) for p in patterns
    )


def _path_reason(rel: str, filters: SeedFilters) -> str | None:
    """A skip reason known from the path alone."""
    parts = PurePosixPath(rel).parts
    if filters.vendored and any(part in VENDORED_DIRS for part in parts[:-1]):
        return "vendored"
    if filters.generated and parts and GENERATED_NAME.search(parts[-1]):
        return "generated"
    if filters.tests and parts and (any(part in TEST_DIRS for part in parts[:-1]) or TEST_NAME.match(parts[-1])):
        return "test_file"
    return None


def _cap(items: list[Any], max_files: int | None, rng: random.Random, tally: Tally) -> list[Any]:
    """At most ``max_files`` items, a seeded sample kept in the original order."""
    if max_files is None or len(items) <= max_files:
        return items
    tally.files_skipped["over_max_files"] += len(items) - max_files
    keep = sorted(rng.sample(range(len(items)), max_files))
    return [items[i] for i in keep]


def _decode(data: bytes) -> str | None:
    """UTF-8 text with newlines normalised, or None for binary or other encodings."""
    if b"\x00" in data:
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n")


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
) -> Iterator[_Document]:
    listed = _directory_listing(name, root, include, exclude)
    tally.files_seen += len(listed)
    candidates = []
    for rel in listed:
        reason = _path_reason(rel, settings.filters)
        if reason:
            tally.files_skipped[reason] += 1
        else:
            candidates.append(rel)
    licences = PackageLicences(root)
    for rel in _cap(candidates, settings.max_files, rng, tally):
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
        yield _Document(rel, text, licences.of(rel))


def _row_document(
    label: str, value: Any, file_name: Any, licence: str | None, settings: SeedSettings, tally: Tally
) -> _Document | None:
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
    if "\x00" in value or _not_utf8(value):
        tally.files_skipped["binary_or_not_utf8"] += 1
        return None
    if isinstance(file_name, str) and file_name:
        reason = _path_reason(file_name, settings.filters)
        if reason:
            tally.files_skipped[reason] += 1
            return None
        label = f"{label}: {file_name}"
    return _Document(label, value.replace("\r\n", "\n").replace("\r", "\n"), licence)


@dataclass(frozen=True)
class _Table:
    """One data file of a table source (jsonl, parquet, or a hub dataset's files)."""

    path: Path
    fmt: str  # "jsonl" or "parquet"
    label: str = ""  # prefix of its row labels where a source has several files

    def row_label(self, number: int) -> str:
        return f"{self.label} row {number}" if self.label else f"row {number}"


def _open_lines(path: Path) -> Any:
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _jsonl_positions(name: str, path: Path) -> list[int]:
    """The numbers of the non-blank lines of a JSON Lines file."""
    if not path.is_file():
        raise SeedError(f"source {name!r}: {path} is not a file")
    try:
        with _open_lines(path) as handle:
            return [number for number, line in enumerate(handle, start=1) if line.strip()]
    except (OSError, EOFError) as err:
        raise SeedError(f"source {name!r}: cannot read {path} ({err})") from None


# A JSON Lines row holds at most two files (a commit's old and new contents), which JSON
# escaping can double, and a few short columns: a longer line is too large unread.
def _max_row_bytes(settings: SeedSettings) -> int:
    return 4 * settings.max_file_bytes + 65_536


def _jsonl_rows(
    path: Path, wanted: set[int], settings: SeedSettings, tally: Tally
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The objects on the lines ``wanted``; lines too long or holding none are counted, and named."""
    limit = _max_row_bytes(settings)
    with _open_lines(path) as handle:
        for number, line in enumerate(handle, start=1):
            if number not in wanted:
                continue
            if len(line) > limit:
                tally.files_skipped["too_large"] += 1
                continue
            try:
                row = json.loads(line)
            except UnicodeDecodeError:
                tally.skip_line(path, number, "binary_or_not_utf8", "not UTF-8")
                continue
            except json.JSONDecodeError as err:
                tally.skip_line(path, number, "not_json", f"not JSON: {err.msg} at column {err.colno}")
                continue
            if not isinstance(row, dict):
                tally.skip_line(path, number, "not_json", f"a JSON {type(row).__name__}, not an object")
                continue
            yield number, row


def _parquet_open(name: str, path: Path, required: Sequence[str]) -> tuple[Any, list[str], int]:
    """A lazy scan of a parquet file, its column names and its row count."""
    import polars as pl

    if not path.is_file():
        raise SeedError(f"source {name!r}: {path} is not a file")
    try:
        scan = pl.scan_parquet(path)
        columns = list(scan.collect_schema())
        count = int(scan.select(pl.len()).collect().item())
    except (pl.exceptions.PolarsError, OSError) as err:
        raise SeedError(f"source {name!r}: cannot read {path} as parquet ({err})") from None
    for column in required:
        if column not in columns:
            raise SeedError(f"source {name!r}: {path} has no column {column!r} (columns: {', '.join(columns)})")
    return scan, columns, count


def _parquet_rows(
    name: str, path: Path, scan: Any, columns: list[str], wanted: set[int]
) -> Iterator[tuple[int, dict[str, Any]]]:
    import polars as pl

    try:
        frame = scan.select(columns).collect()
    except (pl.exceptions.PolarsError, OSError) as err:
        raise SeedError(f"source {name!r}: cannot read {path} as parquet ({err})") from None
    for number, row in enumerate(frame.iter_rows(named=True), start=1):
        if number in wanted:
            yield number, row


def _table_rows(
    name: str,
    tables: Sequence[_Table],
    required: Sequence[str],
    optional: Sequence[str],
    settings: SeedSettings,
    rng: random.Random,
    tally: Tally,
) -> Iterator[tuple[_Table, int, dict[str, Any]]]:
    """The rows of a source's files, as (file, 1-based row number, row).

    ``max_files`` caps the rows of all files together (a seeded sample, in
    order). A parquet file without a ``required`` column is an error; a JSON
    Lines row is yielded as it is, whatever its keys; lines that are not JSON
    objects are counted. Only the ``required`` and ``optional`` columns of a
    parquet file are read.
    """
    positions: list[tuple[int, int]] = []
    opened: dict[int, tuple[Any, list[str]]] = {}
    for index, table in enumerate(tables):
        if table.fmt == "jsonl":
            positions.extend((index, number) for number in _jsonl_positions(name, table.path))
        else:
            scan, columns, count = _parquet_open(name, table.path, required)
            opened[index] = (scan, [c for c in dict.fromkeys((*required, *optional)) if c in columns])
            positions.extend((index, number) for number in range(1, count + 1))
    tally.files_seen += len(positions)
    wanted: dict[int, set[int]] = {}
    for index, number in _cap(positions, settings.max_files, rng, tally):
        wanted.setdefault(index, set()).add(number)
    for index, table in enumerate(tables):
        if index not in wanted:
            continue
        if table.fmt == "jsonl":
            rows = _jsonl_rows(table.path, wanted[index], settings, tally)
        else:
            rows = _parquet_rows(name, table.path, *opened[index], wanted[index])
        for number, row in rows:
            yield table, number, row


# ---------------------------------------------------------------- Hugging Face datasets

HF_FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".jsonl.gz": "jsonl"}
# Folder and file names that mark a split in a dataset repo's layout.
KNOWN_SPLITS = frozenset({"train", "test", "validation", "valid", "dev", "eval"})
_SPLIT_PREFIX = re.compile(r"([A-Za-z]+)(?:[-_.]|$)")


def _hf_format(path: str) -> str | None:
    return next((fmt for suffix, fmt in HF_FORMATS.items() if path.endswith(suffix)), None)


def _split_of(rel: str, splits: frozenset[str]) -> str | None:
    """The split a data file belongs to by its path (relative to its config's folder), if it says."""
    parts = rel.split("/")
    for part in parts[:-1]:
        if part.lower() in splits:
            return part.lower()
    match = _SPLIT_PREFIX.match(parts[-1])
    if match and match.group(1).lower() in splits:
        return match.group(1).lower()
    return None


def select_hf_files(files: Sequence[str], config_name: str | None, split: str) -> list[str]:
    """The data files (parquet or JSON Lines) of one config and split in a dataset repo.

    ``files`` is the repo's file list. The folder of a config is tried as
    ``data/<config>/`` (CommitPackFT: ``data/python/data.jsonl``), then
    ``<config>/`` (the hub's parquet export: ``<config>/<split>/0000.parquet``);
    without a config, ``data/`` (``data/train-00000-of-00002.parquet``), then
    the repo's top level. Inside it, a file counts when every folder between
    it and the config's folder names a split. The split's files are those in a
    folder named after it or whose name starts with it (``train-...``,
    ``train.jsonl``); when no file names any split, all of them are the
    ``train`` split (the hub's rule). Returns [] when nothing fits; sorted.
    """
    splits = KNOWN_SPLITS | {split.lower()}
    roots = [f"data/{config_name}/", f"{config_name}/"] if config_name else ["data/", ""]
    for root in roots:
        candidates: list[tuple[str, str | None]] = []
        for path in files:
            if not path.startswith(root) or _hf_format(path) is None:
                continue
            rel = path[len(root) :]
            if not all(part.lower() in splits for part in rel.split("/")[:-1]):
                continue
            candidates.append((path, _split_of(rel, splits)))
        if not candidates:
            continue
        if any(found for _, found in candidates):
            chosen = [path for path, found in candidates if found == split.lower()]
        else:
            chosen = [path for path, _ in candidates] if split.lower() == "train" else []
        if chosen:
            return sorted(chosen)
    return []


def _datasets_available() -> bool:
    """Whether the ``datasets`` package can be imported (without importing it: that is slow)."""
    try:
        return importlib.util.find_spec("datasets") is not None
    except (ImportError, ValueError):  # a module without a spec, as test doubles are
        return "datasets" in sys.modules


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _download_hint(dataset_id: str, config_name: str | None) -> str:
    include = f" --include 'data/{config_name}/*'" if config_name else ""
    return (
        f"download the files first (e.g. `hf download {dataset_id} --repo-type dataset{include} "
        f"--local-dir DIR`) and use a source of type 'jsonl' or 'parquet' with 'path' set to one of them"
    )


def _hf_tables(name: str, source: dict[str, Any]) -> list[_Table] | None:
    """The local copies of a hub dataset's data files for the source's config and split.

    None where the repo's layout shows no such files (the caller may then try
    the ``datasets`` package). Raises SeedError, with what to do instead, when
    the hub cannot be reached (``HF_HUB_OFFLINE`` set, no network) or the
    dataset does not exist or is gated.
    """
    dataset_id = source.get("dataset")
    if not dataset_id:
        raise SeedError(f"source {name!r}: type 'hf' needs 'dataset'")
    config_name, split = source.get("config_name"), source.get("split", "train")
    revision = source.get("revision")
    hint = _download_hint(dataset_id, config_name)
    if _offline():
        raise SeedError(f"source {name!r}: type 'hf' needs the network, but HF_HUB_OFFLINE is set; {hint}")
    try:
        import huggingface_hub
        from huggingface_hub import errors as hub_errors
    except ImportError:
        if _datasets_available():
            return None
        raise SeedError(
            f"source {name!r}: type 'hf' needs the 'huggingface_hub' package (pip install huggingface_hub); or {hint}"
        ) from None
    missing = tuple(
        getattr(hub_errors, n) for n in ("RepositoryNotFoundError", "RevisionNotFoundError") if hasattr(hub_errors, n)
    )
    gated = getattr(hub_errors, "GatedRepoError", ())
    try:
        files = huggingface_hub.HfApi().list_repo_files(dataset_id, repo_type="dataset", revision=revision)
    except gated as err:  # before ``missing``: a gated repo error is also a "not found" one
        raise SeedError(
            f"source {name!r}: dataset {dataset_id!r} is gated; accept its terms and set HF_TOKEN ({err})"
        ) from None
    except missing as err:
        raise SeedError(
            f"source {name!r}: no dataset {dataset_id!r} (revision {revision or 'main'}) on the hub ({err})"
        ) from None
    except Exception as err:  # offline mode, DNS, timeouts: the library raises many types
        raise SeedError(
            f"source {name!r}: cannot reach the Hugging Face hub ({type(err).__name__}: {err}); {hint}"
        ) from None
    chosen = select_hf_files(files, config_name, split)
    if not chosen:
        return None
    log.info("source %r: %d file(s) of %s: %s", name, len(chosen), dataset_id, ", ".join(chosen))
    tables = []
    for path in chosen:
        try:
            local = huggingface_hub.hf_hub_download(dataset_id, path, repo_type="dataset", revision=revision)
        except Exception as err:  # as above
            raise SeedError(f"source {name!r}: cannot download {path} of {dataset_id!r} ({err}); {hint}") from None
        tables.append(_Table(Path(local), _hf_format(path) or "jsonl", path if len(chosen) > 1 else ""))
    return tables


def _no_hf_files(name: str, source: dict[str, Any]) -> SeedError:
    where = f"config {source.get('config_name')!r}, " if source.get("config_name") else ""
    return SeedError(
        f"source {name!r}: found no parquet or JSON Lines files for {where}split {source.get('split', 'train')!r} "
        f"in dataset {source.get('dataset')!r}; check 'config_name' and 'split', install the 'datasets' package "
        f"to use its loader, or {_download_hint(source['dataset'], source.get('config_name'))}"
    )


def _datasets_rows(
    name: str,
    source: dict[str, Any],
    required: Sequence[str],
    optional: Sequence[str],
    settings: SeedSettings,
    rng: random.Random,
    tally: Tally,
) -> Iterator[tuple[_Table, int, dict[str, Any]]]:
    """The fallback for layouts ``select_hf_files`` does not know: the ``datasets`` loader."""
    import datasets

    dataset_id = source["dataset"]
    try:
        data = datasets.load_dataset(dataset_id, source.get("config_name"), split=source.get("split", "train"))
    except Exception as err:  # the library raises many types; all mean "cannot load"
        raise SeedError(f"source {name!r}: cannot load dataset {dataset_id!r} ({err})") from None
    for column in required:
        if column not in data.column_names:
            raise SeedError(f"source {name!r}: dataset {dataset_id!r} has no column {column!r}")
    data = data.select_columns([c for c in dict.fromkeys((*required, *optional)) if c in data.column_names])
    tally.files_seen += len(data)
    table = _Table(Path(dataset_id), "datasets")
    for index in _cap(list(range(len(data))), settings.max_files, rng, tally):
        yield table, index + 1, data[index]


def _source_rows(
    source: dict[str, Any],
    required: Sequence[str],
    optional: Sequence[str],
    settings: SeedSettings,
    rng: random.Random,
    tally: Tally,
) -> Iterator[tuple[_Table, int, dict[str, Any]]]:
    """The rows of a table source: jsonl, parquet or hf."""
    name, kind = source["name"], source["type"]
    if kind in ("jsonl", "parquet"):
        if not source.get("path"):
            raise SeedError(f"source {name!r}: type {kind!r} needs 'path'")
        tables = [_Table(Path(source["path"]), kind)]
    else:
        found = _hf_tables(name, source)
        if found is None:
            if not _datasets_available():
                raise _no_hf_files(name, source)
            return _datasets_rows(name, source, required, optional, settings, rng, tally)
        tables = found
    return _table_rows(name, tables, required, optional, settings, rng, tally)


def _row_documents(
    name: str, rows: Iterator[tuple[_Table, int, dict[str, Any]]], column: str, settings: SeedSettings, tally: Tally
) -> Iterator[_Document]:
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


def _documents(source: dict[str, Any], settings: SeedSettings, seed: int, tally: Tally) -> Iterator[_Document]:
    name, kind = source["name"], source["type"]
    rng = random.Random(f"{seed}:files:{name}")
    column = source.get("column", "old_contents")
    if kind == "directory" and not source.get("path"):
        raise SeedError(f"source {name!r}: type {kind!r} needs 'path'")
    if kind == "stdlib":
        root = Path(sysconfig.get_paths()["stdlib"])
        documents = _directory_documents(name, root, ["**/*.py"], source.get("exclude", []), settings, rng, tally)
        return (replace(doc, licence=doc.licence or STDLIB_LICENCE) for doc in documents)
    if kind == "directory":
        include = source.get("include", ["**/*.py"])
        return _directory_documents(
            name, Path(source["path"]), include, source.get("exclude", []), settings, rng, tally
        )
    rows = _source_rows(source, [column], (*FILE_NAME_COLUMNS, *LICENCE_COLUMNS), settings, rng, tally)
    return _row_documents(name, rows, column, settings, tally)


# ---------------------------------------------------------------- snippets


def _docstring_lines(statements: Sequence[pysyntax.Statement]) -> set[int]:
    """The lines of lone strings among ``statements`` and of the docstrings of the definitions among them."""
    lines: set[int] = set()
    for statement in statements:
        if pysyntax.is_string_statement(statement):
            lines.update(range(statement.start, statement.end + 1))
        body = statement.body()
        if body and pysyntax.is_string_statement(body[0]):
            lines.update(range(body[0].start, body[0].end + 1))
        if statement.definition.type == "class_definition":
            lines |= _docstring_lines(body[1:])
    return lines


def _is_test_code(statement: pysyntax.Statement) -> bool:
    name = statement.name
    return name.startswith("test") if statement.definition.type == "function_definition" else name.startswith("Test")


def _content_reason(
    text: str, statements: Sequence[pysyntax.Statement] | None, filters: SeedFilters, first_line: int = 1
) -> str | None:
    """Why a snippet is not worth a prompt (comments and docstrings, imports, data, boilerplate,
    test code), or None.

    ``statements`` are the snippet's statements, numbered from ``first_line``, or None
    where the text is not parseable on its own (a window cut mid-statement).
    """
    lines = text.split("\n")
    nonblank = [i for i, line in enumerate(lines, start=first_line) if line.strip()]
    comment = {i for i in nonblank if lines[i - first_line].lstrip().startswith("#")}
    comment |= _docstring_lines(statements or ())
    if filters.comments and len(comment & set(nonblank)) >= COMMENT_SHARE * len(nonblank):
        return "mostly_comments"
    if statements is None:
        code = [lines[i - first_line].lstrip() for i in nonblank if i not in comment]
        only_imports = all(line.startswith(("import ", "from ")) for line in code)
        return "import_only" if filters.import_only and only_imports else None
    if filters.main_guard and any(pysyntax.is_main_guard(statement) for statement in statements):
        return "main_guard"
    if filters.type_checking and any(pysyntax.is_type_checking_block(statement) for statement in statements):
        return "type_checking"
    if filters.tests and any(_is_test_code(statement) for statement in statements):
        return "test_code"
    if filters.import_only and all(statement.kind in pysyntax.IMPORTS for statement in statements):
        return "import_only"
    if filters.import_only and all(pysyntax.is_data(statement) for statement in statements):
        return "data_only"
    return None


@dataclass(frozen=True)
class _Span:
    start: int  # 1-based, inclusive
    end: int
    kind: str
    statements: tuple[pysyntax.Statement, ...]


def _span(statements: Sequence[pysyntax.Statement], kind: str) -> _Span:
    return _Span(statements[0].start, statements[-1].end, kind, tuple(statements))


def _spans(body: Sequence[pysyntax.Statement], max_lines: int, in_class: bool) -> Iterator[_Span]:
    """Candidate units of a statement list; a class too long to fit yields its members."""
    run: list[pysyntax.Statement] = []
    for statement in body:
        definition = statement.definition.type
        if definition in pysyntax.DEFINITIONS or statement.kind in pysyntax.COMPOUND:
            if run:
                yield _span(run, "block")
                run = []
            if definition == "class_definition":
                span = _span([statement], "class")
                if span.end - span.start + 1 > max_lines:
                    yield from _spans(statement.body(), max_lines, in_class=True)
                    continue
                yield span
            elif definition == "function_definition":
                yield _span([statement], "method" if in_class else "function")
            else:
                yield _span([statement], "block")
        else:
            run.append(statement)
    if run:
        yield _span(run, "block")


def _length_reason(lines: Sequence[str], settings: SeedSettings) -> str | None:
    if len(lines) > settings.max_lines:
        return "too_long"
    if sum(1 for line in lines if line.strip()) < settings.min_lines:
        return "too_short"
    return None


@dataclass(frozen=True)
class _Origin:
    """A source as its snippets name it."""

    name: str
    repository: str


def _snippet(source: _Origin, doc: _Document, start: int, end: int, kind: str, text: str) -> Snippet:
    return Snippet(
        source=source.name,
        repository=source.repository,
        path=doc.path,
        start_line=start,
        end_line=end,
        kind=kind,
        licence=licence_of(doc.text, doc.licence),
        sha256=hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
        text=text,
    )


def _syntactic_snippets(
    source: _Origin, doc: _Document, module: pysyntax.Node, settings: SeedSettings, tally: Tally
) -> list[Snippet]:
    lines = doc.text.split("\n")
    found: list[Snippet] = []
    top = pysyntax.statements(module)
    header_end = _licence_header_end(lines, top) if settings.filters.licence_header else 0
    for span in _spans(top, settings.max_lines, in_class=False):
        selected = lines[span.start - 1 : span.end]
        reason = "licence_header" if span.start <= header_end else _length_reason(selected, settings)
        if reason is None:
            text = textwrap.dedent("\n".join(selected))
            reason = _content_reason(text, span.statements, settings.filters, span.start)
        if reason:
            tally.snippets_skipped[reason] += 1
            continue
        found.append(
            _snippet(source, doc, span.start, span.end, span.kind, text)
        )
    return found


def _statement_windows(
    statements: Sequence[pysyntax.Statement], draw: Callable[[], int], max_lines: int
) -> Iterator[tuple[int, int]]:
    """Non-overlapping runs of consecutive sibling statements, each ending before it would pass a
    length drawn anew for it; a statement longer than ``max_lines`` is entered, block by block.
    A run of siblings parses once dedented, wherever it sits."""
    start = end = 0
    target = draw()
    for statement in statements:
        if statement.end - statement.start + 1 > max_lines:
            if start:
                yield start, end
                start = 0
            for block in statement.blocks():
                yield from _statement_windows(block, draw, max_lines)
            continue
        if start and statement.end - start + 1 > target:
            yield start, end
            start = 0
        if not start:
            start, target = statement.start, draw()
        end = statement.end
    if start:
        yield start, end


def _line_windows(count: int, draw: Callable[[], int]) -> Iterator[tuple[int, int]]:
    """The paper's raw line windows, laid end to end: each as long as a length drawn for it."""
    start = 1
    while start <= count:
        end = min(count, start + draw() - 1)
        yield start, end
        start = end + 1


def _window_snippets(
    source: _Origin, doc: _Document, module: pysyntax.Node, settings: SeedSettings, seed: int, tally: Tally
) -> list[Snippet]:
    """As many windows as the file holds, without overlap, at most ``max_windows_per_file`` of them
    (a seeded sample, in file order). Windows are aligned to statements unless
    ``window_alignment: lines`` asks for raw line windows."""
    lines = doc.text.rstrip("\n").split("\n")
    rng = random.Random(f"{seed}:window:{source.name}:{doc.path}")  # independent of file order

    def draw() -> int:
        return rng.randint(settings.min_lines, settings.max_lines)

    if settings.window_alignment == "statements":
        spans = list(_statement_windows(pysyntax.statements(module), draw, settings.max_lines))
    else:
        spans = list(_line_windows(len(lines), draw))
    header_end = _licence_header_end(lines, pysyntax.statements(module))
    found: list[Snippet] = []
    for start, end in spans:
        window = lines[start - 1 : end]
        text = "\n".join(window)
        reason = "licence_header" if settings.filters.licence_header and start <= header_end else None
        reason = reason or _length_reason(window, settings)
        if reason is None:
            dedented = textwrap.dedent(text)  # a window inside a function parses once dedented
            reparsed = pysyntax.parse(dedented)
            statements = pysyntax.statements(reparsed) if reparsed is not None else None
            reason = _content_reason(dedented, statements, settings.filters)
        if reason:
            tally.snippets_skipped[reason] += 1
            continue
        found.append(_snippet(source, doc, start, end, "window", text))
    if len(found) > settings.max_windows_per_file:
        tally.snippets_skipped["over_max_windows_per_file"] += len(found) - settings.max_windows_per_file
        keep = sorted(rng.sample(range(len(found)), settings.max_windows_per_file))
        found = [found[i] for i in keep]
    return found


_LICENCE_WORDS = re.compile(r"licen[cs]e|copyright|spdx-license-identifier|\(c\) \d{4}", re.IGNORECASE)


def _licence_header_end(lines: Sequence[str], statements: Sequence[pysyntax.Statement]) -> int:
    """The last line of the file's licence header (its leading comments, and its docstring, when
    they name a licence or a copyright), or 0 where it has none."""
    end = 0
    while end < len(lines) and (not lines[end].strip() or lines[end].lstrip().startswith("#")):
        end += 1
    if statements and pysyntax.is_string_statement(statements[0]) and statements[0].start <= end + 1:
        end = statements[0].end
    return end if _LICENCE_WORDS.search("\n".join(lines[:end])) else 0


def _file_reason(doc: _Document, filters: SeedFilters) -> str | None:
    head = "\n".join(doc.text.split("\n", GENERATED_HEAD_LINES)[:GENERATED_HEAD_LINES])
    return "generated" if filters.generated and GENERATED_MARK.search(head) else None


def _normalised(text: str) -> str:
    """The text as the duplicate check sees it: its tokens, without comments, with literals blanked.

    Blanking string and number literals also catches templated boilerplate,
    such as the same codec class in a hundred encoding modules. A regular
    expression stands in for the tokenizer: several times faster, and exact
    enough for this.
    """
    blanked = _LITERAL_OR_COMMENT.sub(lambda m: "" if m.group(0).startswith("#") else " 0 ", text)
    return " ".join(_WORD_OR_SYMBOL.findall(blanked))


def _checked(sources: list[dict[str, Any]], settings: dict[str, Any] | SeedSettings) -> SeedSettings:
    """The settings, once every source has a name and a known type."""
    if not sources:
        raise SeedError("seeds.sources: at least one source is needed")
    for source in sources:
        if not source.get("name") or source.get("type") not in SOURCE_TYPES:
            raise SeedError(f"seeds.sources: each source needs a 'name' and a 'type' in {SOURCE_TYPES}: {source!r}")
    return settings if isinstance(settings, SeedSettings) else SeedSettings.from_dict(settings)


def _files_within_limits(source: dict[str, Any], settings: SeedSettings, enough: int) -> int | None:
    """How many of the source's files (or rows) pass the checks that need no parsing, counted up
    to ``enough``; None where that is unknown before the rows are downloaded (an ``hf`` source)."""
    name, kind = source["name"], source["type"]
    cap = settings.max_files or enough
    if kind in ("stdlib", "directory"):
        if kind == "directory" and not source.get("path"):
            raise SeedError(f"source {name!r}: type {kind!r} needs 'path'")
        root = Path(source["path"]) if kind == "directory" else Path(sysconfig.get_paths()["stdlib"])
        include = source.get("include", ["**/*.py"]) if kind == "directory" else ["**/*.py"]
        found = 0
        for rel in _directory_listing(name, root, include, source.get("exclude", [])):
            if found >= min(enough, cap):
                break
            found += bool(_path_reason(rel, settings.filters) is None and _small_enough(root / rel, settings))
        return found
    if kind == "jsonl" and source.get("path"):
        path, limit, found = Path(source["path"]), _max_row_bytes(settings), 0
        if not path.is_file():
            raise SeedError(f"source {name!r}: {path} is not a file")
        try:
            with _open_lines(path) as handle:
                for line in handle:
                    if found >= min(enough, cap):
                        break
                    found += bool(line.strip() and len(line) <= limit)
        except (OSError, EOFError) as err:
            raise SeedError(f"source {name!r}: cannot read {path} ({err})") from None
        return found
    return None


def check_sources(sources: list[dict[str, Any]], settings: dict[str, Any] | SeedSettings) -> None:
    """Fail before any file is parsed when the sources cannot make pairs: snippets of two
    different files are needed, and fewer than two files are readable within the limits."""
    config = _checked(sources, settings)
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


def collect_snippets(
    sources: list[dict[str, Any]], settings: dict[str, Any] | SeedSettings, seed: int
) -> tuple[list[Snippet], dict[str, Any]]:
    """All unique usable snippets of the sources, in a fixed order, and the statistics.

    Raises SeedError for a source that is misconfigured, unreadable or yields
    no usable snippet.
    """
    config = _checked(sources, settings)
    total = Tally()
    per_source: dict[str, dict[str, Any]] = {}
    snippets: list[Snippet] = []
    seen: set[bytes] = set()
    duplicates = 0
    for source in sources:
        name, kind = source["name"], source["type"]
        origin = _Origin(name, source_repository(source))
        tally = Tally()
        found = 0
        licences: Counter[str] = Counter()
        for doc in _documents(source, config, seed, tally):
            reason = _file_reason(doc, config.filters)
            tree = pysyntax.parse(doc.text) if reason is None else None
            if reason is not None or tree is None:
                tally.files_skipped[reason or "syntax_error"] += 1
                continue
            tally.files_used += 1
            if config.snippet_mode == "syntactic":
                cut = _syntactic_snippets(origin, doc, tree, config, tally)
            else:
                cut = _window_snippets(origin, doc, tree, config, seed, tally)
            tally.snippets_found += len(cut)
            for snippet in cut:
                key = hashlib.sha1(_normalised(snippet["text"]).encode("utf-8", "surrogatepass")).digest()
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
                snippets.append(snippet)
                licences[snippet["licence"] or "unstated"] += 1
                found += 1
        if not found:
            reasons = dict(tally.files_skipped + tally.snippets_skipped)
            raise SeedError(
                f"no usable snippets in source {name!r} "
                f"({tally.files_seen} files seen, {tally.files_used} used; skipped: {reasons or 'none'})"
            )
        per_source[name] = {
            "type": kind,
            "repository": origin.repository,
            "files_seen": tally.files_seen,
            "files_used": tally.files_used,
            "snippets": found,
            "licences": dict(licences.most_common()),  # snippets per licence, as the files or the source state it
        }
        total.add(tally)
    stats = {
        "seed": seed,
        "snippet_mode": config.snippet_mode,
        "sources": per_source,
        "files_seen": total.files_seen,
        "files_used": total.files_used,
        "files_skipped": dict(sorted(total.files_skipped.items())),
        "snippets_found": total.snippets_found,
        "snippets_skipped": dict(sorted(total.snippets_skipped.items())),
        "malformed_lines": total.malformed_lines,
        "duplicates_removed": duplicates,
        "snippets": len(snippets),
        "snippets_by_kind": dict(sorted(Counter(s["kind"] for s in snippets).items())),
    }
    return snippets, stats


# ---------------------------------------------------------------- pairs


def _pair_indices(
    groups: list[list[int]], count: int, rng: random.Random, max_reuse: int | None = None
) -> list[tuple[int, int]]:
    """``count`` distinct unordered pairs of items from two different groups, no item in more
    than ``max_reuse`` of them (fewer pairs where that cap, or the pairs possible, run out).

    Two groups are drawn uniformly, then one item from each. When the pairs
    wanted are a large share of all possible ones, all are listed and shuffled
    instead, which cannot stall on repeats. A pair the cap refuses is passed over.
    """
    sizes = [len(g) for g in groups]
    possible = (sum(sizes) ** 2 - sum(s * s for s in sizes)) // 2
    count = min(count, possible, max_reuse * sum(sizes) // 2 if max_reuse else possible)
    uses: Counter[int] = Counter()

    def fits(a: int, b: int) -> bool:
        return max_reuse is None or (uses[a] < max_reuse and uses[b] < max_reuse)

    pairs: list[tuple[int, int]] = []
    if 2 * count >= possible:
        every = [(a, b) for gi, ga in enumerate(groups) for gb in groups[gi + 1 :] for a in ga for b in gb]
        rng.shuffle(every)
        for a, b in every:
            if len(pairs) == count:
                break
            if fits(a, b):
                uses.update((a, b))
                pairs.append((a, b) if rng.random() < 0.5 else (b, a))
        return pairs
    seen: set[tuple[int, int]] = set()
    attempts = 0
    while len(pairs) < count and attempts < 50 * count + 1000:  # the cap can leave no pair to find
        attempts += 1
        ga, gb = rng.sample(groups, 2)
        a, b = rng.choice(ga), rng.choice(gb)
        key = (min(a, b), max(a, b))
        if key not in seen and fits(a, b):
            seen.add(key)
            uses.update((a, b))
            pairs.append((a, b))
    return pairs


def make_pairs(
    snippets: list[Snippet], count: int, fewshot_ids: Sequence[str], seed: int, max_reuse: int | None = None
) -> list[PairRecord]:
    """Pair records (without ``shard``) for ``count`` prompts, or fewer if fewer pairs exist
    (each snippet in at most ``max_reuse`` of them)."""
    by_file: dict[tuple[str, str], list[int]] = {}
    for index, snippet in enumerate(snippets):
        by_file.setdefault((snippet["source"], snippet["path"]), []).append(index)
    if len(by_file) < 2:
        raise SeedError(f"seeds: pairs need snippets from two different files; all {len(snippets)} come from one")
    if not fewshot_ids:
        raise SeedError("seeds: no few-shot examples to choose from")
    rng = random.Random(f"{seed}:pairs")
    chosen = _pair_indices(list(by_file.values()), count, rng, max_reuse)
    examples = random.Random(f"{seed}:fewshot")
    width = max(6, len(str(len(chosen) - 1)))
    return [
        PairRecord(
            id=f"p{i:0{width}d}",
            shard="",
            snippets=[snippets[a], snippets[b]],
            fewshot_id=examples.choice(list(fewshot_ids)),
        )
        for i, (a, b) in enumerate(chosen)
    ]


# ---------------------------------------------------------------- commits

COMMIT_COLUMNS = ("old_contents", "new_contents", "message")
COMMIT_OPTIONAL = ("commit", *FILE_NAME_COLUMNS)


def _commit_seed(
    name: str, table: _Table, number: int, row: dict[str, Any], settings: SeedSettings, tally: Tally
) -> CommitSeed | None:
    """One row's commit, checked; None (counted by reason) when it cannot seed a prompt."""
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
    if any("\x00" in v or _not_utf8(v) for v in (old, new, message)):
        return skip("binary_or_not_utf8")
    file_name = next((row[c] for c in FILE_NAME_COLUMNS if isinstance(row.get(c), str) and row[c]), "")
    reason = _path_reason(file_name, settings.filters) if file_name else None
    if reason:
        return skip(reason)
    if max(len(old.encode("utf-8")), len(new.encode("utf-8"))) > settings.max_file_bytes:
        return skip("too_large")
    old, new = _commit_code(old), _commit_code(new)
    if old == new:
        return skip("identical")
    if max(old.count("\n"), new.count("\n")) + 1 > settings.max_code_lines:
        return skip("too_long")
    if _file_reason(_Document(label, old), settings.filters):
        return skip("generated")
    changed = added_removed_lines(unified_diff(old, new))
    if changed > settings.max_diff_lines:
        return skip("diff_too_large")
    same = pysyntax.same_code(old, new)
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
        message=message.strip().replace("\r\n", "\n").replace("\r", "\n"),
        old_code=old,
        new_code=new,
        changed_lines=changed,
    )


def _not_utf8(text: str) -> bool:
    """Whether ``text`` holds lone surrogates (from \\ud800-style escapes), which UTF-8 cannot encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _commit_code(text: str) -> str:
    """A file's contents as a commit record holds them: newlines normalised, no trailing blank space."""
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip()


def collect_commits(
    sources: list[dict[str, Any]], settings: dict[str, Any] | SeedSettings, seed: int
) -> tuple[list[CommitSeed], dict[str, Any]]:
    """All unique usable commits of the sources, in source order, and the statistics.

    Two commits are the same when they have the same hash and file, or the
    same code before and after (ignoring layout). Raises SeedError for a source
    that is not a table, is unreadable, lacks a commit column, or yields no
    usable commit.
    """
    config = _checked(sources, settings)
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
        for table, number, row in _source_rows(source, COMMIT_COLUMNS, COMMIT_OPTIONAL, config, rng, tally):
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


def _normalised_layout(text: str) -> str:
    """The text's tokens, comments and literals kept: what two copies of a file share whatever the spacing."""
    return " ".join(_WORD_OR_SYMBOL.findall(text))


def make_commit_records(
    commits: list[CommitSeed], count: int, fewshot_ids: Sequence[str], seed: int
) -> list[CommitRecord]:
    """Commit records (without ``shard``) for ``count`` prompts: a seeded sample, in source order."""
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


# ---------------------------------------------------------------- stage


def _shard(records: list[Any], shard_paths: list[PathLike], stems: list[str]) -> dict[str, int]:
    """Write record ``i`` to shard ``i % len(shard_paths)`` (round robin); return the counts."""
    shards: list[list[Any]] = [[] for _ in shard_paths]
    for index, record in enumerate(records):
        record["shard"] = stems[index % len(stems)]
        shards[index % len(stems)].append(record)
    for path, chunk in zip(shard_paths, shards):
        write_jsonl(path, [dict(record) for record in chunk])
    return {stem: len(chunk) for stem, chunk in zip(stems, shards)}


def run_seeds(
    sources: list[dict[str, Any]],
    settings: dict[str, Any],
    seed: int,
    shard_paths: list[PathLike],
    stats_path: PathLike,
) -> dict[str, Any]:
    """Write the seed records of every shard and the stats; return the stats.

    ``kind: snippets``: extract, deduplicate and pair snippets (pair records).
    ``kind: commits``: read, check and deduplicate commits (commit records).
    Record ``i`` goes to shard ``i % len(shard_paths)`` (round robin, so shards
    differ in size by at most one).
    """
    config = SeedSettings.from_dict(settings)
    if not shard_paths:
        raise SeedError("seeds: no shard files to write")
    if config.num_shards != len(shard_paths) and "num_shards" in settings:
        raise SeedError(f"seeds.num_shards is {config.num_shards} but {len(shard_paths)} shard files were given")
    stems = [Path(p).stem for p in shard_paths]
    if len(set(stems)) != len(stems):
        raise SeedError("seeds: shard file names must differ in their stems")
    if config.kind == "commits":
        commits, stats = collect_commits(sources, config, seed)
        records = make_commit_records(commits, config.num_prompts, sorted(load_fewshot()), seed)
        shards = _shard(records, shard_paths, stems)
        stats.update(commits_requested=config.num_prompts, commits=len(records), shards=shards)
        if len(records) < config.num_prompts:
            log.warning("only %d usable commits exist; %d were asked for", len(records), config.num_prompts)
        write_json(stats_path, stats)
        log.info("seeds: %d rows seen, %d commits", stats["files_seen"], len(records))
        return stats
    check_sources(sources, config)  # before any file is parsed
    snippets, stats = collect_snippets(sources, config, seed)
    pairs = make_pairs(snippets, config.num_prompts, sorted(load_fewshot()), seed, config.max_snippet_reuse)
    reuse = Counter(snippet["text"] for pair in pairs for snippet in pair["snippets"])
    stats.update(
        pairs_requested=config.num_prompts,
        pairs=len(pairs),
        max_snippet_reuse=config.max_snippet_reuse,
        most_reused_snippet=max(reuse.values(), default=0),
        shards=_shard(pairs, shard_paths, stems),
    )
    if len(pairs) < config.num_prompts:
        stats["pairs_short"] = (
            f"{len(pairs)} of {config.num_prompts} pairs: {len(snippets)} snippets, each in at most "
            f"{config.max_snippet_reuse} pairs (seeds.max_snippet_reuse); add sources or raise the cap"
        )
        log.warning("seeds: %s", stats["pairs_short"])
    write_json(stats_path, stats)
    log.info("seeds: %d files used, %d snippets, %d pairs", stats["files_used"], stats["snippets"], len(pairs))
    return stats
