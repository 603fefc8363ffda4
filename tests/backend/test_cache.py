"""The completion cache: keys, layout, atomic writes."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from editforge.backend.cache import CompletionCache, cache_key

ENTRY = {"text": "def f():\n    return 1", "finish_reason": "stop", "prompt_tokens": 12, "completion_tokens": 9}


def test_the_key_depends_on_content_not_on_key_order() -> None:
    one = cache_key({"model": "m", "sampling": {"temperature": 0.2, "top_p": 0.95}, "sample": 0})
    same = cache_key({"sample": 0, "sampling": {"top_p": 0.95, "temperature": 0.2}, "model": "m"})
    other = cache_key({"model": "m", "sampling": {"temperature": 0.2, "top_p": 0.95}, "sample": 1})
    assert one == same != other
    assert len(one) == 64 and int(one, 16) >= 0


def test_the_key_refuses_values_json_cannot_hold_exactly() -> None:
    with pytest.raises(ValueError):
        cache_key({"temperature": float("nan")})


def test_an_entry_is_stored_under_its_key_prefix_and_read_back(tmp_path: Path) -> None:
    cache = CompletionCache(tmp_path)
    key = cache_key({"prompt": "x"})
    assert cache.get(key) is None
    cache.put(key, ENTRY)
    assert cache.get(key) == ENTRY
    assert [path.relative_to(tmp_path) for path in tmp_path.rglob("*") if path.is_file()] == [
        Path(key[:2]) / f"{key}.json"
    ]


def test_a_damaged_entry_is_a_miss_and_is_replaced(tmp_path: Path) -> None:
    cache = CompletionCache(tmp_path)
    key = cache_key({"prompt": "x"})
    cache.path(key).parent.mkdir(parents=True)
    for damaged in ("", '{"text": "trunc', "[1, 2]", "\udcff"):
        cache.path(key).write_text(damaged, encoding="utf-8", errors="surrogateescape")
        assert cache.get(key) is None
    cache.put(key, ENTRY)
    assert cache.get(key) == ENTRY


def test_a_malformed_key_is_refused(tmp_path: Path) -> None:
    cache = CompletionCache(tmp_path)
    for bad in ("../../etc/passwd", "ABC", cache_key({}).upper(), cache_key({})[:-1]):
        with pytest.raises(ValueError, match="64 lowercase hex"):
            cache.get(bad)


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    cache = CompletionCache(tmp_path)
    key = cache_key({"prompt": "x"})
    with pytest.raises(ValueError):
        cache.put(key, {"text": float("inf")})
    assert cache.get(key) is None
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == []


def _write_many(root: str, key: str, writer: int) -> None:
    cache = CompletionCache(root)
    for round_ in range(150):
        # Large enough that a non-atomic write would be seen half-done.
        cache.put(key, {"writer": writer, "round": round_, "text": "x" * 200_000})


def test_concurrent_writers_never_expose_a_partial_entry(tmp_path: Path) -> None:
    key = cache_key({"prompt": "shared"})
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_many, args=(str(tmp_path), key, n)) for n in range(3)]
    for writer in writers:
        writer.start()
    reader = CompletionCache(tmp_path)
    path = reader.path(key)
    seen = 0
    while any(writer.is_alive() for writer in writers):
        if path.exists():
            # Read the raw file: get() would hide a partial entry as a miss.
            entry = json.loads(path.read_text(encoding="utf-8"))
            assert len(entry["text"]) == 200_000
            seen += 1
    for writer in writers:
        writer.join()
        assert writer.exitcode == 0
    assert seen > 0
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left
