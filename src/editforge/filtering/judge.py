"""The LLM judge (``filtering.judge``): a model reviews each kept triplet, once per instruction style.

For each style of ``styles`` the judge gives three verdicts (``VERDICTS``), each PASS, FAIL or
UNCERTAIN with a one-line reason: the pre-edit code does not already do what the instruction asks
(``edit_needed``), the post-edit code does all of it (``edit_complete``), and the edit changes no
behaviour the instruction does not ask for (``edit_focused``). A style passes when every verdict of
``verdicts`` passes (UNCERTAIN counting as ``uncertain`` says); the dataset draws a style's samples
only from the triplets that pass it (``judge_passed``), and a triplet that passes no style is dropped.

``run_judge`` is the ``judge`` stage; ``judge_records`` the judging of records in memory. The judge
is asked for one JSON object (``templates/judge_v1.txt``); models add prose, fences and reasoning
around it and spell keys and values as they like, which ``parse_verdicts`` reads through.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from string import Template
from typing import Any

from editforge.backend import Backend, Completion, Request, Sampling, UsageTotals, open_backend
from editforge.filtering.checks import is_kept, require_fields
from editforge.parsing.markdown import strip_thinking
from editforge.pycode.diff import unified_diff
from editforge.records import STYLES, PathLike, drop, read_jsonl, write_json, write_jsonl
from editforge.templates import template
from editforge.verdicts import VALUES, VERDICTS, judge_counts, judge_passed

log = logging.getLogger(__name__)

FAILED_REASON = {
    "edit_needed": "judge_edit_not_needed",
    "edit_complete": "judge_edit_incomplete",
    "edit_focused": "judge_unrelated_change",
}
JUDGE_REASONS = (*FAILED_REASON.values(), "judge_unparseable", "judge_error")
UNCERTAIN_COUNTS_AS = ("fail", "pass")
DEFAULT_JUDGE: dict[str, Any] = {
    "model": None,
    "verdicts": list(VERDICTS),
    "uncertain": "fail",
    "styles": ["lazy", "descriptive"],
    "max_tokens": 1024,
}
_DECODER = json.JSONDecoder()
_KEY_SEPARATORS = re.compile(r"[\s-]+")


class JudgeSettingsError(ValueError):
    """A ``filtering.judge`` setting that cannot be used."""


class JudgeError(RuntimeError):
    """More of the judge's calls failed than ``synthesis.max_error_share`` allows."""


def judge_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``filtering.judge`` with its defaults filled in; a clear error for a key or value it cannot use."""
    unknown = sorted(set(settings) - set(DEFAULT_JUDGE))
    if unknown:
        raise JudgeSettingsError(
            f"filtering.judge: unknown key(s) {', '.join(unknown)}; known: {', '.join(DEFAULT_JUDGE)}"
        )
    config = {**DEFAULT_JUDGE, **settings}
    for key, known in (("verdicts", VERDICTS), ("styles", STYLES)):
        given = config[key]
        if isinstance(given, str) or not isinstance(given, Iterable) or not list(given):
            raise JudgeSettingsError(f"filtering.judge.{key}: expected a non-empty list of {', '.join(known)}")
        wrong = [name for name in given if name not in known]
        if wrong:
            raise JudgeSettingsError(f"filtering.judge.{key}: unknown {wrong}; expected some of {', '.join(known)}")
        config[key] = list(dict.fromkeys(given))
    if config["uncertain"] not in UNCERTAIN_COUNTS_AS:
        raise JudgeSettingsError(f"filtering.judge.uncertain: expected fail or pass, got {config['uncertain']!r}")
    tokens = config["max_tokens"]
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
        raise JudgeSettingsError(f"filtering.judge.max_tokens: expected a whole number of at least 1, got {tokens!r}")
    return config


def judge_request(record: Mapping[str, Any], style: str, max_tokens: int = 1024) -> Request:
    """The request judging one style of one triplet: greedy, the prompt files ``judge_system`` and ``judge``."""
    pre, post = record["pre_code"], record["post_code"]
    user = Template(template("judge")).substitute(
        style=style,
        instruction=record[f"instruction_{style}"].strip(),
        pre=pre.rstrip(),
        post=post.rstrip(),
        diff=unified_diff(pre, post),
    )
    return Request(
        messages=[{"role": "system", "content": template("judge_system")}, {"role": "user", "content": user}],
        sampling=Sampling(temperature=0.0, top_p=1.0, max_tokens=max_tokens),
    )


def parse_verdicts(text: str) -> dict[str, dict[str, str]] | None:
    """``{"edit_needed": {"verdict": "PASS", "reason": "..."}, ...}`` with all three VERDICTS, or None
    when the answer holds no readable verdicts.

    ``<think>`` blocks are removed first. The object may stand in a fence or bare in prose; keys and
    values may be in any case; a verdict may be ``{"verdict": .., "reason": ..}`` or a bare string
    (its reason is then ""). Extra keys are ignored. Of several readable objects the last one counts:
    a model that drafts an answer and then corrects it ends with the one it means.
    """
    found = None
    for candidate in _json_objects(strip_thinking(text)):
        verdicts = _read_verdicts(candidate)
        if verdicts is not None:
            found = verdicts
    return found


def _json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Every JSON object that starts at a ``{`` of the text (nested ones too), in order of their start."""
    for match in re.finditer(r"\{", text):
        try:
            value, _ = _DECODER.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            yield value


def _read_verdicts(value: Mapping[str, Any]) -> dict[str, dict[str, str]] | None:
    entries = _by_key(value)
    verdicts: dict[str, dict[str, str]] = {}
    for name in VERDICTS:
        entry = entries.get(name)
        if isinstance(entry, Mapping):
            fields = _by_key(entry)
            verdict, reason = fields.get("verdict"), fields.get("reason")
        else:
            verdict, reason = entry, None
        value = verdict.strip().rstrip(".").upper() if isinstance(verdict, str) else None
        if value not in VALUES:
            return None
        verdicts[name] = {"verdict": value, "reason": "" if reason is None else str(reason).strip()}
    return verdicts


def _by_key(value: Mapping[str, Any]) -> dict[str, Any]:
    """The mapping with its keys lower-cased and spaces or hyphens made underscores ("Edit-Needed")."""
    return {_KEY_SEPARATORS.sub("_", str(key).strip().lower()): item for key, item in value.items()}


def style_outcome(verdicts: Mapping[str, Mapping[str, str]] | None, settings: Mapping[str, Any]) -> str | None:
    """None when a style passes, else its drop reason: that of the first failing verdict in VERDICTS order
    (of those ``settings["verdicts"]`` requires), or ``judge_unparseable`` for an unreadable answer."""
    config = judge_settings(settings)
    if verdicts is None:
        return "judge_unparseable"
    accepted = {"PASS", "UNCERTAIN"} if config["uncertain"] == "pass" else {"PASS"}
    for name in VERDICTS:
        if name in config["verdicts"] and (verdicts.get(name) or {}).get("verdict") not in accepted:
            return FAILED_REASON[name]
    return None


def judge_records(
    records: list[dict[str, Any]],
    backend: Backend,
    settings: Mapping[str, Any],
    *,
    max_error_share: float,
    source: PathLike = "the judged records",
) -> None:
    """Judge every kept record for each style of ``settings["styles"]``, all in one ``generate()`` call.

    One call lets a batch-mode model send one batch and the backend's cache answer a rerun. Each judged
    record gets ``judge``: style -> ``{"passed", "reason", "verdicts", "error", "model", "uncertain"}``
    (``model``: the judge's ``models:`` entry; ``uncertain``: what UNCERTAIN counted as). A record that
    passes no style (a style not judged passes) is dropped with the reason of its first judged style.
    More failed calls than ``max_error_share`` raises JudgeError before any record is changed.
    ``source`` names the records in errors (their file).
    """
    config = judge_settings(settings)
    asked = [(record, style) for record in records if record.get("status") == "ok" for style in config["styles"]]
    for record, style in asked:
        require_fields(record, ("pre_code", "post_code", f"instruction_{style}"), source)
    if not asked:
        return
    requests = [judge_request(record, style, config["max_tokens"]) for record, style in asked]
    completions = [samples[0] for samples in backend.generate(requests, desc="judge")]
    _check_error_budget(backend.name, completions, max_error_share)
    judged = {id(record): record for record, _ in asked}
    for record in judged.values():
        record["judge"] = {}
    for (record, style), completion in zip(asked, completions):
        verdicts = None if completion.error is not None else parse_verdicts(completion.text)
        reason = "judge_error" if completion.error is not None else style_outcome(verdicts, config)
        record["judge"][style] = {
            "passed": reason is None,
            "reason": reason,
            "verdicts": verdicts,
            "error": completion.error,
            "model": backend.name,
            "uncertain": config["uncertain"],
        }
    for record in judged.values():
        if not any(judge_passed(record, style) for style in STYLES):
            drop(record, record["judge"][config["styles"][0]]["reason"])


def _check_error_budget(model_name: str, completions: Sequence[Completion], max_share: float) -> None:
    """Stop when too many calls failed, naming the most common error; the answers that came back are cached."""
    errors = Counter(completion.error for completion in completions if completion.error is not None)
    failed = sum(errors.values())
    if completions and failed / len(completions) > max_share:
        error, count = errors.most_common(1)[0]
        raise JudgeError(
            f"judge model {model_name!r}: {failed} of {len(completions)} calls failed, more than "
            f"synthesis.max_error_share = {max_share}; most common error ({count}x): {error}. "
            "Fix the cause and rerun: finished calls are cached and are not paid again."
        )


def judge_report(records: Sequence[Mapping[str, Any]], model_name: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """``judge.json``: the settings, the calls, and the outcomes per triplet and per teacher and style."""
    judged = [record for record in records if record.get("judge")]
    entries = [entry for record in judged for entry in record["judge"].values()]
    kept = sum(1 for record in judged if record.get("status") == "ok")
    return {
        "model": model_name,
        "settings": judge_settings(settings),
        "calls": len(entries),
        "errors": sum(1 for entry in entries if entry["error"] is not None),
        "unparseable": sum(1 for entry in entries if entry["reason"] == "judge_unparseable"),
        "triplets": {"judged": len(judged), "kept": kept, "dropped": len(judged) - kept},
        "by_teacher": judge_counts(judged),
    }


def run_judge(
    triplets_path: PathLike,
    out_path: PathLike,
    report_path: PathLike,
    usage_path: PathLike,
    settings: Mapping[str, Any],
    *,
    model: tuple[str, Mapping[str, Any]] | None,
    cache_dir: PathLike | None,
    max_error_share: float,
) -> dict[str, Any]:
    """The ``judge`` stage: judge the kept triplets of ``triplets_path``; write every record, the report
    (``judge_report``) and the backend's usage (with ``model`` and ``round: "judge"``); return the report.

    ``model`` is the judge's ``models:`` entry as (name, spec); ``cache_dir`` the LLM cache. Nothing is
    written when the error budget is exceeded.
    """
    config = judge_settings(settings)
    if model is None or not model[0]:
        raise JudgeSettingsError(
            "filtering.judge.model is null: name the models: entry that judges, or turn the judge off"
        )
    name, spec = model
    records = list(read_jsonl(triplets_path))
    if any([is_kept(record, triplets_path) for record in records]):  # a list: every status is checked
        with open_backend(name, spec, cache_dir) as backend:
            judge_records(records, backend, config, max_error_share=max_error_share, source=triplets_path)
            usage = backend.usage.as_dict()
    else:
        usage = UsageTotals().as_dict()  # nothing to judge: no model is called
    report = judge_report(records, name, config)
    write_jsonl(out_path, records)
    write_json(usage_path, usage | {"model": name, "round": "judge"})
    write_json(report_path, report)
    log.info("judge %s: %s", name, report["triplets"])
    return report
