"""What one asks of a backend and what it answers: ``Sampling`` and ``Request`` describe one
prompt (``Request.n`` samples are wanted); ``Completion`` is one sample's answer; ``UsageTotals``
and ``Price`` count what the calls took and cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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



@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def of(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / 1e6

