"""Scripted answers of the fake server: requests keyed by what they ask (never by their sampling),
answered per model; and the reference-answer tables of the benchmark plug-ins, asked through the
openai backend as the workflow asks them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from editforge.backend import Backend, Request, Sampling, open_backend
from editforge.backend.fake_answers import (
    UNANSWERED,
    Role,
    benchmark_responder,
    body_key,
    reference_answer_maps,
    request_key,
)
from editforge.backend.fake_server import FakeServer
from editforge.evaluation.benchmarks.aider_exercism import AiderExercism
from editforge.evaluation.benchmarks.base import Benchmark
from editforge.evaluation.benchmarks.humanevalfix import HumanEvalFix
from helpers import SHARED

CHAT = [{"role": "system", "content": "be terse"}, {"role": "user", "content": "fix it"}]


def backend_for(server: FakeServer, model: str) -> Backend:
    spec = {"backend": "openai", "model": model, "base_url": server.base_url, "retry_base_s": 0.01, "timeout_s": 10}
    return open_backend(model, spec, None)


def test_the_key_is_what_a_request_asks_whatever_its_sampling() -> None:
    hot = Sampling(temperature=0.8, top_p=0.9, max_tokens=7, stop=("\n",))
    assert request_key(Request(messages=CHAT)) == request_key(Request(messages=CHAT, sampling=hot, n=5))
    assert request_key(Request(prompt="def f(")) == request_key(Request(prompt="def f(", sampling=hot))
    as_chat = Request(messages=[{"role": "user", "content": "def f("}])
    assert request_key(Request(prompt="def f(")) != request_key(as_chat)
    # A prefill is part of what is asked, as the openai backend sends it.
    assert request_key(Request(prompt="def f(", prefill="x")) == body_key({"prompt": "def f(x"})
    continued = [*CHAT, {"role": "assistant", "content": "```python\n"}]
    assert request_key(Request(messages=CHAT, prefill="```python\n")) == body_key({"messages": continued})
    # Key order inside a message does not matter; the model, sampling and n do not either.
    reordered = [{"content": m["content"], "role": m["role"]} for m in CHAT]
    assert body_key({"model": "a", "messages": reordered, "temperature": 1, "n": 3}) == request_key(Request(CHAT))


def test_the_responder_answers_each_model_from_its_table_through_the_backend() -> None:
    chat, text = Request(messages=CHAT, n=2), Request(prompt="def f(", sampling=Sampling(stop=("\nprint",)))
    answers = {
        "good": {request_key(chat): "fixed", request_key(text): "x):\n    return x\n"},
        "bad": {request_key(chat): "unchanged"},
    }
    with FakeServer(responder=benchmark_responder(answers)) as server:
        good = backend_for(server, "good").generate([chat, text])
        bad = backend_for(server, "bad").generate([chat, text])
        stranger = backend_for(server, "stranger").generate([chat])
    assert [[c.text for c in row] for row in good] == [["fixed", "fixed"], ["x):\n    return x\n"]]
    assert [[c.text for c in row] for row in bad] == [["unchanged", "unchanged"], [UNANSWERED]]
    assert [[c.text for c in row] for row in stranger] == [[UNANSWERED, UNANSWERED]]


def test_a_request_not_in_the_table_goes_to_the_fallback() -> None:
    respond = benchmark_responder({"m": {body_key({"prompt": "known"}): "yes"}}, fallback=lambda body, i: f"fb{i}")
    assert respond({"model": "m", "prompt": "known"}, 0) == "yes"
    assert respond({"model": "m", "prompt": "other"}, 1) == "fb1"
    assert respond({"model": "n", "prompt": "known"}, 0) == "fb0"


MODELS: dict[str, tuple[str, Role]] = {
    "oracle-harness": ("canitedit-chat", "oracle"),
    "oracle-editforge": ("editforge", "oracle"),
    "anti-oracle-harness": ("canitedit-direct", "anti-oracle"),
    "anti-oracle-editforge": ("editforge", "anti-oracle"),
}
DATA = {
    HumanEvalFix: SHARED / "benchmarks/humanevalfix/humanevalfix.jsonl",
    AiderExercism: SHARED / "benchmarks/aider_exercism_python/aider_exercism_python.jsonl",
}


@pytest.mark.parametrize("cls", list(DATA), ids=lambda cls: cls.name)
def test_the_reference_tables_answer_the_workflow_s_requests(cls: type[Benchmark]) -> None:
    """Requests asked with the evaluation's own sampling get the plug-in's reference answers, whose
    programs are the reference programs; the tables hold every problem and kind of each model."""
    bench = cls()
    problems = bench.load(str(DATA[cls]))
    tables = reference_answer_maps(bench, problems, MODELS)
    assert {model: len(table) for model, table in tables.items()} == dict.fromkeys(
        MODELS, len(problems) * len(bench.kinds)
    )
    sampling = Sampling(temperature=0.2, top_p=0.95, max_tokens=2048)
    asked = problems[:3]
    with FakeServer(responder=benchmark_responder(tables)) as server:
        for model, (prompt_format, role) in MODELS.items():
            family = bench.family(prompt_format)
            jobs = [(problem, kind) for problem in asked for kind in bench.kinds]
            requests = [bench.request(problem, kind, family, sampling, 2) for problem, kind in jobs]
            with backend_for(server, model) as backend:
                results = backend.generate(requests)
            which = ("oracle", "anti-oracle").index(role)
            for (problem, kind), row in zip(jobs, results, strict=True):
                programs = {bench.program(problem, kind, family, completion.text) for completion in row}
                assert programs == {bench.reference_programs(problem, kind)[which]}, (model, problem["id"], kind)


class Repeating:
    """A benchmark whose two problems ask the same thing with different answers."""

    kinds = ("only",)

    def family(self, prompt_format: str) -> str:
        return prompt_format

    def request(self, problem: Mapping[str, Any], kind: str, family: str, sampling: Sampling, n: int) -> Request:
        return Request(prompt="same", sampling=sampling, n=n)

    def reference_answers(self, problem: Mapping[str, Any], kind: str, family: str) -> tuple[str, str]:
        return f"good {problem['id']}", "bad"


def test_two_requests_asking_the_same_with_different_answers_are_refused() -> None:
    problems = [{"id": "a"}, {"id": "b"}]
    same = reference_answer_maps(Repeating(), problems, {"m": ("x", "anti-oracle")})
    assert same == {"m": {'{"prompt":"same"}': "bad"}}
    with pytest.raises(ValueError, match="m: b \\(only\\) asks what another request asks"):
        reference_answer_maps(Repeating(), problems, {"m": ("x", "oracle")})
    with pytest.raises(ValueError, match="role must be one of oracle, anti-oracle"):
        reference_answer_maps(Repeating(), problems, {"m": ("x", "perfect")})  # type: ignore[dict-item]
