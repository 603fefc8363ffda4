"""Support for the synthesis tests: a scripted backend, seed records and the answers a model would give."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from editforge.backend import Backend, Completion, Request, UsageTotals
from editforge.parsing import run_parse
from editforge.records import read_jsonl
from editforge.seeds import run_seeds
from editforge.synthesis import rounds as synthesis_rounds
from editforge.synthesis import run_round1, run_round2

PROGRAM = "def add(a, b):\n    return a - b"
AFTER = "def add(a, b):\n    return a + b"
DESC = "Fix `add` so that it returns `a + b` instead of `a - b`."
LAZY = "add() subtracts; make it add."
SNIPPET_A = "def total(prices):\n    s = 0\n    for p in prices:\n        s += p\n    return s"
SNIPPET_B = "class Counter:\n    def __init__(self):\n        self.n = 0\n    def bump(self):\n        self.n += 1"


class ScriptedBackend(Backend):
    """Answers each request with ``respond(request)`` and remembers every generate() call."""

    kind = "scripted"

    def __init__(self, respond: Callable[[Request], Completion]) -> None:
        super().__init__("scripted", "scripted", None, None)
        self.respond = respond
        self.calls: list[list[Request]] = []
        self.closed = False

    def generate(self, requests: Sequence[Request], *, desc: str = "generate") -> list[list[Completion]]:
        self.calls.append(list(requests))
        results = []
        for request in requests:
            completion = self.respond(request)
            self._usage.calls += completion.error is None
            self._usage.errors += completion.error is not None
            self._usage.prompt_tokens += completion.prompt_tokens
            self._usage.completion_tokens += completion.completion_tokens
            results.append([completion])
        return results

    def close(self) -> None:
        self.closed = True


def ok(text: str) -> Completion:
    return Completion(text=text, finish_reason="stop", prompt_tokens=100, completion_tokens=10)


def user_text(request: Request) -> str:
    return request.messages[1]["content"]


def pair(index: int, fewshot_id: str) -> dict[str, Any]:
    snippets = [
        {
            "source": "s",
            "path": f"a{index}.py",
            "start_line": 1,
            "end_line": 5,
            "kind": "function",
            "text": f"{SNIPPET_A}  # {index}",
        },
        {"source": "s", "path": f"b{index}.py", "start_line": 1, "end_line": 5, "kind": "class", "text": SNIPPET_B},
    ]
    return {"id": f"p{index:06d}", "shard": "000", "snippets": snippets, "fewshot_id": fewshot_id}


def install(monkeypatch: pytest.MonkeyPatch, backend: ScriptedBackend) -> list[tuple[Any, ...]]:
    opened: list[tuple[Any, ...]] = []

    def fake_open(name: str, spec: dict[str, Any], cache_dir: Any) -> ScriptedBackend:
        opened.append((name, spec, cache_dir))
        backend._usage = UsageTotals()  # as a freshly opened backend
        return backend

    monkeypatch.setattr(synthesis_rounds, "open_backend", fake_open)
    return opened


def rounds(tmp: Path, pairs_file: Path, settings: dict[str, Any]) -> tuple[list[dict], list[dict], list[dict]]:
    spec = {"backend": "openai", "model": "m"}
    run_round1(pairs_file, tmp / "r1.jsonl", "m", spec, settings, tmp / "cache", tmp / "r1.usage.json")
    run_round2(tmp / "r1.jsonl", tmp / "r2.jsonl", "m", spec, settings, tmp / "cache", tmp / "r2.usage.json")
    run_parse(tmp / "r2.jsonl", tmp / "triplets.jsonl", tmp / "counts.json")
    return [list(read_jsonl(tmp / name)) for name in ("r1.jsonl", "r2.jsonl", "triplets.jsonl")]  # type: ignore


def dialogue_respond(request: Request) -> Completion:
    if len(request.messages) == 2:  # round 1
        return ok(
            f"Sure.\n\n[Program Before Edit]\n```python\n{PROGRAM}\n```\n\n[Descriptive]\n{DESC}\n\n[Lazy]\n{LAZY}"
        )
    return ok(f"[Program After Edit]\n```python\n{AFTER}\n```")


def sectioned_respond(request: Request) -> Completion:
    prefill = request.prefill
    if prefill.endswith("[Program After Edit]\n```python\n"):
        return ok(AFTER + "\n")
    if prefill.endswith("[Program Before Edit]\n```python\n"):
        return ok("\n" + PROGRAM + "\n")
    if prefill.endswith("[Descriptive]\n"):
        return ok(DESC + "\n\n**")  # what is left when the stop string "[Lazy" ends the call
    if prefill.endswith("[Lazy]\n"):
        return ok(" " + LAZY)
    raise AssertionError(f"unexpected prefill {prefill!r}")


C_DESC = "In `mean_{i}`, return `0.0` when `xs` is empty instead of dividing by zero."
C_LAZY = "mean_{i} crashes on an empty list; return 0.0 then."


def commit_old(i: int) -> str:
    return f"def mean_{i}(xs):\n    return sum(xs) / len(xs)\n"


def commit_new(i: int) -> str:
    return f"def mean_{i}(xs):\n    if not xs:\n        return 0.0\n    return sum(xs) / len(xs)\n"


def commit_row(i: int, **extra: Any) -> str:
    row = {
        "old_contents": commit_old(i),
        "new_contents": commit_new(i),
        "message": f"Handle empty input #{i}",
        "commit": f"{i:040x}",
        "old_file": f"stats/mean_{i}.py",
        **extra,
    }
    return json.dumps(row)


def commit_seeds(tmp: Path, rows: list[str], shards: int = 1) -> tuple[dict[str, Any], list[Path]]:
    source = tmp / "commits.jsonl"
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    paths = [tmp / "seeds" / f"{i:03d}.jsonl" for i in range(shards)]
    settings = {"kind": "commits", "num_prompts": 100, "num_shards": shards}
    stats = run_seeds([{"name": "cpft", "type": "jsonl", "path": str(source)}], settings, 7, paths, tmp / "seeds.json")
    return stats, paths


def commit_index(request: Request) -> int:
    return int(re.search(r"Handle empty input #(\d+)", user_text(request)).group(1))  # type: ignore[union-attr]


def commit_respond(request: Request) -> Completion:
    """#0 and #4 are fine (#4 with bold headers), #1 lacks [Lazy], #2 has no sections, #3 fails."""
    i = commit_index(request)
    desc, lazy = C_DESC.format(i=i), C_LAZY.format(i=i)
    if i == 1:
        return ok(f"[Descriptive]\n{desc}")
    if i == 2:
        return ok("Sure! The commit makes the mean safe for empty lists.")
    if i == 3:
        return Completion(text="", finish_reason=None, error="HTTP 400: content filter")
    if i == 4:
        return ok(f"**Descriptive:**\n{desc}\n\n**Lazy:** {lazy}\n\nLet me know if you need more.")
    return ok(f"[Descriptive]\n{desc}\n\n[Lazy]\n{lazy}")
