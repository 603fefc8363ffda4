"""Exact duplicates: the key two triplets share when they differ only in layout, comments, quoting or case.

The key joins what the compiler makes of the pre-edit code with both instructions up to case and
spacing; ``exact_keys`` compiles only the records whose instructions repeat (the costly part).
"""

from __future__ import annotations

import hashlib
import types
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from editforge.filtering.checks import squash
from editforge.pycode import syntax


def exact_keys(records: Sequence[Mapping[str, Any]]) -> list[bytes]:
    """``exact_key`` of each record, or a cheaper key that is just as unique.

    Compiling the code is the costly part, and only records whose instructions
    match another record's can share a key, so only those are compiled.
    """
    instructions = [_instructions_key(record) for record in records]
    repeated = {key for key, n in Counter(instructions).items() if n > 1}
    return [exact_key(r) if key in repeated else b"i" + key for r, key in zip(records, instructions)]


def _instructions_key(record: Mapping[str, Any]) -> bytes:
    parts = [squash(record["instruction_lazy"].lower()), squash(record["instruction_descriptive"].lower())]
    return hashlib.sha1("\0".join(parts).encode()).digest()


def exact_key(record: Mapping[str, Any]) -> bytes:
    """Pre-edit code up to formatting and comments, plus both instructions up to case and spacing."""
    return b"e" + hashlib.sha1(_code_key(record["pre_code"]) + b"\0" + _instructions_key(record)).digest()


def _code_key(source: str) -> bytes:
    """What the compiler makes of the code: blind to layout, comments and quoting.

    Bytecode, names and constants of every code object, without line numbers.
    Code that this interpreter does not compile (``return`` outside a function,
    a newer Python's syntax) is keyed by its tokens; code that does not parse, by
    its text up to spacing.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = compile(source, "<triplet>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        tree = syntax.parse(source)
        return ("\0".join(syntax.tokens(tree)) if tree else squash(source)).encode()
    parts: list[Any] = []
    _code_parts(code, parts)
    return repr(parts).encode()


def _code_parts(code: types.CodeType, parts: list[Any]) -> None:
    parts += [
        code.co_code, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars, code.co_name,
        code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags, code.co_exceptiontable,
    ]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_parts(const, parts)
        elif isinstance(const, frozenset):  # its order follows string hashing, which varies by process
            parts.append(sorted(map(repr, const)))
        else:
            parts.append(repr(const))
