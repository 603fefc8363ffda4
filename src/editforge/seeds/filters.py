"""The seeds stage's content filters: each returns the reason it skips a file or a snippet, or None.

Files are skipped, and counted by reason, when caught by a filter: test files
by path (``test_file``), generated and vendored files. Snippets are skipped,
and counted by reason, when they are too short (fewer than ``min_lines``
non-blank lines) or too long (more than ``max_lines`` lines), or caught by a
content filter: at least half comments and docstrings (``mostly_comments``),
the file's licence header (``licence_header``), a ``__main__`` guard
(``main_guard``), an ``if TYPE_CHECKING:`` block (``type_checking``), test
functions and classes by name (``test_code``), only imports (``import_only``)
or only literal data (``data_only``). Each filter has a switch under
``filters`` (``SeedFilters``), all on by default.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePosixPath

from editforge.pycode import syntax
from editforge.seeds.settings import Document, SeedFilters, SeedSettings

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
GENERATED_NAME = re.compile(r"(_pb2|_pb2_grpc|_generated)\.py$")
# Looked for in a file's first lines only: markers that tools write there. "Generated
# by/from" also occurs in prose, so it counts only when the line names a file.
GENERATED_MARK = re.compile(
    r"do not edit|auto-?generated|automatically generated|@generated"
    r"|generated (?:by|from|with|using)\b[^\n]*\.(?:py|txt|proto|json|xml|ya?ml|in)\b",
    re.IGNORECASE,
)
GENERATED_HEAD_LINES = 10
# Test code by its path: a folder of tests, or a file named as pytest and unittest find them.
TEST_DIRS = frozenset({"test", "tests", "testing"})
TEST_NAME = re.compile(r"^(test_.*|.*_test|conftest)\.py$")
_LICENCE_WORDS = re.compile(r"licen[cs]e|copyright|spdx-license-identifier|\(c\) \d{4}", re.IGNORECASE)


def path_reason(rel: str, filters: SeedFilters) -> str | None:
    """A skip reason known from the path alone."""
    parts = PurePosixPath(rel).parts
    if filters.vendored and any(part in VENDORED_DIRS for part in parts[:-1]):
        return "vendored"
    if filters.generated and parts and GENERATED_NAME.search(parts[-1]):
        return "generated"
    if filters.tests and parts and (any(part in TEST_DIRS for part in parts[:-1]) or TEST_NAME.match(parts[-1])):
        return "test_file"
    return None


def file_reason(doc: Document, filters: SeedFilters) -> str | None:
    """"generated" for a file whose first lines carry a generator's marker, else None."""
    head = "\n".join(doc.text.split("\n", GENERATED_HEAD_LINES)[:GENERATED_HEAD_LINES])
    return "generated" if filters.generated and GENERATED_MARK.search(head) else None


def _docstring_lines(statements: Sequence[syntax.Statement]) -> set[int]:
    """The lines of lone strings among ``statements`` and of the docstrings of the definitions among them."""
    lines: set[int] = set()
    for statement in statements:
        if syntax.is_string_statement(statement):
            lines.update(range(statement.start, statement.end + 1))
        body = statement.body()
        if body and syntax.is_string_statement(body[0]):
            lines.update(range(body[0].start, body[0].end + 1))
        if statement.definition.type == "class_definition":
            lines |= _docstring_lines(body[1:])
    return lines


def _is_test_code(statement: syntax.Statement) -> bool:
    name = statement.name
    return name.startswith("test") if statement.definition.type == "function_definition" else name.startswith("Test")


def content_reason(
    text: str, statements: Sequence[syntax.Statement] | None, filters: SeedFilters, first_line: int = 1
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
    if filters.main_guard and any(syntax.is_main_guard(statement) for statement in statements):
        return "main_guard"
    if filters.type_checking and any(syntax.is_type_checking_block(statement) for statement in statements):
        return "type_checking"
    if filters.tests and any(_is_test_code(statement) for statement in statements):
        return "test_code"
    if filters.import_only and all(statement.kind in syntax.IMPORTS for statement in statements):
        return "import_only"
    if filters.import_only and all(syntax.is_data(statement) for statement in statements):
        return "data_only"
    return None


def length_reason(lines: Sequence[str], settings: SeedSettings) -> str | None:
    """"too_long" past ``max_lines`` lines, "too_short" under ``min_lines`` non-blank ones, else None."""
    if len(lines) > settings.max_lines:
        return "too_long"
    if sum(1 for line in lines if line.strip()) < settings.min_lines:
        return "too_short"
    return None


def licence_header_end(lines: Sequence[str], statements: Sequence[syntax.Statement]) -> int:
    """The last line of the file's licence header (its leading comments, and its docstring, when
    they name a licence or a copyright), or 0 where it has none."""
    end = 0
    while end < len(lines) and (not lines[end].strip() or lines[end].lstrip().startswith("#")):
        end += 1
    if statements and syntax.is_string_statement(statements[0]) and statements[0].start <= end + 1:
        end = statements[0].end
    return end if _LICENCE_WORDS.search("\n".join(lines[:end])) else 0
