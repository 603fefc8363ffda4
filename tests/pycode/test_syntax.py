"""Python read by the current grammar whatever interpreter runs: modern syntax on 3.11, Python 2 refused."""

from __future__ import annotations

import sys

import pytest

from editforge.pycode import syntax

MODERN = {
    "3.12 generic class and type alias": "class Heap[T: (int, str)]:\n    def push[U](self, x: U) -> None: ...\n\n"
                                          "type Pair[K] = tuple[K, K]\n",
    "3.14 except without parentheses": "try:\n    pass\nexcept ValueError, TypeError:\n    pass\n",
    "match statement": "match x:\n    case [1, *rest]:\n        pass\n    case {'a': y} if y > 0:\n        pass\n",
    "walrus": "if (n := len(a)) > 10:\n    print(n)\n",
    "nested f-strings (3.12)": 'x = f"{"nested"} {f\'{y!r:>{w}}\'}"\n',
    "except star": "try:\n    pass\nexcept* ValueError:\n    pass\n",
}


@pytest.mark.parametrize("text", MODERN.values(), ids=MODERN.keys())
def test_modern_syntax_is_valid_whatever_the_interpreter(text: str) -> None:
    assert syntax.is_valid(text)


def test_this_interpreter_would_have_refused_some_of_them() -> None:
    if sys.version_info >= (3, 14):
        pytest.skip("this interpreter knows every form")
    refused = []
    for name, text in MODERN.items():
        try:
            compile(text, name, "exec")
        except SyntaxError:
            refused.append(name)
    assert "3.14 except without parentheses" in refused


BROKEN = {
    "syntax error": "def f(:\n    pass\n",
    "unclosed bracket": "x = (1,\n",
    "Python 2 print": "print 'hi'\n",
    "Python 2 exec": "exec 'x = 1'\n",
    # The grammar accepts these; Python does not.
    "empty body": "def f():\n    # nothing yet\n",
    "unexpected indent": "    x = 1\ny = 2\n",
    "body not indented": "def f():\nreturn 1\n",
    "dedent to no level": "if x:\n    pass\n  y = 1\n",
}


@pytest.mark.parametrize("text", BROKEN.values(), ids=BROKEN.keys())
def test_broken_python_2_and_misindented_code_is_invalid(text: str) -> None:
    assert not syntax.is_valid(text)


@pytest.mark.parametrize("text", [
    "if x: a(); b()\nc()\n",
    "def f(): return 1\n",
    "a = 1; b = 2\nif a:\n    c = 3; d = 4\n    e = 5\n",
    "x = [\n1,\n        2]\n",
    "def f():\n    return (1,\n  2)\n",
    "match x:\n    case 1:\n        a\n    case _:\n        b\n",
])
def test_layouts_python_accepts_are_valid(text: str) -> None:
    assert syntax.is_valid(text)


def test_statements_know_their_kind_lines_names_and_bodies() -> None:
    module = syntax.parse(
        '"""Doc."""\nimport os\nX: int\nY = {"a": (1, -2.0)}\nif TYPE_CHECKING:\n    import json\n\n'
        "@dec\nclass Heap[T]:\n    \"\"\"Doc.\"\"\"\n    def push(self): ...\n\n"
        "if __name__ == '__main__':\n    main()\n"
    )
    assert module is not None
    found = [(s.kind, s.start, s.end, s.name, syntax.is_data(s)) for s in syntax.statements(module)]
    assert found == [
        ("expression_statement", 1, 1, "", True),
        ("import_statement", 2, 2, "", True),
        ("expression_statement", 3, 3, "", True),
        ("expression_statement", 4, 4, "", True),
        ("if_statement", 5, 6, "", False),
        ("decorated_definition", 8, 11, "Heap", False),
        ("if_statement", 13, 14, "", False),
    ]
    statements = syntax.statements(module)
    assert syntax.is_type_checking_block(statements[4]) and syntax.is_main_guard(statements[6])
    assert [s.kind for s in statements[5].body()] == ["expression_statement", "function_definition"]


def test_same_code_ignores_layout_comments_and_quotes_but_not_blocks() -> None:
    assert syntax.same_code("x = (1 +\n     2)  # sum\n", "x = (1 + 2)\n")
    assert syntax.same_code("f(a, b,)\nx = (y)\n", "f(a, b)\nx = y\n")  # as the interpreter's tree sees it
    assert syntax.same_code("type T = int\n", "type T  =  int  # alias\n")  # 3.12 syntax, on any Python
    assert not syntax.same_code("type T = int\n", "type T = str\n")
    assert syntax.same_code("s = 'a'\n", 's = "a"\n')
    assert not syntax.same_code("s = 'a'\n", "s = 'b'\n")
    assert not syntax.same_code("if a:\n    b()\nc()\n", "if a:\n    b()\n    c()\n")  # indentation is syntax
    assert syntax.same_code("x = 1\n", "def f(:\n") is None


def test_deeply_nested_code_does_not_exhaust_the_stack() -> None:
    module = syntax.parse("x = " + "(" * 5000 + "1" + ")" * 5000 + "\n")
    assert module is not None and len(list(syntax.tokens(module))) == 10003
