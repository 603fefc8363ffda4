"""The canonical form of code that dedup and decontamination compare."""

from __future__ import annotations

import numpy as np
import pytest

from editforge.pycode.canonical import canonical_forms, identifiers, shingles, string_literals

PROGRAM = '''import math


def area(radius, unit="cm"):
    """The area of a circle."""
    # squared, then scaled
    value = (math.pi * radius ** 2)
    return f"{value} {unit}", [value, radius,]
'''


def shingle_set(source: str, size: int = 5) -> set[int]:
    hashes, offsets = shingles(canonical_forms([source]), size)
    return set(hashes.tolist())


def test_renaming_layout_quotes_comments_and_docstrings_do_not_count() -> None:
    renamed = (
        "import math\n"
        "def surface(r, u='cm'):\n"
        "    value2 = math.pi * r**2; return f'{value2} {u}', [value2, r]\n"
    )
    assert canonical_forms([PROGRAM]).tokens.tolist() != canonical_forms([renamed]).tokens.tolist()  # names differ
    assert shingle_set(PROGRAM) == shingle_set(renamed)


def test_what_the_code_does_still_counts() -> None:
    assert shingle_set(PROGRAM) != shingle_set(PROGRAM.replace("radius ** 2", "radius ** 3"))
    assert shingle_set(PROGRAM) != shingle_set(PROGRAM.replace('unit="cm"', 'unit="mm"'))  # string text counts
    assert shingle_set(PROGRAM) != shingle_set(PROGRAM.replace("math.pi *", "math.pi +"))
    # Names are parameters, not wildcards: using one name twice is not using two names.
    assert shingle_set("x = a + b\n") != shingle_set("x = a + a\n")


def test_numbers_count_by_value_and_builtins_by_name() -> None:
    assert shingle_set("x = 1_000 + 0x10\n") == shingle_set("y = 1000 + 16\n")
    assert shingle_set("n = len(items)\n") != shingle_set("n = sum(items)\n")


def test_a_program_inside_another_keeps_its_shingles() -> None:
    host = "def unrelated(a, b):\n    total = 0\n    for item in a:\n        total += item * b\n    return total\n"
    inner = shingle_set(PROGRAM, 10)
    embedded = shingle_set(f"{host}\n{PROGRAM}\n{host}", 10)
    assert inner <= embedded


def test_several_programs_at_once_equal_one_at_a_time() -> None:
    sources = [PROGRAM, "", "x", "def f(:\n  'unclosed", PROGRAM.replace("radius", "r")]
    hashes, offsets = shingles(canonical_forms(sources), 10)
    for number, source in enumerate(sources):
        alone, _ = shingles(canonical_forms([source]), 10)
        assert hashes[offsets[number] : offsets[number + 1]].tolist() == alone.tolist()
    assert np.diff(offsets).tolist()[1:3] == [0, 1]  # no tokens: no shingle; fewer than 10: one


def test_a_shingle_size_out_of_range_is_an_error() -> None:
    with pytest.raises(ValueError, match="a shingle has 1 to 64 tokens; got 0"):
        shingles(canonical_forms(["x = 1"]), 0)


def test_identifiers_skip_keywords_strings_and_comments() -> None:
    assert identifiers("import os\nclass HTTPServer:  # name\n    s = 'word'\n") == ["os", "HTTPServer", "s"]
    assert identifiers("x = r'raw' + f\"{y}\"\n") == ["x"]


def test_string_literals_are_their_text_with_f_string_fields_blanked() -> None:
    source = 'x = f"{a!r} and {b.c}"  # "not a string"\ny = r\'\'\'two\n   lines\'\'\'\nz = "plain"\n'
    assert string_literals(source) == ["f:{} and {}", "s:two lines", "s:plain"]
    assert shingle_set('m = f"{count} items"\n') == shingle_set('m = f"{n} items"\n')
