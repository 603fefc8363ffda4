"""Cutting seed snippets from parsed files, and the pass that collects them from every source.

Files are parsed with tree-sitter (``editforge.pycode.syntax``): the current
Python grammar (3.12 generics, 3.14 ``except A, B:``), whatever interpreter runs
the stage. ``snippet_mode: syntactic`` (default) cuts whole units: functions,
classes (a class too long to fit yields its methods instead) and top-level
blocks (a compound statement, or a run of simple statements). ``snippet_mode:
window`` cuts as many windows as a file holds, end to end and without overlap,
each as long as a length drawn uniformly from [min_lines, max_lines]: runs of
whole sibling statements (``window_alignment: statements``, the default; a
statement too long for a window is entered, block by block, and every window
parses once dedented), or the paper's raw line windows (``window_alignment:
lines``). A file keeps at most ``max_windows_per_file`` of them (a seeded
sample, in order).
"""

from __future__ import annotations

import hashlib
import random
import re
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from editforge.pycode import syntax
from editforge.records import Snippet
from editforge.seeds.filters import content_reason, file_reason, length_reason, licence_header_end
from editforge.seeds.provenance import licence_of, source_repository
from editforge.seeds.settings import Document, SeedError, SeedSettings, Tally, checked
from editforge.seeds.sources import documents

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
WORD_OR_SYMBOL = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class _Span:
    start: int  # 1-based, inclusive
    end: int
    kind: str
    statements: tuple[syntax.Statement, ...]


def _span(statements: Sequence[syntax.Statement], kind: str) -> _Span:
    return _Span(statements[0].start, statements[-1].end, kind, tuple(statements))


def _spans(body: Sequence[syntax.Statement], max_lines: int, in_class: bool) -> Iterator[_Span]:
    """Candidate units of a statement list; a class too long to fit yields its members."""
    run: list[syntax.Statement] = []
    for statement in body:
        definition = statement.definition.type
        if definition in syntax.DEFINITIONS or statement.kind in syntax.COMPOUND:
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


@dataclass(frozen=True)
class _Origin:
    """A source as its snippets name it."""

    name: str
    repository: str


def _snippet(source: _Origin, doc: Document, start: int, end: int, kind: str, text: str) -> Snippet:
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
    source: _Origin, doc: Document, module: syntax.Node, settings: SeedSettings, tally: Tally
) -> list[Snippet]:
    lines = doc.text.split("\n")
    found: list[Snippet] = []
    top = syntax.statements(module)
    header_end = licence_header_end(lines, top) if settings.filters.licence_header else 0
    for span in _spans(top, settings.max_lines, in_class=False):
        selected = lines[span.start - 1 : span.end]
        reason = "licence_header" if span.start <= header_end else length_reason(selected, settings)
        if reason is None:
            text = textwrap.dedent("\n".join(selected))
            reason = content_reason(text, span.statements, settings.filters, span.start)
        if reason:
            tally.snippets_skipped[reason] += 1
            continue
        found.append(_snippet(source, doc, span.start, span.end, span.kind, text))
    return found


def _statement_windows(
    statements: Sequence[syntax.Statement], draw: Callable[[], int], max_lines: int
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
    source: _Origin, doc: Document, module: syntax.Node, settings: SeedSettings, seed: int, tally: Tally
) -> list[Snippet]:
    """As many windows as the file holds, without overlap, at most ``max_windows_per_file`` of them
    (a seeded sample, in file order). Windows are aligned to statements unless
    ``window_alignment: lines`` asks for raw line windows."""
    lines = doc.text.rstrip("\n").split("\n")
    rng = random.Random(f"{seed}:window:{source.name}:{doc.path}")  # independent of file order

    def draw() -> int:
        return rng.randint(settings.min_lines, settings.max_lines)

    if settings.window_alignment == "statements":
        spans = list(_statement_windows(syntax.statements(module), draw, settings.max_lines))
    else:
        spans = list(_line_windows(len(lines), draw))
    header_end = licence_header_end(lines, syntax.statements(module))
    found: list[Snippet] = []
    for start, end in spans:
        window = lines[start - 1 : end]
        text = "\n".join(window)
        reason = "licence_header" if settings.filters.licence_header and start <= header_end else None
        reason = reason or length_reason(window, settings)
        if reason is None:
            dedented = textwrap.dedent(text)  # a window inside a function parses once dedented
            reparsed = syntax.parse(dedented)
            statements = syntax.statements(reparsed) if reparsed is not None else None
            reason = content_reason(dedented, statements, settings.filters)
        if reason:
            tally.snippets_skipped[reason] += 1
            continue
        found.append(_snippet(source, doc, start, end, "window", text))
    if len(found) > settings.max_windows_per_file:
        tally.snippets_skipped["over_max_windows_per_file"] += len(found) - settings.max_windows_per_file
        keep = sorted(rng.sample(range(len(found)), settings.max_windows_per_file))
        found = [found[i] for i in keep]
    return found


def _normalised(text: str) -> str:
    """The text as the duplicate check sees it: its tokens, without comments, with literals blanked.

    Blanking string and number literals also catches templated boilerplate,
    such as the same codec class in a hundred encoding modules. A regular
    expression stands in for the tokenizer: several times faster, and exact
    enough for this.
    """
    blanked = _LITERAL_OR_COMMENT.sub(lambda m: "" if m.group(0).startswith("#") else " 0 ", text)
    return " ".join(WORD_OR_SYMBOL.findall(blanked))


def collect_snippets(
    sources: list[dict[str, Any]], settings: dict[str, Any] | SeedSettings, seed: int
) -> tuple[list[Snippet], dict[str, Any]]:
    """All unique usable snippets of the sources, in a fixed order, and the statistics.

    Duplicate snippets are removed before pairing: two snippets are the same when their tokens are,
    ignoring layout, comments and the values of literals (which also catches templated boilerplate).
    Each snippet keeps its provenance (``editforge.seeds.provenance``): the source and where its code
    comes from, the path and lines, the licence its file, package or row states, and a sha256 of its
    text; the stats count each source's snippets per licence. Raises SeedError for a source that is
    misconfigured, unreadable or yields no usable snippet.
    """
    config = checked(sources, settings)
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
        for doc in documents(source, config, seed, tally):
            reason = file_reason(doc, config.filters)
            tree = syntax.parse(doc.text) if reason is None else None
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
