"""Serve a model for the length of one job: start ``vllm serve`` (or any
OpenAI-compatible server) on this node, wait until it answers, stop it after.

A ``models:`` entry with ``backend: openai`` and a ``serve:`` block gets its
server this way (``editforge.backend.openai.OpenAIBackend`` starts it at its first
uncached call, so a job answered from the cache never loads the model). The server listens on
127.0.0.1 at a free port; its output goes to the job's log, line by line.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
VLLM_COMMAND = ["vllm", "serve", "{model}", "--host", HOST, "--port", "{port}", "--tensor-parallel-size", "{gpus}"]
# A model in batch mode runs its batch files offline, with no server (editforge.backend.batch).
VLLM_BATCH_COMMAND = ["vllm", "run-batch", "-i", "{input}", "-o", "{output}", "--model", "{model}",
                      "--tensor-parallel-size", "{gpus}"]
_BATCH_PLACEHOLDERS = {"model": "m", "input": "i", "output": "o", "gpus": 1}
_PLACEHOLDERS = {"model": "m", "port": 0, "gpus": 1}
_TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1


class ServerError(RuntimeError):
    """The model server did not start, or stopped while it was needed."""


@dataclass(frozen=True)
class ServeSettings:
    """A model's ``serve:`` block.

    ``serve`` keys: ``command`` (the default is vLLM's; SGLang's would be
    ``[python, -m, sglang.launch_server, --model-path, "{model}", --host, 127.0.0.1,
    --port, "{port}", --tp, "{gpus}"]``), ``args`` (appended), ``gpus`` (what the job
    asks the scheduler for), ``startup_timeout_s`` and ``env`` (extra variables).
    ``{model}``, ``{port}`` and ``{gpus}`` in the command and args are filled in.
    ``batch_command`` (default ``vllm run-batch -i {input} -o {output} --model {model}
    --tensor-parallel-size {gpus}``, then ``args``) runs a model in batch mode (``mode: batch``)
    offline, with no server: see ``editforge.backend.batch``.
    """

    command: list[str] = field(default_factory=lambda: list(VLLM_COMMAND))
    args: list[str] = field(default_factory=list)
    gpus: int = 1
    startup_timeout_s: float = 1800.0  # a 70B model can take many minutes to load
    env: dict[str, str] = field(default_factory=dict)
    batch_command: list[str] = field(default_factory=lambda: list(VLLM_BATCH_COMMAND))

    def __post_init__(self) -> None:
        if not self.command:
            raise ValueError("command must not be empty")
        if self.gpus < 0:
            raise ValueError("gpus must not be negative")
        if self.startup_timeout_s <= 0:
            raise ValueError("startup_timeout_s must be positive")
        parts = [*self.command, *self.args]
        if not any("{port}" in part for part in parts):
            raise ValueError("command or args must pass the port on: put '{port}' where the server takes it")
        for part in parts:
            try:
                part.format(**_PLACEHOLDERS)
            except (KeyError, IndexError, ValueError) as err:
                raise ValueError(f"{part!r}: only {{model}}, {{port}} and {{gpus}} are filled in ({err})") from None
        if not all(any(f"{{{name}}}" in part for part in self.batch_command) for name in ("input", "output")):
            raise ValueError("batch_command must take the batch file: put '{input}' and '{output}' where it does")

    def argv(self, model: str, port: int) -> list[str]:
        return [part.format(model=model, port=port, gpus=self.gpus) for part in [*self.command, *self.args]]

    def batch_argv(self, model: str, source: os.PathLike[str], target: os.PathLike[str]) -> list[str]:
        """``batch_command`` with ``args``, for the batch file ``source``, results to ``target``."""
        values = {"model": model, "input": os.fspath(source), "output": os.fspath(target), "gpus": self.gpus}
        argv = []
        for part in [*self.batch_command, *self.args]:
            try:
                argv.append(part.format(**values))
            except (KeyError, IndexError, ValueError) as err:
                raise ValueError(
                    f"serve: {part!r}: a batch command fills in only {{model}}, {{input}}, {{output}} and {{gpus}} "
                    f"({err}); move server-only arguments into command"
                ) from None
        return argv


class ModelServer:
    """One server process (and its children) for one model, in its own process group."""

    def __init__(self, name: str, model: str, settings: ServeSettings) -> None:
        self.name = name
        self.model = model
        self.settings = settings
        self.base_url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._tail_lock = threading.Lock()
        self._reader: threading.Thread | None = None

    def start(self) -> str:
        """Start the server and return its base URL once it answers ``GET /models``."""
        port = _free_port()
        argv = self.settings.argv(self.model, port)
        self.base_url = f"http://{HOST}:{port}/v1"
        log.info("%s: starting %s", self.name, " ".join(argv))
        started = time.monotonic()
        try:
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.settings.env},
                start_new_session=True,  # its own group: stop() ends its workers too
                preexec_fn=_die_with_parent,
            )
        except OSError as err:
            raise ServerError(f"{self.name}: cannot start {argv[0]!r}: {err}") from None
        self._reader = threading.Thread(target=self._forward_output, daemon=True)
        self._reader.start()
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        log.info("%s: server ready at %s after %.1f s", self.name, self.base_url, time.monotonic() - started)
        return self.base_url

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM to the whole group, SIGKILL after ``grace_s``; safe to call twice."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(grace_s)
            except subprocess.TimeoutExpired:
                log.warning("%s: server ignored SIGTERM for %g s; killing it", self.name, grace_s)
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        _signal_group(process.pid, signal.SIGKILL)  # workers it left behind in its group
        if self._reader is not None:
            self._reader.join(5)
        log.info("%s: server stopped (exit code %s)", self.name, process.returncode)

    def check_alive(self) -> None:
        """Raise if the server has died since it started (its calls would all fail)."""
        if self._process is not None and self._process.poll() is not None:
            raise ServerError(self._failure(f"the server exited with code {self._process.returncode} while in use"))

    def __enter__(self) -> ModelServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_ready(self, started: float) -> None:
        assert self._process is not None
        deadline = started + self.settings.startup_timeout_s
        while True:
            code = self._process.poll()
            if code is not None:
                raise ServerError(self._failure(f"the server exited with code {code} before it was ready"))
            if _answers(self.base_url + "/models"):
                return
            if time.monotonic() > deadline:
                raise ServerError(
                    self._failure(f"the server did not answer within {self.settings.startup_timeout_s:g} s "
                                  "(serve.startup_timeout_s)")
                )
            time.sleep(0.5)

    def _failure(self, what: str) -> str:
        if self._reader is not None:
            self._reader.join(2)  # let the last lines arrive
        with self._tail_lock:
            tail = "\n".join(self._tail) or "(no output)"
        return f"models.{self.name}.serve: {what}; its last output:\n{tail}"

    def _forward_output(self) -> None:
        """Copy the server's output into this job's log and keep the last lines for errors."""
        assert self._process is not None and self._process.stdout is not None
        for raw in self._process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            with self._tail_lock:
                self._tail.append(line)
            print(f"[{self.name} server] {line}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _die_with_parent() -> None:
    """In the child: receive SIGTERM when this job's process dies, however it dies."""
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
