"""Python source read with tree-sitter: the current grammar, whatever interpreter runs the stage.

``ast`` parses only what the running Python knows, so on 3.11 a file with 3.12's generic
classes (``class Heap[T: Ord]:``) or 3.14's ``except A, B:`` would be a syntax error and
whether a file is a seed would depend on the interpreter. tree-sitter's Python grammar
accepts them all. Seeds, the syntax check on generated code and the reading of model
answers use this module; the execution check and the evaluation run code in the
interpreter, as they must.

A tree with an ``ERROR`` or ``MISSING`` node is a syntax error, and so is what the grammar
accepts but Python does not: Python 2's ``print`` and ``exec`` statements, an empty block
(``def f():`` with no body), and statements of one block that do not line up (an
unexpected indent, or a dedent to no enclosing level). Lines are 1-based.
"""

from __future__ import annotations

import ast
import re
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import tree_sitter_python
from tree_sitter import Language, Node, Parser, Query, QueryCursor

LANGUAGE = Language(tree_sitter_python.language())
_local = threading.local()  # a Parser is not safe to share between threads
_PYTHON2 = Query(LANGUAGE, "[(print_statement) (exec_statement)] @python2")
_BLOCKS = Query(LANGUAGE, "(block) @block")

DEFINITIONS = frozenset({"function_definition", "class_definition", "decorated_definition"})
COMPOUND = frozenset({
    "if_statement", "for_statement", "while_statement", "with_statement", "try_statement", "match_statement",
})
IMPORTS = frozenset({"import_statement", "import_from_statement", "future_import_statement"})
_STRINGS = frozenset({"string", "concatenated_string"})
_LITERALS = _STRINGS | {"integer", "float", "true", "false", "none", "ellipsis"}
_CONTAINERS = frozenset({"list", "tuple", "set", "dictionary", "parenthesized_expression"})


def _parser() -> Parser:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = Parser(LANGUAGE)
    return parser


def parse(text: str) -> Node | None:
    """The module node of ``text``, or None where it is not valid Python."""
    root = _parser().parse(text.encode("utf-8", "surrogatepass")).root_node
    if root.has_error or QueryCursor(_PYTHON2).captures(root) or not _lined_up(root, 0):
        return None
    for block in QueryCursor(_BLOCKS).captures(root).get("block", []):
        header = block.parent
        if header is None or not _lined_up(block, header.start_point.column + 1, header.start_point.row):
            return None
    return root


def _lined_up(block: Node, least_column: int, header_row: int = -1) -> bool:
    """Whether a block's statements all start in one column, at ``least_column`` or right of it (the
    module's at column 0), as Python's indentation demands (a statement after a semicolon aside); a
    block on its header's line (``if x: y``) lines up with nothing. A block without a statement is no block."""
    children = [child for child in block.named_children if child.type != "comment"]
    if not children:
        return block.type == "module"
    if children[0].start_point.row == header_row:
        return all(child.start_point.row == header_row for child in children)
    # The first statement of each line: `a = 1; b = 2` puts a second one after the first.
    columns = {child.start_point.column for child, before in zip(children, [None, *children])
               if before is None or child.start_point.row > before.end_point.row}
    column = columns.pop()
    return not columns and (column == 0 if block.type == "module" else column >= least_column)


def is_valid(text: str) -> bool:
    return parse(text) is not None


@dataclass(frozen=True)
class Statement:
    """One statement: its kind (the tree-sitter node type) and lines, 1-based and inclusive."""

    node: Node

    @property
    def kind(self) -> str:
        return self.node.type

    @property
    def start(self) -> int:
        return self.node.start_point.row + 1

    @property
    def end(self) -> int:
        return self.node.end_point.row + 1

    @property
    def definition(self) -> Node:
        """The function or class a decorated definition wraps; the node itself otherwise."""
        if self.node.type == "decorated_definition":
            inner = self.node.child_by_field_name("definition")
            if inner is not None:
                return inner
        return self.node

    @property
    def name(self) -> str:
        """The name a definition binds ('' for other statements)."""
        name = self.definition.child_by_field_name("name")
        return _text(name) if name is not None and self.definition.type in DEFINITIONS else ""

    def body(self) -> list[Statement]:
        """The statements of a class or function body (none for other statements)."""
        block = self.definition.child_by_field_name("body")
        return statements(block) if block is not None and self.definition.type in DEFINITIONS else []

    def blocks(self) -> list[list[Statement]]:
        """The statements of each block directly in this one: a body, each ``elif``/``else``/``except``/
        ``finally``/``case`` clause; none for a simple statement."""
        found: list[list[Statement]] = []
        pending = list(self.definition.children)
        while pending:
            node = pending.pop(0)
            if node.type == "block" and not any(child.type == "case_clause" for child in node.children):
                found.append(statements(node))
            else:
                pending[:0] = node.children  # clauses (a match's cases too) hold their blocks one level down
        return found


def statements(node: Node) -> list[Statement]:
    """The statements directly inside a module or block, comments left out."""
    return [Statement(child) for child in node.named_children if child.type != "comment"]


def _text(node: Node) -> str:
    return (node.text or b"").decode("utf-8", "surrogatepass")


def _only_child(node: Node) -> Node | None:
    children = [child for child in node.named_children if child.type != "comment"]
    return children[0] if len(children) == 1 else None


def is_string_statement(statement: Statement) -> bool:
    """A string on its own, as a docstring is."""
    child = _only_child(statement.node) if statement.kind == "expression_statement" else None
    return child is not None and child.type in _STRINGS


def is_literal(node: Node) -> bool:
    if node.type in _LITERALS:
        return True
    if node.type == "unary_operator":
        operand = node.child_by_field_name("argument")
        return operand is not None and is_literal(operand)
    if node.type in _CONTAINERS:
        return all(is_literal(child) for child in node.named_children if child.type != "comment")
    if node.type == "pair":
        return all(is_literal(child) for child in node.named_children)
    return False


def is_data(statement: Statement) -> bool:
    """An import, ``pass``, a lone string, or a name bound to a literal (annotated or not)."""
    if statement.kind in IMPORTS or statement.kind == "pass_statement" or is_string_statement(statement):
        return True
    child = _only_child(statement.node) if statement.kind == "expression_statement" else None
    if child is None or child.type != "assignment":
        return False
    value = child.child_by_field_name("right")
    return value is None or is_literal(value)  # `x: int` binds no value


def condition_text(statement: Statement) -> str:
    """The condition of an ``if`` statement as written, spaces squeezed ('' for other statements)."""
    if statement.kind != "if_statement":
        return ""
    condition = statement.node.child_by_field_name("condition")
    return " ".join(_text(condition).split()) if condition is not None else ""


def is_main_guard(statement: Statement) -> bool:
    """``if __name__ == "__main__":`` (either quote, either order)."""
    condition = condition_text(statement).replace("'", '"')
    return condition in ('__name__ == "__main__"', '"__main__" == __name__')


def is_type_checking_block(statement: Statement) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``."""
    return condition_text(statement) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def tokens(node: Node) -> Iterator[str]:
    """The source's tokens in order, comments left out, blocks marked (indentation is syntax):
    what two layouts of the same code share."""
    stack: list[Node | str] = [node]
    while stack:  # depth first, without recursion: generated code can nest deeply
        current = stack.pop()
        if isinstance(current, str):
            yield current
        elif current.type == "comment":
            continue
        elif current.type == "string":
            yield _string_token(_text(current))
        elif current.child_count == 0 or current.type in _STRINGS:
            yield _text(current)
        elif current.type == "block":
            stack.extend(["<end>", *reversed(current.children), "<block>"])  # popped in reverse
        else:
            stack.extend(reversed(current.children))


_STRING_PARTS = re.compile(r"""(?s)^([A-Za-z]*)('{3}|"{3}|'|")(.*)\2$""")


def _string_token(text: str) -> str:
    """A string literal by its prefix and body: the quotes it was written with do not count."""
    match = _STRING_PARTS.match(text)
    return f"{match.group(1).lower()}str:{match.group(3)}" if match else text


def same_code(a: str, b: str) -> bool | None:
    """Whether two programs are the same code, layout, comments and quoting aside (None if one is
    not valid Python): by the running interpreter's syntax tree where it parses both, which is
    also blind to redundant parentheses and trailing commas, else by their tokens."""
    tree_a, tree_b = parse(a), parse(b)
    if tree_a is None or tree_b is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes and the like are the code's business
            return ast.dump(ast.parse(a)) == ast.dump(ast.parse(b))
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # a newer Python's syntax
        return list(tokens(tree_a)) == list(tokens(tree_b))
