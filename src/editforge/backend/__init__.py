"""All LLM traffic: one request/response interface over two backends, with a cache.

- ``types.py``: ``Sampling``, ``Request``, ``Completion``, ``UsageTotals``, ``Price``
- ``settings.py``: a ``models:`` entry read into settings; ``open_backend``, the factory
- ``base.py``: ``Backend``, the cache lookups, usage and progress of one ``generate()`` call
- ``openai.py``: the OpenAI-compatible HTTP backend: concurrency, retries, batch routing
- ``transformers.py``: the in-process backend: loading, batched generation, stop strings
- ``models.py``: the folder an in-process model loads from, and what the cache keys it by
- ``batch.py``: batch inference: the line format, the record of a call's batches, the attempts
- ``batch_runners.py``: running a batch file through a provider's batch API or ``vllm run-batch``
- ``cache.py``: the file-per-entry request cache
- ``serving.py``: a model server started for the length of one job
- ``embedded.py``: the embedded default model (SmolLM2-135M-Instruct)
- ``fake_server.py``, ``fake_batches.py``: a test double of an OpenAI-compatible server
- ``fake_answers.py``: the test double's answers, looked up per model and request (a benchmark's references)
"""

from editforge.backend.base import Backend
from editforge.backend.models import resolve_model_path
from editforge.backend.settings import TransformersSettings, open_backend
from editforge.backend.transformers import TransformersBackend
from editforge.backend.types import Completion, Request, Sampling, UsageTotals

__all__ = [
    "Backend",
    "Completion",
    "Request",
    "Sampling",
    "TransformersBackend",
    "TransformersSettings",
    "UsageTotals",
    "open_backend",
    "resolve_model_path",
]
