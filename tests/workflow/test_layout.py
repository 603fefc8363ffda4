"""The package's layout holds: docs/layout.md names every file of src/editforge/ (and nothing that is
gone), no file passes 450 lines, each subpackage's __init__ is a catalogue, and no shared primitive
is defined twice."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

from helpers import REPO

PACKAGE = REPO / "src/editforge"
MAX_LINES = 450
# Files of a subpackage that are data, not Python; docs/layout.md names them too.
DATA_SUFFIXES = {".txt", ".jsonl", ".yaml"}


def package_files() -> list[Path]:
    return sorted(
        path.relative_to(PACKAGE)
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and (path.suffix == ".py" or path.suffix in DATA_SUFFIXES)
    )


def documented_paths(layout: str) -> set[str]:
    """The files the package tree of docs/layout.md names, as paths relative to src/editforge/: a line
    ``name/`` opens a folder for the lines indented under it; ``a.txt, b.txt`` names each file."""
    tree = re.search(r"## src/editforge/\n\n```\n(.*?)```", layout, re.S)
    assert tree, "docs/layout.md: a section '## src/editforge/' with the package tree"
    paths: set[str] = set()
    folders: list[tuple[int, str]] = []  # (indent, name) of the open folders
    for line in tree.group(1).splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        folders = [(depth, name) for depth, name in folders if depth < indent]
        head = re.split(r"\s{2,}", line.strip())[0]  # what the line names, before its description
        if re.fullmatch(r"[\w.-]+/", head):
            folders.append((indent, head.rstrip("/")))
            continue
        prefix = "".join(f"{name}/" for _, name in folders)
        paths.update(prefix + name for name in re.findall(r"[\w.-]+\.(?:py|txt|jsonl|yaml)\b", head))
    return paths


def test_docs_layout_names_every_file_of_the_package_and_no_file_that_is_gone() -> None:
    documented = documented_paths((REPO / "docs/layout.md").read_text())
    # Every folder's __init__.py is its catalogue (the page says so once) and needs no line of its own.
    files = {str(path) for path in package_files()}
    documented |= {path for path in files if path.endswith("/__init__.py")}
    assert sorted(files - documented) == [], "docs/layout.md: describe these files"
    assert sorted(documented - files) == [], "docs/layout.md names files that do not exist"


def test_no_file_of_the_package_passes_450_lines() -> None:
    sizes = {
        str(path): len((PACKAGE / path).read_text().splitlines()) for path in package_files() if path.suffix == ".py"
    }
    assert {path: lines for path, lines in sizes.items() if lines > MAX_LINES} == {}
    assert len(sizes) > 60  # the walk found the package


def test_each_subpackage_init_is_a_catalogue_without_logic() -> None:
    """A docstring listing its files, imports, ``__all__``: nothing that runs."""
    for init in sorted(PACKAGE.rglob("__init__.py")):
        if init.parent == PACKAGE:
            continue  # the package's own: the version
        tree = ast.parse(init.read_text())
        assert ast.get_docstring(tree), f"{init.relative_to(REPO)}: a docstring listing its files"
        for node in tree.body[1:]:
            allowed = isinstance(node, (ast.Import, ast.ImportFrom)) or (
                isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__all__"]
            )
            assert allowed, f"{init.relative_to(REPO)}:{node.lineno}: logic in a catalogue ({type(node).__name__})"


def test_no_public_function_class_or_constant_is_defined_in_two_modules() -> None:
    """One copy of each shared primitive: a top-level name defined in two modules is a copy, unless it
    is one of the names every stage or backend defines for itself by design."""
    by_design = {"log", "main", "DEFAULTS", "__all__"}
    where: dict[str, list[str]] = defaultdict(list)
    for path in package_files():
        if path.suffix != ".py" or path.name == "__init__.py" or "programs" in path.parts:
            continue
        for node in ast.parse((PACKAGE / path).read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [target.id for target in node.targets if isinstance(target, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names = [node.target.id]
            else:
                continue
            for name in names:
                if not name.startswith("_") and name not in by_design:
                    where[name].append(str(path))
    assert {name: paths for name, paths in where.items() if len(paths) > 1} == {}
