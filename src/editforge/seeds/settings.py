"""The seeds stage's settings and their checks, its error, and the tally of what it skipped and why."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("editforge.seeds")  # the stage's one logger, whichever file logs

SEED_KINDS = ("snippets", "commits")
SNIPPET_MODES = ("syntactic", "window")
SOURCE_TYPES = ("stdlib", "directory", "jsonl", "parquet", "hf")
TABLE_SOURCE_TYPES = ("jsonl", "parquet", "hf")
WINDOW_ALIGNMENTS = ("statements", "lines")


class SeedError(ValueError):
    """A seeds setting or source that cannot be used, with the reason."""


@dataclass(frozen=True)
class SeedFilters:
    """Which content filters run; each counts what it drops under its reason in the stats."""

    tests: bool = True  # test files (by path) and test functions and classes (by name): test_code, test_file
    comments: bool = True  # snippets that are at least half comments and docstrings: mostly_comments
    main_guard: bool = True  # `if __name__ == "__main__":` blocks: main_guard
    type_checking: bool = True  # `if TYPE_CHECKING:` import blocks: type_checking
    import_only: bool = True  # snippets of imports, or of imports and literal data only: import_only, data_only
    generated: bool = True  # generated files, by name or a marker in their first lines: generated
    vendored: bool = True  # files under vendor/, third_party/, site-packages/ and the like: vendored
    licence_header: bool = True  # a file's leading licence comments or docstring: licence_header


@dataclass(frozen=True)
class SeedSettings:
    kind: str = "snippets"  # "commits": one record per real commit
    snippet_mode: str = "syntactic"
    window_alignment: str = "statements"  # snippet_mode window: "lines" for the paper's raw line windows
    max_windows_per_file: int = 8
    max_snippet_reuse: int = 4  # pairs one snippet may seed
    min_lines: int = 5
    max_lines: int = 15
    max_file_bytes: int = 300_000
    max_files: int | None = None  # per source; a seeded sample when there are more
    num_prompts: int = 100  # pairs, or commits for kind "commits"
    num_shards: int = 1
    max_code_lines: int = 200  # kind "commits": lines of the file before or after the commit
    max_diff_lines: int = 100  # kind "commits": changed lines, counted as filtering.max_changed_lines counts them
    filters: SeedFilters = field(default_factory=SeedFilters)

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> SeedSettings:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(settings) - known)
        if unknown:
            raise SeedError(f"seeds: unknown setting(s) {', '.join(unknown)}")
        filters = settings.get("filters") or {}
        unknown = sorted(set(filters) - set(SeedFilters.__dataclass_fields__))
        if unknown or not all(isinstance(value, bool) for value in filters.values()):
            names = ", ".join(SeedFilters.__dataclass_fields__)
            raise SeedError(f"seeds.filters: expected switches (true or false) among {names}")
        made = cls(**{**settings, "filters": SeedFilters(**filters)})
        if made.kind not in SEED_KINDS:
            raise SeedError(f"seeds.kind: expected one of {SEED_KINDS}, got {made.kind!r}")
        if made.snippet_mode not in SNIPPET_MODES:
            raise SeedError(f"seeds.snippet_mode: expected one of {SNIPPET_MODES}, got {made.snippet_mode!r}")
        if made.window_alignment not in WINDOW_ALIGNMENTS:
            raise SeedError(
                f"seeds.window_alignment: expected one of {WINDOW_ALIGNMENTS}, got {made.window_alignment!r}"
            )
        positive = (
            "min_lines", "max_lines", "max_file_bytes", "num_prompts", "num_shards", "max_windows_per_file",
            "max_snippet_reuse",
        )
        for name in (*positive, "max_code_lines", "max_diff_lines"):
            value = getattr(made, name)
            if not isinstance(value, int) or value < 1:
                raise SeedError(f"seeds.{name}: expected a positive integer, got {value!r}")
        if made.max_files is not None and (not isinstance(made.max_files, int) or made.max_files < 1):
            raise SeedError(f"seeds.max_files: expected a positive integer or null, got {made.max_files!r}")
        if made.min_lines > made.max_lines:
            raise SeedError("seeds.min_lines: must not exceed seeds.max_lines")
        return made


def checked(sources: list[dict[str, Any]], settings: dict[str, Any] | SeedSettings) -> SeedSettings:
    """The settings, once every source has a name and a known type."""
    if not sources:
        raise SeedError("seeds.sources: at least one source is needed")
    for source in sources:
        if not source.get("name") or source.get("type") not in SOURCE_TYPES:
            raise SeedError(f"seeds.sources: each source needs a 'name' and a 'type' in {SOURCE_TYPES}: {source!r}")
    return settings if isinstance(settings, SeedSettings) else SeedSettings.from_dict(settings)


# Malformed lines named in the stats and the log, the rest only counted.
MAX_NAMED_LINES = 20


@dataclass
class Tally:
    """What the extraction saw and why it skipped things."""

    files_seen: int = 0
    files_used: int = 0
    snippets_found: int = 0
    files_skipped: Counter[str] = field(default_factory=Counter)
    snippets_skipped: Counter[str] = field(default_factory=Counter)
    malformed_lines: list[str] = field(default_factory=list)  # "file:line: what is wrong"

    def add(self, other: Tally) -> None:
        self.files_seen += other.files_seen
        self.files_used += other.files_used
        self.snippets_found += other.snippets_found
        self.files_skipped.update(other.files_skipped)
        self.snippets_skipped.update(other.snippets_skipped)
        self.malformed_lines.extend(other.malformed_lines[: MAX_NAMED_LINES - len(self.malformed_lines)])

    def skip_line(self, path: Path, number: int, reason: str, what: str) -> None:
        """Count a line of a JSON Lines source that holds no row, and name the first ones."""
        self.files_skipped[reason] += 1
        if len(self.malformed_lines) < MAX_NAMED_LINES:
            where = f"{path}:{number}: {what}"
            self.malformed_lines.append(where)
            log.warning("skipped %s", where)


@dataclass(frozen=True)
class Document:
    """One file's text as a source gives it."""

    path: str  # inside the source: a relative file path or a row label
    text: str
    licence: str | None = None  # as the source states it: the package's metadata, a row's column
