"""A stage's failure: the traceback in its log, its message on one line where the user looks first."""

from __future__ import annotations

from pathlib import Path

import pytest

from editforge.stage_log import logged


def test_a_failure_is_logged_whole_and_named_in_one_line_on_stderr(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "logs/stage.log"
    with pytest.raises(ValueError), logged(log):
        print("working")
        raise ValueError("models.coder: cannot reach http://x/v1;\ncheck models.coder.base_url")
    out, err = capfd.readouterr()
    assert err == f"editforge error ({log}): models.coder: cannot reach http://x/v1; check models.coder.base_url\n"
    assert out == ""  # the stage's own output went to the log
    text = log.read_text()
    assert text.startswith("working\n") and "Traceback (most recent call last)" in text


def test_an_unexpected_error_keeps_its_type_and_success_prints_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(KeyError), logged(tmp_path / "a.log"):
        raise KeyError("round1")
    assert capfd.readouterr().err == f"editforge error ({tmp_path / 'a.log'}): KeyError: 'round1'\n"
    with logged(tmp_path / "b.log"):
        print("fine")
    assert capfd.readouterr().err == ""
