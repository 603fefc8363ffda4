"""Batch inference: the calls of one ``generate()`` sent as batch files instead of live calls.

A batch file has the OpenAI batch format (one JSON request a line, ``{"custom_id", "method",
"url", "body"}``, and one result a line); ``batch_runners`` runs it, ``run_attempts`` drives
the runs. Each attempt sends every line still pending; what a batch did not answer (a failed
line, an expired or cancelled batch) is sent again in the next attempt, up to
``max_resubmits`` times, then reported per sample as failed, where the error budget of the
stage decides. Every batch is written to a record file
(``<cache_dir>/batches/<model>/<call>.json``, ``BatchRecord``) as soon as it exists, so a job
killed while it waits resumes by polling the same batch, never by submitting it again.
Answers go to the request cache the moment their batch is read, as live answers do; once
a call is over its record goes, and a later run sends only what the cache still lacks.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from editforge.backend.settings import BatchSettings

log = logging.getLogger(__name__)

# Batch states after which nothing more happens (the rest are validating, in_progress,
# finalizing and cancelling).
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
# Statuses worth another try, live or in a batch: these and every 5xx; the same set the openai client retries.
RETRY_STATUS = {408, 409, 429}


@dataclass(frozen=True)
class Line:
    """One request of a batch file: the body a live call would send to ``url``."""

    custom_id: str
    url: str  # "/v1/chat/completions" or "/v1/completions"
    body: dict[str, Any]

    def as_json(self) -> str:
        return json.dumps(
            {"custom_id": self.custom_id, "method": "POST", "url": self.url, "body": self.body}, ensure_ascii=False
        )


@dataclass(frozen=True)
class LineResult:
    """What a batch says about one line: the response body, or an error."""

    body: dict[str, Any] | None = None
    error: str | None = None
    retryable: bool = False


class BatchError(RuntimeError):
    """A batch could not be submitted or read (not a failed line: those are outcomes)."""


class BatchLost(Exception):
    """A recorded batch the provider no longer knows, or an offline run cut off: its lines go again."""


class Runner(Protocol):
    def submit(self, entry: dict[str, Any], lines: list[Line], label: str, save: Callable[[], None]) -> None:
        """Start the batch of ``entry`` (its ``url``; ``custom_ids``, the lines): add what identifies it
        (``id`` last) to ``entry``, calling ``save`` after each step. An entry that already holds a
        step's result (a resumed job) goes on from there."""

    def wait(self, entry: dict[str, Any]) -> dict[str, LineResult]:
        """Wait until the batch ends; the outcome of each line it answered, by custom id (BatchLost:
        there is no such batch)."""


class BatchRecord:
    """The batches of one ``generate()`` call, by attempt, in a JSON file written atomically.

    ``{"model": ..., "attempts": [[{"id": ..., "url": ..., "custom_ids": [...]}, ...], ...]}``
    """

    def __init__(self, path: Path, model: str) -> None:
        self.path = path
        self.model = model
        self.attempts: list[list[dict[str, Any]]] = []
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise BatchError(f"{path}: unreadable batch record ({err}); delete it to submit the batch again") from None
        self.attempts = list(data.get("attempts", []))

    @property
    def folder(self) -> Path:
        """Where an offline run keeps the call's batch files."""
        return self.path.with_suffix("")

    def discard(self) -> None:
        """The call is over (its answers are in the cache): a later run starts afresh."""
        self.path.unlink(missing_ok=True)
        shutil.rmtree(self.folder, ignore_errors=True)

    def entries(self, attempt: int) -> list[dict[str, Any]]:
        return self.attempts[attempt] if attempt < len(self.attempts) else []

    def add(self, attempt: int, entry: dict[str, Any]) -> None:
        while len(self.attempts) <= attempt:
            self.attempts.append([])
        self.attempts[attempt].append(entry)
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps({"model": self.model, "attempts": self.attempts}), encoding="utf-8")
        os.replace(tmp, self.path)


# Called with a line and what its batch said, and whether this was the last attempt; it
# records the answers and returns the line to send again (for the samples still missing), or None.
Handler = Callable[[Line, LineResult, bool], "Line | None"]


def run_attempts(
    lines: Iterable[Line], runner: Runner, record: BatchRecord, settings: BatchSettings, handle: Handler
) -> None:
    """Send ``lines`` in batches until each is answered or has used up its resubmissions."""
    pending = {line.custom_id: line for line in lines}
    for attempt in range(settings.max_resubmits + 1):
        if not pending:
            break
        last = attempt == settings.max_resubmits
        outcomes = _attempt(pending, runner, record, attempt, settings)
        resend: dict[str, Line] = {}
        for custom_id, line in pending.items():
            unanswered = LineResult(error="the batch ended without answering it", retryable=True)
            outcome = outcomes.get(custom_id) or unanswered
            follow = handle(line, outcome, last)
            if follow is not None:
                resend[follow.custom_id] = follow
        if resend and not last:
            log.info(
                "%s: %d of %d requests to send again (attempt %d of %d)",
                record.model,
                len(resend),
                len(pending),
                attempt + 2,
                settings.max_resubmits + 1,
            )
        pending = resend
    record.discard()


def _attempt(
    pending: Mapping[str, Line], runner: Runner, record: BatchRecord, attempt: int, settings: BatchSettings
) -> dict[str, LineResult]:
    """One attempt: the batches recorded for it (a resumed job), then new ones for the lines they lack."""
    outcomes: dict[str, LineResult] = {}
    covered: set[str] = set()
    label = f"{record.model} attempt {attempt + 1}"
    for entry in record.entries(attempt):
        if "id" not in entry:  # killed while it was being submitted
            lines = [pending[custom_id] for custom_id in entry["custom_ids"] if custom_id in pending]
            if not lines:
                continue
            runner.submit(entry, lines, label, record.save)
        log.info("%s: resuming batch %s of attempt %d", record.model, entry["id"], attempt + 1)
        try:
            outcomes.update(runner.wait(entry))
        except BatchLost as lost:
            log.warning("%s: %s; its requests go again", record.model, lost)
            continue
        covered.update(entry["custom_ids"])
    fresh = [line for custom_id, line in pending.items() if custom_id not in covered]
    entries = []
    by_url: dict[str, list[Line]] = {}
    for line in fresh:
        by_url.setdefault(line.url, []).append(line)
    for url, group in by_url.items():
        for start in range(0, len(group), settings.max_requests):
            chunk = group[start : start + settings.max_requests]
            entry: dict[str, Any] = {"url": url, "custom_ids": [line.custom_id for line in chunk]}
            record.add(attempt, entry)  # before anything is sent: a killed job finds what it started
            runner.submit(entry, chunk, label, record.save)
            entries.append(entry)
    for entry in entries:
        try:
            outcomes.update(runner.wait(entry))
        except BatchLost as lost:
            log.warning("%s: %s", record.model, lost)  # its lines are unanswered: the next attempt sends them
    return outcomes


def read_results(text: str, where: str) -> dict[str, LineResult]:
    """The outcome of each line of a batch output or error file."""
    outcomes: dict[str, LineResult] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
            custom_id = item["custom_id"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise BatchError(f"{where}:{number}: not a batch result line ({type(err).__name__}: {err})") from None
        outcomes[custom_id] = _outcome(item)
    return outcomes


def _outcome(item: dict[str, Any]) -> LineResult:
    response = item.get("response") or {}
    error = item.get("error")
    status = response.get("status_code")
    if status == 200 and isinstance(response.get("body"), dict) and not error:
        return LineResult(body=response["body"])
    if status is not None and status != 200:
        body = response.get("body") or {}
        message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
        retryable = status in RETRY_STATUS or status >= 500
        return LineResult(error=f"Error code: {status} - {message or body}", retryable=retryable)
    if isinstance(error, dict):
        # batch_expired, batch_cancelled, a provider's internal error: worth another attempt.
        return LineResult(error=f"{error.get('code') or 'error'}: {error.get('message') or ''}".strip(), retryable=True)
    return LineResult(error=f"unexpected result line ({json.dumps(item)[:200]})", retryable=True)
