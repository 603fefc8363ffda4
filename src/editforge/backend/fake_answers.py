"""Scripted answers for the fake server (``fake_server.FakeServer``): each request answered by looking
up what it asks, per model.

``bench/oracle.py`` uses it to stand in for a perfect model and for one that changes nothing: for
every problem and instruction kind of a benchmark plug-in, the plug-in's request (``request``) and
its reference answers (``reference_answers``) give one entry of each model's table::

    answers = reference_answer_maps(bench, problems, {"oracle": ("editforge", "oracle")})
    with FakeServer(responder=benchmark_responder(answers)) as server:
        ...

A request's key is what it asks (its prompt or its messages), never how it is sampled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from editforge.backend.fake_server import Responder
from editforge.backend.types import Request, Sampling

Answers = Mapping[str, Mapping[str, str]]  # model -> request key -> answer
Role = Literal["oracle", "anti-oracle"]
ANSWER_ROLES: tuple[Role, ...] = ("oracle", "anti-oracle")  # in the order reference_answers returns them
UNANSWERED = "no scripted answer for this request"


class AnsweredBenchmark(Protocol):
    """What ``reference_answer_maps`` needs of a benchmark plug-in (``evaluation.benchmarks.base``)."""

    @property
    def kinds(self) -> tuple[str, ...]: ...

    def family(self, prompt_format: str) -> str: ...

    def request(self, problem: Mapping[str, Any], kind: str, family: str, sampling: Sampling, n: int) -> Request: ...

    def reference_answers(self, problem: Mapping[str, Any], kind: str, family: str) -> tuple[str, str]: ...


def body_key(body: Mapping[str, Any]) -> str:
    """The key of a request body: its ``messages`` (a chat) or its ``prompt`` (a text completion), as
    JSON with sorted keys; sampling, ``model``, ``n`` and every other field left out."""
    asked = {"messages": body["messages"]} if "messages" in body else {"prompt": body["prompt"]}
    return json.dumps(asked, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def request_key(request: Request) -> str:
    """The key of the body the openai backend sends for ``request`` (a prefill goes at the end of the
    prompt, or as a final assistant turn)."""
    if request.prompt is not None:
        return body_key({"prompt": request.prompt + request.prefill})
    messages = list(request.messages)
    if request.prefill:
        messages.append({"role": "assistant", "content": request.prefill})
    return body_key({"messages": messages})


def benchmark_responder(answers: Answers, fallback: Responder | None = None) -> Responder:
    """A responder answering each request from ``answers[model][body_key(body)]`` (every choice the
    same); a request not in its model's table goes to ``fallback``, or gets ``UNANSWERED``."""

    def respond(body: dict[str, Any], index: int) -> str:
        answer = answers.get(str(body.get("model")), {}).get(body_key(body))
        if answer is not None:
            return answer
        return fallback(body, index) if fallback is not None else UNANSWERED

    return respond


def reference_answer_maps(
    bench: AnsweredBenchmark, problems: Sequence[Mapping[str, Any]], models: Mapping[str, tuple[str, Role]]
) -> dict[str, dict[str, str]]:
    """Per model, the key of every request of ``problems`` (each instruction kind) in the model's
    prompt format, mapped to the reference answer of its role. ``models`` maps a model name to its
    ``prompt_format`` and role: ``oracle`` (the reference solution) or ``anti-oracle`` (the input
    unchanged). Two requests with one key and different answers are a ValueError."""
    tables: dict[str, dict[str, str]] = {}
    for model, (prompt_format, role) in models.items():
        if role not in ANSWER_ROLES:
            raise ValueError(f"{model}: role must be one of {', '.join(ANSWER_ROLES)}, got {role!r}")
        family = bench.family(prompt_format)
        table = tables.setdefault(model, {})
        for problem in problems:
            for kind in bench.kinds:
                key = request_key(bench.request(problem, kind, family, Sampling(), 1))
                answer = bench.reference_answers(problem, kind, family)[ANSWER_ROLES.index(role)]
                if table.setdefault(key, answer) != answer:
                    raise ValueError(f"{model}: {problem['id']} ({kind}) asks what another request asks")
    return tables
