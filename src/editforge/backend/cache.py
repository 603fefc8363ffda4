"""A file-per-entry store of LLM completions, keyed by a hash of the request.

Each entry is ``<root>/<first 2 hex of key>/<key>.json``, written to a unique
temporary name and moved into place with ``os.replace``. A reader therefore sees
either no file or a complete one, which holds under ``kill -9``, several
processes writing at once (the last rename wins, and all write the same
content) and NFS (rename is atomic there as well). A kill between the write and
the rename leaves a ``.<key>...tmp`` file behind, which is never read. An
unreadable entry (a crash of the machine itself can leave an empty file) counts
as a miss and is overwritten by the next store.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def canonical_json(value: Any) -> str:
    """One fixed text for equal values: sorted keys, no whitespace, tuples as lists."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def cache_key(payload: Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of everything that determines an answer."""
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


class CacheNotWritable(OSError):
    """The cache folder cannot take files: found before any call is paid for."""


class CompletionCache:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def check_writable(self) -> None:
        """Create the folder and a file in it, or raise CacheNotWritable naming the folder and the fix."""
        probe = self.root / f".probe-{os.getpid()}-{uuid.uuid4().hex}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe.write_text("ok", encoding="utf-8")
            probe.unlink()
        except OSError as err:
            raise CacheNotWritable(
                f"cache_dir: cannot write to {self.root} ({err.strerror or err}); set cache_dir to a writable folder"
            ) from None

    def path(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"cache key must be 64 lowercase hex digits, got {key!r}")
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            value = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: Mapping[str, Any]) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Unique per writer, so concurrent writers never share a temporary file.
        tmp = target.with_name(f".{key}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_text(canonical_json(value), encoding="utf-8")
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
