"""A model server started by the job that needs it (editforge.backend.serving), with the
fake OpenAI-compatible server standing in for `vllm serve`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from editforge.backend import Request, Sampling, open_backend
from editforge.backend.serving import ModelServer, ServerError, ServeSettings
from helpers import REPO

FAKE_VLLM = [sys.executable, "-m", "editforge.backend.fake_server", "--port", "{port}"]
SAMPLING = Sampling(temperature=0.0, top_p=1.0, max_tokens=16)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited but is not yet reaped by its parent.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def served_spec(command: list[str], **serve: object) -> dict[str, object]:
    return {"backend": "openai", "model": "tiny-coder", "max_retries": 0, "serve": {"command": command, **serve}}


def test_settings_name_what_is_wrong() -> None:
    with pytest.raises(ValueError, match=r"\{port\}"):
        ServeSettings(command=["vllm", "serve", "{model}"])
    with pytest.raises(ValueError, match=r"only \{model\}, \{port\} and \{gpus\}"):
        ServeSettings(command=["vllm", "serve", "{model}", "--port", "{port}", "--tp", "{tp}"])
    with pytest.raises(ValueError, match="command must not be empty"):
        ServeSettings(command=[])
    assert ServeSettings(gpus=4).argv("org/m", 8123) == [
        "vllm", "serve", "org/m", "--host", "127.0.0.1", "--port", "8123", "--tensor-parallel-size", "4",
    ]


def test_server_is_waited_for_then_stopped_with_its_group() -> None:
    server = ModelServer("m", "tiny-coder", ServeSettings(command=[*FAKE_VLLM, "--startup-delay-s", "1.0"]))
    started = time.monotonic()
    with server:
        assert time.monotonic() - started >= 1.0  # it waited for the model to "load"
        with urllib.request.urlopen(server.base_url + "/models", timeout=5) as response:
            assert response.status == 200
        pid = server._process.pid  # type: ignore[union-attr]
    assert wait_gone(pid), "the server outlived stop()"
    with pytest.raises(OSError):
        urllib.request.urlopen(server.base_url + "/models", timeout=2)


def test_a_server_that_dies_at_start_is_reported_with_its_output() -> None:
    crash = [sys.executable, "-c", "import sys; print('CUDA out of memory while loading'); sys.exit(3)", "{port}"]
    server = ModelServer("big", "big-model", ServeSettings(command=crash))
    with pytest.raises(ServerError, match=r"(?s)models\.big\.serve: the server exited with code 3.*CUDA out of memory"):
        server.start()


def test_a_server_that_never_answers_times_out_and_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    silent = [sys.executable, "-c", script, "{port}"]
    server = ModelServer("slow", "m", ServeSettings(command=silent, startup_timeout_s=1.0))
    with pytest.raises(ServerError, match=r"did not answer within 1 s \(serve\.startup_timeout_s\)"):
        server.start()
    assert wait_gone(int(pid_file.read_text()))


def test_a_missing_server_program_is_named() -> None:
    server = ModelServer("m", "m", ServeSettings(command=["no-such-vllm-binary", "{port}"]))
    with pytest.raises(ServerError, match="cannot start 'no-such-vllm-binary'"):
        server.start()


def test_backend_starts_the_server_on_the_first_uncached_call_only(tmp_path: Path) -> None:
    requests = [Request(messages=({"role": "user", "content": f"edit {i}"},), sampling=SAMPLING, n=2) for i in range(3)]
    with open_backend("coder", served_spec(FAKE_VLLM), tmp_path / "cache") as backend:
        first = backend.generate(requests)
        server = backend._server  # type: ignore[attr-defined]
        assert server is not None and server._process is not None
        backend.generate(requests[:1])
        assert backend._server is server  # one server for the whole job
        pid = server._process.pid
    assert all(c.error is None and c.text for row in first for c in row)
    assert wait_gone(pid), "close() left the server running"
    # Everything is cached now: a server that cannot start is never started.
    with open_backend("coder", served_spec(["false", "{port}"]), tmp_path / "cache") as backend:
        again = backend.generate(requests)
        assert backend._server is None  # type: ignore[attr-defined]
    assert [[c.text for c in row] for row in again] == [[c.text for c in row] for row in first]


def test_a_server_that_dies_in_use_fails_the_job(tmp_path: Path) -> None:
    request = Request(messages=({"role": "user", "content": "first"},), sampling=SAMPLING)
    with open_backend("coder", served_spec(FAKE_VLLM), tmp_path / "cache") as backend:
        backend.generate([request])
        os.killpg(backend._server._process.pid, signal.SIGKILL)  # type: ignore[attr-defined]
        time.sleep(0.2)
        later = Request(messages=({"role": "user", "content": "second"},), sampling=SAMPLING)
        with pytest.raises(ServerError, match=r"exited with code -9 while in use"):
            backend.generate([later])


def test_the_server_dies_with_its_job(tmp_path: Path) -> None:
    """kill -9 of the job's process (a cancelled SLURM step, say) still ends the server."""
    job = textwrap.dedent(f"""
        import sys, time
        from editforge.backend.serving import ModelServer, ServeSettings
        server = ModelServer("m", "m", ServeSettings(command={FAKE_VLLM!r}))
        server.start()
        print(server._process.pid, flush=True)
        time.sleep(600)
    """)
    process = subprocess.Popen([sys.executable, "-c", job], stdout=subprocess.PIPE, text=True)
    try:
        server_pid = int(process.stdout.readline())  # type: ignore[union-attr]
        assert alive(server_pid)
        process.kill()
        process.wait()
        assert wait_gone(server_pid), "the server outlived its killed job"
    finally:
        process.kill()


def test_config_checks_serve_entries() -> None:
    from editforge import config as efconfig

    base = efconfig.load(REPO / "config/config.yaml")
    base["models"]["smollm2"]["serve"] = {}
    with pytest.raises(efconfig.ConfigError, match=r"models\.smollm2\.serve: only an 'openai' backend model is served"):
        efconfig.validate(base, check_env=False)
    base["models"]["smollm2"] = {"backend": "openai", "model": "m", "base_url": "http://x/v1", "serve": {}}
    with pytest.raises(efconfig.ConfigError, match=r"models\.smollm2\.serve: leave base_url out"):
        efconfig.validate(base, check_env=False)
    base["models"]["smollm2"] = {"backend": "openai", "model": "m", "serve": {"command": ["vllm", "serve"]}}
    with pytest.raises(efconfig.ConfigError, match=r"models\.smollm2\.serve: command or args must pass the port on"):
        efconfig.validate(base, check_env=False)


def test_served_student_is_evaluated_through_its_server_and_asks_for_gpus() -> None:
    from editforge import config as efconfig
    from editforge.workflow.resources import model_gpus

    cfg = efconfig.load(REPO / "config/config.yaml")
    student = next(iter(cfg["training"]["students"]))
    cfg["training"]["students"][student]["serve"] = {"gpus": 2}
    cfg = efconfig.validate(cfg, check_env=False)
    spec = efconfig.target_spec(cfg, student)
    assert spec == {"backend": "openai", "model": f"results/training/{student}/model", "serve": {"gpus": 2},
                    "prompt_format": "editforge"}
    assert model_gpus(spec) == 2
    assert model_gpus({"backend": "transformers", "model": "Qwen/Qwen2.5-Coder-7B-Instruct"}) == 1
    assert model_gpus({"backend": "openai", "model": "deepseek-chat"}) == 0
