"""A test double of an OpenAI-compatible server, used by the tests, bench/ and the .test config.

It serves ``/v1/chat/completions``, ``/v1/completions`` and ``/v1/models`` on 127.0.0.1,
and the batch API (``editforge.backend.fake_batches``). Answers are deterministic: by
default a text derived from a hash of the last message (or the prompt) and the choice
index, or whatever a ``responder(body, choice_index)`` returns. ``n`` is honoured.
In a test::

    with FakeServer(script=sequence(status(429, retry_after="0.3"))) as server:
        ...  # server.base_url is "http://127.0.0.1:<port>/v1"

From a shell (prints the base URL once listening), and standing in for ``vllm run-batch``::

    python -m editforge.backend.fake_server --port 8000 --latency-ms 200 --concurrency 64
    python -m editforge.backend.fake_server run-batch -i requests.jsonl -o results.jsonl --model NAME
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from editforge.backend.fake_batches import BatchAPI, BatchOutcome
from editforge.backend.serving import HOST

# Fields that do not change what is asked for.
IGNORED_FIELDS = frozenset({"stream", "stream_options", "user"})


@dataclass(frozen=True)
class Behaviour:
    """What the server does with one call."""

    kind: Literal["ok", "status", "hang", "drop", "malformed", "empty"] = "ok"
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    message: str = ""  # of an error status; "{authorization}" is replaced by that request header
    seconds: float = 0.0  # how long "hang" waits before it answers after all


OK = Behaviour()
DROP = Behaviour("drop")  # closes the connection without answering
MALFORMED = Behaviour("malformed")  # status 200, a body that is not valid JSON
EMPTY = Behaviour("empty")  # status 200, an empty choices list


def status(
    code: int, *, retry_after: str | None = None, retry_after_ms: str | None = None, message: str = "scripted error"
) -> Behaviour:
    """An error status, optionally with ``Retry-After`` / ``retry-after-ms`` headers.

    ``message`` may contain "{authorization}", for servers that echo credentials.
    """
    headers = [("Retry-After", retry_after), ("retry-after-ms", retry_after_ms)]
    pairs = tuple((name, value) for name, value in headers if value is not None)
    return Behaviour("status", status=code, headers=pairs, message=message)


def hang(seconds: float) -> Behaviour:
    """Answer normally, but only after ``seconds`` (longer than the client waits)."""
    return Behaviour("hang", seconds=seconds)


Script = Callable[[dict[str, Any], int], Behaviour]
Responder = Callable[[dict[str, Any], int], str]


def sequence(*behaviours: Behaviour) -> Script:
    """Call k of every request gets ``behaviours[k - 1]``; later calls succeed."""
    return lambda body, call: behaviours[call - 1] if call <= len(behaviours) else OK


def always(behaviour: Behaviour) -> Script:
    return lambda body, call: behaviour


def request_id(body: dict[str, Any]) -> str:
    """A hash of what a request asks for, to count repeated calls."""
    relevant = {key: value for key, value in body.items() if key not in IGNORED_FIELDS}
    text = json.dumps(relevant, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _last_text(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    return str(messages[-1].get("content", "")) if messages else str(body.get("prompt", ""))


def default_responder(body: dict[str, Any], index: int) -> str:
    digest = hashlib.sha256(_last_text(body).encode("utf-8")).hexdigest()[:12]
    return f"answer {digest} {index}"


def reference_responder(problems: Sequence[Mapping[str, Any]], fields: Mapping[str, str]) -> Responder:
    """Answers CanItEdit prompts with a reference program, as a perfect (or hopeless) model would.

    ``fields`` maps a request's ``model`` to the problem field it answers with
    (``"after"``: the oracle, ``"before"``: the anti-oracle). The problem is the
    one whose instruction and ``before`` the prompt holds. A chat request gets the
    program in a fence; a text completion the bare program, then a next section
    header (which the direct format's stop strings cut off).
    """
    # Longest instruction first: one may be a prefix of another's.
    keys = sorted(
        ((problem[f"instruction_{kind}"].strip(), problem) for problem in problems for kind in ("lazy", "descriptive")),
        key=lambda pair: -len(pair[0]),
    )

    def respond(body: dict[str, Any], index: int) -> str:
        text = "\n".join(str(m.get("content", "")) for m in body["messages"]) if "messages" in body else body["prompt"]
        # The last problem-bearing turn: a chat prompt's one-shot example comes first.
        tail = text[text.rfind("## Code Before") :] if "## Code Before" in text else text
        problem = next((p for instruction, p in keys if instruction in tail and p["before"].strip() in tail), None)
        if problem is None:
            return "no problem of the benchmark in this prompt"
        program = problem[fields[body["model"]]]
        return f"```python\n{program}\n```" if "messages" in body else f"{program}\n## Instruction:\n"

    return respond


class FakeServer(BatchAPI):
    """The server; ``with FakeServer() as server`` runs it in a background thread.

    Faults are scripted per call with ``script(body, call_number) -> Behaviour``,
    where ``call_number`` counts the calls of that same request (1 for the first):
    ``sequence(status(500), DROP)`` fails a request's first two calls, for example.
    The server counts calls and successful answers per request (``calls``,
    ``served``, keyed by ``request_id``), so tests can check that nothing was asked
    twice. ``concurrency`` caps the requests served at once and ``latency_s`` delays
    each answer, as a model server would; ``hold_until_in_flight`` holds every answer
    until that many calls have been in flight at once (for ``hold_timeout_s`` at most,
    in all), so a test sees calls overlap whatever the machine's load. ``api_key`` makes
    every endpoint answer 401 to any other key, and ``listed_models`` is what ``/v1/models``
    lists (None: 404, as a provider without a listing).
    """

    def __init__(
        self,
        *,
        responder: Responder = default_responder,
        script: Script | None = None,
        latency_s: float = 0.0,
        concurrency: int | None = None,
        max_choices: int | None = None,
        port: int = 0,
        api_key: str | None = None,
        listed_models: Sequence[str] | None = ("fake",),
        batch_polls: int = 1,
        batch_outcome: Callable[[int], BatchOutcome] | None = None,
        batch_api: bool = True,
        hold_until_in_flight: int | None = None,
        hold_timeout_s: float = 10.0,
    ) -> None:
        self.responder = responder
        self.script = script
        self.latency_s = latency_s
        self.concurrency = concurrency
        self.max_choices = max_choices  # answer fewer choices than asked, as servers ignoring n do
        self.port = port
        self.api_key = api_key
        self.listed_models = listed_models
        self.calls: Counter[str] = Counter()  # every call, by request_id
        self.served: Counter[str] = Counter()  # answers with choices, by request_id
        self.bodies: list[dict[str, Any]] = []  # every request body, in arrival order
        self.paths: list[str] = []  # and the path it was sent to
        self.authorizations: list[str] = []  # the Authorization header of every call
        self.in_flight = 0
        self.max_in_flight = 0
        self.hold_until_in_flight = hold_until_in_flight
        self.hold_timeout_s = hold_timeout_s
        self._gathered = asyncio.Event()  # set once hold_until_in_flight calls were in flight at once
        self.batch_polls = batch_polls
        self.batch_api = batch_api  # False: no /v1/files and /v1/batches (404), as `vllm serve`
        self.batch_outcome = batch_outcome
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}  # the batch objects, by id
        self.batch_lines: dict[str, list[dict[str, Any]]] = {}  # the input lines of each batch
        self._batch_retrievals: Counter[str] = Counter()
        self._slots = asyncio.Semaphore(concurrency) if concurrency else None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    # Running in a background thread (tests).

    def __enter__(self) -> FakeServer:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fakeserver", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.start(), self._loop).result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._thread is not None
        asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    # Running in the current event loop.

    async def start(self) -> None:
        app = web.Application(client_max_size=200 * 2**20)  # batch files as large as OpenAI takes
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._text)
        app.router.add_get("/v1/models", self._models)
        if self.batch_api:
            self.add_batch_routes(app)
        # Handlers stop when their client goes away, and shutdown is short: calls
        # scripted to hang must not outlive a test.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, self.port, backlog=1024)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    # The handlers of live calls; those of the batch API are BatchAPI's.

    def _refusal(self, request: web.Request) -> web.Response | None:
        """401 for a key other than ``api_key``, as a provider answers; None where the key is accepted."""
        if self.api_key is None or request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        error = {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}
        return web.json_response({"error": error}, status=401)

    async def _models(self, request: web.Request) -> web.Response:
        if refusal := self._refusal(request):
            return refusal
        if self.listed_models is None:
            return web.json_response({"error": {"message": "Not found", "code": 404}}, status=404)
        data = [{"id": name, "object": "model", "owned_by": "fake"} for name in self.listed_models]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, chat=True)

    async def _text(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, chat=False)

    async def _answer(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        body = await request.json()
        key = self._record(body, request.path)
        self.authorizations.append(request.headers.get("Authorization", ""))
        if refusal := self._refusal(request):
            return refusal
        behaviour = self._behaviour(body, key)
        if self._slots is None:
            return await self._behave(request, body, key, behaviour, chat)
        async with self._slots:
            return await self._behave(request, body, key, behaviour, chat)

    async def _behave(
        self, request: web.Request, body: dict[str, Any], key: str, behaviour: Behaviour, chat: bool
    ) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.hold_until_in_flight is not None:
                await self._held(self.hold_until_in_flight)
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            if behaviour.kind == "hang":
                await asyncio.sleep(behaviour.seconds)
            elif behaviour.kind == "status":
                message = behaviour.message.replace("{authorization}", request.headers.get("Authorization", ""))
                error = {"message": message, "type": "fake", "code": behaviour.status}
                return web.json_response({"error": error}, status=behaviour.status, headers=dict(behaviour.headers))
            elif behaviour.kind == "drop":
                assert request.transport is not None
                request.transport.abort()
                return web.Response()  # never written: the connection is gone
            elif behaviour.kind == "malformed":
                return web.Response(text='{"id": "broken", "choices": [', content_type="application/json")
            elif behaviour.kind == "empty":
                return web.json_response(self._completion(body, [], chat))
            return web.json_response(self._completion(body, self._choices(body, key), chat))
        finally:
            self.in_flight -= 1

    async def _held(self, calls: int) -> None:
        """Wait until ``calls`` calls have been in flight at once, or the hold times out."""
        if self.max_in_flight >= calls:
            self._gathered.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._gathered.wait(), self.hold_timeout_s)
        self._gathered.set()  # a timed-out hold holds no later call

    def _record(self, body: dict[str, Any], path: str) -> str:
        """Count and keep one call, live or a batch line; its ``request_id``."""
        key = request_id(body)
        self.calls[key] += 1
        self.bodies.append(body)
        self.paths.append(path)
        return key

    def _behaviour(self, body: dict[str, Any], key: str) -> Behaviour:
        return self.script(body, self.calls[key]) if self.script else OK

    def _choices(self, body: dict[str, Any], key: str) -> list[str]:
        """The texts of a successful answer (``n``, or ``max_choices`` at most), counted as served."""
        count = int(body.get("n") or 1)
        texts = [self.responder(body, index) for index in range(min(count, self.max_choices or count))]
        self.served[key] += 1
        return texts

    def _completion(self, body: dict[str, Any], texts: list[str], chat: bool) -> dict[str, Any]:
        choices: list[dict[str, Any]] = []
        for index, text in enumerate(texts):
            choice: dict[str, Any] = {"index": index, "finish_reason": "stop", "logprobs": None}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            choices.append(choice)
        prompt_tokens = len(json.dumps(body.get("messages") or body.get("prompt", "")).split())
        completion_tokens = sum(len(text.split()) for text in texts)
        return {
            "id": f"fake-{len(self.bodies)}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def run_batch_file(source: str, target: str, model: str) -> None:
    """Answer a batch file offline, as ``vllm run-batch -i source -o target --model model`` does."""
    server = FakeServer()
    with open(source, encoding="utf-8") as lines, open(target, "w", encoding="utf-8") as results:
        for raw in lines:
            if raw.strip():
                line = json.loads(raw)
                if line["body"].get("model") != model:
                    raise SystemExit(f"line {line['custom_id']}: model {line['body'].get('model')!r} is not {model!r}")
                results.write(json.dumps(server.batch_result(line)) + "\n")
    print(f"answered {len(server.bodies)} requests of {source}", flush=True)


async def _serve(server: FakeServer) -> None:
    await server.start()
    print(f"listening on {server.base_url}", flush=True)
    await asyncio.Event().wait()  # until the process is stopped


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run-batch"]:
        batch = argparse.ArgumentParser(prog="fakeserver run-batch", description=run_batch_file.__doc__)
        batch.add_argument("-i", "--input-file", required=True)
        batch.add_argument("-o", "--output-file", required=True)
        batch.add_argument("--model", required=True)
        batch.add_argument("--tensor-parallel-size", type=int, default=1, help="accepted, as vllm takes it")
        args = batch.parse_args(argv[1:])
        run_batch_file(args.input_file, args.output_file, args.model)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay of every answer")
    parser.add_argument("--concurrency", type=int, default=None, help="requests served at once (no cap)")
    parser.add_argument("--startup-delay-s", type=float, default=0.0, help="wait before listening, as a model loads")
    args = parser.parse_args(argv)
    time.sleep(args.startup_delay_s)
    server = FakeServer(latency_s=args.latency_ms / 1000, concurrency=args.concurrency, port=args.port)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the way to stop it
        asyncio.run(_serve(server))


if __name__ == "__main__":
    main()
