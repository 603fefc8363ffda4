"""The whole workflow in a temp dir: a fake OpenAI-compatible server synthesizes,
tiny random models are trained and evaluated, and Snakemake reruns only what a
change invalidates; the run's HTML report is opened in headless Chromium. One slow
test runs the embedded model end to end."""

from __future__ import annotations

import base64
import copy
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.colors
import matplotlib.image
import pytest
import yaml

from editforge.backend.fake_server import FakeServer, reference_responder
from editforge.records import read_jsonl
from helpers import REPO
from helpers.workflow import (
    HUMANEVALFIX,
    SNAKEMAKE,
    planned_rules,
    run_snakemake,
    snakemake_command,
    synthesis_responder,
    tiny_config,
)

# What the report lists: category, subcategory, file, its label and words of its caption.
REPORT_ENTRIES = (
    ("Evaluation", "pass@1", "pass_at_1.png", "pass@1 chart", "one panel per configured benchmark"),
    ("Evaluation", "pass@1", "pass_at_1.html", "pass@1 table", "measured rows first"),
    ("Evaluation", "pass@1", "summary.csv", "all benchmarks and splits (CSV download)", "Every configured benchmark"),
    ("Data", "Funnel", "funnel.png", "funnel chart", "The data funnel: triplets remaining"),
    ("Data", "Funnel", "funnel.html", "funnel table", "The funnel as a table"),
    ("Data", "Distributions", "diff_sizes.png", "diff size histogram", "Changed lines of each kept triplet"),
    ("Data", "Distributions", "topics.png", "topic size histogram", "Topic sizes per instruction style"),
    ("Training", "Curves", "training_curves.png", "training curves", "the train loss of every optimizer step"),
)


def measured_rows(report_dir: Path) -> set[str]:
    """The targets with an overall row in summary.csv, each also a measured row of summary.md."""
    with (report_dir / "summary.csv").open() as rows:
        targets = {row["target"] for row in csv.DictReader(rows) if row["split"] == "overall"}
    markdown = (report_dir / "summary.md").read_text()
    for target in targets:
        assert re.search(rf"^\| {re.escape(target)} \| [\d.]+ \| [\d.]+ \| [\d.]+ \| measured \|$", markdown, re.M), (
            target
        )
    return targets


@dataclass
class TinyRun:
    """The tiny workflow after its first full run, and its HTML report."""

    workdir: Path
    config: dict[str, Any]
    server: FakeServer
    run: subprocess.CompletedProcess[str]
    calls: int  # the server calls that run made
    report: subprocess.CompletedProcess[str]  # snakemake --report report.html


@pytest.fixture(scope="module")
def tiny_run(
    tmp_path_factory: pytest.TempPathFactory, code_dir: Path, tiny_model_dir: Path, benchmark_path: Path
) -> Iterator[TinyRun]:
    """One full run, shared by the tests that read its results: the partial reruns and the report."""
    workdir = tmp_path_factory.mktemp("run")
    with FakeServer(responder=synthesis_responder) as server:
        config = tiny_config(workdir, code_dir, server.base_url, str(tiny_model_dir), benchmark_path)
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        run = run_snakemake(workdir)
        calls = sum(server.calls.values())
        report = run_snakemake(workdir, "--report", "report.html")
        yield TinyRun(workdir, config, server, run, calls, report)


def _running_outputs(workdir: Path) -> list[str]:
    """The outputs Snakemake has marked incomplete: those of the jobs running now."""
    markers = workdir / ".snakemake/incomplete"
    names = [p.name for p in markers.rglob("*") if p.is_file()] if markers.is_dir() else []
    return [base64.urlsafe_b64decode(name.encode()).decode(errors="replace") for name in names if name[:1] != "@"]


def _kill_when(command: list[str], ready: Any, what: str) -> None:
    """Start the command, and kill -9 its whole process group once ``ready()`` holds."""
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    while not ready() and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.02)
    landed = ready()
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert landed, f"the kill did not land {what}"


def test_a_hard_kill_mid_synthesis_and_mid_parse_resumes_with_the_same_command(
    tmp_path: Path, tiny_run: TinyRun, code_dir: Path, tiny_model_dir: Path, benchmark_path: Path
) -> None:
    """kill -9 of the whole process group mid-synthesis, then mid-parse, then the same command: no
    --unlock, no --rerun-incomplete, the outputs of an uninterrupted run, no finished call asked
    again, and a funnel that counts every answer once."""
    target = "results/dataset/train.jsonl"
    with FakeServer(responder=synthesis_responder, latency_s=0.3) as server:
        config = tiny_config(tmp_path, code_dir, server.base_url, str(tiny_model_dir), benchmark_path)
        config["models"]["fake"]["max_concurrency"] = 1  # at most one call in flight per synthesis job
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        command = snakemake_command(tmp_path, target)
        _kill_when(command, lambda: sum(server.calls.values()) >= 5, "mid-synthesis")
        assert sum(server.calls.values()) < 16, "the kill did not land mid-synthesis"
        assert any((tmp_path / ".snakemake/locks").iterdir())  # what used to need --unlock
        _kill_when(command, lambda: any("results/triplets/" in out for out in _running_outputs(tmp_path)), "mid-parse")
        resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stderr[-4000:]
        assert "removed the lock left by a run that was killed" in resumed.stdout + resumed.stderr
        # Only a call cut off by a kill is asked again: one per synthesis job running, two at the first
        # kill (two shards at once) and at most one at the second (the other core was parsing).
        assert len(server.calls) == 16 and sum(server.calls.values()) <= 16 + 2 + 1
        report = subprocess.run([*command[:-1], "results/report/funnel.json"], capture_output=True, text=True)
        assert report.returncode == 0, report.stderr[-4000:]
    for name in ("filtered/triplets.jsonl", "dataset/train.jsonl"):
        assert (tmp_path / "results" / name).read_text() == (tiny_run.workdir / "results" / name).read_text(), name
    usage = json.loads((tmp_path / "results/report/funnel.json").read_text())["synthesis"]["fake"]["usage"]
    # Every answer once: those the killed runs paid for come from the cache, with their tokens.
    uninterrupted = json.loads((tiny_run.workdir / "results/report/funnel.json").read_text())["synthesis"]["fake"]
    assert usage["answered"] == 16 and usage["cached"] > 0 and usage["errors"] == 0
    assert usage["prompt_tokens"] == uninterrupted["usage"]["prompt_tokens"]
    assert usage["cost"] == pytest.approx(uninterrupted["usage"]["cost"]) and usage["paid_cost"] < usage["cost"]


def test_batch_mode_writes_what_live_calls_write_and_a_killed_run_polls_its_batches(
    tmp_path: Path, tiny_run: TinyRun, code_dir: Path, tiny_model_dir: Path, benchmark_path: Path
) -> None:
    """The tiny run's synthesis through the batch API: killed while its first batches wait, then
    the same command. It polls the recorded batches rather than submitting them again, and writes
    the live run's dataset, with every answer booked at the batch price."""
    target = "results/dataset/train.jsonl"
    with FakeServer(responder=synthesis_responder, batch_polls=10**6) as server:
        config = tiny_config(tmp_path, code_dir, server.base_url, str(tiny_model_dir), benchmark_path)
        config["models"]["fake"] |= {
            "mode": "batch",
            "batch": {"poll_s": 0.2},
            "batch_price": {"input_per_mtok": 0.5, "output_per_mtok": 1.0},
        }
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        command = snakemake_command(tmp_path, target)
        _kill_when(command, lambda: len(server.batches) == 2, "while both round-1 batches wait")
        assert list((tmp_path / "cache/batches/fake").glob("*.json")), "no batch was recorded"
        server.batch_polls = 1
        resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stderr[-4000:]
        # One batch per shard and round: the two the killed run submitted were polled, not sent again.
        assert len(server.batches) == 4 and set(server.served.values()) == {1}
        report = subprocess.run([*command[:-1], "results/report/funnel.json"], capture_output=True, text=True)
        assert report.returncode == 0, report.stderr[-4000:]
    for name in ("filtered/triplets.jsonl", "dataset/train.jsonl"):
        assert (tmp_path / "results" / name).read_text() == (tiny_run.workdir / "results" / name).read_text(), name
    usage = json.loads((tmp_path / "results/report/funnel.json").read_text())["synthesis"]["fake"]["usage"]
    live = json.loads((tiny_run.workdir / "results/report/funnel.json").read_text())["synthesis"]["fake"]["usage"]
    assert (usage["answered"], usage["batch_calls"], usage["errors"]) == (16, 16, 0)
    assert usage["cost"] == pytest.approx(live["cost"] / 2)  # the batch price is half the live one here
    assert not list((tmp_path / "cache/batches").rglob("*.json")), "finished calls leave no batch record"


def test_an_unreachable_server_stops_the_run_before_any_synthesis(
    tmp_path: Path, code_dir: Path, tiny_model_dir: Path, benchmark_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"  # nothing listens there once closed
    config = tiny_config(tmp_path, code_dir, url, str(tiny_model_dir), benchmark_path)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path)
    assert result.returncode != 0
    assert f"editforge error (logs/preflight/synthesis/fake.log): models.fake: cannot reach {url} (" in result.stderr
    assert not (tmp_path / "results/synthesis").exists()


def test_a_yaml_error_in_the_default_config_names_its_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text("seed: 1\nseeds:\n  num_prompts: [4\n  num_shards: 2\n")
    result = subprocess.run(
        [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "-n"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "config/config.yaml:4:13: not valid YAML: expected ',' or ']', but got ':'" in result.stdout + result.stderr


def test_bad_config_stops_at_start_naming_the_key(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["filtering"]["max_hunkz"] = 7
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path, "--dry-run")
    assert result.returncode != 0
    assert "max_hunkz" in result.stdout + result.stderr


# Answers that game the harness's exit-status rule, by target: (official, strict) pass@1 expected.
CHEATS = {
    "exits-early": ("```python\nimport sys\nsys.exit(0)\n```", 100.0, 0.0),
    "hides-failures": ("```python\n{before}\nimport atexit, os\natexit.register(lambda: os._exit(0))\n```", 100.0, 0.0),
    "fakes-env-error": (
        "```python\nimport sys\nsys.stderr.write(\"ModuleNotFoundError: No module named 'numpy'\\n\")\n"
        "sys.exit(1)\n```",
        0.0,
        0.0,
    ),
}


def test_oracle_and_cheats_through_the_evaluation_rules(tmp_path: Path, benchmark_path: Path) -> None:
    """The reference programs, served as a model's answers in both harness formats, score 100 by both
    rules and the before programs 0; answers that exit early or fake an environment error move only
    the strict column. (bench/oracle.py runs all 105 problems.)"""
    rows = [json.loads(line) for line in benchmark_path.read_text().splitlines() if line.strip()][:3]
    oracle = reference_responder(rows, {"oracle-chat": "after", "oracle-direct": "after", "anti-chat": "before"})

    def respond(body: dict[str, Any], index: int) -> str:
        if body["model"] in CHEATS:
            text = "\n".join(m["content"] for m in body["messages"])
            problem = next(r for r in rows if r["before"].strip() in text[text.rfind("## Code Before") :])
            return CHEATS[body["model"]][0].replace("{before}", problem["before"])
        return oracle(body, index)

    formats = {"oracle-chat": "canitedit-chat", "oracle-direct": "canitedit-direct", "anti-chat": "canitedit-chat"}
    formats |= dict.fromkeys(CHEATS, "canitedit-chat")
    with FakeServer(responder=respond) as server:
        models = {
            name: {"backend": "openai", "model": name, "base_url": server.base_url, "prompt_format": fmt}
            for name, fmt in formats.items()
        }
        config = {
            "cache_dir": str(tmp_path / "cache"),
            "models": models,
            "seeds": {"sources": [{"name": "stdlib", "type": "stdlib"}]},
            "synthesis": {"models": ["oracle-chat"]},
            "evaluation": {"benchmark": str(benchmark_path), "problems": 3, "targets": list(formats), "samples": 1},
        }
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        result = run_snakemake(tmp_path, "results/report/summary.csv")
    assert result.returncode == 0, result.stderr[-4000:]
    summary = {
        row["target"]: row
        for row in csv.DictReader((tmp_path / "results/report/summary.csv").open())
        if row["split"] == "overall"
    }
    expected = {"oracle-chat": (100.0, 100.0), "oracle-direct": (100.0, 100.0), "anti-chat": (0.0, 0.0)}
    expected |= {name: (official, strict) for name, (_, official, strict) in CHEATS.items()}
    assert {t: (float(r["pass@1"]), float(r["strict_pass@1"])) for t, r in summary.items()} == expected
    assert {t: int(r["early_exits"]) for t, r in summary.items() if int(r["early_exits"])} == {
        "exits-early": 6,
        "hides-failures": 6,
    }
    assert float(summary["oracle-chat"]["excess_code"]) == 0.0
    preflight = json.loads((tmp_path / "results/evaluation/canitedit/preflight.json").read_text())
    assert (preflight["checked"], preflight["failing"]) == (3, [])
    markdown = (tmp_path / "results/report/summary.md").read_text()
    assert "exits-early" in markdown.split("Samples that pass officially but not strictly:")[1]


def test_tiny_workflow_end_to_end_and_partial_reruns(tiny_run: TinyRun) -> None:
    workdir, config, server, result = tiny_run.workdir, tiny_run.config, tiny_run.server, tiny_run.run
    assert result.returncode == 0, result.stderr[-4000:]
    calls_after_first_run = tiny_run.calls
    assert calls_after_first_run == 16  # 8 prompts x 2 rounds, each asked once

    results = workdir / "results"
    triplets = list(read_jsonl(results / "filtered/triplets.jsonl"))
    assert len(triplets) == 8 and all(t["status"] in {"ok", "dropped"} for t in triplets)
    assert any(t["status"] == "ok" for t in triplets)
    assert all(t["reason"] for t in triplets if t["status"] == "dropped")
    train = list(read_jsonl(results / "dataset/train.jsonl"))
    assert {r["style"] for r in train} == {"lazy", "descriptive"}
    assert (results / "training/tiny-edit/model/config.json").exists()
    executions = list(read_jsonl(results / "evaluation/canitedit/tiny-edit/executions.jsonl"))
    assert len(executions) == 2 * 2 * 2  # problems x kinds x samples
    assert measured_rows(results / "report") == {"tiny", "tiny-edit"}  # the base model is scored too
    funnel = json.loads((results / "report/funnel.json").read_text())
    usage = funnel["synthesis"]["fake"]["usage"]
    assert usage["calls"] == 16 and usage["cost"] > 0
    end = result.stdout[result.stdout.rindex("editforge: run finished") :]  # one screen at the end
    assert "| tiny-edit |" in end and "GPT-4" not in end and "Triplets: synthesized 8 ->" in end
    assert len(end.splitlines()) < 25

    # The student's training numbers: its log's last loss in training.csv and beside its pass@1.
    log = list(read_jsonl(results / "training/tiny-edit/model/training_log.jsonl"))
    with (results / "report/training.csv").open() as rows:
        (numbers,) = list(csv.DictReader(rows))
    assert numbers["student"] == "tiny-edit" and int(numbers["steps"]) == log[-1]["step"] == len(log)
    assert float(numbers["final_train_loss"]) == log[-1]["loss"]
    assert "| tiny-edit |" in (results / "report/training.md").read_text()
    assert (results / "report/training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<th>final train loss</th>" in (results / "report/pass_at_1.html").read_text()

    # The HTML report embeds every result flagged with report(), under its category, with its caption.
    assert tiny_run.report.returncode == 0, tiny_run.report.stderr[-3000:]
    report = (workdir / "report.html").read_text()
    match = re.search(r"var categories = (\{.*?\});", report)
    assert match, "report.html has no categories"
    categories = json.loads(match.group(1))
    listed = {
        (cat, sub, Path(f).name) for cat, subs in categories.items() for sub, files in subs.items() for f in files
    }
    assert listed == {(cat, sub, name) for cat, sub, name, _, _ in REPORT_ENTRIES}
    for _, _, name, label, caption in REPORT_ENTRIES:
        assert f'"results/report/{name}": {{"name": "{name}"' in report  # its data and metadata
        assert f'"labels": {{"result": "{label}"}}' in report and caption in report
    assert "editforge run" in report and "Students: tiny-edit." in report  # report/workflow.rst, with the config

    # Nothing changed: nothing to do. Nor when only what watches the training changes.
    assert "Nothing to be done" in run_snakemake(workdir, "--dry-run").stdout
    watched = copy.deepcopy(config)
    watched["training"]["students"]["tiny-edit"] |= {"report_to": "none", "eval_every": 1, "loss_spike_factor": 9}
    (workdir / "config.yaml").write_text(yaml.safe_dump(watched))
    assert "Nothing to be done" in run_snakemake(workdir, "--dry-run").stdout
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))

    # A filter threshold reruns filtering and what follows, not synthesis.
    config["filtering"]["max_hunks"] = 3
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    planned = planned_rules(run_snakemake(workdir, "--dry-run"))
    assert planned.get("filter_shard") == 2 and "dataset" in planned and "finetune" in planned
    assert not {"seeds", "synthesize_round1", "synthesize_round2", "parse"} & set(planned)

    # More evaluation samples rerun evaluation only.
    config["filtering"]["max_hunks"] = 7
    config["evaluation"]["samples"] = 3
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    planned = planned_rules(run_snakemake(workdir, "--dry-run"))
    assert set(planned) == {"eval_generate", "eval_execute", "eval_score", "eval_report", "report_tables", "all"}
    config["evaluation"]["samples"] = 2

    # Another benchmark runs its own evaluation, and decontamination against it reruns what follows.
    added = copy.deepcopy(config)
    added["evaluation"]["benchmarks"] = {"canitedit": {}, "humanevalfix": {"source": str(HUMANEVALFIX), "problems": 1}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(added))
    planned = planned_rules(run_snakemake(workdir, "--dry-run"))
    assert {name: planned.get(name) for name in ("benchmark_plugin", "benchmark_generate", "benchmark_score")} == {
        "benchmark_plugin": 1, "benchmark_generate": 2, "benchmark_score": 1
    }
    assert {"dedup", "dataset", "finetune"} <= set(planned) and not {"synthesize_round1", "parse"} & set(planned)
    assert planned["eval_generate"] == 1  # the retrained student only
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))

    # A second synthesis model runs its own branch only.
    config["models"]["fake2"] = dict(config["models"]["fake"], model="fake2")
    config["synthesis"]["models"] = ["fake", "fake2"]
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    planned = planned_rules(run_snakemake(workdir, "--dry-run"))
    assert planned["synthesize_round1"] == planned["synthesize_round2"] == planned["parse"] == 2
    assert planned["filter_shard"] == 2 and "seeds" not in planned
    config["synthesis"]["models"] = ["fake"]
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))

    # An edited prompt template reruns synthesis.
    template = REPO / "src/editforge/templates/round2_v1.txt"
    original = template.read_bytes()
    try:
        template.write_bytes(original + b"\n")
        planned = planned_rules(run_snakemake(workdir, "--dry-run"))
    finally:
        template.write_bytes(original)
    assert planned["synthesize_round1"] == planned["synthesize_round2"] == 2 and "seeds" not in planned
    assert "Nothing to be done" in run_snakemake(workdir, "--dry-run").stdout

    # A deleted shard is rebuilt from the cache: no new calls to the server.
    shard = results / "synthesis/fake/round1/000.jsonl"
    before = shard.read_text()
    shard.unlink()
    rebuilt = run_snakemake(workdir, "results/synthesis/fake/round1/000.jsonl")
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert shard.read_text() == before
    assert sum(server.calls.values()) == calls_after_first_run


def test_the_students_tensorboard_run_reads_back(tiny_run: TinyRun) -> None:
    """The fine-tune's TensorBoard run, copied into the model folder: a point per step of the train loss,
    the validation loss and the throughput, as TensorBoard itself reads them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert tiny_run.run.returncode == 0, tiny_run.run.stderr[-4000:]
    model = tiny_run.workdir / "results/training/tiny-edit/model"
    runs = []  # the folders of event files that hold the steps (the hyperparameters have one of their own)
    for folder in sorted({path.parent for path in (model / "runs").rglob("events.out.tfevents.*")}):
        run = EventAccumulator(str(folder))
        run.Reload()
        if "train/loss" in run.Tags()["scalars"]:
            runs.append(run)
    assert len(runs) == 1, f"expected one TensorBoard run with train/loss under {model / 'runs'}, found {len(runs)}"
    run = runs[0]
    assert {"train/loss", "eval/loss", "train/tokens_per_second"} <= set(run.Tags()["scalars"])
    log = list(read_jsonl(model / "training_log.jsonl"))
    losses = run.Scalars("train/loss")
    assert [point.step for point in losses] == [entry["step"] for entry in log]
    assert [point.value for point in losses] == pytest.approx([entry["loss"] for entry in log], rel=1e-5)
    assert [point.step for point in run.Scalars("eval/loss")] == [e["step"] for e in log if "val_loss" in e]


def test_the_llm_judge_reruns_what_follows_dedup_and_keeps_a_style_only_where_it_passed(tiny_run: TinyRun) -> None:
    """Switching the judge on runs it after dedup (filtering and dedup are not rerun); each kept triplet
    is judged once per style; the dataset takes a style's sample only where that style passed; the funnel
    books the judge's calls apart; a rerun of the judge is answered from the cache."""
    workdir, server = tiny_run.workdir, tiny_run.server
    config = copy.deepcopy(tiny_run.config)
    config["filtering"]["judge"] = {"model": "fake"}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    try:
        planned = planned_rules(run_snakemake(workdir, "--dry-run"))
        assert planned["judge"] == 1 and {"dataset", "finetune", "report"} <= set(planned)
        assert not {"filter_shard", "dedup", "synthesize_round1", "parse"} & set(planned)
        calls_before = sum(server.calls.values())
        run = run_snakemake(workdir, "results/dataset/train.jsonl", "results/report/funnel.json")
        assert run.returncode == 0, run.stderr[-4000:]
        results = workdir / "results"
        kept = [t for t in read_jsonl(results / "filtered/triplets.jsonl") if t["status"] == "ok"]
        judged = {t["id"]: t for t in read_jsonl(results / "filtered/judged.jsonl")}
        assert sum(server.calls.values()) - calls_before == 2 * len(kept)  # a call per kept triplet and style
        for triplet in kept:
            verdicts = judged[triplet["id"]]["judge"]
            assert set(verdicts) == {"lazy", "descriptive"}
            passed = [style for style, outcome in verdicts.items() if outcome["passed"]]
            if passed:
                assert judged[triplet["id"]]["status"] == "ok"
            else:
                assert judged[triplet["id"]]["reason"] == "judge_edit_incomplete"
        samples = list(read_jsonl(results / "dataset/train.jsonl"))
        assert samples and all(judged[s["id"].rsplit(":", 1)[0]]["judge"][s["style"]]["passed"] for s in samples)
        funnel = json.loads((results / "report/funnel.json").read_text())
        assert funnel["judge"]["fake"]["answered"] == 2 * len(kept)
        assert funnel["synthesis"]["fake"]["usage"]["answered"] == tiny_run.calls  # synthesis's own answers only
        assert funnel["stages"][-1]["stage"] == "judged"
        # Another judge setting reruns the judge, from the cache.
        config["filtering"]["judge"]["uncertain"] = "pass"
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        calls_before = sum(server.calls.values())
        rerun = run_snakemake(workdir, "results/filtered/judged.jsonl")
        assert rerun.returncode == 0 and "judge" in rerun.stderr, rerun.stderr[-3000:]
        assert sum(server.calls.values()) == calls_before
    finally:
        (workdir / "config.yaml").write_text(yaml.safe_dump(tiny_run.config))


# Clicks through the report as a reader would: each step is a menu link's text, or
# ["view", label] for the view button of the result listed under that label.
CLICKS_JS = """<script>
const steps = STEPS;
function target(step) {
  if (typeof step === "string") return [...document.querySelectorAll("a")].find(a => a.textContent.trim() === step);
  const row = [...document.querySelectorAll("tr")].find(r => r.cells[0] && r.cells[0].textContent.trim() === step[1]);
  return row && row.querySelector("a");
}
function next() {
  if (!steps.length) return;
  const link = target(steps[0]);
  if (link) { steps.shift(); link.click(); }
  setTimeout(next, 50);
}
window.addEventListener("load", next);
</script>"""


def open_in_chromium(report: Path, clicks: list[Any], out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium, with a fresh profile, on a copy of ``report`` that follows ``clicks`` once loaded."""
    run_dir = Path(tempfile.mkdtemp(dir=out))
    page = run_dir / "report.html"
    before, _, after = report.read_text().rpartition("</body>")
    page.write_text(before + CLICKS_JS.replace("STEPS", json.dumps(clicks)) + "</body>" + after)
    command = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={run_dir / 'profile'}",
        "--virtual-time-budget=15000",
        *args,
        page.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def rendered(dom: str) -> str:
    """What the page's scripts drew: the DOM without its scripts (which carry the report's data) and styles."""
    return re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.DOTALL)


def test_report_renders_in_a_headless_browser(tiny_run: TinyRun, tmp_path: Path) -> None:
    if shutil.which("chromium") is None:
        message = "chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("EDITFORGE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"EDITFORGE_REQUIRE_BROWSER=1 but {message}")
        pytest.skip(message)
    assert tiny_run.report.returncode == 0, tiny_run.report.stderr[-3000:]
    report = tiny_run.workdir / "report.html"

    # Each subcategory lists its results by label; the workflow description is the first page.
    show_table = ["Evaluation", ["view", "pass@1 table"]]  # a single subcategory opens with its category
    views = (
        (show_table, "pass@1"),
        (["Data", "Funnel"], "Funnel"),
        (["Data", "Distributions"], "Distributions"),
        (["Training"], "Curves"),  # its one subcategory opens with it
    )
    for clicks, subcategory in views:
        page = rendered(open_in_chromium(report, clicks, tmp_path, "--dump-dom").stdout)
        labels = [label for _, sub, _, label, _ in REPORT_ENTRIES if sub == subcategory]
        assert all(f">{label}<" in page for label in labels), (clicks, labels)
        if clicks == show_table:  # shown inline, not offered as a download
            shown = re.search(r'<iframe src="data:text/html;[^"]*base64,([^"]+)"', page)
            assert shown and "<td>tiny-edit</td>" in base64.b64decode(shown.group(1)).decode()
        else:
            assert "editforge run" in page and "Students: tiny-edit." in page

    screenshot = tmp_path / "report.png"
    open_in_chromium(report, show_table, tmp_path, f"--screenshot={screenshot}", "--window-size=1400,1000")
    pixels = matplotlib.image.imread(screenshot)[..., :3].mean(axis=2)
    assert pixels.shape == (1000, 1400) and pixels.std() > 0.05  # not blank
    assert (pixels[:, :300] < 0.5).mean() > 0.5  # the report's dark menu: its scripts ran

    # The training curves open as the figure itself, and are drawn.
    show_curves = ["Training", ["view", "training curves"]]
    page = rendered(open_in_chromium(report, show_curves, tmp_path, "--dump-dom").stdout)
    shown = re.search(r'<img src="data:image/png;[^"]*base64,([^"]+)"', page)
    figure = tiny_run.workdir / "results/report/training_curves.png"
    assert shown and base64.b64decode(shown.group(1)) == figure.read_bytes()
    open_in_chromium(report, show_curves, tmp_path, f"--screenshot={screenshot}", "--window-size=1400,1000")
    colours = matplotlib.image.imread(screenshot)[:, 300:, :3]
    first_student = matplotlib.colors.to_rgb("C0")  # the first student's colour, its loss curve
    assert (abs(colours - first_student).max(axis=2) < 0.1).sum() > 50


COMMITS = [
    (
        "def area(w, h):\n    return w * h\n",
        "def area(w, h):\n    if w < 0 or h < 0:\n        raise ValueError('negative size')\n    return w * h\n",
        "Reject negative sizes in area",
    ),
    (
        "def greet(name):\n    print('Hello ' + name)\n",
        "def greet(name, greeting='Hello'):\n    print(greeting + ' ' + name)\n",
        "Let callers choose the greeting",
    ),
    (
        "def mean(xs):\n    return sum(xs) / len(xs)\n",
        "def mean(xs):\n    if not xs:\n        return 0.0\n    return sum(xs) / len(xs)\n",
        "Return 0 for an empty list in mean",
    ),
    (
        "def last(items):\n    return items[len(items)]\n",
        "def last(items):\n    return items[len(items) - 1]\n",
        "Fix off-by-one in last",
    ),
    (
        "def shout(text):\n    return text + '!'\n",
        "def shout(text):\n    return text.upper() + '!'\n",
        "Upper-case the text in shout",
    ),
    (
        "def count_words(text):\n    return len(text.split(' '))\n",
        "def count_words(text):\n    return len(text.split())\n",
        "Count words separated by any whitespace",
    ),
]


@pytest.mark.slow
def test_embedded_model_end_to_end(tmp_path: Path, benchmark_path: Path) -> None:
    """The embedded model writes instructions for real commits, is fine-tuned on
    them and is scored beside its base model. (The README's demo does the same
    from standard-library snippets, with more prompts than a test can afford.)"""
    commits = tmp_path / "commits.jsonl"
    commits.write_text(
        "".join(
            json.dumps({"old_contents": old, "new_contents": new, "message": message}) + "\n"
            for old, new, message in COMMITS
        )
    )
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["cache_dir"] = str(tmp_path / "cache")
    config["seeds"] = {
        "kind": "commits",
        "sources": [{"name": "commits", "type": "jsonl", "path": str(commits)}],
        "num_prompts": 6,
        "num_shards": 1,
    }
    config["synthesis"]["sampling"]["max_tokens"] = 256
    config["training"]["students"]["smollm2-edit"].update(max_steps=2, checkpoint_every=0)
    config["evaluation"].update(problems=1, samples=1, benchmark=str(benchmark_path))
    config["evaluation"]["sampling"]["max_tokens"] = 64
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    train = list(read_jsonl(tmp_path / "results/dataset/train.jsonl"))
    assert train, "the embedded model produced no training sample"
    assert all(sample["instruction"].strip() for sample in train)
    assert measured_rows(tmp_path / "results/report") == {"smollm2", "smollm2-edit"}  # the base model is scored too
