"""Static checks of both programs of a triplet: undefined names, missing imports, leftover markup, code left out.

``static_issues`` finds, for each record, the first issue in this order: the pre-edit program's,
then the post-edit program's, each checked for leftover markup, truncated code, a missing import
and an undefined name. Names come from ruff's pyflakes rules (``static_names``). A name the
pre-edit program lacks but the post-edit program uses and defines is the bug the edit fixes (a
missing import added, a variable set), not a broken sample; the pre-edit program's other
undefined names count, those the post-edit program drops with the code that used them included.
Markup and placeholders are whole lines found by a regular expression, then confirmed with
tree-sitter to be a comment (or code), not text inside a string literal: a docstring may show a
markdown fence. A program of comments alone, prose where code should be, is truncated code too.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from tree_sitter import Node, Query, QueryCursor

from editforge.filtering.static_names import UndefinedName, undefined_names
from editforge.pycode import syntax

log = logging.getLogger(__name__)

# The switches of filtering.static_checks, in the order a program is checked.
CHECKS = ("leftover_markup", "truncated_code", "missing_imports", "undefined_names")
DEFAULT_STATIC_CHECKS: Mapping[str, bool] = MappingProxyType(dict.fromkeys(CHECKS, True))
# Each check's drop reason, after the program's name: pre_code_truncated, post_code_undefined_name, ...
REASONS = dict(zip(CHECKS, ("leftover_markup", "truncated", "missing_import", "undefined_name")))
PROGRAMS = ("pre_code", "post_code")

# ---------------------------------------------------------------- leftover markup

# A whole-line comment, or a bare `[Lazy]` / `[Descriptive]` (valid Python: a list of one name).
_LINE_TO_CHECK = re.compile(r"^[ \t]*(\#[^\r\n]*?|\[\w+\])[ \t\r]*$", re.MULTILINE)
# A fence (not a longer run of backticks, a rule), a think tag, `<UNREASONABLE>`.
_FENCE_OR_TAG = re.compile(r"`{3,5}[\w+#.-]*|[*_`\[]*(?:</?think>|<\s*unreasonable\s*>).*", re.I)
# The dialogue's section headers: the long names count however written, the short ones when decorated.
_SECTION = (
    r"(?:program|code)\s*\(?\s*(?:before|after)\s+(?:the\s+)?edit(?:ing)?\)?|(?:pre|post)[- ]?edit\s+(?:program|code)"
)
_SHORT_SECTION = r"(?:descriptive|lazy)(?:\s+(?:edit\s+)?instructions?)?"
# Headings of a model's answer around the code (when decorated: `## X`, `# **X**`, `# [X]`, `# X:`).
_ANSWER_HEADING = (
    r"explanation(?:\s+of\s+(?:the\s+)?changes)?|(?:key\s+|summary\s+of\s+(?:the\s+)?)?changes(?:\s+made)?"
    r"|what\s+changed|(?:the\s+)?(?:updated|modified|edited|revised|refactored|final|corrected|fixed|complete"
    r"|improved|new)\s+(?:python\s+)?(?:code|program|version|implementation|solution|script)"
)
_HEADING = re.compile(
    rf"(?P<open>\*\*|__)?\s*(?P<bracket>\[)?\s*(?:\d+[.)]\s*)?(?:(?P<long>{_SECTION})|(?P<short>{_SHORT_SECTION}"
    rf"|{_ANSWER_HEADING}))\s*(?(bracket)\])\s*(?P<colon>:)?\s*(?(open)(?:\*\*|__))\s*:?",
    re.IGNORECASE,
)
_HERE_IS = re.compile(
    r"(?:\*\*|__)?here(?:'s|\s+is)\s+(?:the|your)\s+(?:[\w,-]+\s+){0,3}(?:code|program|implementation|solution"
    r"|script|version)\b",
    re.IGNORECASE,
)
_BARE_SECTION = re.compile(r"\[(?:descriptive|lazy)\]", re.IGNORECASE)


def is_markup_comment(comment: str) -> bool:
    """Whether a comment is a markdown fence, a think tag, ``<UNREASONABLE>``, a dialogue section header
    (``# [Program After Edit]``) or an answer heading (``### Explanation``, ``# **Updated code:**``);
    ``# Helpers`` or ``## Constants`` is not."""
    marks = comment[: len(comment) - len(comment.lstrip("# \t"))]  # `# ## X` is a heading too
    hashes, body = marks.count("#"), comment[len(marks) :].strip()
    if _FENCE_OR_TAG.fullmatch(body) or _HERE_IS.match(body):
        return True
    heading = _HEADING.fullmatch(body)
    if heading is None:
        return False
    decorated = hashes > 1 or any(heading.group(part) for part in ("open", "bracket", "colon"))
    return bool(heading.group("long") or decorated)


# ---------------------------------------------------------------- truncated code

_CODE = (
    r"(?:code|methods?|functions?|implementation|logic|class(?:es)?|body|lines?|program|file|module|helpers?"
    r"|tests?|imports?)"
)
_KEPT = r"(?:unchanged|the\s+same|as\s+before|as\s+is|omitted|elided|not\s+shown|skipped|here|goes\s+here|go\s+here)"
# Whole comments (lower case, spaces squeezed, ellipses, brackets and end punctuation stripped) that stand
# for code left out; a real comment such as `# keep the order unchanged` names no code and matches none.
_PLACEHOLDERS = re.compile(
    rf"(?:the\s+)?rest\s+of\s+(?:the\s+)?(?:\w+\s+)?{_CODE}(?:\s+(?:remains?|stays?|is|are))?(?:\s+{_KEPT})?"
    rf"|(?:the\s+|your\s+)?(?:other|remaining|existing|previous|original|unchanged)\s+(?:\w+\s+)?{_CODE}"
    rf"(?:\s+(?:remains?|stays?|is|are))?\s+{_KEPT}(?:\s+from\s+(?:before|the\s+original))?"
    rf"|(?:(?:\w+\s+)?{_CODE}\s+)?(?:is\s+|remains\s+)?(?:the\s+)?(?:same|unchanged)\s+as\s+(?:before"
    r"|previously|the\s+original|original|in\s+the\s+original(?:\s+\w+)?)"
    rf"|(?:\w+\s+)?(?:{_CODE}|details?|content)\s+(?:omitted|elided|not\s+shown|left\s+out)"
    rf"|keep\s+(?:the\s+)?(?:existing|original|previous|rest\s+of\s+the)\s+{_CODE}(?:\s+{_KEPT})?"
    r"|unchanged|omitted|snip(?:ped)?",
    re.IGNORECASE,
)
_FOR_BREVITY = re.compile(r"\b(?:omitted|elided|truncated|skipped|removed|not\s+shown|left\s+out)\b.*\bbrevity\b", re.I)
_DECORATION = re.compile(r"[()\[\]<>*_…]|\.{2,}")  # brackets and ellipses inside a placeholder
# An ellipsis then code left out (`# ... existing code`), or code left out then an ellipsis (`# other methods ...`).
_LEFT_OUT = r"(?:the\s+)?(?:rest|remaining|existing|other|previous|same|unchanged|omitted|more|etc)\b"
_ELLIPSIS_PLACEHOLDER = re.compile(
    rf"^(?:\.{{3}}|…)[\s(\[]*(?:{_LEFT_OUT}|{_CODE}\b)|^{_LEFT_OUT}.*\b{_CODE}\b.*(?:\.{{3}}|…)$", re.IGNORECASE
)


def is_placeholder_comment(comment: str) -> bool:
    """Whether a whole-line comment stands for code left out: ``# ...``, ``# ... existing code ...``,
    ``# rest of the code remains unchanged``, ``# other methods omitted``, ``# same as before``,
    ``# implementation omitted``, ``# (unchanged)``, anything omitted "for brevity"."""
    body = comment.lstrip("#").strip()
    if body and not body.strip(".… "):  # dots alone, not a dotted rule
        return 3 <= body.count(".") <= 6 or body == "…"
    if _FOR_BREVITY.search(body) or _ELLIPSIS_PLACEHOLDER.search(body):
        return True
    squeezed = " ".join(_DECORATION.sub(" ", body).strip(".:;!- ").split())
    return _PLACEHOLDERS.fullmatch(squeezed) is not None


# A line that may end a stub body (`pass`, `...`, or a one-line `def f(): ...`).
_STUB_CANDIDATE = re.compile(r"(?:\bpass|\.\.\.)[ \t]*(?:#[^\n]*)?$", re.MULTILINE)
_FUNCTIONS = Query(syntax.LANGUAGE, "(function_definition) @function")
_IDENTIFIERS = Query(syntax.LANGUAGE, "(identifier) @name")
_SKIPPED_DECORATORS = re.compile(r"(?:abstractmethod|overload)\s*$")


@dataclass(frozen=True)
class Issue:
    """Why a triplet is dropped: its reason (``post_code_undefined_name``) and a line a person reads."""

    reason: str
    detail: str  # e.g. "post_code line 12: undefined name 'helper'"


def static_issues(
    records: Sequence[Mapping[str, Any]], switches: Mapping[str, bool] | None = None
) -> list[Issue | None]:
    """The first issue of each record's ``pre_code`` and ``post_code`` (None where there is none).

    ``switches`` maps the names of CHECKS to whether each runs; a name it lacks is on, None is all
    on (DEFAULT_STATIC_CHECKS). Ruff runs once, on both programs of every record without a pre-edit
    markup or truncation issue, and not at all when both of its checks are off.
    """
    enabled = _enabled(switches)
    issues = [_local_issue(record, "pre_code", enabled) for record in records]
    named = [index for index, issue in enumerate(issues) if issue is None]
    programs = [records[index][field] for index in named for field in PROGRAMS]
    names = undefined_names(programs) if programs and {"missing_imports", "undefined_names"} & enabled else []
    for position, index in enumerate(named):
        pre, post = names[2 * position : 2 * position + 2] or ([], [])
        unfixed = _unfixed(pre, post, records[index]["post_code"])
        issues[index] = (
            _name_issue("pre_code", unfixed, enabled)
            or _local_issue(records[index], "post_code", enabled)
            or _name_issue("post_code", post, enabled)
        )
    return issues


def _unfixed(pre: list[UndefinedName], post: list[UndefinedName], post_code: str) -> list[UndefinedName]:
    """The pre-edit program's undefined names that the edit does not fix: fixed is a name the post-edit
    program uses and defines (an import added, a variable set), not one it merely drops with its code."""
    if not pre:
        return []
    undefined, present = {found.name for found in post}, _Source(post_code).identifiers()
    return [found for found in pre if found.name in undefined or found.name not in present]


def _name_issue(field: str, names: list[UndefinedName], enabled: set[str]) -> Issue | None:
    """The program's first missing import, else its first undefined name, as the switches allow."""
    for check, missing_import in (("missing_imports", True), ("undefined_names", False)):
        found = next((name for name in names if (name.module is not None) == missing_import), None)
        if check in enabled and found is not None:
            return Issue(f"{field}_{REASONS[check]}", f"{field} line {found.row}: {found.what}")
    return None


def _enabled(switches: Mapping[str, bool] | None) -> set[str]:
    settings = dict(DEFAULT_STATIC_CHECKS) | dict(switches or {})
    unknown = sorted(set(settings) - set(CHECKS))
    if unknown:
        raise ValueError(f"filtering.static_checks: unknown check {unknown[0]!r}; the checks are {', '.join(CHECKS)}")
    return {name for name in CHECKS if settings[name]}


def _local_issue(record: Mapping[str, Any], field: str, enabled: set[str]) -> Issue | None:
    """The program's leftover markup or truncated code, found without ruff."""
    source = _Source(record[field])
    if "leftover_markup" in enabled and (found := source.first(_is_markup_line, "leftover markup")):
        return Issue(f"{field}_{REASONS['leftover_markup']}", f"{field} {found}")
    if "truncated_code" in enabled:
        found = "no statement, only comments" if source.only_comments() else None
        found = found or source.first(is_placeholder_comment, "placeholder comment")
        if found is None and field == "post_code":
            found = _stubbed_body(_Source(record["pre_code"]), source)
        if found is not None:
            return Issue(f"{field}_{REASONS['truncated_code']}", f"{field} {found}")
    return None


class _Source:
    """A program, parsed by tree-sitter only when a line asks for it."""

    def __init__(self, code: str) -> None:
        self.code = code

    @functools.cached_property
    def root(self) -> Node | None:
        return syntax.parse(self.code)

    def only_comments(self) -> bool:
        """Whether the program is prose in comments: valid Python without one statement."""
        return self.root is not None and not syntax.statements(self.root)

    def identifiers(self) -> set[str]:
        """Every name the program uses or binds (empty where it is not Python)."""
        if self.root is None:
            return set()
        return {_text(node) for node in QueryCursor(_IDENTIFIERS).captures(self.root).get("name", [])}

    def first(self, looks_like: Callable[[str], bool], what: str) -> str | None:
        """'line N: <what> <line>' for the first whole-line comment (or bare ``[Lazy]``) that ``looks_like``
        accepts and tree-sitter confirms: a comment that is one, code that is not inside a string."""
        for match in _LINE_TO_CHECK.finditer(self.code):
            line = match.group(1)
            if not looks_like(line) or self.root is None:  # not Python: the syntax check's business
                continue
            row = self.code.count("\n", 0, match.start(1))
            column = match.start(1) - self.code.rfind("\n", 0, match.start(1)) - 1  # after spaces and tabs: bytes
            node = self.root.descendant_for_point_range((row, column), (row, column))
            if node is not None and (node.type == "comment" if line[0] == "#" else not _in_string(node)):
                return f"line {row + 1}: {what} {_quote(line)}"
        return None


def _is_markup_line(line: str) -> bool:
    return is_markup_comment(line) if line[0] == "#" else _BARE_SECTION.fullmatch(line) is not None


def _in_string(node: Node | None) -> bool:
    while node is not None:
        if node.type in ("string", "concatenated_string"):
            return True
        node = node.parent
    return False


def _stubbed_body(pre: _Source, post: _Source) -> str | None:
    """'line N: body of <name> cut to ...' for a post-edit function whose body is only ``...`` or ``pass``
    (a docstring aside) where the pre-edit function of the same qualified name had a real body."""
    if not ("pass" in post.code or "..." in post.code) or not _STUB_CANDIDATE.search(post.code):
        return None
    if pre.root is None or post.root is None:
        return None
    before = _functions(pre.root)
    for name, function in _functions(post.root).items():
        stub = _stub(function)
        if stub and name in before and _stub(before[name]) is None and not _decorated_away(function):
            return f"line {function.start_point.row + 1}: body of {name!r} cut to {stub!r}"
    return None


def _functions(root: Node) -> dict[str, Node]:
    """Functions by qualified name (``Class.method``, ``outer.inner``); the last definition of a name wins."""
    found: dict[str, Node] = {}
    for function in QueryCursor(_FUNCTIONS).captures(root).get("function", []):
        names, node = [], function
        while node is not None:
            if node.type in ("function_definition", "class_definition") and (name := node.child_by_field_name("name")):
                names.append(_text(name))
            node = node.parent
        found[".".join(reversed(names))] = function
    return dict(sorted(found.items(), key=lambda item: item[1].start_byte))


def _stub(function: Node) -> str | None:
    """'...' or 'pass' when the function's body, a docstring aside, is only that; '' for a docstring
    alone; None for a real body."""
    body = function.child_by_field_name("body")
    statements = syntax.statements(body) if body is not None else []
    if statements and syntax.is_string_statement(statements[0]):
        statements = statements[1:]
    kinds = set()
    for statement in statements:
        if statement.kind == "pass_statement":
            kinds.add("pass")
        elif statement.kind == "expression_statement" and statement.node.named_children[0].type == "ellipsis":
            kinds.add("...")
        else:
            return None
    return "..." if "..." in kinds else "pass" if kinds else ""


def _decorated_away(function: Node) -> bool:
    """An ``@abstractmethod`` or ``@overload`` has a stub body by design."""
    decorators = function.parent.children if function.parent and function.parent.type == "decorated_definition" else []
    return any(_SKIPPED_DECORATORS.search(_text(node)) for node in decorators if node.type == "decorator")


def _text(node: Node) -> str:
    return (node.text or b"").decode("utf-8", "surrogatepass")


def _quote(line: str, limit: int = 60) -> str:
    return repr(line if len(line) <= limit else line[: limit - 1] + "…")
