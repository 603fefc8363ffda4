"""The rounds of synthesis: their steps, the asking, the error budget, ``run_round1`` and ``run_round2``.

Two modes (``synthesis.mode``):

* ``dialogue``: the paper's two free-form turns, one call each.
* ``sectioned`` (default): each section is its own call, with the answer so far
  and the next section's header prefilled (``Request.prefill``) and stop strings
  that end the section. Round 1 is three calls (program, descriptive, lazy),
  round 2 one (the edited program). Weak models follow the format this way, and
  strong ones waste fewer answers. The assembled answers read like a well-formed
  dialogue. A sectioned round 2 always asks for code, so the ``<UNREASONABLE>``
  veto cannot occur in this mode.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from editforge.backend import Backend, Completion, Request, Sampling, UsageTotals, open_backend
from editforge.parsing import (
    COMMIT_KIND,
    ROUND1_ERROR,
    ROUND2_ERROR,
    Round1Parsed,
    parse_round1_record,
)
from editforge.records import (
    DialogueRecord,
    PathLike,
    RecordError,
    Turn,
    read_jsonl,
    status_counts,
    write_json,
    write_jsonl,
)
from editforge.synthesis.prompts import commit_messages, round1_messages, round2_message
from editforge.templates import FewShot, load_fewshot

log = logging.getLogger(__name__)

CacheDir = str | Path | None  # None: no cache

MODES = ("sectioned", "dialogue")
DEFAULT_SAMPLING = {"temperature": 0.8, "top_p": 0.95, "max_tokens": 2048}  # the paper's
DEFAULT_MAX_ERROR_SHARE = 0.05
_HEADER_LEFTOVER = re.compile(r"(?:^|\n)[ \t*#_]*$")


class SynthesisError(ValueError):
    """A synthesis setting, template or input record that cannot be used."""


class ErrorBudgetExceeded(RuntimeError):
    """More of a shard's calls failed than ``synthesis.max_error_share`` allows."""


@dataclass(frozen=True)
class _Step:
    """One call of a sectioned round."""

    section: str
    lead: str  # appended to the answer so far; the model continues after it
    stop: tuple[str, ...]
    close: str = ""  # appended after the model's text (a code block's closing fence)


@dataclass(frozen=True)
class _Round:
    key: str  # the DialogueRecord field of its turns
    error: str  # the drop reason when a call fails
    steps: tuple[_Step, ...]  # its calls in sectioned mode


# Descriptive text ends where the model starts the lazy header, however decorated;
# what decoration is left ("**", "### ") is stripped by _clean.
ROUND1 = _Round(
    "round1",
    ROUND1_ERROR,
    (
        _Step("program_before", "[Program Before Edit]\n```python\n", ("```",), close="\n```"),
        _Step("descriptive", "\n\n[Descriptive]\n", ("[Lazy", "\n\n[", "\n**Lazy", "\n### Lazy")),
        _Step("lazy", "\n\n[Lazy]\n", ("\n\n", "\n[", "```")),
    ),
)
ROUND2 = _Round(
    "round2", ROUND2_ERROR, (_Step("program_after", "[Program After Edit]\n```python\n", ("```",), close="\n```"),)
)
# A commit record's only round: the two instructions, as round 1 asks for them. Sectioned, it is two
# calls, prefilled with "[Descriptive]" and then with the answer so far and "[Lazy]" (round 1's steps and
# stop strings, so the small embedded model follows the format); in dialogue mode, one free-form call.
# Its turns are stored under "round1" like a pair's.
COMMIT_ROUND = _Round(
    "round1",
    ROUND1_ERROR,
    (replace(ROUND1.steps[1], lead="[Descriptive]\n"), ROUND1.steps[2]),
)


def is_commit(seed: dict[str, Any]) -> bool:
    """Whether a seed record (a dialogue record's ``pair``) is a commit record."""
    return seed.get("kind") == COMMIT_KIND


def _settings(settings: dict[str, Any]) -> tuple[str, Sampling]:
    mode = settings.get("mode", "sectioned")
    if mode not in MODES:
        raise SynthesisError(f"synthesis.mode: expected one of {MODES}, got {mode!r}")
    given = settings.get("sampling") or {}
    unknown = sorted(set(given) - set(DEFAULT_SAMPLING))
    if unknown:
        raise SynthesisError(f"synthesis.sampling: unknown key(s) {', '.join(unknown)}")
    values = {**DEFAULT_SAMPLING, **given}
    return mode, Sampling(float(values["temperature"]), float(values["top_p"]), int(values["max_tokens"]))


def _new_record(pair: dict[str, Any], number: int, model: str, fewshot: dict[str, FewShot]) -> dict[str, Any]:
    """A DialogueRecord holding the round-1 prompt of a pair or commit record."""
    commit = is_commit(pair)
    where = f"{'commit' if commit else 'pair'} record {number} ({pair.get('id', 'no id')})"
    for key in ("id", "shard", "commit" if commit else "snippets", "fewshot_id"):
        if key not in pair:
            raise SynthesisError(f"{where}: missing {key!r}")
    if commit:
        info = pair["commit"]
        fields = ("old_code", "new_code", "message")
        if not (isinstance(info, dict) and all(isinstance(info.get(f), str) and info[f].strip() for f in fields)):
            raise SynthesisError(f"{where}: 'commit' must hold non-empty {', '.join(fields)}")
    else:
        snippets = pair["snippets"]
        if not (
            isinstance(snippets, list)
            and len(snippets) == 2
            and all(isinstance(s, dict) and isinstance(s.get("text"), str) for s in snippets)
        ):
            raise SynthesisError(f"{where}: 'snippets' must be two snippets with 'text'")
    if pair["fewshot_id"] not in fewshot:
        raise SynthesisError(f"{where}: few-shot example {pair['fewshot_id']!r} is not in templates/fewshot.jsonl")
    example = fewshot[pair["fewshot_id"]]
    record = DialogueRecord(
        id=pair["id"],
        shard=pair["shard"],
        model=model,
        pair=pair,  # type: ignore[typeddict-item]
        messages=commit_messages(pair, example) if commit else round1_messages(pair, example),
        round1={},
        status="ok",
    )
    return dict(record)


def _turn(completion: Completion) -> Turn:
    return Turn(
        text=completion.text,
        finish_reason=completion.finish_reason,
        usage={"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens},
        error=completion.error,
    )


def _clean(section: str, text: str) -> str:
    """A section's text as it goes into the assembled answer."""
    if section.startswith("program"):
        return text.rstrip().lstrip("\n")  # keep the first line's indentation
    if section == "descriptive":
        # The call stopped inside the lazy header: drop what came before "[Lazy" ("**", "### ").
        return _HEADER_LEFTOVER.sub("", text.rstrip()).strip()
    return text.strip()


@dataclass
class _Answer:
    text: str
    turns: dict[str, Turn]
    failed: bool


def _free_form(
    backend: Backend, conversations: list[list[dict[str, str]]], sampling: Sampling, desc: str
) -> list[_Answer]:
    """One free-form answer per conversation."""
    results = backend.generate([Request(messages=m, sampling=sampling) for m in conversations], desc=desc)
    return [_Answer(c.text, {"answer": _turn(c)}, c.error is not None) for (c,) in results]


def _sectioned(
    backend: Backend, conversations: list[list[dict[str, str]]], steps: tuple[_Step, ...], sampling: Sampling, desc: str
) -> list[_Answer]:
    """Answers built one section per call; a record stops at its first failed or truncated call."""
    answers = [_Answer("", {}, False) for _ in conversations]
    active = list(range(len(conversations)))
    for step in steps:
        if not active:
            break
        step_sampling = replace(sampling, stop=step.stop)
        requests = [
            Request(messages=conversations[i], prefill=answers[i].text + step.lead, sampling=step_sampling)
            for i in active
        ]
        results = backend.generate(requests, desc=f"{desc} {step.section}")
        still = []
        for i, (completion,) in zip(active, results):
            answer = answers[i]
            answer.turns[step.section] = _turn(completion)
            if completion.error is not None:
                answer.failed = True
            elif completion.finish_reason == "length":
                answer.text += step.lead + completion.text  # kept as cut; parsing drops it
            else:
                answer.text += step.lead + _clean(step.section, completion.text) + step.close
                still.append(i)
        active = still
    return answers


def _check_error_budget(model_name: str, kind: str, answers: list[_Answer], max_share: float) -> None:
    """Fail the shard when too many of its answers failed, naming the most common error.

    The answers that came back are in the cache by now, so the rerun asks only for the rest.
    """
    errors = Counter(
        turn.get("error") for answer in answers if answer.failed for turn in answer.turns.values() if turn.get("error")
    )
    failed = sum(1 for answer in answers if answer.failed)
    if answers and failed / len(answers) > max_share:
        error, count = errors.most_common(1)[0] if errors else ("unknown", failed)
        raise ErrorBudgetExceeded(
            f"model {model_name!r} ({kind}): {failed} of {len(answers)} answers failed, more than "
            f"synthesis.max_error_share = {max_share}; most common error ({count}x): {error}. "
            "Fix the cause and rerun: finished calls are cached and are not paid again."
        )


@dataclass
class _Group:
    """Records answered the same way: their indices, conversations and round."""

    round_: _Round
    todo: list[int]
    conversations: list[list[dict[str, str]]]


def _ask(
    records: list[dict[str, Any]],
    groups: list[_Group],
    model_name: str,
    model_spec: dict[str, Any],
    settings: dict[str, Any],
    cache_dir: CacheDir,
) -> dict[str, Any]:
    """Answer each group's conversations, store the answers in their records; return the usage.

    Each step sends all requests of a group in one ``generate()`` call, so a
    backend can batch or run them concurrently. A call that fails after the
    backend's retries drops its record (``round1_error``/``round2_error``); a
    truncated answer is kept, and parsing decides whether it is usable.

    The backend is opened once for all groups (a shard may mix pairs and
    commits), and not at all when there is nothing to ask.
    """
    mode, sampling = _settings(settings)
    groups = [g for g in groups if g.todo]
    if not groups:
        return UsageTotals().as_dict()  # nothing to ask: no model is loaded
    with open_backend(model_name, model_spec, cache_dir) as backend:
        for group in groups:
            kind = "commit" if group.round_ is COMMIT_ROUND else group.round_.key
            desc = f"{model_name} {kind}"
            if mode == "dialogue":
                answers = _free_form(backend, group.conversations, sampling, desc)
            else:
                answers = _sectioned(backend, group.conversations, group.round_.steps, sampling, desc)
            _check_error_budget(model_name, kind, answers, settings.get("max_error_share", DEFAULT_MAX_ERROR_SHARE))
            for i, conversation, answer in zip(group.todo, group.conversations, answers):
                record = records[i]
                record[group.round_.key] = answer.turns
                if answer.failed:
                    record["messages"] = conversation
                    record.update(status="dropped", reason=group.round_.error)
                else:
                    record["messages"] = [*conversation, {"role": "assistant", "content": answer.text}]
            log.info("%s (%s mode): %d of %d records asked", desc, mode, len(group.todo), len(records))
        usage = backend.usage.as_dict()
    return usage


def _write(
    records: list[dict[str, Any]], usage: dict[str, Any], out_path: PathLike, usage_path: PathLike
) -> dict[str, int]:
    write_jsonl(out_path, records)
    write_json(usage_path, usage)
    counts = status_counts(records)
    log.info("%s: %s", out_path, counts)
    return counts


def run_round1(
    pairs_path: PathLike,
    out_path: PathLike,
    model_name: str,
    model_spec: dict[str, Any],
    settings: dict[str, Any],
    cache_dir: CacheDir,
    usage_path: PathLike,
) -> dict[str, int]:
    """Round 1 for every seed record of a shard (pairs and commits); writes dialogue records and the usage.

    Returns the status counts.
    """
    _settings(settings)  # a bad setting fails before the pairs are read
    fewshot = load_fewshot()
    records = [_new_record(pair, n, model_name, fewshot) for n, pair in enumerate(read_jsonl(pairs_path), start=1)]
    groups = []
    for round_, commit in ((ROUND1, False), (COMMIT_ROUND, True)):
        todo = [i for i, record in enumerate(records) if is_commit(record["pair"]) == commit]
        groups.append(_Group(round_, todo, [list(records[i]["messages"]) for i in todo]))
    usage = _ask(records, groups, model_name, model_spec, settings, cache_dir)
    return _write(records, usage | {"model": model_name, "round": "round1"}, out_path, usage_path)


def run_round2(
    round1_path: PathLike,
    out_path: PathLike,
    model_name: str,
    model_spec: dict[str, Any],
    settings: dict[str, Any],
    cache_dir: CacheDir,
    usage_path: PathLike,
) -> dict[str, int]:
    """Round 2 for the pair records whose round 1 parsed; all records are written. Returns status counts.

    Round 2 is not requested for records whose round-1 answer does not parse,
    since they cannot become triplets; they pass through unchanged, like dropped
    records, and the parse stage names their reason. Commit records need no
    second round (there is no program to write: parsing takes the code from the
    commit) and pass through unchanged.
    """
    _settings(settings)
    records: list[dict[str, Any]] = []
    for number, record in enumerate(read_jsonl(round1_path), start=1):
        if not all(key in record for key in ("id", "status", "messages", "round1")):
            raise RecordError(f"{round1_path}: record {number} is not a round-1 dialogue record")
        records.append(record)
    todo = [
        i
        for i, record in enumerate(records)
        if record["status"] == "ok"
        and not is_commit(record.get("pair") or {})  # a commit already has its code: nothing to ask
        and isinstance(parse_round1_record(record), Round1Parsed)
    ]
    conversations = [[*records[i]["messages"], round2_message()] for i in todo]
    usage = _ask(records, [_Group(ROUND2, todo, conversations)], model_name, model_spec, settings, cache_dir)
    return _write(records, usage | {"model": model_name, "round": "round2"}, out_path, usage_path)
