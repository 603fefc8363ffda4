"""External code-edit datasets as experiment variants, made comparable with our own data.

An experiment that trains one student on our data and another on a published set (OCEDataFT,
EditPackFT, InstructCoder, ...) should measure the data, not how each was prepared. So an external
set goes through the same two steps as ours before training:

* **decontamination** against every configured benchmark, exactly as the dedup stage runs it
  (``canitedit_texts`` + ``read_benchmark_texts``, ``BenchmarkIndex.from_texts``, ``decontaminate``):
  a published set may hold benchmark code, and a student trained on it would be scored on problems it
  saw. Unlike ``run_dedup`` there is no ``max_contaminated_share`` limit (the set is what it is); the
  counts go into the report.
* **our prompt template**: each kept row becomes a training row exactly as ``editforge.dataset.mix``
  makes one (``training_record``, ``messages`` from ``edit_format.training_messages``), with topic -1
  (no topic model is fitted over an external set).

``load_external`` reads the rows (a local ``.jsonl``/``.jsonl.gz``/``.json``/``.parquet`` file, a
folder of them, or a Hugging Face dataset through ``editforge.hub``) in one of ``FORMATS``; columns
can be renamed with ``fields``. Rows with empty code, no change (``pre.rstrip() == post.rstrip()``:
the template strips trailing blanks, so such a row would teach nothing), an empty instruction, a
``lang``/``language`` other than Python, or a style not in ``styles`` are skipped and counted.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from editforge.dataset.mix import training_record
from editforge.dataset.topics import NO_TOPIC  # no topic model is fitted over an external set
from editforge.experiments.external_sources import ExternalDatasetError, external_error, external_rows
from editforge.filtering.decontamination import BenchmarkIndex, canitedit_texts, decontaminate
from editforge.filtering.dedup import read_benchmark_texts
from editforge.records import STYLES, PathLike, read_jsonl, write_json, write_jsonl

FORMATS = ("flat", "sharegpt", "alpaca", "editpackft", "ocedata")
FIELD_NAMES = ("pre", "post", "instruction", "style", "teacher")
# Per format, the columns each field is read from, tried in order (the first holding text wins).
DEFAULT_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "flat": {"pre": ("pre_code",), "post": ("post_code",), "instruction": ("instruction",), "style": ("style",)},
    "sharegpt": {
        "pre": ("old_code",),
        "post": ("new_code",),
        "instruction": ("instruction",),
        "style": ("instr_type",),
    },
    "alpaca": {"pre": ("input",), "post": ("output",), "instruction": ("instruction",), "style": ("style",)},
    "editpackft": {
        "pre": ("old_contents",),
        "post": ("new_contents",),
        "instruction": ("instruction", "subject", "message"),
        "style": ("style",),
    },
    "ocedata": {
        "pre": ("code_before_purify",),
        "post": ("code_after_purify",),
        "instruction": ("instruct_purify",),
        "style": ("instr_type",),
    },
}
SETTING_KEYS = ("source", "format", "fields", "style", "styles", "split", "files", "config", "revision", "licence")
SETTING_KEYS += ("license", "generator")  # "license": an alias of "licence"
PYTHON_NAMES = frozenset({"python", "python3", "py"})

_FENCE = re.compile(r"```[^\n]*\n(.*?)\n?```", re.DOTALL)
_CODE_BEFORE = re.compile(r"##\s*Code Before:?[ \t]*\n(.*?)\n\s*##\s*Instruction", re.DOTALL)
_INSTRUCTION = re.compile(r"##\s*Instruction:?[ \t]*\n(.*?)(?:\n\s*##\s*Code After|\Z)", re.DOTALL)


@dataclass(frozen=True)
class ExternalSpec:
    """A variant's ``external:`` settings, checked, with the format's columns merged with ``fields``."""

    name: str
    source: str
    format: str
    fields: Mapping[str, tuple[str, ...]]
    style: str = "descriptive"
    styles: tuple[str, ...] = STYLES
    split: str = "train"
    files: str | None = None
    config: str | None = None
    revision: str | None = None
    licence: str = "unknown"
    generator: str | None = None

    @classmethod
    def parse(cls, name: str, settings: Mapping[str, Any]) -> ExternalSpec:
        def fail(what: str) -> ExternalDatasetError:
            return external_error(name, what)

        if unknown := [key for key in settings if key not in SETTING_KEYS]:
            raise fail(f"unknown external key(s) {', '.join(map(str, unknown))}; known: {', '.join(SETTING_KEYS)}")
        source, fmt = settings.get("source"), settings.get("format", "flat")
        if not isinstance(source, str) or not source.strip():
            raise fail("external.source is required: a Hugging Face dataset id or a local .jsonl/.json/.parquet path")
        if fmt not in FORMATS:
            raise fail(f"external.format is {fmt!r}; use one of {', '.join(FORMATS)}")
        overrides = settings.get("fields") or {}
        if not isinstance(overrides, Mapping) or any(k not in FIELD_NAMES for k in overrides):
            raise fail(f"external.fields must map some of {', '.join(FIELD_NAMES)} to column names; got {overrides!r}")
        fields = {key: DEFAULT_FIELDS[fmt].get(key, ()) for key in FIELD_NAMES}
        for key, value in overrides.items():
            if value is None and key in ("style", "teacher"):
                fields[key] = ()  # the column is not read
            elif isinstance(value, str) or (
                isinstance(value, list) and value and all(isinstance(v, str) for v in value)
            ):
                fields[key] = (value,) if isinstance(value, str) else tuple(value)
            else:
                raise fail(f"external.fields.{key} must be a column name (or a list of them); got {value!r}")
        style, styles = settings.get("style", "descriptive"), settings.get("styles", list(STYLES))
        if style not in STYLES:
            raise fail(f"external.style is {style!r}; use lazy or descriptive")
        if not isinstance(styles, list) or not styles or any(s not in STYLES for s in styles):
            raise fail(f"external.styles must list some of lazy, descriptive; got {styles!r}")
        texts = {key: settings.get(key) for key in ("split", "files", "config", "revision", "generator")}
        texts["licence"] = settings.get("licence", settings.get("license"))
        for key, value in texts.items():
            if value is not None and not isinstance(value, str):
                raise fail(f"external.{key} must be a string; got {value!r}")
        texts["split"], texts["licence"] = texts["split"] or "train", texts["licence"] or "unknown"
        return cls(name, source, fmt, fields, style, tuple(styles), **texts)


@dataclass
class ExternalRows:
    """What ``load_external`` read: the kept rows as triplet-like records, and the skipped ones by reason."""

    spec: ExternalSpec
    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    rows_read: int = 0


def load_external(name: str, settings: Mapping[str, Any]) -> ExternalRows:
    """The rows of the variant's external dataset as triplet-like records (``id`` ``<name>:<row index>``,
    counting every row read, skipped ones too), with the skip counts."""
    spec = ExternalSpec.parse(name, settings)
    rows = ExternalRows(spec)
    for index, (where, row) in enumerate(external_rows(spec)):
        rows.rows_read += 1
        edit = _edit(spec, where, row)
        if isinstance(edit, str):
            rows.skipped[edit] += 1
            continue
        pre, instruction, post, style, teacher = edit
        rows.records.append(
            {
                "id": f"{name}:{index}",
                "model": teacher,
                "style": style,
                "pre_code": pre,
                "post_code": post,
                "instruction_lazy": instruction if style == "lazy" else None,
                "instruction_descriptive": instruction if style == "descriptive" else None,
                "status": "ok",
                "source": spec.source,
                "licence": spec.licence,
            }
        )
    return rows


def _column(row: Mapping[str, Any], columns: Sequence[str]) -> Any:
    """The first of ``columns`` the row holds as non-blank text (or a non-text value, for the caller to
    refuse); "" when it holds them only blank or null; None when it holds none of them."""
    present = [row[column] for column in columns if column in row]
    if not present:
        return None
    return next((v for v in present if v is not None and not (isinstance(v, str) and not v.strip())), "")


def _from_turns(row: Mapping[str, Any]) -> dict[str, str]:
    """pre, instruction and post from a ShareGPT row's turns (``messages`` role/content or ``conversations``
    from/value). The instruction is the user turn's ``## Instruction:`` section (EditCoder/OpenCodeEdit's
    layout) or else the user turn without its fenced blocks; pre is its ``## Code Before:`` section (fence
    removed) or else its first fenced block; post the assistant turn's first fenced block, else all of it."""
    turns = row.get("messages") or row.get("conversations")
    texts: dict[str, str] = {}
    for turn in turns if isinstance(turns, list) else []:
        if isinstance(turn, Mapping) and isinstance(text := turn.get("content", turn.get("value")), str):
            role = {"human": "user", "gpt": "assistant"}.get(turn.get("role", turn.get("from")), turn.get("role"))
            texts.setdefault(str(role), text)
    found: dict[str, str] = {}
    if (user := texts.get("user")) is not None:
        section = _INSTRUCTION.search(user)
        found["instruction"] = (section.group(1) if section else _FENCE.sub("", user)).strip()
        if before := _CODE_BEFORE.search(user):
            fenced = _FENCE.fullmatch(before.group(1).strip())
            found["pre"] = fenced.group(1) if fenced else before.group(1)
        elif fence := _FENCE.search(user):
            found["pre"] = fence.group(1)
    if (assistant := texts.get("assistant")) is not None:
        fence = _FENCE.search(assistant)
        found["post"] = fence.group(1) if fence else assistant.strip()
    return found


def _edit(spec: ExternalSpec, where: str, row: Any) -> tuple[str, str, str, str, str] | str:
    """(pre, instruction, post, style, teacher), or the reason the row is skipped."""
    if not isinstance(row, Mapping):
        raise external_error(spec.name, f"{where}: expected a JSON object, got {type(row).__name__}")
    lang = row.get("lang", row.get("language"))
    if isinstance(lang, str) and lang.strip().lower() not in PYTHON_NAMES:
        return "not_python"
    values = {key: _column(row, columns) for key, columns in spec.fields.items()}
    if spec.format == "sharegpt":
        values |= {key: text for key, text in _from_turns(row).items() if not values[key]}
    required = ("pre", "post", "instruction", "style") if spec.format == "ocedata" else ("pre", "post", "instruction")
    for key in required:
        if values[key] is None:
            columns = " or ".join(spec.fields[key]) or "none"
            columns += ", nor a user/assistant turn" if spec.format == "sharegpt" and key != "style" else ""
            raise external_error(
                spec.name,
                f"{where} has no {key} column ({columns}); name its column in "
                f"external.fields, e.g. fields: {{{key}: <column>}}",
            )
    for key, value in values.items():
        if value is not None and not isinstance(value, str):
            raise external_error(
                spec.name,
                f"{where}: the {key} column holds {type(value).__name__}, not text; "
                "map another column in external.fields",
            )
    pre, post, instruction = values["pre"], values["post"], values["instruction"]
    if not pre.strip() or not post.strip():
        return "empty_code"
    if pre.rstrip() == post.rstrip():
        return "unchanged"
    if not instruction.strip():
        return "empty_instruction"
    style, teacher = spec.style, None
    if label := (values["style"] or "").strip():
        head, _, tail = label.rpartition("_")
        if label.lower() in STYLES:
            style = label.lower()
        elif head and tail.lower() in STYLES:  # OpenCodeEdit's instr_type: <teacher>_<style>
            style, teacher = tail.lower(), head
        else:
            raise external_error(
                spec.name,
                f"{where}: style {label!r} is neither lazy, descriptive nor <teacher>_<style>; "
                "set external.fields: {style: null} to ignore the column",
            )
    if style not in spec.styles:
        return "other_style"
    teacher = (values["teacher"] or "").strip() or teacher or spec.generator or spec.name
    return pre, instruction.strip(), post, style, teacher


def run_external_pool(
    name: str,
    settings: Mapping[str, Any],
    benchmark_path: PathLike,
    benchmark_texts: Sequence[PathLike],
    decontamination: Mapping[str, Any],
    out_path: PathLike,
    report_path: PathLike,
) -> dict[str, Any]:
    """Load the variant's external dataset, drop what overlaps a benchmark, write its training rows.

    ``benchmark_path`` is CanItEdit's problems (``results/benchmark/canitedit.jsonl``), ``benchmark_texts``
    the other benchmarks' ``*.texts.jsonl``, ``decontamination`` the config's section (its thresholds; the
    ``max_contaminated_share`` limit is not applied). Writes the training rows (train.jsonl's format,
    topic -1) to ``out_path`` and the report to ``report_path``; returns the report. Raises
    ExternalDatasetError, after writing the report, when no row is left.
    """
    loaded = load_external(name, settings)
    spec, records = loaded.spec, loaded.records
    entries = canitedit_texts(list(read_jsonl(benchmark_path))) + read_benchmark_texts(benchmark_texts)
    matches = decontaminate(records, BenchmarkIndex.from_texts(entries, decontamination))
    kept = [record for record in records if record["status"] == "ok"]
    problems = Counter(record["contaminated_by"] for record in records if "contaminated_by" in record)
    benchmarks = Counter(p.split("/", 1)[0] if "/" in p else "canitedit" for p in problems.elements())
    report = {
        "variant": name,
        "source": spec.source,
        "format": spec.format,
        "licence": spec.licence,
        "generator": spec.generator,
        "rows_read": loaded.rows_read,
        "skipped": dict(sorted(loaded.skipped.items())),
        "loaded": len(records),
        "contaminated": {
            "count": len(matches),
            "by_benchmark": dict(sorted(benchmarks.items())),
            "by_problem": dict(problems.most_common()),
            "matches": matches,
        },
        "kept": len(kept),
        "styles": dict(sorted(Counter(record["style"] for record in kept).items())),
        "teachers": dict(sorted(Counter(record["model"] for record in kept).items())),
    }
    write_json(report_path, report)
    if not kept:
        raise external_error(
            name,
            f"no row of {spec.source} is left (read {loaded.rows_read}, skipped "
            f"{dict(loaded.skipped)}, contaminated {len(matches)}); see {report_path}",
        )
    write_jsonl(out_path, (training_record(record, record["style"], NO_TOPIC) for record in kept))
    return report
