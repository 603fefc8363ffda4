"""All LLM traffic: request types, the backends, batch inference, the request cache, serving."""

from editforge.backend.core import (
    Backend,
    Completion,
    Request,
    Sampling,
    TransformersBackend,
    TransformersSettings,
    UsageTotals,
    open_backend,
    resolve_model_path,
)

__all__ = ["Backend", "Completion", "Request", "Sampling", "TransformersBackend", "TransformersSettings", "UsageTotals", "open_backend", "resolve_model_path"]
