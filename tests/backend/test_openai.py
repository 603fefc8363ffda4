"""The openai backend, with the real openai client, against the fake HTTP server."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from editforge.backend import Backend, Request, Sampling, open_backend
from editforge.backend.fake_server import (
    DROP,
    EMPTY,
    MALFORMED,
    OK,
    Behaviour,
    FakeServer,
    always,
    hang,
    request_id,
    sequence,
    status,
)


def backend_for(server: FakeServer, cache_dir: Path | None = None, **options: Any) -> Backend:
    spec = {
        "backend": "openai",
        "model": "fake-model",
        "base_url": server.base_url,
        "retry_base_s": 0.01,
        "retry_max_s": 0.02,
        "timeout_s": 5.0,
        **options,
    }
    return open_backend("fake", spec, cache_dir)


def ask(text: str, n: int = 1, **sampling: Any) -> Request:
    return Request(messages=[{"role": "user", "content": text}], n=n, sampling=Sampling(**sampling))


def echo(body: dict[str, Any], index: int) -> str:
    """The last message (or the prompt) and the choice index."""
    last = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
    return f"{last}/{index}"


def texts(results: list[list[Any]]) -> list[list[str]]:
    return [[completion.text for completion in row] for row in results]


OPENAI_LOG = "editforge.backend"  # the openai backend logs under the package name


def retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Why each retry was made and the wait it asked for, from the backend's debug log."""
    prefix = "fake: request 0: "
    return [record.getMessage().removeprefix(prefix) for record in caplog.records
            if record.name == OPENAI_LOG and "; retrying in " in record.getMessage()]


# --------------------------------------------------------------------------- answers


def test_samples_come_back_in_order_with_one_call_per_request() -> None:
    with FakeServer(responder=echo) as server:
        backend = backend_for(server)
        results = backend.generate([ask("a", n=3), ask("b"), ask("c", n=2)])
    assert texts(results) == [["a/0", "a/1", "a/2"], ["b/0"], ["c/0", "c/1"]]
    assert sorted(body.get("n", 1) for body in server.bodies) == [1, 2, 3]
    assert all(c.finish_reason == "stop" and c.error is None and not c.cached for row in results for c in row)
    # The prompt's tokens sit on the first sample of a call; completion tokens are shared out.
    assert results[0][0].prompt_tokens > 0 and results[0][1].prompt_tokens == 0
    usage = backend.usage
    assert (usage.calls, usage.cached, usage.errors) == (6, 0, 0)
    assert usage.completion_tokens == sum(c.completion_tokens for row in results for c in row) == 6
    assert usage.cost is None


def test_without_use_n_each_sample_is_its_own_call_with_its_own_seed() -> None:
    with FakeServer(responder=echo) as server:
        backend_for(server, use_n=False, send_seed=True).generate([ask("a", n=3)])
        backend_for(server, use_n=False, send_seed=True).generate([ask("a", n=3)])
    assert len(server.bodies) == 6 and all("n" not in body for body in server.bodies)
    first, second = (sorted(body["seed"] for body in run) for run in (server.bodies[:3], server.bodies[3:]))
    assert len(set(first)) == 3 and first == second  # one seed per sample, the same every run


def test_identical_requests_are_asked_once() -> None:
    with FakeServer(responder=echo) as server:
        backend = backend_for(server)
        results = backend.generate([ask("a", n=2), ask("b"), ask("a", n=3)])
    # Samples 0 and 1 of "a" are asked once (n=2), sample 2 in a call of its own.
    assert sorted(body.get("n", 1) for body in server.bodies) == [1, 1, 2]
    assert texts(results) == [["a/0", "a/1"], ["b/0"], ["a/0", "a/1", "a/0"]]
    assert backend.usage.calls == 6


def test_a_server_returning_fewer_choices_is_asked_again_for_the_rest() -> None:
    with FakeServer(responder=echo, max_choices=1) as server:  # like servers that ignore n
        results = backend_for(server).generate([ask("a", n=3)])
    assert [body.get("n", 1) for body in server.bodies] == [3, 2, 1]
    assert texts(results) == [["a/0", "a/0", "a/0"]]


def test_prompt_requests_go_to_the_completions_endpoint_with_the_prefill_appended() -> None:
    with FakeServer(responder=echo) as server:
        results = backend_for(server).generate([Request(prompt="def add(", prefill="a, b")])
    assert server.paths == ["/v1/completions"]
    assert server.bodies[0]["prompt"] == "def add(a, b"
    assert texts(results) == [["def add(a, b/0"]]


@pytest.mark.parametrize("mode", ["none", "continue_final_message"])
def test_prefill_is_sent_as_a_final_assistant_message(mode: str) -> None:
    with FakeServer(responder=echo) as server:
        backend = backend_for(server, prefill=mode, extra_body={"enable_thinking": False})
        results = backend.generate([Request(messages=[{"role": "user", "content": "edit"}], prefill="```python\n")])
    body = server.bodies[0]
    assert body["messages"][-1] == {"role": "assistant", "content": "```python\n"}
    assert body["enable_thinking"] is False
    continues = mode == "continue_final_message"
    assert body.get("continue_final_message") is (True if continues else None)
    assert body.get("add_generation_prompt") is (False if continues else None)
    assert texts(results) == [["```python\n/0"]]


def test_sampling_settings_reach_the_server() -> None:
    with FakeServer() as server:
        backend_for(server).generate([ask("a", temperature=0.7, top_p=0.9, max_tokens=33, stop=("\n\n",))])
    body = server.bodies[0]
    assert (body["model"], body["temperature"], body["top_p"], body["max_tokens"], body["stop"]) == (
        "fake-model",
        0.7,
        0.9,
        33,
        ["\n\n"],
    )
    assert "seed" not in body  # send_seed is off by default


def test_usage_gives_a_cost_where_prices_are_configured() -> None:
    with FakeServer() as server:
        backend = backend_for(server, price={"input_per_mtok": 2.0, "output_per_mtok": 10.0})
        backend.generate([ask("one two three", n=2)])
    usage = backend.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.cost == pytest.approx((usage.prompt_tokens * 2.0 + usage.completion_tokens * 10.0) / 1e6)


def test_concurrency_is_bounded_by_max_concurrency() -> None:
    # Answers are held until five calls are in flight at once: a client that sent its calls
    # one by one would leave max_in_flight at 1, however fast or loaded the machine.
    with FakeServer(latency_s=0.05, hold_until_in_flight=5) as server:
        backend_for(server, max_concurrency=5).generate([ask(f"q{i}") for i in range(30)])
    assert 2 <= server.max_in_flight <= 5
    assert server.max_in_flight == 5 and len(server.bodies) == 30  # calls overlapped, up to the limit


# --------------------------------------------------------------------------- faults and retries


@pytest.mark.parametrize(
    "header",
    [{"retry_after": "0.3"}, {"retry_after_ms": "300"}],
    ids=["retry-after", "retry-after-ms"],
)
def test_rate_limit_is_retried_after_the_time_the_server_asks(
    header: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger=OPENAI_LOG), FakeServer(
        responder=echo, script=sequence(status(429, **header))
    ) as server:
        backend = backend_for(server, retry_base_s=0.001, retry_max_s=0.001)
        start = time.monotonic()
        results = backend.generate([ask("a")])
        elapsed = time.monotonic() - start
    # Backoff alone would wait at most 1 ms: the 0.3 s come from the header.
    assert retries(caplog) == ["Error code: 429 - scripted error; retrying in 0.30 s"]
    assert elapsed >= 0.3  # and were waited (a lower bound: no machine load can break it)
    assert texts(results) == [["a/0"]] and sum(server.calls.values()) == 2


@pytest.mark.parametrize(
    "faults",
    [
        (status(500), status(503)),
        (DROP, DROP),
        (MALFORMED,),
        (EMPTY,),
        (MALFORMED, EMPTY, status(502)),
    ],
    ids=["5xx", "dropped-connection", "malformed-json", "empty-choices", "mixed"],
)
def test_transient_faults_are_retried(faults: tuple[Behaviour, ...]) -> None:
    with FakeServer(responder=echo, script=sequence(*faults)) as server:
        backend = backend_for(server)
        results = backend.generate([ask("a", n=2)])
    assert texts(results) == [["a/0", "a/1"]]
    assert sum(server.calls.values()) == len(faults) + 1
    assert backend.usage.errors == 0


def test_a_hang_past_the_timeout_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=OPENAI_LOG), FakeServer(
        responder=echo, script=sequence(hang(5))
    ) as server:
        start = time.monotonic()
        results = backend_for(server, timeout_s=0.3).generate([ask("a")])
        elapsed = time.monotonic() - start
    assert texts(results) == [["a/0"]]
    assert sum(server.calls.values()) == 2 and elapsed >= 0.3
    # The first call was given up at the timeout, not awaited: it was never answered, the retry was.
    [retry] = retries(caplog)
    assert retry.startswith("no answer within 0.3 s; retrying in ")
    assert list(server.served.values()) == [1]


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (hang(5), "no answer within 0.3 s"),
        (MALFORMED, "malformed JSON"),
        (EMPTY, "no choices"),
        (status(500), "500"),
        (DROP, "connection error"),
    ],
    ids=["hang", "malformed-json", "empty-choices", "5xx", "dropped-connection"],
)
def test_a_fault_that_persists_is_recorded_after_the_retries(fault: Behaviour, expected: str) -> None:
    with FakeServer(script=always(fault)) as server:
        backend = backend_for(server, timeout_s=0.3, max_retries=2)
        [[completion]] = backend.generate([ask("a")])
    assert sum(server.calls.values()) == 3  # the first call and two retries
    assert completion.error is not None and expected in completion.error
    assert "after 3 attempts" in completion.error
    assert (completion.text, completion.finish_reason) == ("", None)
    assert backend.usage.errors == 1 and backend.usage.calls == 0


@pytest.mark.parametrize("code", [400, 401, 404, 422])
def test_client_errors_are_recorded_without_retrying(code: int) -> None:
    with FakeServer(script=always(status(code, message="no such thing"))) as server:
        [[completion]] = backend_for(server).generate([ask("a")])
    assert sum(server.calls.values()) == 1
    assert completion.error is not None and str(code) in completion.error and "no such thing" in completion.error


def test_one_failing_request_leaves_the_others_intact() -> None:
    def script(body: dict[str, Any], call: int) -> Behaviour:
        return status(500) if body["messages"][-1]["content"] == "bad" else OK

    with FakeServer(responder=echo, script=script) as server:
        backend = backend_for(server, max_retries=2)
        results = backend.generate([ask("a", n=2), ask("bad", n=2), ask("c")])
    assert texts(results)[0] == ["a/0", "a/1"] and texts(results)[2] == ["c/0"]
    assert all(c.error is not None and c.finish_reason is None for c in results[1])
    assert (backend.usage.calls, backend.usage.errors) == (3, 2)


# --------------------------------------------------------------------------- cache


def test_a_rerun_is_served_from_the_cache_whatever_the_address_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEY_A", "key-one")
    monkeypatch.setenv("KEY_B", "key-two")
    requests = [ask("a", n=2), Request(prompt="b")]
    price = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
    with FakeServer(responder=echo) as first:
        paid = backend_for(first, tmp_path, api_key_env="KEY_A", price=price)
        expected = texts(paid.generate(requests))
    with FakeServer(responder=echo) as second:
        backend = backend_for(second, tmp_path, api_key_env="KEY_B", price=price)
        results = backend.generate(requests)
    assert sum(second.calls.values()) == 0
    assert texts(results) == expected
    assert all(c.cached for row in results for c in row)
    assert (backend.usage.calls, backend.usage.cached, backend.usage.prompt_tokens, backend.usage.cost) == (0, 3, 0, 0)
    # What the cached answers cost when they were made is kept: a resumed run still counts it.
    assert (backend.usage.cached_prompt_tokens, backend.usage.cached_completion_tokens) == (
        paid.usage.prompt_tokens, paid.usage.completion_tokens) != (0, 0)
    assert backend.usage.cached_cost == pytest.approx(paid.usage.cost)


def test_what_changes_the_answer_changes_the_cache_key(tmp_path: Path) -> None:
    with FakeServer(responder=echo) as server:
        backend_for(server, tmp_path).generate([ask("a")])
        backend_for(server, tmp_path).generate([ask("a", temperature=0.5)])
        backend_for(server, tmp_path, extra_body={"enable_thinking": False}).generate([ask("a")])
        backend_for(server, tmp_path, model="other-model").generate([ask("a")])
        backend_for(server, tmp_path).generate([Request(messages=[{"role": "user", "content": "a"}], prefill="x")])
    assert len(server.bodies) == 5


def test_failed_calls_are_not_cached_and_a_rerun_retries_them(tmp_path: Path) -> None:
    with FakeServer(script=always(status(500))) as broken:
        [[failed]] = backend_for(broken, tmp_path, max_retries=1).generate([ask("a")])
    assert failed.error is not None
    assert not list(tmp_path.rglob("*.json"))
    with FakeServer(responder=echo) as healthy:
        [[completion]] = backend_for(healthy, tmp_path).generate([ask("a")])
    assert (completion.text, completion.cached) == ("a/0", False)
    assert sum(healthy.calls.values()) == 1


def test_without_a_cache_dir_nothing_is_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with FakeServer(responder=echo) as server:
        backend_for(server, None).generate([ask("a")])
        backend_for(server, None).generate([ask("a")])
    assert sum(server.calls.values()) == 2
    assert not list(tmp_path.iterdir())


RUN_IN_CHILD = textwrap.dedent(
    """
    import json, sys
    from editforge.backend import Request, open_backend
    base_url, cache_dir, out = sys.argv[1:4]
    spec = {"backend": "openai", "model": "fake-model", "base_url": base_url, "max_concurrency": 4}
    requests = [Request(messages=[{"role": "user", "content": f"q{i}"}]) for i in range(40)]
    results = open_backend("fake", spec, cache_dir).generate(requests)
    with open(out, "w") as handle:
        json.dump([[c.text for c in row] for row in results], handle)
    """
)


def test_a_killed_run_restarted_repeats_no_completed_call(tmp_path: Path) -> None:
    cache_dir, out = tmp_path / "cache", tmp_path / "out.json"
    requests = [ask(f"q{i}") for i in range(40)]
    with FakeServer(responder=echo, latency_s=0.05) as server:
        child = subprocess.Popen(
            [sys.executable, "-c", RUN_IN_CHILD, server.base_url, str(cache_dir), str(out)],
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while sum(server.served.values()) < 15 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.002)
        child.kill()  # SIGKILL: no cleanup of any kind
        child.wait()
        assert 15 <= sum(server.served.values()) < 40 and not out.exists()

        # Every entry is complete (a kill may leave a temporary file, never half an entry).
        stored = {json.loads(path.read_text())["text"].split("/")[0] for path in cache_dir.rglob("*.json")}
        assert stored
        backend = backend_for(server, cache_dir, max_concurrency=4)
        resumed = backend.generate(requests)
        assert (backend.usage.cached, backend.usage.calls) == (len(stored), 40 - len(stored))

        served = {body["messages"][-1]["content"]: server.served[request_id(body)] for body in server.bodies}
        uninterrupted = backend_for(server, None).generate(requests)
    # A call whose answer was stored was served once; only calls cut off in flight
    # (at most max_concurrency of them) were served again.
    assert len(served) == 40 and all(served[text] == 1 for text in stored)
    assert sum(count - 1 for count in served.values()) <= 4
    assert texts(resumed) == texts(uninterrupted) == [[f"q{i}/0"] for i in range(40)]


# --------------------------------------------------------------------------- configuration and input


def test_a_missing_api_key_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDITFORGE_TEST_KEY", raising=False)
    spec = {"backend": "openai", "model": "m", "api_key_env": "EDITFORGE_TEST_KEY"}
    with pytest.raises(ValueError, match="EDITFORGE_TEST_KEY"):
        open_backend("remote", spec, None)


def test_the_api_key_is_sent_but_never_reported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-test-4f9a1c2e7b"
    monkeypatch.setenv("EDITFORGE_TEST_KEY", secret)
    # A server that echoes the credentials it received in its error message.
    echo_auth = status(401, message="invalid credentials: {authorization}")
    with caplog.at_level(logging.DEBUG), FakeServer(script=always(echo_auth)) as server:
        backend = backend_for(server, api_key_env="EDITFORGE_TEST_KEY")
        [[completion]] = backend.generate([ask("a")])
    assert server.authorizations == [f"Bearer {secret}"]
    assert completion.error is not None and "invalid credentials" in completion.error
    assert secret not in completion.error
    assert secret not in caplog.text and secret not in repr(backend.usage) and secret not in repr(completion)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"max_concurency": 3}, "max_concurency"),
        ({"backend": "vllm"}, "backend"),
        ({"prefill": "yes"}, "prefill"),
        ({"max_retries": "six"}, "max_retries"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"price": {"input_per_mtok": 1.0}}, "output_per_mtok"),
        ({"dtype": "bfloat16"}, "dtype"),  # a transformers key
    ],
)
def test_a_bad_spec_names_the_key(change: dict[str, Any], named: str) -> None:
    spec = {"backend": "openai", "model": "m", **change}
    with pytest.raises(ValueError, match=named) as raised:
        open_backend("remote", spec, None)
    assert "models.remote" in str(raised.value)


def test_a_spec_without_model_is_rejected() -> None:
    with pytest.raises(ValueError, match="missing key 'model'"):
        open_backend("remote", {"backend": "openai"}, None)


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        (Request(), "messages or a prompt"),
        (Request(messages=[{"role": "user", "content": "a"}], prompt="b"), "messages or a prompt"),
        (Request(prompt="a", n=0), "n must be"),
        (Request(prompt="a", sampling=Sampling(top_p=0.0)), "top_p"),
        (Request(prompt="a", sampling=Sampling(stop="\n")), "stop"),  # type: ignore[arg-type]
        (Request(messages=[{"role": "user"}]), "content"),
    ],
)
def test_bad_requests_are_rejected_before_any_call(request_: Request, problem: str) -> None:
    with FakeServer() as server, pytest.raises(ValueError, match=problem):
        backend_for(server).generate([Request(prompt="fine"), request_])
    assert server.bodies == []


def test_an_empty_list_needs_no_server() -> None:
    backend = open_backend("remote", {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}, None)
    assert backend.generate([]) == []
