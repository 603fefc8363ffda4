"""The checks before paid work (editforge.workflow.preflight): each bad setting fails in one line naming it
and the fix."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from editforge.backend import Request, open_backend
from editforge.backend.cache import CacheNotWritable
from editforge.backend.fake_server import FakeServer, always, status
from editforge.workflow.preflight import PreflightError, check_benchmark, check_cache_dir, check_model
from helpers import SHARED


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _error(name: str, spec: dict) -> str:
    with pytest.raises(PreflightError) as info:
        check_model(name, spec)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_server_that_answers_and_lists_the_model_passes_with_no_completion_call() -> None:
    with FakeServer(api_key="right") as server:
        spec = {"backend": "openai", "model": "fake", "base_url": server.base_url, "api_key_env": "PREFLIGHT_KEY"}
        with pytest.MonkeyPatch.context() as env:
            env.setenv("PREFLIGHT_KEY", "right")
            assert "serves 'fake'" in check_model("coder", spec)
        assert not server.calls  # the listing was enough


def test_a_rejected_key_names_the_variable_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFLIGHT_KEY", "wrong")
    with FakeServer(api_key="right") as server:
        spec = {"backend": "openai", "model": "fake", "base_url": server.base_url, "api_key_env": "PREFLIGHT_KEY"}
        message = _error("coder", spec)
    assert message.startswith(f"models.coder: the server at {server.base_url} rejected the API key (HTTP 401")
    assert message.endswith("set PREFLIGHT_KEY to a valid key") and "wrong" not in message


def test_an_unset_key_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFLIGHT_KEY", raising=False)
    spec = {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:1/v1", "api_key_env": "PREFLIGHT_KEY"}
    assert "the environment variable PREFLIGHT_KEY (named by api_key_env) is not set" in _error("coder", spec)


@pytest.mark.parametrize("url", ["htp://127.0.0.1:8000/v1", "127.0.0.1:8000/v1", "http:///v1"])
def test_a_mistyped_scheme_is_caught_before_any_connection(url: str) -> None:
    message = _error("coder", {"backend": "openai", "model": "m", "base_url": url})
    assert message == f"models.coder.base_url: {url!r} is not an http(s) URL; write it as http://host:port/v1"


def test_an_unreachable_server_is_named_with_the_setting_to_check() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    message = _error("coder", {"backend": "openai", "model": "m", "base_url": url})
    assert message.startswith(f"models.coder: cannot reach {url} (")
    assert message.endswith("check models.coder.base_url and that the server is up")


def test_without_a_listing_one_token_call_decides() -> None:
    with FakeServer(listed_models=None) as server:
        spec = {"backend": "openai", "model": "fake", "base_url": server.base_url}
        assert "answered a 1-token call to 'fake'" in check_model("coder", spec)
        assert [body["max_tokens"] for body in server.bodies] == [1]
    with FakeServer(listed_models=["other-model"], script=always(status(404, message="model not found"))) as server:
        spec = {"backend": "openai", "model": "fake", "base_url": server.base_url}
        message = _error("coder", spec)
    assert message == (
        f"models.coder.model: the server at {server.base_url} does not serve 'fake' (it lists other-model): "
        "HTTP 404: model not found; check models.coder.model"
    )


def test_a_served_model_is_left_to_its_job() -> None:
    spec = {"backend": "openai", "model": "/models/coder", "serve": {"gpus": 1}}
    assert "the job checks its server when it starts" in check_model("coder", spec)


def test_in_process_models_are_found_before_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "missing"
    message = _error("student", {"backend": "transformers", "model": str(missing)})
    assert message == f"models.student.model: {missing} is not a model folder (no config.json); check the path"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    message = _error("student", {"backend": "transformers", "model": "org/not-downloaded-7B"})
    assert "'org/not-downloaded-7B' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set" in message


def test_an_unwritable_cache_dir_fails_the_preflight_and_the_job_before_any_call(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cache_dir = blocker / "cache"  # cannot be created, even by root
    with pytest.raises(PreflightError, match=rf"^cache_dir: cannot write to {cache_dir} \(.*\); set cache_dir to a"):
        check_cache_dir(cache_dir, 10, 256)
    with FakeServer() as server:
        spec = {"backend": "openai", "model": "fake", "base_url": server.base_url}
        with pytest.raises(CacheNotWritable, match="set cache_dir to a writable folder"):
            with open_backend("coder", spec, cache_dir) as backend:
                backend.generate([Request(prompt="x")])
        assert not server.calls


def test_a_cache_disk_without_room_for_the_answers_is_caught(tmp_path: Path) -> None:
    assert "is writable" in check_cache_dir(tmp_path, 100, 2048)
    with pytest.raises(PreflightError, match=r"GB free, and about .* GB are needed for 10000000000000 answers"):
        check_cache_dir(tmp_path, 10**13, 2048)


def test_a_missing_benchmark_is_named_before_paid_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, benchmark_path: Path
) -> None:
    monkeypatch.delenv("EDITFORGE_CANITEDIT", raising=False)
    monkeypatch.delenv("EDITFORGE_HUMANEVALFIX", raising=False)
    with pytest.raises(PreflightError, match=r"^benchmark canitedit: .*nowhere.jsonl: benchmark file not found"):
        check_benchmark(str(tmp_path / "nowhere.jsonl"), tmp_path / "not-loaded-yet.jsonl")
    line, size = check_benchmark(str(benchmark_path), tmp_path / "not-loaded-yet.jsonl")
    assert "105 problems load" in line and size == 105
    with pytest.raises(PreflightError, match=r"^benchmark humanevalfix: .*nowhere.jsonl"):
        check_benchmark(str(tmp_path / "nowhere.jsonl"), tmp_path / "not-loaded-yet.jsonl", "humanevalfix")
    humanevalfix = SHARED / "benchmarks/humanevalfix/humanevalfix.jsonl"
    assert check_benchmark(str(humanevalfix), tmp_path / "no.jsonl", "humanevalfix")[1] == 164
    loaded = tmp_path / "loaded.jsonl"
    loaded.write_text("{}\n{}\n")
    assert check_benchmark("anything", loaded) == (f"benchmark canitedit: {loaded} is loaded", 2)
