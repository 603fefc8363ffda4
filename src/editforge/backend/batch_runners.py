"""The two ways to run a batch file (``editforge.backend.batch`` drives them).

* ``RemoteBatches``: a provider's files and batches API (OpenAI, DashScope and others bill
  it at about half the live price): upload, ``batches.create``, poll until it ends, then
  download the output and error files.
* ``OfflineBatches``: ``vllm run-batch`` (or any command of that shape) on this node, with
  no server, for a model with a ``serve:`` block.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import openai

from editforge.backend.batch import TERMINAL, BatchError, BatchLost, Line, LineResult, log, read_results
from editforge.backend.cache import cache_key
from editforge.backend.settings import BatchSettings


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

    def wait(self, entry: dict[str, Any]) -> dict[str, LineResult]:
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
            return {custom_id: LineResult(error=error) for custom_id in entry["custom_ids"]}
        outcomes: dict[str, LineResult] = {}
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

    def wait(self, entry: dict[str, Any]) -> dict[str, LineResult]:
        path = Path(entry["output"])
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BatchLost(f"no output file {path}") from None
        return read_results(text, str(path))
