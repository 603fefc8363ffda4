"""Checks that run before any paid call, each failing in one line that names the model,
variable, path or setting and the fix.

The seed sources are checked by the seeds stage itself, before it parses anything
(``seeds.check_sources``). The reference programs of the benchmark are checked by the
evaluation's own preflight (``evaluation.preflight``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from editforge.backend import open_backend
from editforge.backend.cache import CacheNotWritable, CompletionCache
from editforge.config import benchmark_settings
from editforge.hub import hub_offline

# What one cached answer takes on disk: its text (a token is about 4 characters; answers
# average well under max_tokens, so 2 bytes a token) and at least one 4 KB file block.
_BLOCK_BYTES = 4096
_BYTES_PER_TOKEN = 2
_PROBE_TIMEOUT_S = 20.0


class PreflightError(ValueError):
    """A check before paid work failed; the message is one line with the fix."""


def check_model(name: str, spec: Mapping[str, Any]) -> str:
    """Check that model ``name`` can be called; return a line saying what was checked."""
    where = f"models.{name}"
    if spec.get("backend") == "openai" and spec.get("base_url"):
        url = str(spec["base_url"])
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise PreflightError(f"{where}.base_url: {url!r} is not an http(s) URL; write it as http://host:port/v1")
    try:
        backend = open_backend(name, spec, None)  # parses the settings and reads the key; loads nothing
    except ValueError as err:
        raise PreflightError(str(err)) from None
    backend.close()
    if spec["backend"] == "openai":
        if spec.get("serve"):
            return f"{where}: served in its own job ({spec['model']}); the job checks its server when it starts"
        checked = _check_openai(where, spec)
        return f"{checked}; {_check_batch_api(where, spec)}" if spec.get("mode") == "batch" else checked
    return _check_transformers(where, str(spec["model"]))


def _client(spec: Mapping[str, Any]) -> Any:
    import openai

    key_env = spec.get("api_key_env")
    key = os.environ[key_env] if key_env else "EMPTY"
    return openai.OpenAI(api_key=key, base_url=_url(spec), timeout=_PROBE_TIMEOUT_S, max_retries=1)


def _url(spec: Mapping[str, Any]) -> str:
    return str(spec.get("base_url") or "https://api.openai.com/v1")


def _check_batch_api(where: str, spec: Mapping[str, Any]) -> str:
    """A model in batch mode: the server has a batch API and the key may use it (listing costs nothing)."""
    import openai

    url = _url(spec)
    try:
        _client(spec).batches.list(limit=1)
    except (openai.NotFoundError, openai.PermissionDeniedError, openai.BadRequestError) as err:
        raise PreflightError(
            f"{where}.mode: batch, but the server at {url} offers no batch API to this key "
            f"(GET /batches: {_reason(err)}); set {where}.mode: live"
        ) from None
    except openai.APIError as err:
        raise PreflightError(f"{where}: the server at {url} answered GET /batches with {_reason(err)}") from None
    return "its batch API answers"


def _check_openai(where: str, spec: Mapping[str, Any]) -> str:
    import openai

    url = _url(spec)
    key_env = spec.get("api_key_env")
    client = _client(spec)
    model = str(spec["model"])
    key_fix = f"set {key_env} to a valid key" if key_env else f"set {where}.api_key_env to the variable holding a key"
    try:
        try:
            listed = [entry.id for entry in client.models.list()]
        except openai.NotFoundError:
            listed = []  # no listing: the 1-token call below tells
        if model in listed:
            return f"{where}: {url} serves {model!r}"
        try:
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "Say OK."}], max_tokens=1
            )
        except (openai.NotFoundError, openai.BadRequestError) as err:
            served = f" (it lists {', '.join(listed[:8])})" if listed else ""
            raise PreflightError(
                f"{where}.model: the server at {url} does not serve {model!r}{served}: {_reason(err)}; "
                f"check {where}.model"
            ) from None
        except (openai.RateLimitError, openai.InternalServerError) as err:
            # Up, and the key accepted, but busy or failing now: the error budget judges that, not a setting.
            return f"{where}: {url} is up but answered a 1-token call with {_reason(err)}"
        return f"{where}: {url} answered a 1-token call to {model!r}"
    except (openai.AuthenticationError, openai.PermissionDeniedError) as err:
        raise PreflightError(f"{where}: the server at {url} rejected the API key ({_reason(err)}); {key_fix}") from None
    except openai.APIConnectionError as err:
        cause = err.__cause__ or err
        raise PreflightError(
            f"{where}: cannot reach {url} ({type(cause).__name__}: {cause}); check {where}.base_url "
            "and that the server is up"
        ) from None
    except openai.APIStatusError as err:
        raise PreflightError(f"{where}: the server at {url} answered {_reason(err)}; check {where}") from None


def _reason(err: Any) -> str:
    status = getattr(err, "status_code", None)
    body = getattr(err, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    text = str(message or err).splitlines()[0][:200]
    return f"HTTP {status}: {text}" if status else text


def _check_transformers(where: str, model: str) -> str:
    if model == "embedded":
        from editforge.backend.embedded import gguf_path

        try:
            return f"{where}: the embedded model is installed ({gguf_path()})"
        except RuntimeError as err:
            raise PreflightError(f"{where}: {err}") from None
    if model.startswith(("/", "./", "../")) or Path(model).exists():
        if not (Path(model) / "config.json").is_file():
            raise PreflightError(f"{where}.model: {model} is not a model folder (no config.json); check the path")
        return f"{where}: {model} is a model folder"
    if hub_offline():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(model, "config.json"), str):
            raise PreflightError(
                f"{where}.model: {model!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
                f"download it first (hf download {model}) or give a local folder"
            )
        return f"{where}: {model} is in the local Hugging Face cache"
    return f"{where}: {model} will be downloaded from the hub"


def check_cache_dir(cache_dir: str | os.PathLike[str], expected_answers: int, max_tokens: int) -> str:
    """Check that ``cache_dir`` takes files and its disk has room for ``expected_answers``, roughly."""
    root = Path(cache_dir)
    try:
        CompletionCache(root).check_writable()
    except CacheNotWritable as err:
        raise PreflightError(str(err)) from None
    needed = expected_answers * max(_BLOCK_BYTES, max_tokens * _BYTES_PER_TOKEN)
    free = shutil.disk_usage(root).free
    if free < needed:
        raise PreflightError(
            f"cache_dir: {root} has {_size(free)} free, and about {_size(needed)} are needed for "
            f"{expected_answers} answers of up to {max_tokens} tokens; free space or move cache_dir"
        )
    return f"cache_dir: {root} is writable, {_size(free)} free (about {_size(needed)} needed)"


def _size(count: float) -> str:
    if count < 1000:
        return f"{count:.0f} bytes"
    for unit in ("kB", "MB"):
        count /= 1000
        if count < 1000:
            return f"{count:.1f} {unit}"
    return f"{count / 1000:.1f} GB"


def check_benchmark(source: str, loaded: str | os.PathLike[str], name: str = "canitedit") -> tuple[str, int]:
    """Check that benchmark ``name`` loads, unless the workflow already holds its checked copy ``loaded``;
    return the line to print and its number of problems."""
    from editforge.evaluation.benchmarks.registry import benchmark
    from editforge.evaluation.sources import BenchmarkError
    from editforge.records import read_jsonl

    if Path(loaded).is_file():
        return f"benchmark {name}: {loaded} is loaded", sum(1 for _ in read_jsonl(loaded))
    try:
        problems = benchmark(name).load(source)
    except BenchmarkError as err:
        raise PreflightError(f"benchmark {name}: {err}") from None
    return f"benchmark {name}: {len(problems)} problems load from {source}", len(problems)


def expected_answers(cfg: dict[str, Any], use: str, sizes: dict[str, int] | None = None) -> int:
    """About how many answers one model gives in this run: for synthesis, the prompts times the
    calls a dialogue takes (sectioned: one a section of round 1, one for round 2); for the judge, the
    prompts times the judged styles; for evaluation,
    per benchmark the selected problems times its instruction kinds, samples and tries (``sizes``:
    each benchmark's number of problems, for a selection of all)."""
    if use == "synthesis":
        calls = 5 if cfg["synthesis"]["mode"] == "sectioned" else 2
        return int(cfg["seeds"].get("num_prompts", 0)) * calls
    if use == "judge":  # at most one answer per prompt and judged style
        return int(cfg["seeds"].get("num_prompts", 0)) * len(cfg["filtering"]["judge"]["styles"])
    from editforge.evaluation.benchmarks.registry import benchmark

    total = 0
    for name in cfg["evaluation"]["benchmarks"]:
        settings, size = benchmark_settings(cfg, name), (sizes or {}).get(name, 0)
        problems = settings["problems"]
        count = size if problems is None else problems if isinstance(problems, int) else len(problems)
        total += count * len(benchmark(name).kinds) * int(settings["samples"]) * int(settings["tries"])
    return total


def run_model_preflight(name: str, use: str, cfg: dict[str, Any], benchmark_copy: str | os.PathLike[str]) -> list[str]:
    """Every check for model ``name`` before its ``use`` ("synthesis", "judge" or "evaluation"); returns
    what was checked, a line each.

    Rule ``preflight`` runs them once per synthesis model (and per judge and evaluated API model)
    before the model's first synthesis, judge or generation job:

    - the model's settings parse (a mistyped scheme such as ``htp://`` included);
    - an OpenAI-compatible server answers and accepts the key: ``GET /v1/models``, and one
      1-token call where the listing is missing or does not name the model (a provider
      without a listing, or one serving an alias); a ``serve:`` model starts its own server
      in its job, which fails at once with the server's output if it cannot start;
    - an in-process model can be loaded: the embedded model is installed, a local folder
      exists, a hub id is in the local cache when ``HF_HUB_OFFLINE`` is set;
    - ``cache_dir`` is writable and its disk has room, roughly, for this model's answers;
    - every configured benchmark loads (decontamination and evaluation need them after the paid work).
    """
    max_tokens = (
        cfg["filtering"]["judge"]["max_tokens"]
        if use == "judge"
        else cfg["synthesis" if use == "synthesis" else "evaluation"]["sampling"]["max_tokens"]
    )
    # Every configured benchmark, its checked copy beside CanItEdit's (results/benchmark/<name>.jsonl).
    copies = {name: Path(benchmark_copy).with_name(f"{name}.jsonl") for name in cfg["evaluation"]["benchmarks"]}
    benchmarks = {
        name: check_benchmark(benchmark_settings(cfg, name)["source"], copy, name) for name, copy in copies.items()
    }
    sizes = {name: size for name, (_, size) in benchmarks.items()}
    return [
        check_model(name, cfg["models"][name]),
        check_cache_dir(cfg["cache_dir"], expected_answers(cfg, use, sizes), int(max_tokens)),
        *(line for line, _ in benchmarks.values()),
    ]
