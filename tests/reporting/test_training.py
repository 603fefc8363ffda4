"""The report's training curves and final training numbers (rule report_training), and the final losses
beside pass@1 (rule report_tables), from hand-written logs in the trainer's format and the old one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from editforge.evaluation.report import merge_frames
from editforge.funnel import stage_counts
from editforge.records import write_jsonl
from editforge.reporting.tables import pass_at_1_table, with_training, write_tables
from editforge.reporting.training import (
    COLUMNS,
    TrainingRun,
    final_numbers,
    read_run,
    training_figure,
    training_frame,
    training_markdown,
    write_training_report,
)

PNG = b"\x89PNG\r\n\x1a\n"
NEW_LOSSES = [2.0, 1.6, 1.3, 1.1, 1.0, 0.9]
VAL = {2: 1.5, 4: 1.2, 6: 1.25}  # every 2 steps and the last; the best at step 4


def new_log() -> list[dict[str, Any]]:
    """A GPU run's log in the current format: validation every 2 steps, MFU and memory."""
    return [
        {
            "step": step,
            "loss": loss,
            "lr": 1e-4 * step / 6,
            "grad_norm": 1.0,
            "tokens": 1000,
            "padding_share": 0.1,
            "seconds": 0.5,
            "tokens_per_second": 2000.0 + 100 * step,
            "mfu": 0.1 + 0.01 * step,
            "memory_gib": 3.0 + 0.5 * step,
            **({"val_loss": VAL[step]} if step in VAL else {}),
        }
        for step, loss in enumerate(NEW_LOSSES, start=1)
    ]


def new_summary() -> dict[str, Any]:
    return {
        "samples": 40,
        "trained_samples": 38,
        "steps": 6,
        "first_loss": 2.0,
        "final_loss": 0.9,
        "train_seconds": 3.2,
        "validation": {
            "samples": 8, "tokens": 900, "every": 2, "first_loss": 1.5, "final_loss": 1.25, "best_loss": 1.2,
            "best_step": 4,
        },
        # rounded as a summary might be: the table takes the log's own median where there is a log
        "throughput": {"tokens_per_second": 2390.0, "mfu": 0.135, "peak_tflops": 989.0, "device": "H100",
                       "memory_gib": 6.5},
        "run_name": "demo/new",
    }


def old_log() -> list[dict[str, Any]]:
    """A log from before this issue: step, loss, lr, tokens, grad_norm, seconds."""
    return [
        {"step": step, "loss": loss, "lr": 5e-5, "tokens": 400 * step, "grad_norm": 0.5, "seconds": 0.1 * step}
        for step, loss in enumerate([3.0, 2.5, 2.2], start=1)
    ]


def old_summary() -> dict[str, Any]:
    return {"samples": 12, "steps": 3, "first_loss": 3.0, "final_loss": 2.2, "train_seconds": 0.6}


def model_dir(root: Path, name: str, log: list[dict[str, Any]] | None, summary: dict[str, Any] | None) -> Path:
    folder = root / name / "model"
    folder.mkdir(parents=True)
    if log is not None:
        write_jsonl(folder / "training_log.jsonl", log)
    if summary is not None:
        (folder / "training_summary.json").write_text(json.dumps(summary))
    return folder


@pytest.fixture
def runs(tmp_path: Path) -> list[TrainingRun]:
    return [
        read_run("new", model_dir(tmp_path, "new", new_log(), new_summary())),
        read_run("old", model_dir(tmp_path, "old", old_log(), old_summary())),
    ]


# ---------------------------------------------------------------- the figure


def test_the_figure_has_three_panels_and_a_line_per_student(runs: list[TrainingRun]) -> None:
    loss, rate, speed = training_figure(runs).get_axes()
    assert [ax.get_title() for ax in (loss, rate, speed)] == [
        "loss per step (validation: dashed, markers)", "learning rate", "tokens per second",
    ]
    trains = [line for line in loss.lines if line.get_linestyle() == "-"]
    assert [line.get_label() for line in trains] == ["new train", "old train"]
    assert list(trains[0].get_ydata()) == NEW_LOSSES and list(trains[1].get_xdata()) == [1, 2, 3]
    assert len(rate.lines) == len(speed.lines) == 2
    assert list(speed.lines[1].get_ydata()) == pytest.approx([4000.0] * 3)  # tokens / seconds of an old log


def test_validation_points_are_markers_on_a_dashed_line_of_the_students_colour(runs: list[TrainingRun]) -> None:
    loss = training_figure(runs).get_axes()[0]
    (validation,) = [line for line in loss.lines if line.get_linestyle() == "--"]  # the old log has none
    assert validation.get_label() == "new validation" and validation.get_marker() == "o"
    assert list(validation.get_xdata()) == [2, 4, 6] and list(validation.get_ydata()) == [1.5, 1.2, 1.25]
    train = next(line for line in loss.lines if line.get_label() == "new train")
    assert validation.get_color() == train.get_color()
    assert loss.lines[-1].get_color() != train.get_color()  # the next student's colour


def test_wide_rates_go_on_a_log_scale(tmp_path: Path) -> None:
    slow = [dict(entry, tokens_per_second=10.0) for entry in old_log()]
    runs = [read_run("new", model_dir(tmp_path, "new", new_log(), None)), TrainingRun("slow", slow, {})]
    assert training_figure(runs).get_axes()[2].get_yscale() == "log"
    assert training_figure(runs[:1]).get_axes()[2].get_yscale() == "linear"


def test_no_logs_draw_a_figure_that_says_so(tmp_path: Path) -> None:
    empty = read_run("none", model_dir(tmp_path, "none", None, None))
    assert empty.log == [] and empty.summary == {}
    for runs in ([], [empty]):
        (ax,) = training_figure(runs).get_axes()
        assert any("No training log" in text.get_text() for text in ax.texts)


# ---------------------------------------------------------------- the final numbers


def test_the_table_holds_the_logs_final_and_best_values(runs: list[TrainingRun]) -> None:
    new = final_numbers(runs[0])
    assert new == {
        "student": "new",
        "steps": 6,
        "final_train_loss": 0.9,
        "final_val_loss": 1.25,
        "best_val_loss": 1.2,
        "best_val_step": 4,
        "tokens_per_second": pytest.approx(2400.0),  # the median over steps 2..6
        "mfu": pytest.approx(0.14),
        "memory_gib": 6.0,
        "train_seconds": 3.2,
        "samples": 40,
        "validation_samples": 8,
    }


def test_an_old_log_gives_what_it_has_and_dashes_for_the_rest(runs: list[TrainingRun]) -> None:
    old = final_numbers(runs[1])
    assert old["steps"] == 3 and old["final_train_loss"] == 2.2 and old["tokens_per_second"] == pytest.approx(4000.0)
    assert old["train_seconds"] == 0.6 and old["samples"] == 12
    for name in ("final_val_loss", "best_val_loss", "best_val_step", "mfu", "memory_gib", "validation_samples"):
        assert old[name] is None, name
    markdown = training_markdown(training_frame(runs))
    row = next(line for line in markdown.splitlines() if line.startswith("| old "))
    assert row == "| old | 3 | 2.2000 | - | - | - | 4,000 | - | - | 0.6 | 12 | - |"
    new = next(line for line in markdown.splitlines() if line.startswith("| new "))
    assert new == "| new | 6 | 0.9000 | 1.2500 | 1.2000 | 4 | 2,400 | 14.0% | 6.0 | 3.2 | 40 | 8 |"


def test_the_summary_fills_in_what_the_log_lacks_and_nothing_held_out_is_zero() -> None:
    summary = new_summary() | {"validation": None}
    numbers = final_numbers(TrainingRun("s", [], summary))
    assert numbers["steps"] == 6 and numbers["final_train_loss"] == 0.9
    assert numbers["tokens_per_second"] == 2390.0 and numbers["mfu"] == 0.135 and numbers["memory_gib"] == 6.5
    assert numbers["validation_samples"] == 0 and numbers["final_val_loss"] is None
    from_summary = final_numbers(TrainingRun("s", [], new_summary()))
    assert (from_summary["final_val_loss"], from_summary["best_val_loss"], from_summary["best_val_step"]) == (
        1.25, 1.2, 4
    )


def test_write_training_report_writes_the_png_csv_and_markdown(tmp_path: Path) -> None:
    models = {
        "new": model_dir(tmp_path, "new", new_log(), new_summary()),
        "old": model_dir(tmp_path, "old", old_log(), old_summary()),
        "broken": model_dir(tmp_path, "broken", [], {}),  # an empty log and summary
    }
    out = tmp_path / "report"
    out.mkdir()
    write_training_report(models, out / "curves.png", out / "training.csv", out / "training.md")
    assert (out / "curves.png").read_bytes().startswith(PNG)
    frame = pl.read_csv(out / "training.csv")
    assert frame.columns == list(COLUMNS) and frame["student"].to_list() == ["new", "old", "broken"]
    assert frame["final_val_loss"].to_list() == [1.25, None, None]
    assert "| broken | - | - |" in (out / "training.md").read_text()
    empty = tmp_path / "empty.md"
    write_training_report({}, out / "none.png", out / "none.csv", empty)
    assert "No student was fine-tuned" in empty.read_text()


# ---------------------------------------------------------------- beside pass@1


SUMMARY = pl.DataFrame({
    "target": ["base", "base", "base", "tuned", "tuned"],
    "split": ["lazy", "descriptive", "overall", "lazy", "overall"],
    "problems": [2, 2, 2, 2, 2],
    "samples": [4, 4, 8, 4, 4],
    "pass@1": [10.0, 30.0, 20.0, 50.0, 50.0],
    "strict_pass@1": [10.0, 20.0, 15.0, 50.0, 50.0],
    "early_exits": [0, 2, 2, 0, 0],
    "excess_code": [1.5, None, 1.5, None, None],
    "excess_code_se": [0.5, None, 0.5, None, None],
    "excluded": [None] * 5,
    "isolation": ["userns(user,mount,pid,net,ipc,uts) memory=4096MB"] * 5,
})


def test_students_final_losses_sit_beside_their_pass_at_1() -> None:
    training = pl.DataFrame({"student": ["tuned"], "final_train_loss": [0.9], "final_val_loss": [1.25]})
    table = with_training(pass_at_1_table(SUMMARY), training)
    assert table.columns[-4:] == ["final train loss", "final val loss", "source", "check"]
    rows = {row["model"]: row for row in table.iter_rows(named=True)}
    assert (rows["tuned"]["final train loss"], rows["tuned"]["final val loss"]) == (0.9, 1.25)
    assert rows["base"]["final train loss"] is None and table.height == pass_at_1_table(SUMMARY).height


def test_write_tables_with_training_csv_shows_the_losses(tmp_path: Path) -> None:
    merge_frames({"canitedit": SUMMARY}).write_csv(tmp_path / "summary.csv")
    (tmp_path / "funnel.json").write_text(json.dumps({"stages": stage_counts({"a": {"kept": 1}})}))
    runs = [TrainingRun("tuned", new_log(), new_summary()), TrainingRun("old", old_log(), old_summary())]
    training_frame(runs).write_csv(tmp_path / "training.csv")
    paths = [tmp_path / name for name in ("summary.csv", "funnel.json", "p.html", "f.html")]
    write_tables(*paths, training_csv=tmp_path / "training.csv")
    page = (tmp_path / "p.html").read_text()
    assert "<th>final train loss</th><th>final val loss</th><th>source</th>" in page
    assert '<td>tuned</td><td class="number">50.00</td>' in page
    assert '<td class="number">0.90</td><td class="number">1.25</td><td>measured</td>' in page
    assert "a dash for targets not fine-tuned in this run" in page
    write_tables(*paths)
    assert "final train loss" not in (tmp_path / "p.html").read_text()
