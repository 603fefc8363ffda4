"""Batch inference: the calls of one ``generate()`` sent as batch files instead of live calls.

Two ways to run a batch file, both with the OpenAI batch format (one JSON request a line,
``{"custom_id", "method", "url", "body"}``, and one result a line):

* ``RemoteBatches``: a provider's files and batches API (OpenAI, DashScope and others bill
  it at about half the live price): upload, ``batches.create``, poll until it ends, then
  download the output and error files.
* ``OfflineBatches``: ``vllm run-batch`` (or any command of that shape) on this node, with
  no server, for a model with a ``serve:`` block.

``run_attempts`` drives them. Each attempt sends every line still pending; what a batch
did not answer (a failed line, an expired or cancelled batch) is sent again in the next
attempt, up to ``max_resubmits`` times, then reported per sample as failed, where the
error budget of the stage decides. Every batch is written to a record file
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
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import openai

from editforge.backend.cache import cache_key

log = logging.getLogger(__name__)

# Batch states after which nothing more happens (the rest are validating, in_progress,
# finalizing and cancelling).
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
_RETRY_STATUS = {408, 409, 429}  # and every 5xx, as for live calls


@dataclass(frozen=True)
class BatchSettings:
    """``batch:`` of a model entry."""

    poll_s: float = 60.0  # seconds between two looks at a running batch
    completion_window: str = "24h"  # what the provider is given to finish in
    max_requests: int = 50_000  # lines per batch file (OpenAI's limit)
    max_resubmits: int = 2  # attempts after the first for lines a batch did not answer

    def __post_init__(self) -> None:
        if not self.poll_s > 0:
            raise ValueError("poll_s must be positive")
        if self.max_requests < 1:
            raise ValueError("max_requests must be at least 1")
        if self.max_resubmits < 0:
            raise ValueError("max_resubmits must not be negative")


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
class Outcome:
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

    def wait(self, entry: dict[str, Any]) -> dict[str, Outcome]:
        """Wait until the batch ends; the outcome of each line it answered, by custom id (BatchLost:
        there is no such batch)."""


# --------------------------------------------------------------------------- the record


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


# --------------------------------------------------------------------------- driving attempts

# Called with a line and what its batch said, and whether this was the last attempt; it
# records the answers and returns the line to send again (for the samples still missing), or None.
Handler = Callable[[Line, Outcome, bool], "Line | None"]


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
            outcome = outcomes.get(custom_id) or Outcome(error="the batch ended without answering it", retryable=True)
            follow = handle(line, outcome, last)
            if follow is not None:
                resend[follow.custom_id] = follow
        if resend and not last:
            log.info("%s: %d of %d requests to send again (attempt %d of %d)", record.model, len(resend),
                     len(pending), attempt + 2, settings.max_resubmits + 1)
        pending = resend
    record.discard()


def _attempt(
    pending: Mapping[str, Line], runner: Runner, record: BatchRecord, attempt: int, settings: BatchSettings
) -> dict[str, Outcome]:
    """One attempt: the batches recorded for it (a resumed job), then new ones for the lines they lack."""
    outcomes: dict[str, Outcome] = {}
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


# --------------------------------------------------------------------------- result files


def read_results(text: str, where: str) -> dict[str, Outcome]:
    """The outcome of each line of a batch output or error file."""
    outcomes: dict[str, Outcome] = {}
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


def _outcome(item: dict[str, Any]) -> Outcome:
    response = item.get("response") or {}
    error = item.get("error")
    status = response.get("status_code")
    if status == 200 and isinstance(response.get("body"), dict) and not error:
        return Outcome(body=response["body"])
    if status is not None and status != 200:
        body = response.get("body") or {}
        message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
        retryable = status in _RETRY_STATUS or status >= 500
        return Outcome(error=f"Error code: {status} - {message or body}", retryable=retryable)
    if isinstance(error, dict):
        # batch_expired, batch_cancelled, a provider's internal error: worth another attempt.
        return Outcome(error=f"{error.get('code') or 'error'}: {error.get('message') or ''}".strip(), retryable=True)
    return Outcome(error=f"unexpected result line ({json.dumps(item)[:200]})", retryable=True)


# --------------------------------------------------------------------------- a provider's batch API


class RemoteBatches:
    """Batches through the openai client's files and batches API."""

    def __init__(self, client: openai.OpenAI, settings: BatchSettings, name: str, scrub: Callable[[str], str]) -> None:
        self.client = client
        self.settings = settings
        self.name = name
        self.scrub = scrub  # removes the API key from a text

    def submit(self, entry: dict[str, Any], lines: list[Line], label: str, save: Callable[[], None]) -> None:
        try:
            if "input_file_id" in entry:
                # Uploaded by a job killed before it recorded the batch: that batch may exist.
                found = self._started_from(entry["input_file_id"])
                if found is not None:
                    entry["id"] = found
                    save()
                    return
            else:
                content = "".join(line.as_json() + "\n" for line in lines).encode("utf-8")
                entry["input_file_id"] = self.client.files.create(file=("batch.jsonl", content), purpose="batch").id
                save()
            batch = self.client.batches.create(
                input_file_id=entry["input_file_id"],
                endpoint=entry["url"],
                completion_window=self.settings.completion_window,  # type: ignore[arg-type]
                metadata={"editforge": label},
            )
        except openai.OpenAIError as err:
            raise BatchError(f"models.{self.name}: submitting a batch failed: {self._describe(err)}") from None
        entry["id"] = batch.id
        save()
        log.info("%s: batch %s submitted (%d requests, %s)", self.name, batch.id, len(lines), entry["url"])

    def _started_from(self, input_file_id: str) -> str | None:
        """The id of a batch of this input file, if one was created."""
        for batch in self.client.batches.list(limit=100):
            if batch.input_file_id == input_file_id:
                return batch.id
        return None

    def wait(self, entry: dict[str, Any]) -> dict[str, Outcome]:
        started = time.monotonic()
        while True:
            try:
                batch = self.client.batches.retrieve(entry["id"])
            except openai.NotFoundError:
                raise BatchLost(f"the server knows no batch {entry['id']}") from None
            except openai.OpenAIError as err:
                message = f"models.{self.name}: reading batch {entry['id']} failed: {self._describe(err)}"
                raise BatchError(message) from None
            counts = batch.request_counts
            done = f"{counts.completed}/{counts.total} done, {counts.failed} failed" if counts else "no counts yet"
            waited = time.monotonic() - started
            log.info("%s: batch %s %s: %s, waited %d min %02d s", self.name, batch.id, batch.status, done,
                     waited // 60, waited % 60)
            if batch.status in TERMINAL:
                break
            time.sleep(self.settings.poll_s)
        if batch.status == "failed":
            messages = "; ".join(str(e.message) for e in (batch.errors.data if batch.errors else None) or [])
            error = f"batch {batch.id} failed: {messages or 'no reason given'}"
            return {custom_id: Outcome(error=error) for custom_id in entry["custom_ids"]}
        outcomes: dict[str, Outcome] = {}
        for file_id in (batch.error_file_id, batch.output_file_id):  # output last: it wins on a clash
            if file_id:
                outcomes.update(read_results(self._download(file_id), f"batch {batch.id} file {file_id}"))
        return outcomes

    def _download(self, file_id: str) -> str:
        try:
            return self.client.files.content(file_id).text
        except openai.OpenAIError as err:
            raise BatchError(f"models.{self.name}: downloading {file_id} failed: {self._describe(err)}") from None

    def _describe(self, err: openai.OpenAIError) -> str:
        text = err.message if isinstance(err, openai.APIStatusError) else f"{type(err).__name__}: {err}"
        return self.scrub(text[:500])


# --------------------------------------------------------------------------- offline, on this node

class OfflineBatches:
    """Batch files run by a command on this node (``vllm run-batch``), its output in the job's log.

    ``folder`` keeps the input and output files of the call; an output that is already
    there (a job killed after the command finished) is read, not made again.
    """

    def __init__(self, argv: Callable[[Path, Path], list[str]], env: Mapping[str, str], folder: Path, name: str):
        self.argv = argv
        self.env = env
        self.folder = folder
        self.name = name

    def submit(self, entry: dict[str, Any], lines: list[Line], label: str, save: Callable[[], None]) -> None:
        entry.update(self.run(lines))
        save()

    def run(self, lines: list[Line]) -> dict[str, Any]:
        """Run the command on the batch file of ``lines`` (unless its output exists); its id and output."""
        # Named by its lines, so a job killed between the command's end and the record finds its output.
        stem = cache_key({"custom_ids": [line.custom_id for line in lines]})[:16]
        source, target = self.folder / f"{stem}.input.jsonl", self.folder / f"{stem}.output.jsonl"
        entry = {"id": stem, "output": str(target)}
        if target.exists():
            log.info("%s: batch file %s already done", self.name, target)
            return entry
        self.folder.mkdir(parents=True, exist_ok=True)
        source.write_text("".join(line.as_json() + "\n" for line in lines), encoding="utf-8")
        partial = target.with_name(target.name + ".part")  # only a finished output gets the final name
        argv = self.argv(source, partial)
        log.info("%s: running %s (%d requests)", self.name, " ".join(argv), len(lines))
        started = time.monotonic()
        try:
            completed = subprocess.run(argv, stdin=subprocess.DEVNULL, env={**os.environ, **self.env}, check=False)
        except OSError as err:
            raise BatchError(f"models.{self.name}.serve.batch_command: cannot start {argv[0]!r}: {err}") from None
        if completed.returncode != 0 or not partial.exists():
            raise BatchError(
                f"models.{self.name}.serve.batch_command: {argv[0]} exited with code {completed.returncode}"
                f"{'' if partial.exists() else ' and wrote no output file'}; its output is in this job's log"
            )
        os.replace(partial, target)
        log.info("%s: batch file done in %.1f s", self.name, time.monotonic() - started)
        return entry

    def wait(self, entry: dict[str, Any]) -> dict[str, Outcome]:
        path = Path(entry["output"])
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BatchLost(f"no output file {path}") from None
        return read_results(text, str(path))
