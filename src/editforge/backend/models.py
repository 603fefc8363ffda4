"""Which model an in-process backend loads (``resolve_model_path``) and what the cache keys
it by (``model_identity``); a served local folder is keyed the same way."""

from __future__ import annotations

from pathlib import Path

from editforge.backend import embedded
from editforge.backend.cache import cache_key


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
