"""The config is checked at start, and every mistake names its key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from editforge import config as efconfig
from editforge.cli import main as cli_main
from editforge.workflow import resources
from helpers import REPO
from helpers.workflow import AIDER_EXERCISM
from helpers.workflow import HUMANEVALFIX as HUMANEVALFIX_FILE


@pytest.fixture()
def demo() -> dict:
    return yaml.safe_load((REPO / "config/config.yaml").read_text())


def test_demo_config_is_valid_and_gets_defaults(demo: dict) -> None:
    cfg = efconfig.validate(demo)
    assert cfg["evaluation"]["memory_mb"] == 4096  # filled from the schema
    assert cfg["evaluation"]["sampling"]["temperature"] == 0.2
    assert cfg["synthesis"]["sampling"]["temperature"] == 0.8
    assert efconfig.shard_names(cfg) == ["000", "001"]


def test_paper_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "k1")
    monkeypatch.setenv("DEEPSEEK_API_KEY", "k2")
    monkeypatch.delenv("EDITFORGE_AIDER_EXERCISM", raising=False)
    with pytest.raises(efconfig.ConfigError, match="EDITFORGE_AIDER_EXERCISM"):  # Aider's set is not on the hub
        efconfig.load(REPO / "config/paper.yaml")
    monkeypatch.setenv("EDITFORGE_AIDER_EXERCISM", str(AIDER_EXERCISM))
    cfg = efconfig.load(REPO / "config/paper.yaml")
    assert efconfig.benchmark_names(cfg) == ["canitedit", "humanevalfix", "aider_exercism"]  # the report's order
    assert cfg["seeds"]["num_prompts"] == 100_000
    assert cfg["evaluation"]["samples"] == 20
    assert len(efconfig.shard_names(cfg)) == 100


def _error(raw: dict) -> str:
    with pytest.raises(efconfig.ConfigError) as info:
        efconfig.validate(raw)
    return str(info.value)


def test_unknown_key_is_named_with_the_key_meant(demo: dict) -> None:
    demo["filtering"]["max_hunk"] = 3
    assert "filtering: unknown key 'max_hunk' (did you mean 'max_hunks'?)" in _error(demo)
    demo["filtering"].pop("max_hunk")
    demo["seeds"]["colour"] = "blue"
    assert "seeds: unknown key 'colour' (allowed: " in _error(demo)


def test_a_replaced_key_says_what_replaced_it(demo: dict) -> None:
    demo["filtering"]["decontamination"] = {"ngram": 13, "max_contaminated_share": 0.5}
    assert "'ngram' was replaced: use code_containment and instruction_containment" in _error(demo)


def test_wrong_type_is_named(demo: dict) -> None:
    demo["evaluation"]["samples"] = "twenty"
    assert "evaluation.samples" in _error(demo)


def test_unknown_model_reference_is_named(demo: dict) -> None:
    demo["synthesis"]["models"] = ["gpt-9"]
    assert "synthesis.models: 'gpt-9'" in _error(demo)


def test_the_filters_settings_are_checked_by_name(demo: dict) -> None:
    demo["filtering"].pop("static_checks")  # the demo's model needs two off; by default all are on
    cfg = efconfig.validate(copy.deepcopy(demo))
    assert cfg["filtering"]["static_checks"] == dict.fromkeys(
        ("undefined_names", "missing_imports", "leftover_markup", "truncated_code"), True
    )
    assert cfg["filtering"]["judge"]["model"] is None and cfg["filtering"]["judge"]["uncertain"] == "fail"
    demo["filtering"]["judge"] = {"model": "gpt-9"}
    assert "filtering.judge.model: 'gpt-9' is not defined under models" in _error(copy.deepcopy(demo))
    demo["filtering"]["judge"] = {"model": "smollm2", "verdicts": ["edit_correct"]}
    assert "filtering.judge.verdicts" in _error(copy.deepcopy(demo))
    demo["filtering"]["judge"] = {"model": "smollm2"}
    demo["filtering"]["static_checks"] = {"undefined_name": False}
    assert "did you mean 'undefined_names'?" in _error(demo)


def test_a_judges_api_key_is_needed_too(demo: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDITFORGE_TEST_KEY", raising=False)
    demo["models"]["judge"] = {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1",
                               "api_key_env": "EDITFORGE_TEST_KEY"}
    demo["filtering"]["judge"] = {"model": "judge"}
    assert "models.judge.api_key_env" in _error(demo)


def test_unknown_target_is_named(demo: dict) -> None:
    demo["evaluation"]["targets"] = ["nobody"]
    assert "evaluation.targets: 'nobody'" in _error(demo)


def test_missing_source_directory_is_named(demo: dict, tmp_path: Path) -> None:
    demo["seeds"]["sources"] = [{"name": "mine", "type": "directory", "path": str(tmp_path / "absent")}]
    assert "seeds.sources.0.path" in _error(demo)


def test_missing_benchmark_file_is_named(demo: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(efconfig.BENCHMARK_ENV, raising=False)
    demo["evaluation"]["benchmark"] = "./no/such/canitedit.jsonl"
    assert "evaluation.benchmark" in _error(demo)


HUMANEVALFIX = str(HUMANEVALFIX_FILE)


def test_benchmarks_default_to_canitedit_alone_with_the_shared_settings(demo: dict) -> None:
    cfg = efconfig.validate(demo)
    assert list(cfg["evaluation"]["benchmarks"]) == ["canitedit"]
    canitedit = efconfig.benchmark_settings(cfg, "canitedit")
    evaluation = cfg["evaluation"]
    assert (canitedit["problems"], canitedit["samples"], canitedit["sampling"], canitedit["timeout_s"]) == (
        evaluation["problems"],
        evaluation["samples"],
        evaluation["sampling"],
        evaluation["timeout_s"],
    )


def test_a_benchmark_takes_its_own_settings_then_the_shared_ones_then_its_harness(
    demo: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDITFORGE_AIDER_EXERCISM", str(AIDER_EXERCISM))
    demo["evaluation"]["problems"] = [1, 2]  # CanItEdit ids: not inherited by the other benchmarks
    demo["evaluation"]["benchmarks"] = {
        "humanevalfix": {"source": HUMANEVALFIX, "samples": 5, "sampling": {"temperature": 0.8}},
        "aider_exercism": {"problems": ["two-fer"], "tries": 2},
    }
    cfg = efconfig.validate(demo)
    fix = efconfig.benchmark_settings(cfg, "humanevalfix")
    assert (fix["source"], fix["problems"], fix["samples"], fix["timeout_s"], fix["tries"]) == (
        HUMANEVALFIX,
        None,
        5,
        10,
        1,
    )
    assert fix["sampling"] == {**cfg["evaluation"]["sampling"], "temperature": 0.8}
    aider = efconfig.benchmark_settings(cfg, "aider_exercism")
    assert (aider["problems"], aider["samples"], aider["timeout_s"], aider["tries"]) == (["two-fer"], 2, 60, 2)
    assert aider["sampling"]["max_tokens"] == 4096  # whole files need room, whatever evaluation.sampling says
    assert aider["source"].endswith("aider_exercism_python.jsonl")  # from the environment variable


@pytest.mark.parametrize(
    ("benchmarks", "message"),
    [
        ({"aider_exercism": {}}, "evaluation.benchmarks.aider_exercism: no source; set EDITFORGE_AIDER_EXERCISM"),
        ({"humanevalfix": {"source": "./no/such.jsonl"}}, "evaluation.benchmarks.humanevalfix.source: benchmark file"),
        ({"humanevalfix": {"source": HUMANEVALFIX, "tries": 2}}, "humanevalfix.tries: a second try is for aider"),
        ({"mbpp": {}}, "evaluation.benchmarks"),
        ({}, "evaluation.benchmarks"),
    ],
)
def test_a_benchmark_setting_that_cannot_work_is_named(
    demo: dict, monkeypatch: pytest.MonkeyPatch, benchmarks: dict, message: str
) -> None:
    monkeypatch.delenv("EDITFORGE_AIDER_EXERCISM", raising=False)
    monkeypatch.delenv("EDITFORGE_HUMANEVALFIX", raising=False)
    demo["evaluation"]["benchmarks"] = benchmarks
    assert message in _error(demo)


def test_missing_api_key_variable_is_named(demo: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDITFORGE_TEST_KEY", raising=False)
    demo["models"]["remote"] = {
        "backend": "openai",
        "model": "m",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key_env": "EDITFORGE_TEST_KEY",
    }
    demo["synthesis"]["models"] = ["remote"]
    demo["dataset"]["mix"] = {"remote": 1.0}
    message = _error(demo)
    assert "models.remote.api_key_env" in message and "EDITFORGE_TEST_KEY" in message
    monkeypatch.setenv("EDITFORGE_TEST_KEY", "secret-value")
    efconfig.validate(copy.deepcopy(demo))  # set: accepted


def test_student_on_an_http_model_is_refused(demo: dict) -> None:
    demo["models"]["remote"] = {"backend": "openai", "model": "m"}
    demo["training"]["students"]["smollm2-edit"]["base_model"] = "remote"
    assert "training.students.smollm2-edit.base_model" in _error(demo)


def test_output_spec_leaves_out_operational_keys() -> None:
    spec = {"backend": "openai", "model": "m", "max_concurrency": 8, "timeout_s": 5, "extra_body": {"a": 1}}
    assert efconfig.output_spec(spec) == {"backend": "openai", "model": "m", "extra_body": {"a": 1}}


def test_student_target_uses_its_trained_folder(demo: dict) -> None:
    cfg = efconfig.validate(demo)
    spec = efconfig.target_spec(cfg, "smollm2-edit")
    assert spec["model"] == "results/training/smollm2-edit/model"
    assert spec["backend"] == "transformers" and spec["prompt_format"] == "editforge"


def test_cli_check_config_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: {}\nseeds: {sources: []}\n")
    assert cli_main(["check-config", str(bad)]) == 2
    assert "invalid config" in capsys.readouterr().err
    assert cli_main(["check-config", str(tmp_path / "absent.yaml")]) == 2


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("seed: 1\nseeds:\n  num_prompts: [4\n  num_shards: 2\n", "4:13", "expected ',' or ']', but got ':'"),
        ("seed: 1\n\tseeds: {}\n", "2:1", "found character '\\t' that cannot start any token"),
        ("seeds:\n  num_prompts: 4\n num_shards: 2\n", "3:2", "expected <block end>, but found"),
    ],
)
def test_a_yaml_syntax_error_names_file_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, where: str, problem: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert cli_main(["check-config", str(bad)]) == 2
    assert capsys.readouterr().err.startswith(f"{bad}:{where}: not valid YAML: {problem}")


def test_key_order_does_not_matter(demo: dict) -> None:
    """Rule params are compared by repr: reordering YAML keys must not change them."""
    reordered = dict(reversed(list(demo.items())))
    reordered["filtering"] = dict(reversed(list(demo["filtering"].items())))
    assert repr(efconfig.validate(reordered)) == repr(efconfig.validate(demo))


def test_cli_sandbox_runs_a_file_and_reports_its_outcome(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text("print(6 * 7)\n")
    bad.write_text("assert 1 == 2\n")
    assert cli_main(["sandbox", str(good)]) == 0
    assert '"outcome": "pass"' in capsys.readouterr().out
    assert cli_main(["sandbox", str(bad)]) == 1
    assert '"outcome": "fail"' in capsys.readouterr().out


def test_the_demo_asks_for_what_a_workstation_has(demo: dict) -> None:
    """An in-process model on the CPU asks for no GPU and for memory by its size."""
    cfg = efconfig.validate(demo)
    specs = [cfg["models"][m] for m in cfg["synthesis"]["models"]]
    specs += [efconfig.resource_spec(cfg, t) for t in cfg["evaluation"]["targets"]]
    assert {(resources.model_gpus(s), resources.model_mem_mb(s)) for s in specs} == {(0, 4000)}


@pytest.mark.parametrize(
    ("spec", "gpus", "mem_mb"),
    [
        ({"backend": "transformers", "model": "Qwen/Qwen2.5-Coder-7B-Instruct"}, 1, 30000),
        ({"backend": "transformers", "model": "org/tiny-350M", "device": "cpu"}, 0, 4000),
        ({"backend": "transformers", "model": "embedded", "device": "cuda"}, 1, 4000),
        ({"backend": "transformers", "model": "/models/my-finetune"}, 1, 64000),  # size unknown
        ({"backend": "openai", "model": "deepseek-chat"}, 0, 4000),
        ({"backend": "openai", "model": "Qwen/Qwen3-8B", "serve": {"gpus": 2}}, 2, 34000),
    ],
)
def test_jobs_ask_for_gpus_and_memory_by_device_and_model_size(spec: dict, gpus: int, mem_mb: int) -> None:
    assert (resources.model_gpus(spec), resources.model_mem_mb(spec)) == (gpus, mem_mb)
