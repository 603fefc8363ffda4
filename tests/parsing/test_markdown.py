"""Markdown scanning: thinking blocks removed however they are left."""

from __future__ import annotations

from editforge.parsing.markdown import strip_thinking


def test_strip_thinking_variants() -> None:
    assert strip_thinking("<think>a</think>b<THINK>c</THINK>d") == "bd"
    assert strip_thinking("reasoning without an opening tag</think>answer") == "answer"
    assert strip_thinking("answer<think>cut off") == "answer"
    assert strip_thinking("İİ</think>x") == "x"  # lower-casing changes the length of some letters
