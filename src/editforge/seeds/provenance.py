"""Where a seed snippet comes from: its source's origin and the licence its file states.

A licence is what the code says of itself, nearest first: an SPDX header in the
file's first lines, else the metadata of the nearest package folder above it
(``pyproject.toml``, ``setup.cfg``, ``PKG-INFO``), else a table row's licence
column; None where nothing states one. Nothing is guessed from a licence's text.
"""

from __future__ import annotations

import configparser
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

_SPDX = re.compile(r"SPDX-License-Identifier:\s*([^\s*#\"']+(?:\s+(?:AND|OR|WITH)\s+[^\s*#\"']+)*)")
SPDX_HEAD_LINES = 30
# A table row may name its licence (CommitPackFT: license; the Stack: detected_licenses).
LICENCE_COLUMNS = ("license", "licenses", "detected_licenses")
STDLIB_LICENCE = "PSF-2.0"


def licence_of(text: str, stated: str | None) -> str | None:
    """An SPDX header in the file's first lines, else what its source states (``stated``), else None."""
    head = "\n".join(text.split("\n", SPDX_HEAD_LINES)[:SPDX_HEAD_LINES])
    match = _SPDX.search(head)
    return match.group(1) if match else stated


def metadata_licence(folder: Path) -> str | None:
    """The licence a package folder's metadata states: pyproject.toml, setup.cfg or PKG-INFO."""
    try:
        if (folder / "pyproject.toml").is_file():
            project = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8")).get("project", {})
            licence = project.get("license")
            if isinstance(licence, dict):
                licence = licence.get("text")
            if isinstance(licence, str) and licence.strip():
                return licence.strip().splitlines()[0]
        if (folder / "setup.cfg").is_file():
            parser = configparser.ConfigParser(interpolation=None)
            parser.read(folder / "setup.cfg", encoding="utf-8")
            licence = parser.get("metadata", "license", fallback="").strip()
            if licence:
                return licence.splitlines()[0]
        if (folder / "PKG-INFO").is_file():
            for line in (folder / "PKG-INFO").read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith(("License-Expression:", "License:")) and line.split(":", 1)[1].strip():
                    return line.split(":", 1)[1].strip()
    except (OSError, ValueError, configparser.Error):
        return None
    return None


class PackageLicences:
    """The licence of the nearest package folder above a file, up to the source's root, looked up once a folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.known: dict[Path, str | None] = {}

    def of(self, rel: str) -> str | None:
        folder = (self.root / rel).parent
        walked: list[Path] = []
        found: str | None = None
        while True:
            if folder in self.known:
                found = self.known[folder]
                break
            walked.append(folder)
            found = metadata_licence(folder)
            if found is not None or folder == self.root or self.root not in folder.parents:
                break
            folder = folder.parent
        for seen in walked:
            self.known[seen] = found
        return found


def row_licence(row: dict[str, Any]) -> str | None:
    for column in LICENCE_COLUMNS:
        value = row.get(column)
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return " AND ".join(value)
    return None


def source_repository(source: dict[str, Any]) -> str:
    """Where a source's code comes from: its ``repository`` setting, else what its type tells."""
    if source.get("repository"):
        return str(source["repository"])
    if source["type"] == "stdlib":
        return f"CPython {sys.version.split()[0]} standard library"
    if source["type"] == "hf":
        return f"https://huggingface.co/datasets/{source.get('dataset', '')}"
    return str(Path(source.get("path", "")).resolve())
