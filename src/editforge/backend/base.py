"""What every backend shares: ``Backend`` and the bookkeeping of one ``generate()`` call.

* ``Backend.generate(requests)`` returns, for each request, ``n`` ``Completion``
  objects in sample-index order. It never raises for a failed call: the error text
  is put on the completion (``error``) after the retries are spent.
* Every (request, sample index) is looked up in the cache first and stored there as
  soon as it returns, so a killed run that is started again repeats no completed call.
* ``usage`` counts what the calls of this process asked and got; requests are checked
  before any call is made.
"""

from __future__ import annotations

import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, cast

from tqdm import tqdm

from editforge.backend.cache import CompletionCache, cache_key
from editforge.backend.types import Completion, Price, Request, UsageTotals

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


class Run:
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

    def __enter__(self) -> Run:
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
