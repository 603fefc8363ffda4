"""All LLM traffic: one request/response interface over two backends, with a cache.

* ``Sampling`` and ``Request`` describe one prompt; ``Request.n`` samples are wanted.
* ``Backend.generate(requests)`` returns, for each request, ``n`` ``Completion``
  objects in sample-index order. It never raises for a failed call: the error text
  is put on the completion (``error``) after the retries are spent.
* Every (request, sample index) is looked up in the cache first and stored there as
  soon as it returns, so a killed run that is started again repeats no completed call.
* ``open_backend(name, spec, cache_dir)`` builds a backend from one ``models:``
  entry of the config (see config/schema.yaml and ``open_backend``).

Two backends: ``openai`` talks to any OpenAI-compatible server (vLLM, SGLang, a
hosted API) with bounded concurrency and its own retry loop; ``transformers``
runs a model in this process, in deterministic batches.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import os
import random
import sys
import time
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, cast

import openai
from tqdm import tqdm

from editforge.backend import embedded
from editforge.backend.batch import BatchRecord, BatchSettings, Line, OfflineBatches, Outcome, RemoteBatches, run_attempts
from editforge.backend.cache import CompletionCache, cache_key
from editforge.edit_format import render_plain
from editforge.backend.serving import ModelServer, ServeSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    stop: tuple[str, ...] = ()


@dataclass
class Request:
    """A chat (``messages``) or a plain text completion (``prompt``)."""

    messages: list[dict[str, str]] = field(default_factory=list)
    prompt: str | None = None
    # The opening of the answer, continued by the model; the returned text excludes it.
    prefill: str = ""
    sampling: Sampling = field(default_factory=Sampling)
    n: int = 1


@dataclass
class Completion:
    text: str
    finish_reason: str | None  # "stop", "length", or None when the call failed
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    cached: bool = False
    batch: bool = False  # answered through a batch (billed at the batch price)


@dataclass
class UsageTotals:
    """What a backend's calls in this process asked and got.

    ``calls`` (paid now), ``cached`` and ``errors`` count completions; each answer is one
    of them, so a job resumed after a kill counts the answers of the killed run as
    ``cached``. Tokens and ``cost`` are those paid now; ``cached_*`` are the tokens the
    cached answers cost when they were made, so ``prompt_tokens + cached_prompt_tokens``
    is what every answer took, whichever run paid for it.
    """

    calls: int = 0  # completions produced by the model in this process
    cached: int = 0  # completions served from the cache
    errors: int = 0
    batch_calls: int = 0  # of ``calls``, those answered through batches
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    cost: float | None = None  # only where the model spec gives prices; batch answers at the batch price
    cached_cost: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --------------------------------------------------------------------------- model specs


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def of(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / 1e6


@dataclass(frozen=True)
class OpenAISettings:
    model: str  # the served model name
    base_url: str | None = None
    api_key_env: str | None = None  # the environment variable holding the key
    extra_body: dict[str, Any] = field(default_factory=dict)
    max_concurrency: int = 64
    timeout_s: float = 600.0
    max_retries: int = 6
    retry_base_s: float = 1.0
    retry_max_s: float = 60.0
    send_seed: bool = False
    prefill: Literal["none", "continue_final_message"] = "none"
    use_n: bool = True
    serve: ServeSettings | None = None  # start the server in this job (editforge.backend.serving)
    mode: Literal["live", "batch"] = "live"  # batch: the calls go as batch files (editforge.backend.batch)
    batch: BatchSettings = field(default_factory=BatchSettings)

    def __post_init__(self) -> None:
        _require(self.serve is None or self.base_url is None, "base_url and serve exclude each other")
        _require(self.max_concurrency >= 1, "max_concurrency must be at least 1")
        _require(self.timeout_s > 0, "timeout_s must be positive")
        _require(self.max_retries >= 0, "max_retries must not be negative")
        _require(0 <= self.retry_base_s <= self.retry_max_s, "need 0 <= retry_base_s <= retry_max_s")


@dataclass(frozen=True)
class TransformersSettings:
    model: str  # "embedded", a hub id or a local folder
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = 8
    num_threads: int | None = None
    chat_template: bool = True

    def __post_init__(self) -> None:
        _require(self.batch_size >= 1, "batch_size must be at least 1")
        _require(self.num_threads is None or self.num_threads >= 1, "num_threads must be at least 1")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


# Keys of a models entry besides the backend's own settings; prompt_format is read by
# the evaluation (how CanItEdit prompts are built), not here.
_SHARED_KEYS = ("backend", "price", "batch_price", "prompt_format")

_SETTINGS: dict[str, type[OpenAISettings] | type[TransformersSettings]] = {
    "openai": OpenAISettings,
    "transformers": TransformersSettings,
}


def open_backend(name: str, spec: Mapping[str, Any], cache_dir: str | Path | None) -> Backend:
    """The backend for the config entry ``models.<name>`` (``spec``).

    Keys for every backend: ``backend`` ("openai" or "transformers"), ``model`` and,
    optionally, ``price: {input_per_mtok, output_per_mtok}`` (then ``usage.cost``
    is filled in) and ``prompt_format`` (accepted, and left to the evaluation).

    openai: ``model`` is the served model name; ``base_url``; ``api_key_env``, the
    name of the environment variable holding the key (without it the key "EMPTY"
    is sent, as local servers expect); ``extra_body`` (passed through, e.g.
    ``{enable_thinking: false}``); ``max_concurrency`` (64); ``timeout_s`` (600, per
    call); ``max_retries`` (6); ``retry_base_s`` (1) and ``retry_max_s`` (60) for the
    backoff; ``send_seed`` (false; true sends a seed derived from the cache key);
    ``use_n`` (true: all samples of a request in one call); ``serve``: start the
    server in this process's job, at the first call the cache cannot answer, and
    stop it at ``close()`` (see ``editforge.backend.serving``; ``model`` is then what the
    server loads, a local folder keyed by its weights like a transformers model);
    ``mode``: "live" (the default) or "batch": the calls of each ``generate()`` go as
    batch files through the server's files and batches API, or, for a ``serve:`` model,
    through ``serve.batch_command`` (``vllm run-batch``) with no server; ``batch``: their
    settings (``editforge.backend.batch.BatchSettings``); ``batch_price``: what batch answers cost
    (default: ``price``). Both modes share the cache, so switching pays nothing twice;
    ``prefill``: how a
    ``Request.prefill`` is sent. It always goes as a final assistant message;
    "continue_final_message" also sends ``continue_final_message: true,
    add_generation_prompt: false`` (vLLM and SGLang then continue that message),
    while "none" (the default) relies on the server continuing a final assistant
    message on its own, which not every server does.

    transformers: ``model`` is "embedded" (SmolLM2-135M-Instruct, see
    ``editforge.backend.embedded``), a hub id or a local folder; ``dtype`` (auto, float32,
    bfloat16); ``device`` (auto, cpu, cuda); ``batch_size`` (8, sequences generated
    at once: a request with n samples takes n rows); ``num_threads`` (torch CPU
    threads); ``chat_template`` (true; false, or a tokenizer without one, renders
    with ``edit_format.render_plain``).

    ``cache_dir`` None turns caching off; a cache folder that cannot take files fails here,
    before any call is paid for (``CacheNotWritable``).
    """
    where = f"models.{name}"
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(spec).__name__}")
    kind = spec.get("backend")
    if kind not in _SETTINGS:
        raise ValueError(f"{where}.backend: expected 'openai' or 'transformers', got {kind!r}")
    values = {key: value for key, value in spec.items() if key not in _SHARED_KEYS}
    if kind == "openai" and values.get("serve") is not None:
        values["serve"] = _parse(ServeSettings, f"{where}.serve", values["serve"])
    if kind == "openai" and values.get("batch") is not None:
        values["batch"] = _parse(BatchSettings, f"{where}.batch", values["batch"])
    settings = _parse(_SETTINGS[kind], where, values, also_allowed=_SHARED_KEYS)
    price = None if spec.get("price") is None else _parse(Price, f"{where}.price", spec["price"])
    batch_price = price
    if spec.get("batch_price") is not None:
        if price is None:
            raise ValueError(f"{where}.batch_price: give price too (the price of live calls)")
        batch_price = _parse(Price, f"{where}.batch_price", spec["batch_price"])
    cache = None if cache_dir is None else CompletionCache(cache_dir)
    if cache is not None:
        cache.check_writable()  # before any call is paid for, not at the first answer
    if isinstance(settings, OpenAISettings):
        return OpenAIBackend(name, settings, _api_key(where, settings), cache, price, batch_price)
    if "batch_price" in spec:
        raise ValueError(f"{where}.batch_price: batches are for an 'openai' backend model")
    return TransformersBackend(name, settings, cache, price)


_Parsed = typing.TypeVar("_Parsed")


def _parse(cls: type[_Parsed], where: str, values: Any, also_allowed: Sequence[str] = ()) -> _Parsed:
    """Build a settings dataclass from config values, naming any key that is wrong."""
    if not isinstance(values, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if key not in hints:
            allowed = ", ".join(sorted([*hints, *also_allowed]))
            raise ValueError(f"{where}: unknown key {key!r} (allowed: {allowed})")
        if not _fits(value, hints[key]):
            raise ValueError(f"{where}.{key}: expected {_hint_text(hints[key])}, got {value!r}")
    for item in fields(cls):  # type: ignore[arg-type]
        if item.default is MISSING and item.default_factory is MISSING and item.name not in values:
            raise ValueError(f"{where}: missing key {item.name!r}")
    try:
        return cls(**values)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _fits(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return value in typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or hint)


_HINT_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", type(None): "null"}


def _hint_text(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(hint)))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_hint_text(arg) for arg in typing.get_args(hint))
    return _HINT_NAMES.get(hint) or ("a mapping" if origin is dict else str(hint))


def _api_key(where: str, settings: OpenAISettings) -> str:
    if settings.api_key_env is None:
        return "EMPTY"  # local servers accept any key
    key = os.environ.get(settings.api_key_env)
    if not key:
        raise ValueError(
            f"{where}: the environment variable {settings.api_key_env} (named by api_key_env) "
            "is not set; it must hold the API key"
        )
    return key


# --------------------------------------------------------------------------- shared machinery

_STORED = ("text", "finish_reason", "prompt_tokens", "completion_tokens")


class Backend(ABC):
    """Generates completions for requests; see the module docstring."""

    kind: str  # "openai" or "transformers"

    def __init__(
        self,
        name: str,
        identity: str,
        cache: CompletionCache | None,
        price: Price | None,
        batch_price: Price | None = None,
    ) -> None:
        self.name = name
        self.identity = identity  # the model as the cache key names it
        self._cache = cache
        self._price = price
        self._batch_price = batch_price or price
        self._usage = UsageTotals(cost=0.0, cached_cost=0.0)

    @abstractmethod
    def generate(self, requests: Sequence[Request], *, desc: str = "generate") -> list[list[Completion]]:
        """For each request, its ``n`` completions in sample-index order."""

    @property
    def usage(self) -> UsageTotals:
        """Totals of this process; tokens count only completions not served from the cache."""
        totals = replace(self._usage)
        if self._price is None:
            totals.cost = totals.cached_cost = None
        return totals

    def cost_of(self, completion: Completion) -> float:
        """What one answer cost: at the batch price where it came through a batch."""
        price = self._batch_price if completion.batch else self._price
        return 0.0 if price is None else price.of(completion.prompt_tokens, completion.completion_tokens)

    @abstractmethod
    def close(self) -> None:
        """Release what the backend holds (a loaded model, for instance)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def key(self, request: Request, sample: int) -> str:
        """The cache key of one sample of a request (no server address, no credentials)."""
        sampling = request.sampling
        return cache_key(
            {
                "backend": self.kind,
                "model": self.identity,
                "messages": None if request.prompt is not None else request.messages,
                "prompt": request.prompt,
                "prefill": request.prefill,
                "sampling": {
                    "temperature": float(sampling.temperature),
                    "top_p": float(sampling.top_p),
                    "max_tokens": int(sampling.max_tokens),
                    "stop": list(sampling.stop),
                },
                **self._key_extras(request),
                "sample": sample,
            }
        )

    def _key_extras(self, request: Request) -> dict[str, Any]:
        """What else, specific to the backend, changes the answer."""
        return {}

    def _lookup(self, key: str) -> Completion | None:
        entry = self._cache.get(key) if self._cache is not None else None
        if entry is None or any(name not in entry for name in _STORED):
            return None
        return Completion(**{name: entry[name] for name in _STORED}, cached=True, batch=entry.get("batch") is True)

    def _store(self, key: str, completion: Completion) -> None:
        if self._cache is not None:
            # How it was paid for (not part of the answer): a cached answer is then costed as it was billed.
            paid = {"batch": True} if completion.batch else {}
            self._cache.put(key, {name: getattr(completion, name) for name in _STORED} | paid)


class _Run:
    """One generate() call: result slots filled from the cache, then by delivery.

    Identical (request, sample index) pairs share a key, so they are asked once and
    share the completion, as they would through the cache anyway.
    """

    def __init__(self, backend: Backend, requests: Sequence[Request], desc: str) -> None:
        for index, request in enumerate(requests):
            _check_request(index, request)
        self.backend = backend
        self.keys = [[backend.key(request, sample) for sample in range(request.n)] for request in requests]
        self.positions: dict[str, list[tuple[int, int]]] = {}  # in input order of first occurrence
        for index, row in enumerate(self.keys):
            for sample, key in enumerate(row):
                self.positions.setdefault(key, []).append((index, sample))
        self.results: list[list[Completion | None]] = [[None] * len(row) for row in self.keys]
        hits = 0
        usage = backend._usage
        for key, positions in self.positions.items():
            completion = backend._lookup(key)
            if completion is not None:
                filled = self._fill(positions, completion)
                hits += filled
                usage.cached_prompt_tokens += completion.prompt_tokens
                usage.cached_completion_tokens += completion.completion_tokens
                usage.cached_cost = (usage.cached_cost or 0.0) + backend.cost_of(completion)
        usage.cached += hits
        self.tokens = 0
        self.started = time.monotonic()
        total = sum(len(row) for row in self.keys)
        self.bar = tqdm(total=total, initial=hits, desc=desc, unit="completion", file=sys.stderr, dynamic_ncols=True)

    def __enter__(self) -> _Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def items(self) -> list[tuple[int, int]]:
        """One (request, sample) position per distinct key, in input order."""
        return [positions[0] for positions in self.positions.values()]

    def missing(self, index: int) -> list[int]:
        """The samples of a request that still need a call (duplicates excluded)."""
        return [
            sample
            for sample, key in enumerate(self.keys[index])
            if self.results[index][sample] is None and self.positions[key][0] == (index, sample)
        ]

    def deliver(self, index: int, sample: int, completion: Completion) -> None:
        """Record one fresh completion: cache it (unless it failed), count it, advance the bar."""
        key = self.keys[index][sample]
        filled = self._fill(self.positions[key], completion)
        usage = self.backend._usage
        if completion.error is None:
            self.backend._store(key, completion)
            usage.calls += filled
            usage.batch_calls += filled if completion.batch else 0
        else:
            usage.errors += filled
        usage.prompt_tokens += completion.prompt_tokens
        usage.completion_tokens += completion.completion_tokens
        usage.cost = (usage.cost or 0.0) + self.backend.cost_of(completion)
        self.tokens += completion.completion_tokens
        elapsed = max(time.monotonic() - self.started, 1e-9)
        self.bar.set_postfix_str(f"{self.tokens} tok, {self.tokens / elapsed:.0f} tok/s", refresh=False)
        self.bar.update(filled)

    def completions(self) -> list[list[Completion]]:
        if any(completion is None for row in self.results for completion in row):
            raise RuntimeError("a sample was left without a completion")  # a bug, not a failed call
        return cast(list[list[Completion]], self.results)

    def _fill(self, positions: list[tuple[int, int]], completion: Completion) -> int:
        for index, sample in positions:
            self.results[index][sample] = replace(completion)  # a copy each: callers may edit them
        return len(positions)


def _check_request(index: int, request: Request) -> None:
    where = f"request {index}"
    if not isinstance(request, Request):
        raise TypeError(f"{where}: expected a Request, got {type(request).__name__}")
    if (request.prompt is None) == (not request.messages):
        raise ValueError(f"{where}: give either messages or a prompt (exactly one)")
    for message in request.messages:
        if not (
            isinstance(message, Mapping)
            and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str)
        ):
            raise ValueError(f"{where}: every message needs a string 'role' and 'content', got {message!r}")
    if not isinstance(request.n, int) or isinstance(request.n, bool) or request.n < 1:
        raise ValueError(f"{where}: n must be a positive integer, got {request.n!r}")
    sampling = request.sampling
    if not sampling.temperature >= 0:
        raise ValueError(f"{where}: temperature must be >= 0, got {sampling.temperature!r}")
    if not 0 < sampling.top_p <= 1:
        raise ValueError(f"{where}: top_p must be in (0, 1], got {sampling.top_p!r}")
    if not isinstance(sampling.max_tokens, int) or sampling.max_tokens < 1:
        raise ValueError(f"{where}: max_tokens must be a positive integer, got {sampling.max_tokens!r}")
    if isinstance(sampling.stop, str) or not all(isinstance(stop, str) and stop for stop in sampling.stop):
        raise ValueError(f"{where}: stop must be a tuple of non-empty strings, got {sampling.stop!r}")


# --------------------------------------------------------------------------- openai

# vLLM and SGLang continue a final assistant message when asked this way.
_CONTINUE_FLAGS = {"continue_final_message": True, "add_generation_prompt": False}
_RETRY_STATUS = {408, 409, 429}  # and every 5xx; the same set the openai client retries


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
        with _Run(self, requests, desc) as run:
            jobs = [(index, samples) for index in range(len(requests)) for samples in self._groups(run.missing(index))]
            if jobs and self.settings.mode == "batch":
                self._run_batches(requests, run, jobs)
            elif jobs:
                asyncio.run(self._run_jobs(requests, run, jobs, self._base_url()))
                if self._server is not None:
                    self._server.check_alive()
            return run.completions()

    def _run_batches(self, requests: Sequence[Request], run: _Run, jobs: list[tuple[int, list[int]]]) -> None:
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

        def handle(sent: Line, outcome: Outcome, last: bool) -> Line | None:
            index, samples = targets.pop(sent.custom_id)
            request = requests[index]
            if outcome.body is not None:
                try:
                    got = _parse_choices(outcome.body, len(samples), chat=request.prompt is None)
                except _BadResponse as err:
                    outcome = Outcome(error=f"bad response: {err}", retryable=True)
                else:
                    for sample, completion in zip(samples, got, strict=False):  # got may be shorter
                        run.deliver(index, sample, replace(completion, batch=True))
                    samples = samples[len(got) :]
                    outcome = Outcome(error=f"{len(got)} of {len(got) + len(samples)} choices answered", retryable=True)
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
        self, requests: Sequence[Request], run: _Run, jobs: list[tuple[int, list[int]]], base_url: str | None
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
        run: _Run,
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
            if err.status_code not in _RETRY_STATUS and err.status_code < 500:
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


# --------------------------------------------------------------------------- transformers


def resolve_model_path(model: str) -> str:
    """Where ``from_pretrained`` finds a model: the embedded one's folder, else as given."""
    return str(embedded.embedded_model_path()) if model == "embedded" else model


def model_identity(model: str) -> str:
    """What the cache keys a transformers model by.

    A local folder is keyed by its weight files' names, sizes and modification
    times too, so a student trained again never answers from its old self's cache.
    """
    if model == "embedded":
        return embedded.IDENTITY
    folder = Path(model)
    if not folder.is_dir():
        return model  # a hub id
    files = sorted(p for p in folder.iterdir() if p.suffix in {".safetensors", ".bin", ".json"})
    stamp = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return f"local:{folder.name}:{cache_key({'files': stamp})[:16]}"


class TransformersBackend(Backend):
    """A causal LM run in this process, in batches that do not depend on the cache.

    Batches are cut from the full list of distinct (request, sample) items in input
    order, before looking at the cache, and each is seeded from its items' keys. A batch
    runs unless all its items are cached, and its new items are stored as soon as it
    ends, so a run killed and started again yields what an uninterrupted run yields
    (bit for bit on CPUs; on a GPU, batched bf16 kernels are not bit-exact from run to
    run, so a regenerated batch may sample other texts, as bench/gpu.py shows).
    """

    kind = "transformers"

    def __init__(
        self, name: str, settings: TransformersSettings, cache: CompletionCache | None, price: Price | None
    ) -> None:
        super().__init__(name, model_identity(settings.model), cache, price)
        self.settings = settings
        self._loaded: tuple[Any, Any] | None = None  # (model, tokenizer), on first need

    def _key_extras(self, request: Request) -> dict[str, Any]:
        # How messages become text is part of the prompt.
        return {"template": "chat" if self.settings.chat_template else "plain"}

    def generate(self, requests: Sequence[Request], *, desc: str = "generate") -> list[list[Completion]]:
        with _Run(self, requests, desc) as run:
            for batch in _batches(run.items(), requests, self.settings.batch_size):
                if all(run.results[index][sample] is not None for index, sample in batch):
                    continue
                seed = int(cache_key({"batch": [run.keys[index][sample] for index, sample in batch]})[:15], 16)
                fresh = self._generate_batch([requests[index] for index, _ in batch], seed)
                for (index, sample), completion in zip(batch, fresh, strict=True):
                    if run.results[index][sample] is None:
                        run.deliver(index, sample, completion)
            return run.completions()

    def close(self) -> None:
        if self._loaded is not None:
            self._loaded = None
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _model(self) -> tuple[Any, Any]:
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    def _load(self) -> tuple[Any, Any]:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        settings = self.settings
        if settings.num_threads is not None:
            torch.set_num_threads(settings.num_threads)
        source = resolve_model_path(settings.model)
        device = settings.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = "auto" if settings.dtype == "auto" else getattr(torch, settings.dtype)
        tokenizer = AutoTokenizer.from_pretrained(source, padding_side="left")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, device_map=device).eval()
        return model, tokenizer

    def _encode(self, tokenizer: Any, request: Request) -> list[int]:
        """Prompt token ids: the rendered prompt with the prefill appended."""
        if request.prompt is not None:
            text, special = request.prompt, True
        elif self.settings.chat_template and tokenizer.chat_template:
            # The template writes its own special tokens.
            text = tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
            special = False
        else:
            text, special = render_plain(request.messages), True
        return list(tokenizer(text + request.prefill, add_special_tokens=special)["input_ids"])

    def _generate_batch(self, rows: list[Request], seed: int) -> list[Completion]:
        import torch

        model, tokenizer = self._model()
        sampling = rows[0].sampling  # _batches keeps one Sampling per batch
        prompts = [self._encode(tokenizer, request) for request in rows]
        inputs = tokenizer.pad({"input_ids": prompts}, padding=True, return_tensors="pt").to(model.device)
        options: dict[str, Any] = {"max_new_tokens": sampling.max_tokens, "pad_token_id": tokenizer.pad_token_id}
        if sampling.temperature > 0:
            # top_k=0: the whole nucleus, as OpenAI-style servers sample (transformers would cut at 50).
            options.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        else:
            options["do_sample"] = False
        if sampling.stop:
            from transformers import StoppingCriteriaList

            prompt_length = inputs["input_ids"].shape[1]
            options["stopping_criteria"] = StoppingCriteriaList([_StopStrings(tokenizer, sampling.stop, prompt_length)])
        torch.manual_seed(seed)
        with torch.inference_mode():
            output = model.generate(**inputs, **options)
        generated = output[:, inputs["input_ids"].shape[1] :].tolist()
        eos = _eos_ids(model, tokenizer)
        return [
            _decode(tokenizer, ids, eos, len(prompt), sampling.stop)
            for ids, prompt in zip(generated, prompts, strict=True)
        ]


def _batches(items: list[tuple[int, int]], requests: Sequence[Request], size: int) -> Iterator[list[tuple[int, int]]]:
    """Consecutive runs of at most ``size`` items that share one Sampling."""
    batch: list[tuple[int, int]] = []
    for item in items:
        if batch and (len(batch) == size or requests[batch[0][0]].sampling != requests[item[0]].sampling):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


class _StopStrings:
    """Ends a row once its generated text contains a stop string.

    Unlike transformers' own ``stop_strings``, a match may not reach back into the
    prompt (a prompt ending in "(" must not complete a stop string "((" for instance).
    """

    def __init__(self, tokenizer: Any, stops: tuple[str, ...], prompt_length: int) -> None:
        self.tokenizer = tokenizer
        self.stops = stops
        self.prompt_length = prompt_length
        # Checked after every token, so a new match ends within the last few tokens;
        # a token holds at least one character, or part of one.
        self.window = max(map(len, stops)) + 4

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        tails = input_ids[:, self.prompt_length :][:, -self.window :]
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=True)
        done = [any(stop in text for stop in self.stops) for text in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.add(tokenizer.eos_token_id)
    ids.discard(None)
    return ids


def _decode(tokenizer: Any, ids: list[int], eos: set[int], prompt_tokens: int, stop: tuple[str, ...]) -> Completion:
    """One generated row: text up to the end of sequence or the first stop string."""
    # A row that ended early is padded; the first end-of-sequence or pad token marks its
    # end (with pad == eos, as in SmolLM2, both are the same token).
    ends = eos | {tokenizer.pad_token_id}
    cut = next((position for position, token in enumerate(ids) if token in ends), None)
    if cut is None:
        used, finish = len(ids), "length"
    else:
        used, finish = cut + (ids[cut] in eos), "stop"
    text = tokenizer.decode(ids[:cut], skip_special_tokens=True)
    hits = [text.find(string) for string in stop if string in text]
    if hits:
        text, finish = text[: min(hits)], "stop"
    return Completion(text=text, finish_reason=finish, prompt_tokens=prompt_tokens, completion_tokens=used)
