"""Batch inference (editforge.backend.batch through the openai backend) against the fake server's
files and batches API, and offline through a run-batch command."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from editforge import config as efconfig
from editforge.backend import Completion, Request, Sampling, open_backend
from editforge.backend.batch import BatchError, BatchRecord, Line, read_results
from editforge.backend.batch_runners import OfflineBatches, RemoteBatches
from editforge.backend.fake_server import FakeServer, sequence, status
from editforge.backend.serving import ServeSettings
from editforge.workflow.preflight import PreflightError, check_model
from helpers import REPO

PRICES = {"price": {"input_per_mtok": 2.0, "output_per_mtok": 4.0},
          "batch_price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}


def spec(server: FakeServer, **extra: Any) -> dict[str, Any]:
    return {"backend": "openai", "model": "fake", "base_url": server.base_url, "mode": "batch",
            "batch": {"poll_s": 0.02}, "max_retries": 0, **extra}


def requests(count: int = 6) -> list[Request]:
    chats = [Request(messages=[{"role": "user", "content": f"edit {i}"}], n=2, sampling=Sampling(temperature=0.8))
             for i in range(count - 1)]
    return [*chats, Request(prompt="def f():\n", sampling=Sampling(stop=("\n\n",)))]


def texts(results: list[list[Completion]]) -> list[list[str]]:
    return [[completion.text for completion in row] for row in results]


def batch_records(cache: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted((cache / "batches").glob("*/*.json"))]


def test_batch_answers_equal_live_answers_and_each_request_is_asked_once(tmp_path: Path) -> None:
    with FakeServer(batch_polls=2) as server:
        batched = open_backend("fake", spec(server, **PRICES), tmp_path / "batch-cache")
        got = batched.generate(requests())
        # One batch per endpoint: chat requests and the text completion.
        assert sorted(b["endpoint"] for b in server.batches.values()) == ["/v1/chat/completions", "/v1/completions"]
        assert set(server.served.values()) == {1} and len(server.served) == 6
        live = open_backend("fake", spec(server, mode="live"), tmp_path / "live-cache").generate(requests())
    assert texts(got) == texts(live)
    assert all(c.batch and c.error is None for row in got for c in row)
    usage = batched.usage
    assert (usage.calls, usage.batch_calls, usage.cached, usage.errors) == (11, 11, 0, 0)
    # Booked at the batch price, half the live one here.
    live_price = (usage.prompt_tokens * 2.0 + usage.completion_tokens * 4.0) / 1e6
    assert usage.cost == pytest.approx(live_price / 2) and usage.cost > 0


def test_switching_between_live_and_batch_pays_nothing_twice(tmp_path: Path) -> None:
    with FakeServer() as server:
        live = open_backend("fake", spec(server, mode="live", **PRICES), tmp_path)
        first = live.generate(requests())
        calls = sum(server.calls.values())
        batched = open_backend("fake", spec(server, **PRICES), tmp_path)
        again = batched.generate(requests())
        assert not server.batches and sum(server.calls.values()) == calls
    assert texts(again) == texts(first)
    usage = batched.usage
    assert (usage.calls, usage.cached) == (0, 11)
    # The cached answers were paid live, and are costed as they were billed.
    assert usage.cached_cost == pytest.approx(live.usage.cost)


def test_a_cached_batch_answer_is_costed_at_the_batch_price(tmp_path: Path) -> None:
    with FakeServer() as server:
        paid = open_backend("fake", spec(server, **PRICES), tmp_path)
        paid.generate(requests())
        reread = open_backend("fake", spec(server, mode="live", **PRICES), tmp_path)
        reread.generate(requests())
    assert reread.usage.cached_cost == pytest.approx(paid.usage.cost)


KILLED_JOB = """
import json, sys
from editforge.backend import open_backend
from test_batch import requests
spec, cache = json.loads(sys.argv[1]), sys.argv[2]
open_backend("fake", spec, cache).generate(requests())
"""


def both_batches_created(cache: Path) -> bool:
    """An entry is recorded before its upload and gets its id only once the batch exists."""
    records = batch_records(cache)
    entries = records[0]["attempts"][0] if records else []
    return len(entries) == 2 and all("id" in entry for entry in entries)


def test_a_killed_job_resumes_by_polling_its_batch_not_by_submitting_again(tmp_path: Path) -> None:
    # The job imports this file as `test_batch`, and it imports `helpers`.
    path = os.pathsep.join([str(Path(__file__).parent), str(REPO / "tests")])
    with FakeServer(batch_polls=10**6) as server:  # never ends while the first job waits
        settings = spec(server, batch={"poll_s": 0.05})
        job = subprocess.Popen([sys.executable, "-c", KILLED_JOB, json.dumps(settings), str(tmp_path)], cwd=REPO,
                               env=dict(os.environ, PYTHONPATH=path), stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not both_batches_created(tmp_path):
            assert job.poll() is None and time.monotonic() < deadline, "the job did not record its batches"
            time.sleep(0.05)
        job.send_signal(signal.SIGKILL)
        job.wait()
        assert len(server.batches) == 2 and not server.served
        server.batch_polls = 0  # the provider finishes them
        got = open_backend("fake", settings, tmp_path).generate(requests())
        assert len(server.batches) == 2, "the resumed job submitted again"
        assert set(server.served.values()) == {1}
    assert all(c.error is None for row in got for c in row)


def test_a_job_killed_between_creating_a_batch_and_recording_it_finds_that_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = BatchRecord.save

    def killed_before_the_id_is_written(record: BatchRecord) -> None:
        if any("id" in entry for attempt in record.attempts for entry in attempt):
            raise KeyboardInterrupt
        recorded(record)

    with FakeServer() as server:
        monkeypatch.setattr(BatchRecord, "save", killed_before_the_id_is_written)
        with pytest.raises(KeyboardInterrupt):
            open_backend("fake", spec(server), tmp_path).generate(requests()[:2])
        monkeypatch.setattr(BatchRecord, "save", recorded)
        assert len(server.batches) == 1 and "id" not in batch_records(tmp_path)[0]["attempts"][0][0]
        got = open_backend("fake", spec(server), tmp_path).generate(requests()[:2])
        assert len(server.batches) == 1, "the batch was submitted twice"
    assert all(c.error is None for row in got for c in row)


@pytest.mark.parametrize("ending", ["expired", "cancelled"])
def test_a_batch_that_ends_early_answers_half_and_the_rest_goes_again(tmp_path: Path, ending: str) -> None:
    with FakeServer(batch_outcome=lambda number: ending if number == 1 else "completed") as server:
        prompts = requests()[:5]  # chat only: one batch per attempt
        got = open_backend("fake", spec(server), tmp_path).generate(prompts)
        assert [b["status"] for b in server.batches.values()] == [ending, "completed"]
        assert [len(lines) for lines in server.batch_lines.values()] == [5, 3]  # 2 of 5 answered before expiry
    assert all(c.error is None for row in got for c in row)
    assert not batch_records(tmp_path), "a finished call leaves no record behind"


def test_a_recorded_batch_the_provider_no_longer_knows_is_sent_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    waited = RemoteBatches.wait

    def killed_while_waiting(runner: RemoteBatches, entry: dict[str, Any]) -> Any:
        raise KeyboardInterrupt

    with FakeServer(batch_polls=10**6) as first:
        monkeypatch.setattr(RemoteBatches, "wait", killed_while_waiting)
        with pytest.raises(KeyboardInterrupt):
            open_backend("fake", spec(first), tmp_path).generate(requests())
        monkeypatch.setattr(RemoteBatches, "wait", waited)
        assert len(first.batches) == 2 and not first.served
    assert [entry["id"] for entry in batch_records(tmp_path)[0]["attempts"][0]] == ["batch-1", "batch-2"]
    # The resumed job asks a provider that knows neither batch (404): their lines go again at once.
    with caplog.at_level(logging.WARNING), FakeServer() as second:
        got = open_backend("fake", spec(second), tmp_path).generate(requests())
        assert sorted(b["endpoint"] for b in second.batches.values()) == ["/v1/chat/completions", "/v1/completions"]
        assert [len(lines) for lines in second.batch_lines.values()] == [5, 1]
        assert set(second.served.values()) == {1} and len(second.served) == 6
        live = open_backend("fake", spec(second, mode="live"), tmp_path / "live").generate(requests())
    assert texts(got) == texts(live)
    assert all(c.batch and c.error is None for row in got for c in row)
    for lost in ("batch-1", "batch-2"):
        assert f"fake: the server knows no batch {lost}; its requests go again" in caplog.text
    assert not batch_records(tmp_path), "a finished call leaves no record behind"


def test_a_batch_lost_while_it_runs_goes_again_in_the_next_attempt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prompts = requests()[:5]  # chat only: one batch per attempt
    first_lost = FakeServer(batch_outcome=lambda number: "lost" if number == 1 else "completed")
    with caplog.at_level(logging.WARNING), first_lost as server:
        backend = open_backend("fake", spec(server), tmp_path)
        got = backend.generate(prompts)
        assert [b["status"] for b in server.batches.values()] == ["lost", "completed"]
        assert [len(lines) for lines in server.batch_lines.values()] == [5, 5]
        assert set(server.served.values()) == {1} and len(server.served) == 5
        live = open_backend("fake", spec(server, mode="live"), tmp_path / "live").generate(prompts)
    assert texts(got) == texts(live)
    assert all(c.error is None for row in got for c in row)
    assert (backend.usage.calls, backend.usage.errors) == (10, 0)
    assert "fake: the server knows no batch batch-1" in caplog.text
    assert not batch_records(tmp_path)


def test_a_batch_lost_in_the_last_attempt_fails_its_samples(tmp_path: Path) -> None:
    with FakeServer(batch_outcome=lambda number: "lost") as server:
        settings = spec(server, batch={"poll_s": 0.02, "max_resubmits": 0})
        backend = open_backend("fake", settings, tmp_path)
        got = backend.generate(requests()[:2])
        assert len(server.batches) == 1 and not server.served
    assert all(c.error == "batch: the batch ended without answering it" and c.batch for row in got for c in row)
    assert (backend.usage.calls, backend.usage.errors) == (0, 4)
    assert not list((tmp_path / "batches").rglob("*.*")) and not batch_records(tmp_path)
    # Nothing was cached: the next run asks for every sample again.
    with FakeServer() as server:
        again = open_backend("fake", spec(server), tmp_path).generate(requests()[:2])
        assert sum(len(lines) for lines in server.batch_lines.values()) == 2
    assert all(c.error is None for row in again for c in row)


def test_failed_lines_go_again_within_the_resubmissions_then_fail_per_sample(tmp_path: Path) -> None:
    def script(body: dict[str, Any], call: int) -> Any:
        text = body["messages"][-1]["content"]
        if text == "edit 0":  # fails once, then answers
            return sequence(status(503))(body, call)
        if text == "edit 1":  # a request the server refuses: never sent again
            return status(400, message="bad request")
        if text == "edit 2":  # fails every time
            return status(500, message="overloaded")
        return sequence()(body, call)

    with FakeServer(script=script) as server:
        settings = spec(server, batch={"poll_s": 0.02, "max_resubmits": 2})
        backend = open_backend("fake", settings, tmp_path)
        got = backend.generate(requests()[:4])
        assert [len(lines) for lines in server.batch_lines.values()] == [4, 2, 1]  # then out of resubmissions
    assert [c.error for c in got[0]] == [None, None]
    assert all("Error code: 400 - bad request" in str(c.error) for c in got[1])
    assert all("Error code: 500 - overloaded" in str(c.error) for c in got[2])
    assert [c.error for c in got[3]] == [None, None]
    usage = backend.usage
    assert (usage.calls, usage.errors) == (4, 4)
    # Failed answers are not cached: the next run asks for them again.
    with FakeServer() as server:
        again = open_backend("fake", spec(server), tmp_path).generate(requests()[:4])
        assert sum(len(lines) for lines in server.batch_lines.values()) == 2
    assert all(c.error is None for row in again for c in row)


def test_a_rejected_batch_fails_its_samples_without_resubmitting(tmp_path: Path) -> None:
    with FakeServer(batch_outcome=lambda number: "failed") as server:
        got = open_backend("fake", spec(server), tmp_path).generate(requests()[:2])
        assert len(server.batches) == 1
    assert all("input file was rejected" in str(c.error) for row in got for c in row)


def test_a_server_answering_fewer_choices_is_asked_again_for_the_rest(tmp_path: Path) -> None:
    with FakeServer(max_choices=1) as server:
        got = open_backend("fake", spec(server), tmp_path).generate(requests()[:2])
        assert [len(lines) for lines in server.batch_lines.values()] == [2, 2]
        assert [line["body"].get("n") for line in server.batch_lines["batch-2"]] == [None, None]
    assert all(c.error is None for row in got for c in row)


def test_large_calls_are_split_into_batches_of_max_requests(tmp_path: Path) -> None:
    with FakeServer() as server:
        open_backend("fake", spec(server, batch={"poll_s": 0.02, "max_requests": 2}), tmp_path).generate(
            requests()[:5])
        assert [len(lines) for lines in server.batch_lines.values()] == [2, 2, 1]


def test_batch_errors_never_carry_the_api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_KEY", "sk-secret-123")
    with FakeServer(api_key="another-key") as server:
        backend = open_backend("fake", spec(server, api_key_env="FAKE_KEY"), tmp_path)
        with pytest.raises(BatchError, match="models.fake: submitting a batch failed") as caught:
            backend.generate(requests()[:1])
    assert "sk-secret-123" not in str(caught.value)


# --------------------------------------------------------------------------- offline (vllm run-batch)

FAKE_RUN_BATCH = [sys.executable, "-m", "editforge.backend.fake_server", "run-batch", "-i", "{input}", "-o", "{output}",
                  "--model", "{model}"]


def offline(**serve: Any) -> dict[str, Any]:
    return {"backend": "openai", "model": "fake", "mode": "batch",
            "serve": {"command": ["unused", "{port}"], "batch_command": FAKE_RUN_BATCH, **serve}}


def test_offline_batches_run_through_the_serve_blocks_batch_command(tmp_path: Path) -> None:
    got = open_backend("fake", offline(), tmp_path).generate(requests())
    with FakeServer() as server:
        live = open_backend("fake", spec(server, mode="live"), tmp_path / "live").generate(requests())
    assert texts(got) == texts(live)
    assert not list((tmp_path / "batches").rglob("*.*")), "the call's batch files are gone once it is over"


def test_an_offline_output_left_by_a_killed_job_is_read_not_made_again(tmp_path: Path) -> None:
    lines = [Line(f"id-{i}", "/v1/completions", {"model": "fake", "prompt": f"p{i}"}) for i in range(3)]
    settings = ServeSettings(batch_command=FAKE_RUN_BATCH)
    made = OfflineBatches(lambda i, o: settings.batch_argv("fake", i, o), {}, tmp_path, "fake").run(lines)
    # The job was killed after the command, before its record was written: the next one finds the output.
    broken = ServeSettings(batch_command=["false", "{input}", "{output}"])
    runner = OfflineBatches(lambda i, o: broken.batch_argv("fake", i, o), {}, tmp_path, "fake")
    again = runner.run(lines)
    assert again == made
    assert sorted(runner.wait(again)) == ["id-0", "id-1", "id-2"]


def test_an_offline_output_that_is_gone_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    read = OfflineBatches.wait

    def killed_before_reading(runner: OfflineBatches, entry: dict[str, Any]) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(OfflineBatches, "wait", killed_before_reading)
    with pytest.raises(KeyboardInterrupt):
        open_backend("fake", offline(), tmp_path).generate(requests())
    monkeypatch.setattr(OfflineBatches, "wait", read)
    outputs = sorted((tmp_path / "batches").rglob("*.output.jsonl"))
    assert len(outputs) == 2 and len(batch_records(tmp_path)[0]["attempts"][0]) == 2
    for output in outputs:  # the job's folder was cleaned before it resumed
        output.unlink()
    with caplog.at_level(logging.INFO, logger="editforge.backend.batch"):
        got = open_backend("fake", offline(), tmp_path).generate(requests())
    with FakeServer() as server:
        live = open_backend("fake", spec(server, mode="live"), tmp_path / "live").generate(requests())
    assert texts(got) == texts(live)
    assert sum(f"no output file {output}; its requests go again" in caplog.text for output in outputs) == 2
    assert sum("fake: running " in record.getMessage() for record in caplog.records) == 2  # made again, once each
    assert not list((tmp_path / "batches").rglob("*.*"))


def test_an_offline_command_that_fails_names_the_setting(tmp_path: Path) -> None:
    backend = open_backend("fake", offline(batch_command=["false", "{input}", "{output}"]), tmp_path)
    with pytest.raises(BatchError, match=r"models.fake.serve.batch_command: false exited with code 1"):
        backend.generate(requests()[:1])
    missing = open_backend("fake", offline(batch_command=["no-such-vllm", "{input}", "{output}"]), tmp_path)
    with pytest.raises(BatchError, match="cannot start 'no-such-vllm'"):
        missing.generate(requests()[:1])


# --------------------------------------------------------------------------- settings and checks


def demo_config(**model: Any) -> dict[str, Any]:
    cfg = efconfig.read_yaml(REPO / "config/config.yaml")
    cfg["models"]["api"] = {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1", **model}
    return cfg


@pytest.mark.parametrize("model, message", [
    ({"backend": "transformers", "model": "embedded", "mode": "batch"}, "models.api.mode: batch is for an 'openai'"),
    ({"mode": "batch", "batch_price": {"input_per_mtok": 1, "output_per_mtok": 1}}, "batch_price: give price"),
    ({"mode": "batch", "batch": {"poll_s": 0}}, "poll_s"),
    ({"mode": "batch", "batch": {"every": 3}}, "every"),
    ({"mode": "nightly"}, "mode"),
    ({"base_url": None, "mode": "batch", "serve": {"args": ["--port", "{port}"]}}, "a batch command fills in only"),
    ({"base_url": None, "mode": "batch", "serve": {"batch_command": ["vllm", "run-batch"]}}, "'{input}' and"),
])
def test_bad_batch_settings_are_named(model: dict[str, Any], message: str) -> None:
    cfg = demo_config(**model)
    if cfg["models"]["api"].get("base_url") is None:
        del cfg["models"]["api"]["base_url"]
    with pytest.raises(efconfig.ConfigError, match=message):
        efconfig.validate(cfg)


def test_batch_settings_change_no_rule_params() -> None:
    """Live or batch, the answers are the same: switching reruns nothing."""
    live = demo_config()["models"]["api"]
    batched = demo_config(mode="batch", batch={"poll_s": 5}, price={"input_per_mtok": 1, "output_per_mtok": 1},
                          batch_price={"input_per_mtok": 0.5, "output_per_mtok": 0.5})["models"]["api"]
    assert efconfig.output_spec(batched) == efconfig.output_spec(live)


def test_preflight_checks_the_batch_api_before_paid_work() -> None:
    with FakeServer() as server:
        assert "its batch API answers" in check_model("fake", spec(server))
    with FakeServer(batch_api=False) as server:  # a server with live calls only, as `vllm serve`
        with pytest.raises(PreflightError, match=r"models.fake.mode: batch, but the server at .* offers no batch API"):
            check_model("fake", spec(server))


def test_unreadable_result_lines_name_file_and_line() -> None:
    good = json.dumps({"custom_id": "a", "response": {"status_code": 200, "body": {"choices": []}}})
    with pytest.raises(BatchError, match=r"out.jsonl:2: not a batch result line"):
        read_results(good + "\n{broken\n", "out.jsonl")
    outcomes = read_results(good + "\n" + json.dumps({"custom_id": "b", "error": {"code": "batch_expired"}}), "x")
    assert outcomes["a"].body == {"choices": []} and outcomes["b"].retryable
