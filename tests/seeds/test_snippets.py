"""Snippet cutting: whole units and their positions, windows of statements or raw lines, the current grammar."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

from editforge.pycode import syntax
from editforge.seeds import collect_snippets
from helpers.seed_corpus import SETTINGS, functions_file, source


def test_snippets_are_whole_units_with_positions(tree: Path) -> None:
    snippets, _ = collect_snippets(source(tree), SETTINGS, seed=7)
    by_text = {s["text"].split("\n")[0]: s for s in snippets}
    perimeter = by_text["def perimeter(self):"]
    assert perimeter["kind"] == "method" and perimeter["path"] == "pkg/shapes.py"
    assert (perimeter["start_line"], perimeter["end_line"]) == (15, 19)
    assert not perimeter["text"].startswith(" ")  # methods are dedented
    assert by_text["class Square:"]["kind"] == "class"
    # the first copy of a duplicate is kept
    assert by_text["def clamp(value, low, high):"]["path"] == "pkg/copy_of_math.py"


def test_window_mode(tmp_path: Path, tree: Path) -> None:
    settings = {**SETTINGS, "snippet_mode": "window", "min_lines": 3, "max_lines": 5}
    snippets, stats = collect_snippets(source(tree), settings, seed=3)
    assert snippets and all(s["kind"] == "window" for s in snippets)
    for snippet in snippets:
        lines = snippet["text"].split("\n")
        assert 3 <= len(lines) <= 5
        assert snippet["end_line"] - snippet["start_line"] + 1 == len(lines)
    assert stats["snippet_mode"] == "window"
    assert collect_snippets(source(tree), settings, seed=3)[0] == snippets


MODERN_TREE = {
    "generics.py": """
        class Stack[T]:
            def __init__(self) -> None:
                self.items: list[T] = []

            def push(self, item: T) -> None:
                self.items.append(item)
                return None
    """,
    "errors.py": """
        def parse_port(text):
            try:
                port = int(text)
            except ValueError, TypeError:
                port = 0
            return port
    """,
    "shapes.py": """
        def area(shape):
            match shape:
                case {"w": w, "h": h}:
                    return w * h
                case [r]:
                    return 3 * r * r
            return 0
    """,
    "walrus.py": """
        def longest(lines, limit):
            best = ""
            for line in lines:
                if (n := len(line)) > limit and n > len(best):
                    best = f"{f'{line!r:>{n}}'}"
            return best
    """,
}


def test_modern_syntax_seeds_whatever_python_runs_the_stage(tmp_path: Path) -> None:
    root = tmp_path / "modern"
    root.mkdir()
    for name, text in MODERN_TREE.items():
        (root / name).write_text(textwrap.dedent(text).lstrip())
    snippets, stats = collect_snippets(source(root), SETTINGS, seed=1)
    assert "syntax_error" not in stats["files_skipped"] and stats["files_used"] == 4
    assert {s["path"] for s in snippets} == set(MODERN_TREE)


def test_window_mode_takes_as_many_windows_as_a_file_holds_each_parsing_and_none_overlapping(
    tmp_path: Path,
) -> None:
    root = tmp_path / "large"
    root.mkdir()
    (root / "big.py").write_text(functions_file(60))  # 420 lines
    (root / "small.py").write_text(functions_file(2, offset=1))  # 14 lines
    settings = {**SETTINGS, "snippet_mode": "window", "min_lines": 5, "max_lines": 15, "max_windows_per_file": 100,
                "max_file_bytes": 100_000}
    snippets, stats = collect_snippets(source(root), settings, seed=2)
    per_file = Counter(s["path"] for s in snippets)
    assert per_file["big.py"] >= 25 and 1 <= per_file["small.py"] <= 2
    for path in per_file:
        spans = sorted((s["start_line"], s["end_line"]) for s in snippets if s["path"] == path)
        assert all(end < next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))  # no overlap
    assert all(syntax.is_valid(textwrap.dedent(s["text"])) for s in snippets)  # aligned to statements
    capped, capped_stats = collect_snippets(source(root), {**settings, "max_windows_per_file": 8}, seed=2)
    assert Counter(s["path"] for s in capped)["big.py"] == 8
    assert capped_stats["snippets_skipped"]["over_max_windows_per_file"] == per_file["big.py"] - 8


def test_raw_line_windows_tile_the_file_as_the_paper_cut_them(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "a.py").write_text(functions_file(10))
    settings = {**SETTINGS, "snippet_mode": "window", "window_alignment": "lines", "min_lines": 5, "max_lines": 9,
                "max_windows_per_file": 100, "max_file_bytes": 100_000, "filters": {"comments": False}}
    snippets, stats = collect_snippets(source(root), settings, seed=4)
    spans = sorted((s["start_line"], s["end_line"]) for s in snippets)
    assert len(spans) >= 5 and all(5 <= end - start + 1 <= 9 for start, end in spans)
    assert not all(syntax.is_valid(textwrap.dedent(s["text"])) for s in snippets)  # cut mid-statement
