"""Reading the prompt files and the few-shot examples of the current ``PROMPT_VERSION``."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

PROMPT_VERSION = "v1"  # the suffix of the template files in use
SYNTHESIS_TEMPLATES = ("commit", "commit_system", "round1", "round2", "system")
FEWSHOT_FILE = "fewshot.jsonl"
FEWSHOT_FIELDS = ("id", "program_before", "descriptive", "lazy", "program_after")


class TemplateError(ValueError):
    """A prompt file or few-shot example that cannot be used."""


@dataclass(frozen=True)
class FewShot:
    id: str
    program_before: str
    descriptive: str
    lazy: str
    program_after: str


def template_path(name: str) -> Path:
    """The file of a prompt template of the current version."""
    return Path(str(resources.files("editforge.templates").joinpath(f"{name}_{PROMPT_VERSION}.txt")))


def template(name: str) -> str:
    """A prompt template of the current version, by name (``round1``, ``generated_tests``, ...)."""
    return template_path(name).read_text(encoding="utf-8").strip()


def synthesis_files() -> list[Path]:
    """The files the synthesis rounds read, as rule inputs: an edit to one reruns synthesis."""
    folder = Path(str(resources.files("editforge.templates")))
    return sorted([*(template_path(name) for name in SYNTHESIS_TEMPLATES), folder / FEWSHOT_FILE])


@functools.cache
def load_fewshot() -> dict[str, FewShot]:
    """The curated one-shot examples by id (templates/fewshot.jsonl)."""
    text = resources.files("editforge.templates").joinpath(FEWSHOT_FILE).read_text(encoding="utf-8")
    examples: dict[str, FewShot] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise TemplateError(f"templates/fewshot.jsonl:{number}: not JSON ({err.msg})") from None
        if not isinstance(row, dict) or not all(isinstance(row.get(f), str) and row[f].strip() for f in FEWSHOT_FIELDS):
            raise TemplateError(f"templates/fewshot.jsonl:{number}: needs non-empty {', '.join(FEWSHOT_FIELDS)}")
        if row["id"] in examples:
            raise TemplateError(f"templates/fewshot.jsonl:{number}: duplicate id {row['id']!r}")
        examples[row["id"]] = FewShot(**{f: row[f] for f in FEWSHOT_FIELDS})
    if not examples:
        raise TemplateError("templates/fewshot.jsonl: no examples")
    return examples

