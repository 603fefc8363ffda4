"""The ``openai`` backend: any OpenAI-compatible server (vLLM, SGLang, a hosted API).

Live calls go out at most ``max_concurrency`` at once, through one client per event
loop, with our own retry loop (``Retry-After`` honoured, bad bodies retried too) and
the body parsed here. A model in ``mode: batch`` sends its calls as batch files
instead (``editforge.backend.batch``); a model with a ``serve:`` block gets its server
started at the first call the cache cannot answer (``editforge.backend.serving``).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import openai

from editforge.backend.base import Backend, Run
from editforge.backend.batch import RETRY_STATUS, BatchRecord, Line, LineResult, run_attempts
from editforge.backend.batch_runners import OfflineBatches, RemoteBatches
from editforge.backend.cache import CompletionCache, cache_key
from editforge.backend.models import model_identity
from editforge.backend.serving import ModelServer
from editforge.backend.settings import OpenAISettings
from editforge.backend.types import Completion, Price, Request

log = logging.getLogger("editforge.backend")  # the name its lines have carried in the stage logs

# vLLM and SGLang continue a final assistant message when asked this way.
_CONTINUE_FLAGS = {"continue_final_message": True, "add_generation_prompt": False}


class _BadResponse(Exception):
    """A 200 answer without usable content: malformed JSON, no choices."""


class OpenAIBackend(Backend):
    """An OpenAI-compatible server, called concurrently with our own retry loop."""

    kind = "openai"

    def __init__(
        self,
        name: str,
        settings: OpenAISettings,
        api_key: str,
        cache: CompletionCache | None,
        price: Price | None,
        batch_price: Price | None = None,
    ) -> None:
        # A served local folder (a student) is keyed by its weights, as in-process models are.
        identity = model_identity(settings.model) if settings.serve else settings.model
        super().__init__(name, identity, cache, price, batch_price)
        self.settings = settings
        self._api_key = api_key
        self._server: ModelServer | None = None

    def generate(self, requests: Sequence[Request], *, desc: str = "generate") -> list[list[Completion]]:
        with Run(self, requests, desc) as run:
            jobs = [(index, samples) for index in range(len(requests)) for samples in self._groups(run.missing(index))]
            if jobs and self.settings.mode == "batch":
                self._run_batches(requests, run, jobs)
            elif jobs:
                asyncio.run(self._run_jobs(requests, run, jobs, self._base_url()))
                if self._server is not None:
                    self._server.check_alive()
            return run.completions()

    def _run_batches(self, requests: Sequence[Request], run: Run, jobs: list[tuple[int, list[int]]]) -> None:
        """The missing samples as batch lines, until answered or out of resubmissions (editforge.backend.batch)."""
        if self._cache is None:
            raise ValueError(f"models.{self.name}.mode: batch needs a cache_dir (a killed job resumes from it)")
        # Named by every key of the call, answered or not, so a resumed job finds its batches.
        call = cache_key({"batch_call": [key for row in run.keys for key in row]})
        record = BatchRecord(self._cache.root / "batches" / self.name / f"{call}.json", self.name)
        targets: dict[str, tuple[int, list[int]]] = {}

        def line(index: int, samples: list[int]) -> Line:
            key = run.keys[index][samples[0]]
            path, body = self._body(requests[index], len(samples), key)
            targets[key] = (index, samples)
            return Line(key, "/v1" + path, body)

        def handle(sent: Line, outcome: LineResult, last: bool) -> Line | None:
            index, samples = targets.pop(sent.custom_id)
            request = requests[index]
            if outcome.body is not None:
                try:
                    got = _parse_choices(outcome.body, len(samples), chat=request.prompt is None)
                except _BadResponse as err:
                    outcome = LineResult(error=f"bad response: {err}", retryable=True)
                else:
                    for sample, completion in zip(samples, got, strict=False):  # got may be shorter
                        run.deliver(index, sample, replace(completion, batch=True))
                    samples = samples[len(got) :]
                    outcome = LineResult(
                        error=f"{len(got)} of {len(got) + len(samples)} choices answered", retryable=True
                    )
            if not samples:
                return None
            if outcome.retryable and not last:
                return line(index, samples)
            error = self._scrub(f"batch: {outcome.error}")
            log.warning("%s: request %d failed: %s", self.name, index, error)
            for sample in samples:
                run.deliver(index, sample, Completion("", None, error=error, batch=True))
            return None

        lines = [line(index, samples) for index, samples in jobs]
        run_attempts(lines, self._batch_runner(record), record, self.settings.batch, handle)

    def _batch_runner(self, record: BatchRecord) -> RemoteBatches | OfflineBatches:
        serve = self.settings.serve
        if serve is not None:
            model = self.settings.model
            return OfflineBatches(
                lambda source, target: serve.batch_argv(model, source, target),
                serve.env,
                record.folder,
                self.name,
            )
        client = openai.OpenAI(
            api_key=self._api_key,
            base_url=self.settings.base_url,
            timeout=self.settings.timeout_s,
            max_retries=self.settings.max_retries,  # uploads and polls; the client backs off
        )
        return RemoteBatches(client, self.settings.batch, self.name, self._scrub)

    def close(self) -> None:
        """Stop the server this backend started, if any (each generate() call opens and
        closes its own client)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def _base_url(self) -> str | None:
        """The configured server, or the one this backend starts on first need."""
        if self.settings.serve is None:
            return self.settings.base_url
        if self._server is None:
            server = ModelServer(self.name, self.settings.model, self.settings.serve)
            server.start()
            self._server = server
        return self._server.base_url

    def _groups(self, missing: list[int]) -> list[list[int]]:
        """The calls for one request's missing samples: one with n, or one each."""
        if not missing:
            return []
        return [missing] if self.settings.use_n else [[sample] for sample in missing]

    def _extra_body(self, request: Request) -> dict[str, Any]:
        body = dict(self.settings.extra_body)
        if request.prefill and request.prompt is None and self.settings.prefill == "continue_final_message":
            body.update(_CONTINUE_FLAGS)
        return body

    def _key_extras(self, request: Request) -> dict[str, Any]:
        return {"extra_body": self._extra_body(request)}

    async def _run_jobs(
        self, requests: Sequence[Request], run: Run, jobs: list[tuple[int, list[int]]], base_url: str | None
    ) -> None:
        limit = self.settings.max_concurrency
        # One client per event loop: its connection pool belongs to the loop.
        client = openai.AsyncOpenAI(
            api_key=self._api_key,
            base_url=base_url,
            max_retries=0,  # retries are ours: we honour Retry-After and retry bad bodies too
            timeout=self.settings.timeout_s,
            http_client=_http_client(limit),
        )
        slots = asyncio.Semaphore(limit)
        try:
            await asyncio.gather(
                *(self._job(client, slots, requests[index], index, samples, run) for index, samples in jobs)
            )
        finally:
            await client.close()

    async def _job(
        self,
        client: openai.AsyncOpenAI,
        slots: asyncio.Semaphore,
        request: Request,
        index: int,
        samples: list[int],
        run: Run,
    ) -> None:
        """Fill ``samples`` of one request, retrying failed calls; a server that returns
        fewer choices than asked is simply asked again for the rest."""
        pending = list(samples)
        failures = 0
        while pending:
            try:
                got = await self._call(client, slots, request, len(pending), run.keys[index][pending[0]])
            except (openai.OpenAIError, OSError, _BadResponse) as err:  # OSError includes TimeoutError
                wait = self._retry_wait(err, failures)
                if wait is None or failures == self.settings.max_retries:
                    error = self._describe(err) + ("" if wait is None else f" (after {failures + 1} attempts)")
                    log.warning("%s: request %d failed: %s", self.name, index, error)
                    for sample in pending:
                        run.deliver(index, sample, Completion("", None, error=error))
                    return
                failures += 1
                log.debug("%s: request %d: %s; retrying in %.2f s", self.name, index, self._describe(err), wait)
                await asyncio.sleep(wait)
                continue
            for sample, completion in zip(pending, got, strict=False):  # got may be shorter
                run.deliver(index, sample, completion)
            pending = pending[len(got) :]

    async def _call(
        self, client: openai.AsyncOpenAI, slots: asyncio.Semaphore, request: Request, n: int, key: str
    ) -> list[Completion]:
        path, body = self._body(request, n, key)
        async with slots, asyncio.timeout(self.settings.timeout_s):
            try:
                # The client's generic post() (auth, headers, error types) rather than the
                # typed create(): its parameter transform and response models cost 0.6 ms
                # more CPU per call, which shows at hundreds of calls per second.
                response = await client.post(path, cast_to=object, body=body)
            except json.JSONDecodeError as err:
                raise _BadResponse(f"malformed JSON body ({err.msg})") from None
        return _parse_choices(response, n, chat=request.prompt is None)

    def _body(self, request: Request, n: int, key: str) -> tuple[str, dict[str, Any]]:
        """The path under the base URL and the body of the call for ``n`` samples (live or in a batch)."""
        sampling = request.sampling
        body: dict[str, Any] = {
            "model": self.settings.model,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
        }
        if request.prompt is not None:
            path, body["prompt"] = "/completions", request.prompt + request.prefill
        else:
            path, body["messages"] = "/chat/completions", list(request.messages)
            if request.prefill:
                body["messages"].append({"role": "assistant", "content": request.prefill})
        if n > 1:
            body["n"] = n
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if self.settings.send_seed:
            body["seed"] = int(key[:8], 16)
        body.update(self._extra_body(request))
        return path, body

    def _retry_wait(self, err: Exception, failures: int) -> float | None:
        """Seconds to wait before trying again, or None where trying again cannot help."""
        if isinstance(err, openai.APIStatusError):
            if err.status_code not in RETRY_STATUS and err.status_code < 500:
                return None
            hinted = _retry_after(err.response.headers)
            if hinted is not None:
                return hinted
        elif not isinstance(err, (openai.APIConnectionError, openai.APIResponseValidationError, OSError, _BadResponse)):
            return None
        # Exponential backoff with full jitter.
        return random.uniform(0, min(self.settings.retry_max_s, self.settings.retry_base_s * 2**failures))

    def _describe(self, err: Exception) -> str:
        if isinstance(err, openai.APIStatusError):
            text = err.message  # "Error code: <status> - <the server's message>"
        elif isinstance(err, TimeoutError):
            text = f"no answer within {self.settings.timeout_s:g} s"
        elif isinstance(err, openai.APIConnectionError):
            # The transport's own exception says what happened; openai's message may not
            # (its aiohttp transport reports a closed connection as a timeout).
            root: BaseException = err
            while root.__cause__ is not None:
                root = root.__cause__
            text = f"connection error: {type(root).__name__}: {root}"
        elif isinstance(err, _BadResponse):
            text = f"bad response: {err}"
        else:
            text = f"{type(err).__name__}: {err}"
        return self._scrub(text[:1000])

    def _scrub(self, text: str) -> str:
        """A server may echo request headers in its error text: never pass the key on."""
        return text if self._api_key == "EMPTY" else text.replace(self._api_key, "<api key>")


def _http_client(connections: int) -> Any:
    """The HTTP client under the openai client, with room for ``connections`` at once.

    openai's aiohttp transport where aiohttp is installed: it costs about 0.4 ms
    less CPU per call than the default httpx pool (0.55 against 0.95 ms in all,
    measured against the fake server). Otherwise the default.
    """
    # The limits' type is the HTTP library's own (httpx or httpx2, by openai version).
    limits = type(openai.DEFAULT_CONNECTION_LIMITS)(max_connections=connections, max_keepalive_connections=connections)
    try:
        return openai.DefaultAioHttpClient(limits=limits)
    except (AttributeError, RuntimeError):  # an older openai, or aiohttp is missing
        return openai.DefaultAsyncHttpxClient(limits=limits)


def _parse_choices(response: object, n: int, *, chat: bool) -> list[Completion]:
    """At most ``n`` completions from a response body; the call's usage is spread over
    them (prompt tokens on the first, completion tokens divided evenly)."""
    if not isinstance(response, dict):  # the client hands back a body that is not JSON as text
        raise _BadResponse("response body is not a JSON object")
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _BadResponse("response has no choices")
    try:
        ordered = sorted(choices, key=lambda choice: choice.get("index") or 0)[:n]
        texts = [(choice["message"]["content"] if chat else choice["text"]) or "" for choice in ordered]
        finishes = [choice.get("finish_reason") for choice in ordered]
        usage = response.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        share, rest = divmod(int(usage.get("completion_tokens") or 0), len(ordered))
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise _BadResponse(f"unexpected response shape ({type(err).__name__}: {err})") from None
    return [
        Completion(
            text=text,
            finish_reason=finish,
            prompt_tokens=prompt_tokens if position == 0 else 0,
            completion_tokens=share + (rest if position == 0 else 0),
        )
        for position, (text, finish) in enumerate(zip(texts, finishes, strict=True))
    ]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The server's wait in seconds: ``retry-after-ms``, or ``Retry-After`` as seconds or a date."""
    try:
        milliseconds = headers.get("retry-after-ms")
        if milliseconds is not None:
            return max(0.0, float(milliseconds) / 1000)
    except ValueError:
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None
