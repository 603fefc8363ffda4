"""The workflow deploys as the Snakemake workflow catalog expects: its usage file, a config README
that describes every top-level key, the .test case that runs every stage, use as a module deployed
by snakedeploy, and one version that the changelog's latest entry repeats."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import yaml

import editforge
from editforge.backend.fake_server import FakeServer, reference_responder
from helpers import REPO
from helpers.workflow import SNAKEMAKE, planned_rules, synthesis_responder

SCHEMA = REPO / "src/editforge/schemas/config.schema.yaml"
VERSION = editforge.__version__


def test_catalog_file_declares_usage_conda_and_the_report() -> None:
    settings = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())
    usage = settings["usage"]
    assert set(usage) == {"mandatory-flags", "software-stack-deployment", "report"}
    assert usage["mandatory-flags"]["desc"].strip() and isinstance(usage["mandatory-flags"]["flags"], str)
    assert usage["software-stack-deployment"] == {"conda": True, "apptainer": False, "apptainer+conda": False}
    assert usage["report"] is True
    # conda: true promises an environment file for every rule that names one.
    for name in re.findall(r'conda:\s*"\.\./(envs/[^"]+)"', "".join(p.read_text() for p in REPO.glob("rules/*.smk"))):
        assert (REPO / name).is_file(), name


def described_keys(readme: str) -> set[str]:
    """The keys of the table in config/README.md: its rows' first cells."""
    return set(re.findall(r"^\| `(\w+)` \|", readme, re.MULTILINE))


def test_config_readme_describes_every_top_level_key_of_the_schema() -> None:
    schema = yaml.safe_load(SCHEMA.read_text())
    readme = (REPO / "config/README.md").read_text()
    keys = described_keys(readme)
    assert keys == set(schema["properties"]), (
        f"config/README.md: describe {sorted(set(schema['properties']) - keys)}, "
        f"drop {sorted(keys - set(schema['properties']))}"
    )
    for key in schema["required"]:
        assert re.search(rf"^\| `{key}` \| yes \|", readme, re.MULTILINE), (
            f"config/README.md: say that {key} is required"
        )
    assert "src/editforge/schemas/config.schema.yaml" in readme


def test_the_changelog_latest_entry_is_the_package_version() -> None:
    changelog = (REPO / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+[^\]]*)\] - \d{4}-\d{2}-\d{2}$", changelog, re.MULTILINE)
    assert releases and releases[0] == VERSION, f"CHANGELOG.md: add an entry '## [{VERSION}] - YYYY-MM-DD'"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "editforge.__version__"}


def oracle_server(benchmark: Path) -> FakeServer:
    """A server whose `writer` writes dialogues and whose `oracle` answers with the reference programs."""
    problems = [json.loads(line) for line in benchmark.read_text().splitlines() if line.strip()]
    oracle = reference_responder(problems, {"oracle": "after"})

    def respond(body: dict[str, Any], index: int) -> str:
        return oracle(body, index) if body["model"] == "oracle" else synthesis_responder(body, index)

    return FakeServer(responder=respond)


def dot_test_config(base_url: str) -> str:
    """.test/config/config.yaml with its models pointed at ``base_url``."""
    config = yaml.safe_load((REPO / ".test/config/config.yaml").read_text())
    for model in config["models"].values():
        model["base_url"] = base_url
    return yaml.safe_dump(config)


def assert_a_full_run(result: subprocess.CompletedProcess[str], workdir: Path) -> None:
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "editforge: run finished" in result.stdout + result.stderr  # the end screen: onsuccess ran
    with (workdir / "results/report/summary.csv").open() as rows:
        overall = [row for row in csv.DictReader(rows) if row["split"] == "overall"]
    assert [(row["target"], float(row["pass@1"])) for row in overall] == [("oracle", 100.0)]
    assert sum(1 for _ in (workdir / "results/dataset/train.jsonl").open()) > 0


def run_env(benchmark: Path) -> dict[str, str]:
    return {**os.environ, "EDITFORGE_CANITEDIT": str(benchmark), "HF_HUB_OFFLINE": "1"}


def test_the_test_case_runs_every_stage_and_the_report(tmp_path: Path, benchmark_path: Path) -> None:
    """As the catalog runs it: `snakemake --directory .test`, whose config/config.yaml is the default."""
    workdir = tmp_path / ".test"
    shutil.copytree(REPO / ".test", workdir)
    with oracle_server(benchmark_path) as server:
        (workdir / "config/config.yaml").write_text(dot_test_config(server.base_url))
        command = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2"]
        result = subprocess.run(command, capture_output=True, text=True, env=run_env(benchmark_path), timeout=600)
        assert_a_full_run(result, workdir)
        report = subprocess.run(
            [*command, "--report", "report.zip"],
            capture_output=True,
            text=True,
            env=run_env(benchmark_path),
            timeout=300,
        )
    assert report.returncode == 0, (report.stdout + report.stderr)[-4000:]
    with zipfile.ZipFile(workdir / "report.zip") as archive:
        names = archive.namelist()
    assert any(name.endswith("report.html") for name in names)
    assert any(name.endswith("pass_at_1.png") for name in names)


def snapshot(repo: Path) -> None:
    """The checkout's files (tracked, and new ones not ignored) as a git repository tagged v<version>."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    git = ["git", "-c", "user.name=editforge", "-c", "user.email=editforge@localhost", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"], ["tag", f"v{VERSION}"]):
        subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True)


def test_deploys_with_snakedeploy_and_runs_as_a_module(tmp_path: Path, benchmark_path: Path) -> None:
    """`snakedeploy deploy-workflow URL DEST --tag v<version>`, as the catalog tells users, then a dry run of
    the deployed project with the config it copied, and a real run with the test case's config."""
    # A path with github.com in it makes snakedeploy take it for GitHub: it clones the file:// URL, checks
    # out the tag, and writes the github(...) declaration a user gets.
    repo = tmp_path / "github.com/editforge/editforge"
    repo.mkdir(parents=True)
    snapshot(repo)
    project = tmp_path / "project"
    snakedeploy = Path(sys.executable).with_name("snakedeploy")
    command = [str(snakedeploy), "deploy-workflow", f"file://{repo}", str(project), "--tag", f"v{VERSION}"]
    deploy = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert deploy.returncode == 0, (deploy.stdout + deploy.stderr)[-4000:]
    assert {p.name for p in (project / "config").iterdir()} >= {"config.yaml", "paper.yaml", "README.md"}
    assert (project / "profiles/default/profile.yaml").is_file()
    snakefile = (project / "workflow/Snakefile").read_text()
    declaration = f'github("editforge/editforge", path="Snakefile", tag="v{VERSION}")'
    assert declaration in snakefile and "use rule * from editforge" in snakefile
    readme = (REPO / "README.md").read_text().split("## Use it as a module")[1].split("\n## ")[0]
    module_lines, handlers = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    assert declaration.replace("editforge/", "<owner>/") in module_lines, "README: the module lines name another tag"
    # GitHub is out of reach here: the module is read from the snapshot the tag points at instead. The
    # handlers are the ones the README adds (Snakemake runs only the main Snakefile's).
    local = snakefile.replace(declaration, json.dumps(str(repo / "Snakefile")))
    (project / "workflow/Snakefile").write_text(f"{local}\n\n{handlers}")

    dry = subprocess.run(
        [*SNAKEMAKE, "--dry-run", "--cores", "2"],
        cwd=project,
        capture_output=True,
        text=True,
        env=run_env(benchmark_path),
        timeout=300,
    )
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-4000:]
    assert {"seeds", "synthesize_round1", "finetune", "eval_score", "report_tables", "all"} <= set(planned_rules(dry))
    # The prompt templates stay inputs of synthesis (an edit reruns it) when the workflow is a module.
    assert "src/editforge/templates/round1_v1.txt" in dry.stdout

    with oracle_server(benchmark_path) as server:
        (project / "config/config.yaml").write_text(dot_test_config(server.base_url))
        result = subprocess.run(
            [*SNAKEMAKE, "--cores", "2"],
            cwd=project,
            capture_output=True,
            text=True,
            env=run_env(benchmark_path),
            timeout=600,
        )
    assert_a_full_run(result, project)
    assert not (repo / "results").exists()  # the project's results stay in the project
