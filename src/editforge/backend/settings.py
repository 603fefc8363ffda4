"""A ``models:`` entry of the config read into settings, and the backend it opens.

``open_backend(name, spec, cache_dir)`` checks the entry (every wrong key is named, with
the keys allowed), builds ``OpenAISettings`` or ``TransformersSettings`` and opens the
backend, importing that backend's module only then: the openai client loads only for an
``openai`` model. Two backends: ``openai`` talks to any OpenAI-compatible server (vLLM,
SGLang, a hosted API) with bounded concurrency and its own retry loop; ``transformers``
runs a model in this process, in deterministic batches.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from editforge.backend.base import Backend
from editforge.backend.cache import CompletionCache
from editforge.backend.serving import ServeSettings
from editforge.backend.types import Price
from editforge.records import TYPE_NAMES


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
    settings (``BatchSettings``); ``batch_price``: what batch answers cost
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
        from editforge.backend.openai import OpenAIBackend  # the openai client loads only here

        return OpenAIBackend(name, settings, _api_key(where, settings), cache, price, batch_price)
    if "batch_price" in spec:
        raise ValueError(f"{where}.batch_price: batches are for an 'openai' backend model")
    from editforge.backend.transformers import TransformersBackend

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


def _hint_text(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(hint)))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_hint_text(arg) for arg in typing.get_args(hint))
    return TYPE_NAMES.get(hint) or ("a mapping" if origin is dict else str(hint))


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

