"""The funnel: counts after each stage from drop reasons, the Markdown and the plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from editforge.funnel import plot_funnel, stage_counts, stage_of
from editforge.records import write_jsonl
from editforge.reporting.funnel import render_markdown, write_funnel
from editforge.verdicts import VERDICTS

PNG = b"\x89PNG\r\n\x1a\n"


def test_each_reason_belongs_to_its_stage() -> None:
    assert stage_of("missing_program_after") == "parsed"  # anything synthesis or parsing names
    assert stage_of("pre_code_syntax") == "valid"
    assert stage_of("too_many_hunks") == "diff"
    assert stage_of("generated_tests_pass_on_pre") == "executes"
    assert stage_of("contaminated") == "decontaminated"
    assert stage_of("near_duplicate_diff") == "deduplicated"


def test_stage_counts_subtract_each_stage_drops_per_model() -> None:
    outcomes = {
        "a": {"kept": 5, "truncated": 2, "no_change": 1, "exact_duplicate": 2},
        "b": {"ok": 3, "contaminated": 1},
    }
    rows = {row["stage"]: row for row in stage_counts(outcomes)}
    assert rows["synthesized"]["remaining"] == 14
    assert rows["parsed"] == {"stage": "parsed", "remaining": 12, "per_model": {"a": 8, "b": 4},
                              "dropped": {"truncated": 2}}
    assert rows["diff"]["remaining"] == 11 and rows["valid"]["dropped"] == {}
    assert rows["decontaminated"]["per_model"] == {"a": 7, "b": 3}
    assert rows["deduplicated"]["remaining"] == 8 == 5 + 3  # what remains is what was kept


@pytest.mark.parametrize("with_stages", [True, False])
def test_plot_funnel_writes_a_png(tmp_path: Path, with_stages: bool) -> None:
    funnel = {
        "synthesis": {"a": {"prompts": 10, "kept": 6, "dropped": {"truncated": 3, "exact_duplicate": 1}}},
        "dataset": {"distinct_triplets": 5, "per_style": {"lazy": 5, "descriptive": 4}, "triplets_per_model": {"a": 5}},
    }
    if with_stages:
        funnel["stages"] = stage_counts({"a": {"kept": 6, "truncated": 3, "exact_duplicate": 1}})
    plot_funnel(funnel, tmp_path / "plots/funnel.png")
    assert (tmp_path / "plots/funnel.png").read_bytes()[:8] == PNG
    assert not list((tmp_path / "plots").glob("*.partial*"))


def test_write_funnel_adds_stages_and_an_optional_plot(tmp_path: Path) -> None:
    (tmp_path / "seeds.json").write_text(json.dumps({"pairs": 4}))
    (tmp_path / "dataset.json").write_text(json.dumps({"total": 2}))
    usage = tmp_path / "synthesis/m/round1/000.usage.json"
    usage.parent.mkdir(parents=True)
    usage.write_text(json.dumps({"calls": 4, "prompt_tokens": 100, "completion_tokens": 50}))
    write_jsonl(tmp_path / "filtered.jsonl", [
        {"id": "1", "model": "m", "status": "ok"},
        {"id": "2", "model": "m", "status": "dropped", "reason": "no_change"},
        {"id": "3", "model": "m", "status": "dropped", "reason": "truncated"},
        {"id": "4", "model": "m", "status": "ok"},
    ])
    args = [tmp_path / "seeds.json", [usage], tmp_path / "filtered.jsonl", tmp_path / "dataset.json",
            tmp_path / "funnel.json", tmp_path / "funnel.md"]
    funnel = write_funnel(*args)  # the rule's call, unchanged
    assert not (tmp_path / "funnel.png").exists()
    assert [row["remaining"] for row in funnel["stages"]] == [4, 3, 3, 2, 2, 2, 2, 2]  # no judge: no "judged" row
    assert json.loads((tmp_path / "funnel.json").read_text())["stages"] == funnel["stages"]
    markdown = (tmp_path / "funnel.md").read_text()
    assert "| diff | 2 | 2 | no_change: 1 |" in markdown and markdown == render_markdown(funnel)
    write_funnel(*args, png_out=tmp_path / "funnel.png")
    assert (tmp_path / "funnel.png").read_bytes()[:8] == PNG


def test_usage_is_booked_to_the_model_the_file_names_even_with_a_slash(tmp_path: Path) -> None:
    (tmp_path / "seeds.json").write_text(json.dumps({"pairs": 1}))
    (tmp_path / "dataset.json").write_text(json.dumps({"total": 1}))
    usage = tmp_path / "synthesis/org/coder-7b/round1/000.usage.json"  # the model "org/coder-7b"
    usage.parent.mkdir(parents=True)
    usage.write_text(json.dumps({"model": "org/coder-7b", "calls": 3, "errors": 1, "prompt_tokens": 9}))
    write_jsonl(tmp_path / "filtered.jsonl", [{"id": "1", "model": "org/coder-7b", "status": "ok"}])
    funnel = write_funnel(tmp_path / "seeds.json", [usage], tmp_path / "filtered.jsonl", tmp_path / "dataset.json",
                          tmp_path / "funnel.json", tmp_path / "funnel.md")
    assert funnel["synthesis"]["org/coder-7b"]["usage"]["calls"] == 3
    assert funnel["synthesis"]["org/coder-7b"]["usage"]["errors"] == 1


def test_every_answer_is_counted_once_per_round_whichever_run_paid_for_it(tmp_path: Path) -> None:
    """A shard resumed after a kill: the answers the killed run paid for come from the cache, with
    their tokens and cost, so the funnel books every answer once; failed calls per round."""
    (tmp_path / "seeds.json").write_text(json.dumps({"pairs": 2}))
    (tmp_path / "dataset.json").write_text(json.dumps({"total": 1}))
    rounds = {
        "round1": {"calls": 3, "batch_calls": 2, "cached": 5, "errors": 1, "prompt_tokens": 30, "completion_tokens": 6,
                   "cached_prompt_tokens": 50, "cached_completion_tokens": 10, "cost": 0.3, "cached_cost": 0.5},
        "round2": {"calls": 2, "cached": 0, "errors": 0, "prompt_tokens": 20, "completion_tokens": 4,
                   "cached_prompt_tokens": 0, "cached_completion_tokens": 0, "cost": 0.2, "cached_cost": 0.0},
    }
    paths = []
    for round_, usage in rounds.items():
        path = tmp_path / f"synthesis/m/{round_}/000.usage.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(usage | {"model": "m", "round": round_}))
        paths.append(path)
    write_jsonl(tmp_path / "filtered.jsonl", [{"id": "1", "model": "m", "status": "ok"}])
    funnel = write_funnel(tmp_path / "seeds.json", paths, tmp_path / "filtered.jsonl", tmp_path / "dataset.json",
                          tmp_path / "funnel.json", tmp_path / "funnel.md")
    usage = funnel["synthesis"]["m"]["usage"]
    assert (usage["answered"], usage["calls"], usage["cached"], usage["errors"]) == (10, 5, 5, 1)
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (100, 20)
    assert (usage["cost"], usage["paid_cost"]) == (pytest.approx(1.0), pytest.approx(0.5))
    assert usage["by_round"] == {"round1": {"answered": 8, "calls": 3, "batch_calls": 2, "cached": 5, "errors": 1},
                                 "round2": {"answered": 2, "calls": 2, "batch_calls": 0, "cached": 0, "errors": 0}}
    markdown = (tmp_path / "funnel.md").read_text()
    assert "| m | 1 | 1 | - | 10 | 5 | 5 | 1 | 100 | 20 | 1.0000 |" in markdown
    assert "| m | round1 | 8 | 3 | 2 | 5 | 1 |" in markdown  # 2 of the 3 paid now came through a batch


def test_the_judges_usage_is_its_own_section_not_a_teachers(tmp_path: Path) -> None:
    """The judge may be a teacher's own model entry: its calls are filtering's and are not added to the
    teacher's synthesis row; the judge's drops are the funnel's last stage."""
    (tmp_path / "seeds.json").write_text(json.dumps({"pairs": 2}))
    by_teacher = {"m": {"lazy": {"judged": 2, "passed": 1, "dropped": {"judge_edit_incomplete": 1},
                                 "verdicts": {v: {"PASS": 2, "FAIL": 0, "UNCERTAIN": 0} for v in VERDICTS}}}}
    by_teacher["m"]["lazy"]["verdicts"]["edit_complete"] = {"PASS": 1, "FAIL": 1, "UNCERTAIN": 0}
    (tmp_path / "dataset.json").write_text(json.dumps({"total": 1, "judge": {"by_teacher": by_teacher}}))
    synthesis = tmp_path / "synthesis/m/round1/000.usage.json"
    synthesis.parent.mkdir(parents=True)
    synthesis.write_text(json.dumps({"model": "m", "round": "round1", "calls": 2, "prompt_tokens": 10, "cost": 0.1}))
    judge = tmp_path / "filtered/judge.usage.json"
    judge.parent.mkdir(parents=True)
    judge.write_text(json.dumps({"model": "m", "round": "judge", "calls": 4, "cached": 1, "prompt_tokens": 40,
                                 "completion_tokens": 8, "cost": 0.4}))
    write_jsonl(tmp_path / "judged.jsonl", [
        {"id": "1", "model": "m", "status": "ok"},
        {"id": "2", "model": "m", "status": "dropped", "reason": "judge_edit_incomplete"},
    ])
    funnel = write_funnel(tmp_path / "seeds.json", [synthesis, judge], tmp_path / "judged.jsonl",
                          tmp_path / "dataset.json", tmp_path / "funnel.json", tmp_path / "funnel.md")
    assert funnel["synthesis"]["m"]["usage"]["calls"] == 2
    assert funnel["judge"]["m"]["answered"] == 5 and funnel["judge"]["m"]["cost"] == pytest.approx(0.4)
    assert funnel["stages"][-1] == {"stage": "judged", "remaining": 1, "per_model": {"m": 1},
                                    "dropped": {"judge_edit_incomplete": 1}}
    markdown = (tmp_path / "funnel.md").read_text()
    assert "## LLM judge" in markdown and "| m | 5 | 4 | 1 | 0 | 40 | 8 | 0.4000 |" in markdown
    assert "| m | lazy | 1 / 2 | 2 / 0 / 0 | 1 / 1 / 0 | 2 / 0 / 0 | judge_edit_incomplete: 1 |" in markdown
