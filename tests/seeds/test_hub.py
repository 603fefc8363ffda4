"""Hugging Face sources: which files of a dataset repo are read, the hub faked; offline and failure errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from editforge.evaluation import BENCHMARK_ENV, BenchmarkError, load_benchmark
from editforge.hub import HubError, download_command, download_dataset_file, hub_offline, list_dataset_files
from editforge.seeds import SeedError, collect_commits, collect_snippets, select_hf_files
from helpers import SHARED
from helpers.seed_corpus import (
    COMMIT_SETTINGS,
    GREET_NEW,
    GREET_OLD,
    MEAN_NEW,
    MEAN_OLD,
    SETTINGS,
    commit_lines,
    write_commits,
)

COMMITPACKFT_FILES = [
    ".gitattributes",
    "README.md",
    "commitpackft.py",
    "data/python/data.jsonl",
    "data/java/data.jsonl",
    "data/ruby/data.jsonl",
]


GENERIC_FILES = [
    "README.md",
    "data/train-00000-of-00002.parquet",
    "data/train-00001-of-00002.parquet",
    "data/test-00000-of-00001.parquet",
    "data/validation-00000-of-00001.parquet",
]


EXPORT_FILES = [
    "python/train/0000.parquet",
    "python/train/0001.parquet",
    "python/test/0000.parquet",
    "java/train/0000.parquet",
]


@pytest.mark.parametrize(
    ("files", "config_name", "split", "expected"),
    [
        (COMMITPACKFT_FILES, "python", "train", ["data/python/data.jsonl"]),
        (COMMITPACKFT_FILES, "python", "test", []),  # no file names a split: all are "train"
        (COMMITPACKFT_FILES, None, "train", []),  # several configs and none named
        (COMMITPACKFT_FILES, "cobol", "train", []),
        (GENERIC_FILES, None, "train", GENERIC_FILES[1:3]),
        (GENERIC_FILES, None, "validation", ["data/validation-00000-of-00001.parquet"]),
        (GENERIC_FILES, None, "dev", []),
        (EXPORT_FILES, "python", "train", ["python/train/0000.parquet", "python/train/0001.parquet"]),
        (EXPORT_FILES, "python", "test", ["python/test/0000.parquet"]),
        (["train.jsonl", "test.jsonl", "notes.txt"], None, "test", ["test.jsonl"]),
        (
            ["data/train/a.jsonl.gz", "data/train/b.parquet", "data/test/c.parquet"],
            None,
            "train",
            ["data/train/a.jsonl.gz", "data/train/b.parquet"],
        ),
        (["data.csv", "README.md"], None, "train", []),  # no parquet or JSON Lines
    ],
)
def test_select_hf_files(files: list[str], config_name: str | None, split: str, expected: list[str]) -> None:
    assert select_hf_files(files, config_name, split) == expected


def fake_hub(monkeypatch: pytest.MonkeyPatch, listing: list[str], local: dict[str, Path]) -> list[tuple[Any, ...]]:
    """Serve ``listing`` as the repo's files and ``local`` copies as their downloads; record the calls."""
    import huggingface_hub

    calls: list[tuple[Any, ...]] = []

    def list_repo_files(self: Any, repo_id: str, *, revision: Any = None, repo_type: Any = None, token: Any = None):
        calls.append(("list", repo_id, repo_type, revision))
        return listing

    def hf_hub_download(repo_id: str, filename: str, *, repo_type: Any = None, revision: Any = None, **_: Any) -> str:
        calls.append(("download", repo_id, filename, repo_type))
        return str(local[filename])

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", list_repo_files)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    return calls


def test_hf_commitpackft_layout_reads_only_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    python = write_commits(tmp_path / "python.jsonl", commit_lines())
    calls = fake_hub(monkeypatch, COMMITPACKFT_FILES, {"data/python/data.jsonl": python})
    source = [{"name": "cpft", "type": "hf", "dataset": "bigcode/commitpackft", "config_name": "python"}]
    commits, stats = collect_commits(source, COMMIT_SETTINGS, seed=1)
    assert calls == [
        ("list", "bigcode/commitpackft", "dataset", None),
        ("download", "bigcode/commitpackft", "data/python/data.jsonl", "dataset"),
    ]
    assert [c["row"] for c in commits] == ["row 1", "row 4", "row 21"] and stats["files_seen"] == 21
    # the same files seed snippets (column old_contents) too
    snippets, _ = collect_snippets(source, {**SETTINGS, "min_lines": 2}, seed=1)
    assert {s["path"] for s in snippets} >= {"row 1: geo/shapes.py", "row 4: app/greet.py"}


def test_hf_parquet_files_of_a_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    polars = pytest.importorskip("polars")
    local = {}
    for index, (old, new) in enumerate([(GREET_OLD, GREET_NEW), (MEAN_OLD, MEAN_NEW)]):
        local[GENERIC_FILES[1 + index]] = tmp_path / f"train{index}.parquet"
        polars.DataFrame({"old_contents": [old], "new_contents": [new], "message": [f"m{index}"]}).write_parquet(
            local[GENERIC_FILES[1 + index]]
        )
    calls = fake_hub(monkeypatch, GENERIC_FILES, local)
    source = [{"name": "gen", "type": "hf", "dataset": "org/commits", "revision": "v1"}]
    commits, stats = collect_commits(source, COMMIT_SETTINGS, seed=1)
    assert [c["row"] for c in commits] == [
        "data/train-00000-of-00002.parquet row 1",
        "data/train-00001-of-00002.parquet row 1",
    ]
    assert calls[0] == ("list", "org/commits", "dataset", "v1") and len(calls) == 3
    capped, stats = collect_commits(source, {**COMMIT_SETTINGS, "max_files": 1}, seed=1)
    assert len(capped) == 1 and stats["files_skipped"] == {"over_max_files": 1}  # one cap over both files


def test_hf_offline_or_unreachable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    source = [{"name": "h", "type": "hf", "dataset": "bigcode/commitpackft", "config_name": "python"}]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SeedError, match="HF_HUB_OFFLINE is set; download the files") as offline:
        collect_commits(source, COMMIT_SETTINGS, seed=1)
    assert "--include 'data/python/*'" in str(offline.value) and "type 'jsonl' or 'parquet' with 'path'" in str(
        offline.value
    )
    with pytest.raises(SeedError, match="HF_HUB_OFFLINE is set"):
        collect_snippets(source, SETTINGS, seed=1)

    import huggingface_hub

    def no_network(self: Any, *args: Any, **kwargs: Any) -> list[str]:
        raise ConnectionError("Name or service not known")

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", no_network)
    with pytest.raises(SeedError, match=r"cannot reach the Hugging Face hub \(ConnectionError: .*'jsonl' or 'parquet'"):
        collect_commits(source, COMMIT_SETTINGS, seed=1)


def test_hf_without_matching_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    import sys
    import types

    fake_hub(monkeypatch, COMMITPACKFT_FILES, {})
    source = [{"name": "h", "type": "hf", "dataset": "bigcode/commitpackft"}]  # no config named
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "datasets" else real_find_spec(name, *a)
    )
    with pytest.raises(SeedError, match="found no parquet or JSON Lines files for split 'train'.*config_name"):
        collect_commits(source, COMMIT_SETTINGS, seed=1)
    monkeypatch.undo()

    # with the datasets package installed, its loader is the fallback
    fake_hub(monkeypatch, COMMITPACKFT_FILES, {})
    rows = [{"old_contents": GREET_OLD, "new_contents": GREET_NEW, "message": "strip", "commit": "h1", "lang": "py"}]

    class Table:
        def __init__(self, rows: list[dict[str, Any]], columns: list[str]) -> None:
            self.rows, self.column_names = rows, columns

        def select_columns(self, columns: list[str]) -> Table:
            return Table([{c: r[c] for c in columns} for r in self.rows], columns)

        def __len__(self) -> int:
            return len(self.rows)

        def __getitem__(self, index: int) -> dict[str, Any]:
            return self.rows[index]

    loaded: list[tuple[Any, ...]] = []

    def load_dataset(dataset_id: str, config_name: Any, split: str) -> Table:
        loaded.append((dataset_id, config_name, split))
        return Table(rows, list(rows[0]))

    module = types.ModuleType("datasets")
    module.load_dataset = load_dataset  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", module)
    commits, _ = collect_commits(source, COMMIT_SETTINGS, seed=1)
    assert loaded == [("bigcode/commitpackft", None, "train")]
    assert [(c["row"], c["commit"]) for c in commits] == [("row 1", "h1")]


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ("RepositoryNotFoundError", "no dataset 'org/nothing' \\(revision main\\) on the hub"),
        ("GatedRepoError", "dataset 'org/nothing' is gated; accept its terms and set HF_TOKEN"),
    ],
)
def test_hf_missing_or_gated_dataset(monkeypatch: pytest.MonkeyPatch, error: str, message: str) -> None:
    import huggingface_hub
    from huggingface_hub import errors

    def refuse(self: Any, *args: Any, **kwargs: Any) -> list[str]:
        cls = getattr(errors, error)
        err = cls.__new__(cls)  # the real constructor wants an HTTP response
        Exception.__init__(err, "refused")
        raise err

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", refuse)
    with pytest.raises(SeedError, match=message):
        collect_commits([{"name": "h", "type": "hf", "dataset": "org/nothing"}], COMMIT_SETTINGS, seed=1)


# The environments of the offline switch, and whether each means offline: huggingface_hub's rule
# (``HF_HUB_OFFLINE``, else ``TRANSFORMERS_OFFLINE``; 1, ON, YES or TRUE in any case, not stripped).
OFFLINE_CASES = [
    ({"HF_HUB_OFFLINE": "1"}, True),
    ({"HF_HUB_OFFLINE": "true"}, True),
    ({"HF_HUB_OFFLINE": "True"}, True),
    ({"HF_HUB_OFFLINE": "YES"}, True),
    ({"HF_HUB_OFFLINE": "On"}, True),
    ({"HF_HUB_OFFLINE": "0"}, False),
    ({"HF_HUB_OFFLINE": "off"}, False),
    ({"HF_HUB_OFFLINE": "false"}, False),
    ({"HF_HUB_OFFLINE": "y"}, False),
    ({"HF_HUB_OFFLINE": " 1"}, False),
    ({"HF_HUB_OFFLINE": "1\n"}, False),
    ({"HF_HUB_OFFLINE": ""}, False),
    ({}, False),
    ({"TRANSFORMERS_OFFLINE": "1"}, True),
    ({"HF_HUB_OFFLINE": "", "TRANSFORMERS_OFFLINE": "yes"}, True),
    ({"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "1"}, False),
]


def set_offline_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_hf_hub_offline_is_read_as_huggingface_hub_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # The library reads the switch once, when imported: a fresh process asks it for each environment.
    script = (
        "import importlib, json, os, sys\n"
        "import huggingface_hub.constants as constants\n"
        "found = []\n"
        "for env in json.loads(sys.argv[1]):\n"
        "    for name in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE'):\n"
        "        os.environ.pop(name, None)\n"
        "    os.environ.update(env)\n"
        "    found.append(importlib.reload(constants).HF_HUB_OFFLINE)\n"
        "print(json.dumps(found))\n"
    )
    envs = [env for env, _ in OFFLINE_CASES]
    answer = subprocess.run([sys.executable, "-c", script, json.dumps(envs)], capture_output=True, text=True)
    assert answer.returncode == 0, answer.stderr
    library = json.loads(answer.stdout)
    ours = []
    for env in envs:
        set_offline_env(monkeypatch, env)
        ours.append(hub_offline())
    assert ours == library == [offline for _, offline in OFFLINE_CASES]


def test_seeds_and_the_preflight_share_the_one_offline_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from editforge.workflow.preflight import PreflightError, check_model

    source = [{"name": "h", "type": "hf", "dataset": "bigcode/commitpackft"}]
    spec = {"backend": "transformers", "model": "org/not-downloaded-7B"}
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    for env in ({"HF_HUB_OFFLINE": "On"}, {"TRANSFORMERS_OFFLINE": "YES"}):
        set_offline_env(monkeypatch, env)
        with pytest.raises(SeedError, match="HF_HUB_OFFLINE is set; download the files"):
            collect_commits(source, COMMIT_SETTINGS, seed=1)
        with pytest.raises(PreflightError, match="is not in the local Hugging Face cache and HF_HUB_OFFLINE is set"):
            check_model("student", spec)
    set_offline_env(monkeypatch, {"HF_HUB_OFFLINE": "0"})
    assert check_model("student", spec) == "models.student: org/not-downloaded-7B will be downloaded from the hub"


def test_hub_errors_say_how_the_request_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub
    from huggingface_hub import errors

    def refuse_with(error: type[Exception]) -> Any:
        def refuse(self: Any, *args: Any, **kwargs: Any) -> list[str]:
            err = error.__new__(error)  # the real constructors want an HTTP response
            Exception.__init__(err, "refused")
            raise err

        return refuse

    for error, kind in ((errors.GatedRepoError, "gated"), (errors.RepositoryNotFoundError, "missing"),
                        (errors.RevisionNotFoundError, "missing"), (TimeoutError, "unreachable")):
        monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", refuse_with(error))
        with pytest.raises(HubError) as failed:
            list_dataset_files("org/data", "v1")
        assert (failed.value.kind, type(failed.value.cause)) == (kind, error)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *args, **kwargs: 1 / 0)
    with pytest.raises(HubError) as failed:
        download_dataset_file("org/data", "data/train.jsonl")
    assert failed.value.kind == "unreachable" and isinstance(failed.value.cause, ZeroDivisionError)
    assert download_command("org/data", "python") == (
        "hf download org/data --repo-type dataset --include 'data/python/*' --local-dir DIR"
    )


def test_the_benchmark_reads_its_split_through_the_hub_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    polars = pytest.importorskip("polars")
    benchmark = SHARED / "canitedit/canitedit.jsonl"
    if not benchmark.is_file():
        pytest.skip(f"no local CanItEdit copy at {benchmark}")
    with benchmark.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for _, line in zip(range(3), handle)]
    local = {"data/test-00000-of-00001.parquet": tmp_path / "test.parquet"}
    polars.DataFrame(rows[:2]).write_parquet(local["data/test-00000-of-00001.parquet"])
    listing = ["README.md", "data/test-00000-of-00001.parquet", "data/test.jsonl", "data/train-00000-of-00001.parquet"]
    calls = fake_hub(monkeypatch, listing, local)
    monkeypatch.delenv(BENCHMARK_ENV, raising=False)
    problems = load_benchmark("org/bench")
    assert [p["id"] for p in problems] == sorted(row["id"] for row in rows[:2])
    assert calls == [
        ("list", "org/bench", "dataset", None),
        ("download", "org/bench", "data/test-00000-of-00001.parquet", "dataset"),
    ]
    bad = dict(rows[0], id="one")
    polars.DataFrame([bad]).write_parquet(local["data/test-00000-of-00001.parquet"])
    with pytest.raises(BenchmarkError, match=r"^org/bench .*test.parquet row 0 \(id 'one'\): 'id' must be a positive"):
        load_benchmark("org/bench")
    fake_hub(monkeypatch, ["README.md", "data/train-00000-of-00001.parquet"], {})
    with pytest.raises(BenchmarkError, match=rf"'org/bench' has no 'test' parquet files; set {BENCHMARK_ENV} to a"):
        load_benchmark("org/bench")

    import huggingface_hub

    def no_network(self: Any, *args: Any, **kwargs: Any) -> list[str]:
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", no_network)
    with pytest.raises(BenchmarkError) as failed:
        load_benchmark("org/bench")
    assert str(failed.value) == (
        "could not load the Hugging Face dataset 'org/bench' (ConnectionError: Name or service not known); "
        f"set {BENCHMARK_ENV} to a local copy of the benchmark (a .jsonl or .parquet file)"
    )
