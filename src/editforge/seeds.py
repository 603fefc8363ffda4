"""Stage 1: cut seed snippets from real Python code and pair them for synthesis.

The reference cuts a random 5-15 line window from each of two random commits,
with no content check, so many prompts are seeded with licence headers, import
lists or blank lines, and the same pair can recur. Here:

* ``snippet_mode: syntactic`` (default) cuts whole units with ``ast``: functions,
  classes (a class too long to fit yields its methods instead) and top-level
  blocks (a compound statement, or a run of simple statements).
  ``snippet_mode: window`` is the paper's random window (length uniform in
  [min_lines, min(max_lines, n)], random start), retried a few times when the
  window fails the content checks below.
* Files are skipped, and counted by reason, when they are binary, not UTF-8,
  too large, generated, vendored or not valid Python 3.
* Snippets are skipped, and counted by reason, when they are too short (fewer
  than ``min_lines`` non-blank lines) or too long (more than ``max_lines``
  lines), mostly comments (licence headers), only imports, or only data.
* Duplicate snippets are removed before pairing: two snippets are the same when
  their tokens are, ignoring layout, comments and the values of literals (which
  also catches templated boilerplate).
* Each pair takes two snippets from two different files: two distinct files are
  drawn uniformly, then one snippet from each, so a file with many functions is
  not over-represented. No pair repeats. Everything is determined by ``seed``.
"""

from __future__ import annotations

import ast
import fnmatch
import gc
import hashlib
import json
import logging
import os
import random
import re
import sysconfig
import textwrap
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .records import PairRecord, Snippet, write_json, write_jsonl
from .synthesis import load_fewshot

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

SNIPPET_MODES = ("syntactic", "window")
SOURCE_TYPES = ("stdlib", "directory", "jsonl", "parquet", "hf")
WINDOW_TRIES = 5  # random windows tried per file before it is given up
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
COMPOUND = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try, ast.TryStar, ast.Match)
DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
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
class SeedSettings:
    snippet_mode: str = "syntactic"
    min_lines: int = 5
    max_lines: int = 15
    max_file_bytes: int = 300_000
    max_files: int | None = None  # per source; a seeded sample when there are more
    num_prompts: int = 100
    num_shards: int = 1

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> SeedSettings:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(settings) - known)
        if unknown:
            raise SeedError(f"seeds: unknown setting(s) {', '.join(unknown)}")
        made = cls(**settings)
        if made.snippet_mode not in SNIPPET_MODES:
            raise SeedError(f"seeds.snippet_mode: expected one of {SNIPPET_MODES}, got {made.snippet_mode!r}")
        for name in ("min_lines", "max_lines", "max_file_bytes", "num_prompts", "num_shards"):
            value = getattr(made, name)
            if not isinstance(value, int) or value < 1:
                raise SeedError(f"seeds.{name}: expected a positive integer, got {value!r}")
        if made.max_files is not None and (not isinstance(made.max_files, int) or made.max_files < 1):
            raise SeedError(f"seeds.max_files: expected a positive integer or null, got {made.max_files!r}")
        if made.min_lines > made.max_lines:
            raise SeedError("seeds.min_lines: must not exceed seeds.max_lines")
        return made


@dataclass
class Tally:
    """What the extraction saw and why it skipped things."""

    files_seen: int = 0
    files_used: int = 0
    snippets_found: int = 0
    files_skipped: Counter[str] = field(default_factory=Counter)
    snippets_skipped: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Document:
    path: str  # inside the source: a relative file path or a row label
    text: str


# ---------------------------------------------------------------- sources


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    """fnmatch, where a leading ``**/`` may also match nothing."""
    return any(
        fnmatch.fnmatchcase(rel, p) or (p.startswith("**/") and fnmatch.fnmatchcase(rel, p[3:])) for p in patterns
    )


def _path_reason(rel: str) -> str | None:
    """A skip reason known from the path alone."""
    parts = PurePosixPath(rel).parts
    if any(part in VENDORED_DIRS for part in parts[:-1]):
        return "vendored"
    if parts and GENERATED_NAME.search(parts[-1]):
        return "generated"
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


def _directory_documents(
    name: str,
    root: Path,
    include: Sequence[str],
    exclude: Sequence[str],
    settings: SeedSettings,
    rng: random.Random,
    tally: Tally,
) -> Iterator[_Document]:
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
    listed.sort()
    tally.files_seen += len(listed)
    candidates = []
    for rel in listed:
        reason = _path_reason(rel)
        if reason:
            tally.files_skipped[reason] += 1
        else:
            candidates.append(rel)
    for rel in _cap(candidates, settings.max_files, rng, tally):
        path = root / rel
        try:
            if path.stat().st_size > settings.max_file_bytes:
                tally.files_skipped["too_large"] += 1
                continue
            data = path.read_bytes()
        except OSError:
            tally.files_skipped["unreadable"] += 1
            continue
        text = _decode(data)
        if text is None:
            tally.files_skipped["binary_or_not_utf8"] += 1
            continue
        yield _Document(rel, text)


def _row_document(label: str, value: Any, file_name: Any, settings: SeedSettings, tally: Tally) -> _Document | None:
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
    if "\x00" in value:
        tally.files_skipped["binary_or_not_utf8"] += 1
        return None
    if isinstance(file_name, str) and file_name:
        reason = _path_reason(file_name)
        if reason:
            tally.files_skipped[reason] += 1
            return None
        label = f"{label}: {file_name}"
    return _Document(label, value.replace("\r\n", "\n").replace("\r", "\n"))


def _jsonl_documents(
    name: str, path: Path, column: str, settings: SeedSettings, rng: random.Random, tally: Tally
) -> Iterator[_Document]:
    if not path.is_file():
        raise SeedError(f"source {name!r}: {path} is not a file")
    with open(path, "rb") as handle:
        rows = [number for number, line in enumerate(handle, start=1) if line.strip()]
    tally.files_seen += len(rows)
    chosen = set(_cap(rows, settings.max_files, rng, tally))
    with_column = 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if number not in chosen:
                continue
            try:
                row = json.loads(line)
            except UnicodeDecodeError:
                tally.files_skipped["binary_or_not_utf8"] += 1
                continue
            except json.JSONDecodeError:
                tally.files_skipped["not_json"] += 1
                continue
            if not isinstance(row, dict):
                tally.files_skipped["not_json"] += 1
                continue
            if column not in row:
                tally.files_skipped["missing_column"] += 1
                continue
            with_column += 1
            file_name = next((row[c] for c in FILE_NAME_COLUMNS if isinstance(row.get(c), str)), None)
            document = _row_document(f"row {number}", row[column], file_name, settings, tally)
            if document:
                yield document
    if chosen and not with_column:
        raise SeedError(f"source {name!r}: no row of {path} has the column {column!r}")


def _table_documents(
    name: str,
    values: list[Any],
    file_names: list[Any] | None,
    settings: SeedSettings,
    rng: random.Random,
    tally: Tally,
) -> Iterator[_Document]:
    tally.files_seen += len(values)
    for index in _cap(list(range(len(values))), settings.max_files, rng, tally):
        file_name = file_names[index] if file_names else None
        document = _row_document(f"row {index + 1}", values[index], file_name, settings, tally)
        if document:
            yield document


def _parquet_columns(name: str, path: Path, column: str) -> tuple[list[Any], list[Any] | None]:
    import polars as pl

    if not path.is_file():
        raise SeedError(f"source {name!r}: {path} is not a file")
    try:
        scan = pl.scan_parquet(path)
        schema = scan.collect_schema()
        if column not in schema:
            raise SeedError(f"source {name!r}: {path} has no column {column!r} (columns: {', '.join(schema)})")
        name_column = next((c for c in FILE_NAME_COLUMNS if c in schema), None)
        table = scan.select([column] + ([name_column] if name_column else [])).collect()
    except (pl.exceptions.PolarsError, OSError) as err:
        raise SeedError(f"source {name!r}: cannot read {path} as parquet ({err})") from None
    return table[column].to_list(), table[name_column].to_list() if name_column else None


def _hf_columns(name: str, source: dict[str, Any], column: str) -> tuple[list[Any], list[Any] | None]:
    try:
        import datasets
    except ImportError:
        raise SeedError(
            f"source {name!r}: type 'hf' needs the 'datasets' package (pip install datasets), "
            "or export the data to a .jsonl/.parquet file and use type 'jsonl'/'parquet'"
        ) from None
    dataset_id = source.get("dataset")
    if not dataset_id:
        raise SeedError(f"source {name!r}: type 'hf' needs 'dataset'")
    try:
        data = datasets.load_dataset(dataset_id, source.get("config_name"), split=source.get("split", "train"))
    except Exception as err:  # the library raises many types; all mean "cannot load"
        raise SeedError(f"source {name!r}: cannot load dataset {dataset_id!r} ({err})") from None
    if column not in data.column_names:
        raise SeedError(f"source {name!r}: dataset {dataset_id!r} has no column {column!r}")
    name_column = next((c for c in FILE_NAME_COLUMNS if c in data.column_names), None)
    return data[column], data[name_column] if name_column else None


def _documents(source: dict[str, Any], settings: SeedSettings, seed: int, tally: Tally) -> Iterator[_Document]:
    name, kind = source["name"], source["type"]
    rng = random.Random(f"{seed}:files:{name}")
    column = source.get("column", "old_contents")
    if kind in ("directory", "jsonl", "parquet") and not source.get("path"):
        raise SeedError(f"source {name!r}: type {kind!r} needs 'path'")
    if kind == "stdlib":
        root = Path(sysconfig.get_paths()["stdlib"])
        return _directory_documents(name, root, ["**/*.py"], source.get("exclude", []), settings, rng, tally)
    if kind == "directory":
        include = source.get("include", ["**/*.py"])
        return _directory_documents(
            name, Path(source["path"]), include, source.get("exclude", []), settings, rng, tally
        )
    if kind == "jsonl":
        return _jsonl_documents(name, Path(source["path"]), column, settings, rng, tally)
    if kind == "parquet":
        values, names = _parquet_columns(name, Path(source["path"]), column)
    else:
        values, names = _hf_columns(name, source, column)
    return _table_documents(name, values, names, settings, rng, tally)


# ---------------------------------------------------------------- snippets


def _is_literal(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_is_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is None or _is_literal(k) for k in node.keys) and all(_is_literal(v) for v in node.values)
    if isinstance(node, ast.UnaryOp):
        return _is_literal(node.operand)
    return False


def _is_string_statement(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _is_data(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.Pass)) or _is_string_statement(node):
        return True
    if isinstance(node, ast.Assign):
        return _is_literal(node.value)
    if isinstance(node, ast.AnnAssign):
        return node.value is None or _is_literal(node.value)
    return False


def _content_reason(text: str, nodes: Sequence[ast.stmt] | None, first_line: int = 1) -> str | None:
    """Why a snippet is not worth a prompt (comments, imports, data), or None.

    ``nodes`` are the snippet's statements, numbered from ``first_line``, or
    None where the text is not parseable on its own (a window cut mid-statement).
    """
    lines = text.split("\n")
    nonblank = [i for i, line in enumerate(lines, start=first_line) if line.strip()]
    comment = {i for i in nonblank if lines[i - first_line].lstrip().startswith("#")}
    for node in nodes or ():
        if _is_string_statement(node):  # a docstring-like string at the snippet's top level
            comment.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    if len(comment & set(nonblank)) >= COMMENT_SHARE * len(nonblank):
        return "mostly_comments"
    if nodes is None:
        code = [lines[i - first_line].lstrip() for i in nonblank if i not in comment]
        return "import_only" if all(line.startswith(("import ", "from ")) for line in code) else None
    if all(isinstance(node, (ast.Import, ast.ImportFrom)) for node in nodes):
        return "import_only"
    if all(_is_data(node) for node in nodes):
        return "data_only"
    return None


def _parse(text: str) -> ast.Module | None:
    # The cyclic garbage collector runs many times while a big tree is built and
    # finds nothing (syntax trees hold no cycles); pausing it saves about a fifth.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes and the like in old code
            return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    finally:
        if collecting:
            gc.enable()


@dataclass(frozen=True)
class _Span:
    start: int  # 1-based, inclusive
    end: int
    kind: str
    nodes: tuple[ast.stmt, ...]


def _span(nodes: Sequence[ast.stmt], kind: str) -> _Span:
    first = nodes[0]
    decorators = getattr(first, "decorator_list", [])
    start = min([first.lineno] + [d.lineno for d in decorators])
    return _Span(start, nodes[-1].end_lineno or nodes[-1].lineno, kind, tuple(nodes))


def _spans(body: Sequence[ast.stmt], max_lines: int, in_class: bool) -> Iterator[_Span]:
    """Candidate units of a statement list; a class too long to fit yields its members."""
    run: list[ast.stmt] = []
    for node in body:
        if isinstance(node, DEFS + COMPOUND):
            if run:
                yield _span(run, "block")
                run = []
            if isinstance(node, ast.ClassDef):
                span = _span([node], "class")
                if span.end - span.start + 1 > max_lines:
                    yield from _spans(node.body, max_lines, in_class=True)
                    continue
                yield span
            elif isinstance(node, DEFS):
                yield _span([node], "method" if in_class else "function")
            else:
                yield _span([node], "block")
        else:
            run.append(node)
    if run:
        yield _span(run, "block")


def _length_reason(lines: Sequence[str], settings: SeedSettings) -> str | None:
    if len(lines) > settings.max_lines:
        return "too_long"
    if sum(1 for line in lines if line.strip()) < settings.min_lines:
        return "too_short"
    return None


def _syntactic_snippets(
    source: str, doc: _Document, tree: ast.Module, settings: SeedSettings, tally: Tally
) -> list[Snippet]:
    lines = doc.text.split("\n")
    found: list[Snippet] = []
    for span in _spans(tree.body, settings.max_lines, in_class=False):
        selected = lines[span.start - 1 : span.end]
        reason = _length_reason(selected, settings)
        if reason is None:
            text = textwrap.dedent("\n".join(selected))
            reason = _content_reason(text, span.nodes, span.start)
        if reason:
            tally.snippets_skipped[reason] += 1
            continue
        found.append(
            Snippet(source=source, path=doc.path, start_line=span.start, end_line=span.end, kind=span.kind, text=text)
        )
    return found


def _window_snippets(source: str, doc: _Document, settings: SeedSettings, seed: int, tally: Tally) -> list[Snippet]:
    lines = doc.text.rstrip("\n").split("\n")
    if len(lines) < settings.min_lines:
        tally.snippets_skipped["too_short"] += 1
        return []
    rng = random.Random(f"{seed}:window:{source}:{doc.path}")  # independent of file order
    for _ in range(WINDOW_TRIES):
        length = rng.randint(settings.min_lines, min(settings.max_lines, len(lines)))
        start = rng.randint(0, len(lines) - length)
        window = lines[start : start + length]
        text = "\n".join(window)
        reason = _length_reason(window, settings)
        if reason is None:
            dedented = textwrap.dedent(text)  # a window inside a function parses once dedented
            reparsed = _parse(dedented)
            reason = _content_reason(dedented, reparsed.body if reparsed else None)
        if reason is None:
            return [
                Snippet(
                    source=source,
                    path=doc.path,
                    start_line=start + 1,
                    end_line=start + length,
                    kind="window",
                    text=text,
                )
            ]
        tally.snippets_skipped[reason] += 1
    return []


def _file_reason(doc: _Document) -> str | None:
    head = "\n".join(doc.text.split("\n", GENERATED_HEAD_LINES)[:GENERATED_HEAD_LINES])
    return "generated" if GENERATED_MARK.search(head) else None


def _normalised(text: str) -> str:
    """The text as the duplicate check sees it: its tokens, without comments, with literals blanked.

    Blanking string and number literals also catches templated boilerplate,
    such as the same codec class in a hundred encoding modules. A regular
    expression stands in for the tokenizer: several times faster, and exact
    enough for this.
    """
    blanked = _LITERAL_OR_COMMENT.sub(lambda m: "" if m.group(0).startswith("#") else " 0 ", text)
    return " ".join(_WORD_OR_SYMBOL.findall(blanked))


def collect_snippets(
    sources: list[dict[str, Any]], settings: dict[str, Any] | SeedSettings, seed: int
) -> tuple[list[Snippet], dict[str, Any]]:
    """All unique usable snippets of the sources, in a fixed order, and the statistics.

    Raises SeedError for a source that is misconfigured, unreadable or yields
    no usable snippet.
    """
    config = settings if isinstance(settings, SeedSettings) else SeedSettings.from_dict(settings)
    if not sources:
        raise SeedError("seeds.sources: at least one source is needed")
    total = Tally()
    per_source: dict[str, dict[str, Any]] = {}
    snippets: list[Snippet] = []
    seen: set[bytes] = set()
    duplicates = 0
    for source in sources:
        name, kind = source.get("name"), source.get("type")
        if not name or kind not in SOURCE_TYPES:
            raise SeedError(f"seeds.sources: each source needs a 'name' and a 'type' in {SOURCE_TYPES}: {source!r}")
        tally = Tally()
        found = 0
        for doc in _documents(source, config, seed, tally):
            reason = _file_reason(doc)
            tree = _parse(doc.text) if reason is None else None
            if reason is not None or tree is None:
                tally.files_skipped[reason or "syntax_error"] += 1
                continue
            tally.files_used += 1
            if config.snippet_mode == "syntactic":
                cut = _syntactic_snippets(name, doc, tree, config, tally)
            else:
                cut = _window_snippets(name, doc, config, seed, tally)
            tally.snippets_found += len(cut)
            for snippet in cut:
                key = hashlib.sha1(_normalised(snippet["text"]).encode("utf-8", "surrogatepass")).digest()
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
                snippets.append(snippet)
                found += 1
        if not found:
            reasons = dict(tally.files_skipped + tally.snippets_skipped)
            raise SeedError(
                f"no usable snippets in source {name!r} "
                f"({tally.files_seen} files seen, {tally.files_used} used; skipped: {reasons or 'none'})"
            )
        per_source[name] = {
            "type": kind,
            "files_seen": tally.files_seen,
            "files_used": tally.files_used,
            "snippets": found,
        }
        total.files_seen += tally.files_seen
        total.files_used += tally.files_used
        total.snippets_found += tally.snippets_found
        total.files_skipped.update(tally.files_skipped)
        total.snippets_skipped.update(tally.snippets_skipped)
    stats = {
        "seed": seed,
        "snippet_mode": config.snippet_mode,
        "sources": per_source,
        "files_seen": total.files_seen,
        "files_used": total.files_used,
        "files_skipped": dict(sorted(total.files_skipped.items())),
        "snippets_found": total.snippets_found,
        "snippets_skipped": dict(sorted(total.snippets_skipped.items())),
        "duplicates_removed": duplicates,
        "snippets": len(snippets),
        "snippets_by_kind": dict(sorted(Counter(s["kind"] for s in snippets).items())),
    }
    return snippets, stats


# ---------------------------------------------------------------- pairs


def _pair_indices(groups: list[list[int]], count: int, rng: random.Random) -> list[tuple[int, int]]:
    """``count`` distinct unordered pairs of items from two different groups.

    Two groups are drawn uniformly, then one item from each. When the pairs
    wanted are a large share of all possible ones, all are listed and shuffled
    instead, which cannot stall on repeats.
    """
    sizes = [len(g) for g in groups]
    possible = (sum(sizes) ** 2 - sum(s * s for s in sizes)) // 2
    count = min(count, possible)
    if 2 * count >= possible:
        every = [(a, b) for gi, ga in enumerate(groups) for gb in groups[gi + 1 :] for a in ga for b in gb]
        rng.shuffle(every)
        return [(a, b) if rng.random() < 0.5 else (b, a) for a, b in every[:count]]
    pairs: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    while len(pairs) < count:
        ga, gb = rng.sample(groups, 2)
        a, b = rng.choice(ga), rng.choice(gb)
        key = (min(a, b), max(a, b))
        if key not in seen:
            seen.add(key)
            pairs.append((a, b))
    return pairs


def make_pairs(snippets: list[Snippet], count: int, fewshot_ids: Sequence[str], seed: int) -> list[PairRecord]:
    """Pair records (without ``shard``) for ``count`` prompts, or fewer if fewer pairs exist."""
    by_file: dict[tuple[str, str], list[int]] = {}
    for index, snippet in enumerate(snippets):
        by_file.setdefault((snippet["source"], snippet["path"]), []).append(index)
    if len(by_file) < 2:
        raise SeedError(f"seeds: pairs need snippets from two different files; all {len(snippets)} come from one")
    if not fewshot_ids:
        raise SeedError("seeds: no few-shot examples to choose from")
    rng = random.Random(f"{seed}:pairs")
    chosen = _pair_indices(list(by_file.values()), count, rng)
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


def run_seeds(
    sources: list[dict[str, Any]],
    settings: dict[str, Any],
    seed: int,
    shard_paths: list[PathLike],
    stats_path: PathLike,
) -> dict[str, Any]:
    """Extract, deduplicate and pair snippets; write the shard files and the stats.

    Pair ``i`` goes to shard ``i % len(shard_paths)`` (round robin, so shards
    differ in size by at most one). Returns the statistics written.
    """
    config = SeedSettings.from_dict(settings)
    if not shard_paths:
        raise SeedError("seeds: no shard files to write")
    if config.num_shards != len(shard_paths) and "num_shards" in settings:
        raise SeedError(f"seeds.num_shards is {config.num_shards} but {len(shard_paths)} shard files were given")
    stems = [Path(p).stem for p in shard_paths]
    if len(set(stems)) != len(stems):
        raise SeedError("seeds: shard file names must differ in their stems")
    snippets, stats = collect_snippets(sources, config, seed)
    pairs = make_pairs(snippets, config.num_prompts, sorted(load_fewshot()), seed)
    shards: list[list[PairRecord]] = [[] for _ in shard_paths]
    for index, pair in enumerate(pairs):
        pair["shard"] = stems[index % len(stems)]
        shards[index % len(stems)].append(pair)
    for path, records in zip(shard_paths, shards):
        write_jsonl(path, [dict(record) for record in records])
    if len(pairs) < config.num_prompts:
        log.warning("only %d distinct pairs exist; %d were asked for", len(pairs), config.num_prompts)
    stats.update(
        pairs_requested=config.num_prompts,
        pairs=len(pairs),
        shards={stem: len(records) for stem, records in zip(stems, shards)},
    )
    write_json(stats_path, stats)
    log.info("seeds: %d files used, %d snippets, %d pairs", stats["files_used"], stats["snippets"], len(pairs))
    return stats
