"""The batch API of the fake server, a test double: ``/v1/files`` (upload, content) and
``/v1/batches`` (create, retrieve, list).

A batch answers ``in_progress`` to its first ``batch_polls`` retrievals, then ends the
way ``batch_outcome(batch_number)`` says ("completed" by default; "expired" and
"cancelled" answer the first half of the lines and report the rest as not done;
"failed" answers none, as a rejected input file; "lost": the provider forgets it, and
every later look at it answers 404). Its lines are answered like live calls, ``script``
included, so a scripted error status becomes a failed line.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

if TYPE_CHECKING:
    from editforge.backend.fake_server import Behaviour

BatchOutcome = Literal["completed", "expired", "cancelled", "failed", "lost"]
BATCH_ENDPOINTS = ("/v1/chat/completions", "/v1/completions")


class BatchAPI:
    """The files and batches endpoints of ``FakeServer``, which mixes this class in.

    The state is the server's (set in its ``__init__``), and so are the helpers that answer
    a line as a live call: a batch line is counted in the same ``calls``, ``served`` and ``bodies``.
    """

    batch_polls: int
    batch_outcome: Callable[[int], BatchOutcome] | None
    files: dict[str, bytes]
    batches: dict[str, dict[str, Any]]  # the batch objects, by id
    batch_lines: dict[str, list[dict[str, Any]]]  # the input lines of each batch
    bodies: list[dict[str, Any]]
    _batch_retrievals: Counter[str]
    _refusal: Callable[[web.Request], web.Response | None]
    _record: Callable[[dict[str, Any], str], str]
    _behaviour: Callable[[dict[str, Any], str], Behaviour]
    _choices: Callable[[dict[str, Any], str], list[str]]
    _completion: Callable[[dict[str, Any], list[str], bool], dict[str, Any]]

    def add_batch_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{file_id}/content", self._file_content)
        app.router.add_post("/v1/batches", self._create_batch)
        app.router.add_get("/v1/batches", self._list_batches)
        app.router.add_get("/v1/batches/{batch_id}", self._retrieve_batch)

    async def _upload(self, request: web.Request) -> web.Response:
        if refusal := self._refusal(request):
            return refusal
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField) or form.get("purpose") != "batch":
            return _error(400, "expected a multipart upload with a file and purpose=batch")
        content = upload.file.read()
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = content
        return web.json_response(_file_object(file_id, content, upload.filename))

    async def _file_content(self, request: web.Request) -> web.Response:
        if refusal := self._refusal(request):
            return refusal
        content = self.files.get(request.match_info["file_id"])
        if content is None:
            return _error(404, f"no file {request.match_info['file_id']}")
        return web.Response(body=content, content_type="application/octet-stream")

    async def _create_batch(self, request: web.Request) -> web.Response:
        if refusal := self._refusal(request):
            return refusal
        spec = await request.json()
        content = self.files.get(spec.get("input_file_id", ""))
        if content is None:
            return _error(400, f"input_file_id {spec.get('input_file_id')!r} is not an uploaded file")
        if spec.get("endpoint") not in BATCH_ENDPOINTS:
            return _error(400, f"endpoint must be one of {', '.join(BATCH_ENDPOINTS)}")
        lines = [json.loads(raw) for raw in content.decode("utf-8").splitlines() if raw.strip()]
        if any(line.get("url") != spec["endpoint"] for line in lines):
            return _error(400, "every line's url must be the batch's endpoint")
        batch_id = f"batch-{len(self.batches) + 1}"
        self.batch_lines[batch_id] = lines
        self.batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": spec["endpoint"],
            "input_file_id": spec["input_file_id"],
            "completion_window": spec.get("completion_window", "24h"),
            "status": "validating",
            "created_at": int(time.time()),
            "metadata": spec.get("metadata"),
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "output_file_id": None,
            "error_file_id": None,
            "errors": None,
        }
        return web.json_response(self.batches[batch_id])

    async def _list_batches(self, request: web.Request) -> web.Response:
        if refusal := self._refusal(request):
            return refusal
        known = [batch for batch in self.batches.values() if batch["status"] != "lost"]
        return web.json_response({"object": "list", "data": known, "has_more": False})

    async def _retrieve_batch(self, request: web.Request) -> web.Response:
        if refusal := self._refusal(request):
            return refusal
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is not None and batch["status"] != "lost":
            self._batch_retrievals[batch["id"]] += 1
            if batch["status"] in ("validating", "in_progress"):
                if self._batch_retrievals[batch["id"]] > self.batch_polls:
                    self._finish_batch(batch)
                else:
                    batch["status"] = "in_progress"
        if batch is None or batch["status"] == "lost":
            return _error(404, f"no batch {request.match_info['batch_id']}")
        return web.json_response(batch)

    def _finish_batch(self, batch: dict[str, Any]) -> None:
        number = list(self.batches).index(batch["id"]) + 1
        outcome = self.batch_outcome(number) if self.batch_outcome else "completed"
        if outcome == "lost":
            batch["status"] = "lost"  # no status of the API: the provider no longer knows the batch
            return
        if outcome == "failed":
            message = "scripted failure: the input file was rejected"
            batch.update(status="failed", errors={"object": "list", "data": [{"code": "invalid", "message": message}]})
            return
        lines = self.batch_lines[batch["id"]]
        done = len(lines) if outcome == "completed" else len(lines) // 2
        answered, failed = [], []
        for position, line in enumerate(lines):
            if position >= done:
                error = {"code": f"batch_{outcome}", "message": f"not executed: the batch was {outcome}"}
                failed.append({"custom_id": line["custom_id"], "response": None, "error": error})
                continue
            result = self.batch_result(line)
            (answered if result["response"]["status_code"] == 200 else failed).append(result)
        for name, results in (("output_file_id", answered), ("error_file_id", failed)):
            if results:
                file_id = f"file-{len(self.files) + 1}"
                self.files[file_id] = "".join(json.dumps(result) + "\n" for result in results).encode("utf-8")
                batch[name] = file_id
        batch["request_counts"] = {"total": len(lines), "completed": len(answered), "failed": len(failed)}
        batch["status"] = outcome

    def batch_result(self, line: dict[str, Any]) -> dict[str, Any]:
        """One batch line answered as the live call would be: its result line."""
        body = line["body"]
        key = self._record(body, line["url"])
        behaviour = self._behaviour(body, key)
        chat = line["url"].endswith("/chat/completions")
        if behaviour.kind == "status":
            status, answer = behaviour.status, {"error": {"message": behaviour.message, "code": behaviour.status}}
        elif behaviour.kind in ("drop", "malformed"):
            status, answer = 500, {"error": {"message": "the server failed", "code": 500}}
        elif behaviour.kind == "empty":
            status, answer = 200, self._completion(body, [], chat)
        else:
            status, answer = 200, self._completion(body, self._choices(body, key), chat)
        response = {"status_code": status, "request_id": f"fake-{len(self.bodies)}", "body": answer}
        return {"id": f"req-{len(self.bodies)}", "custom_id": line["custom_id"], "response": response, "error": None}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=status)


def _file_object(file_id: str, content: bytes, filename: str) -> dict[str, Any]:
    return {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
            "filename": filename, "purpose": "batch", "status": "processed"}
