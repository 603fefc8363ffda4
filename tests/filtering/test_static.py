"""The static checks on ruff and tree-sitter: each check in each program, the switches, what must not be flagged."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from editforge.filtering import static, static_names
from editforge.filtering.static import (
    DEFAULT_STATIC_CHECKS,
    Issue,
    is_markup_comment,
    is_placeholder_comment,
    static_issues,
)
from editforge.filtering.static_names import StaticCheckError
from helpers.triplets import INVENTORY, INVENTORY_AFTER, triplet

TOTAL = "        return sum(self.items.values())\n"  # line 14 of both programs
MOST_COMMON = "        return max(self.items, key=self.items.get)\n"  # line 19 of the post-edit program


def only(check: str) -> dict[str, bool]:
    return {name: name == check for name in DEFAULT_STATIC_CHECKS}


def issue_of(
    pre: str = INVENTORY, post: str = INVENTORY_AFTER, switches: dict[str, bool] | None = None
) -> Issue | None:
    return static_issues([triplet(pre_code=pre, post_code=post)], switches)[0]


# Each check, planted in one program at a known line: (check, program, detail without "<program> ").
PLANTED = {
    "missing_imports": (
        TOTAL.replace("sum(", "math.fsum("),
        "line 14: module 'math' used without an import (standard library)",
    ),
    "undefined_names": (TOTAL.replace("sum(", "weighted_sum("), "line 14: undefined name 'weighted_sum'"),
    "leftover_markup": (TOTAL + "        # ```python\n", "line 15: leftover markup '# ```python'"),
    "truncated_code": (
        "    # ... rest of the code unchanged\n",
        "line 13: placeholder comment '# ... rest of the code unchanged'",
    ),
}


def planted(program: str, check: str) -> str:
    old = "    def total(self):\n" + TOTAL if check == "truncated_code" else TOTAL
    return program.replace(old, PLANTED[check][0])


@pytest.mark.parametrize("field", ["pre_code", "post_code"])
@pytest.mark.parametrize("check", list(PLANTED))
def test_each_check_names_its_program_reason_and_line(check: str, field: str) -> None:
    programs = {"pre_code": INVENTORY, "post_code": INVENTORY_AFTER}
    programs[field] = planted(programs[field], check)
    if field == "pre_code" and check in ("missing_imports", "undefined_names"):
        programs["post_code"] = planted(programs["post_code"], check)  # a pre-edit name the edit leaves undefined
    reason = f"{field}_{static.REASONS[check]}"
    assert issue_of(programs["pre_code"], programs["post_code"]) == Issue(reason, f"{field} {PLANTED[check][1]}")
    # Its switch off keeps the triplet; the other checks still run and find nothing.
    assert issue_of(programs["pre_code"], programs["post_code"], {check: False}) is None
    assert issue_of(programs["pre_code"], programs["post_code"], only(check)) == Issue(
        reason, f"{field} {PLANTED[check][1]}"
    )


def test_order_pre_before_post_then_markup_truncated_missing_import_undefined_name() -> None:
    def broken_names(program: str) -> str:
        program = program.replace(TOTAL, TOTAL.replace("sum(", "weighted_sum("))
        return program.replace("        self.items = {}\n", "        self.items = np.zeros(3)\n")

    post = broken_names(planted(INVENTORY_AFTER, "leftover_markup"))
    pre = broken_names(INVENTORY) + "\n# ... existing code ...\n"
    assert issue_of(pre, post).reason == "pre_code_truncated"
    assert issue_of(pre, post, {"truncated_code": False}).reason == "pre_code_missing_import"
    assert issue_of(pre, post, {"truncated_code": False, "missing_imports": False}).detail == (
        "pre_code line 14: undefined name 'weighted_sum'"
    )
    assert issue_of(pre, post, only("leftover_markup")).reason == "post_code_leftover_markup"


@pytest.mark.parametrize(
    ("line", "reason", "detail"),
    [
        ("return np.array(list(self.items))", "missing_import", "module 'np' used without an import (numpy)"),
        ("return plt.show()", "missing_import", "module 'plt' used without an import (matplotlib.pyplot)"),
        ("return json.dumps(self.items)", "missing_import", "module 'json' used without an import (standard library)"),
        ("return helper(self.items)", "undefined_name", "undefined name 'helper'"),
        ("return len(json)", "undefined_name", "undefined name 'json'"),  # a module's name, not used as a module
        ("return 'é' + déjà_vu(self.items)", "undefined_name", "undefined name 'déjà_vu'"),  # columns in characters
        ("print(count)\n        count = 1", "undefined_name", "undefined name 'count'"),
    ],
)
def test_names_are_read_from_the_source_at_ruffs_location(line: str, reason: str, detail: str) -> None:
    post = INVENTORY_AFTER.replace(MOST_COMMON, f"        {line}\n")
    assert issue_of(post=post) == Issue(f"post_code_{reason}", f"post_code line 19: {detail}")


def test_windows_line_ends_give_the_same_lines() -> None:
    for check, (line, detail) in PLANTED.items():
        post = planted(INVENTORY_AFTER, check).replace("\n", "\r\n")
        assert issue_of(post=post) == Issue(f"post_code_{static.REASONS[check]}", f"post_code {detail}")


def test_all_and_local_before_assignment() -> None:
    exports = '\n\n__all__ = ["Inventory", "Shelf"]\n'
    assert issue_of(pre=INVENTORY + exports, post=INVENTORY_AFTER + exports).detail == (
        "pre_code line 17: undefined name 'Shelf' in __all__"
    )
    shadowed = "limit = 3\n\n\ndef clip(x):\n    if x > limit:\n        limit = x\n    return limit\n"
    assert issue_of(post=shadowed).detail == "post_code line 5: local variable 'limit' referenced before assignment"


def test_a_pre_edit_name_the_edit_defines_is_the_bug_it_fixes_not_a_broken_sample() -> None:
    """A missing import added or a variable set by the edit: a bug-fix triplet (CanItEdit's 38_high_order
    is one), kept; the same name still undefined after the edit drops it, named in the pre-edit program."""
    unimported = INVENTORY.replace(TOTAL, TOTAL.replace("sum(", "math.fsum("))
    imported = "import math\n" + INVENTORY_AFTER.replace(TOTAL, TOTAL.replace("sum(", "math.fsum("))
    assert issue_of(pre=unimported, post=imported) is None
    unset = "def total(xs):\n    for x in xs:\n        count += x\n    return count\n"
    fixed = "def total(xs):\n    count = 0\n    for x in xs:\n        count += x\n    return count\n"
    assert issue_of(pre=unset, post=fixed) is None
    still = "def total(xs):\n    for x in xs:\n        count += x * 2\n    return count\n"
    assert issue_of(pre=unset, post=still).reason == "pre_code_undefined_name"
    # Dropping the code that used the name fixes nothing: the pre-edit program was broken.
    assert issue_of(pre=unset, post="def total(xs):\n    return sum(xs)\n").detail.startswith(
        "pre_code line 3: "
    )


def test_a_program_of_comments_alone_is_truncated_code() -> None:
    """What the embedded model writes at times: prose in comments where the edited program should be."""
    prose = "# This is a refactored version of the original one.\n# Instead, it is a rewritten version.\n"
    assert issue_of(post=prose) == Issue("post_code_truncated", "post_code no statement, only comments")
    assert issue_of(pre=prose).reason == "pre_code_truncated"
    assert issue_of(post=prose, switches={"truncated_code": False}) is None


def test_a_star_import_hides_what_is_defined_so_nothing_is_flagged() -> None:
    starred = "from math import *\n\n__all__ = ['root']\n\n\ndef root(x):\n    return sqrt(x) + tau\n"
    assert issue_of(pre=starred, post=starred.replace("+ tau", "- tau")) is None


def test_a_noqa_comment_does_not_hide_an_undefined_name() -> None:
    post = INVENTORY_AFTER.replace(MOST_COMMON, "        return helper(self)  # noqa: F821\n")
    assert issue_of(post=post).reason == "post_code_undefined_name"


def test_newer_syntax_is_analyzed_not_flagged() -> None:
    """3.12 generics and type aliases, 3.14's unparenthesised except: names still checked, no syntax error."""
    modern = (
        "type Pair[T] = tuple[T, T]\n\n\nclass Heap[T]:\n    def __init__(self) -> None:\n"
        "        self.items: list[T] = []\n\n    def pop(self) -> T:\n        try:\n"
        "            return self.items.pop()\n        except IndexError, KeyError:\n"
        "            raise LookupError('empty heap') from None\n"
    )
    assert issue_of(pre=modern, post=modern.replace("'empty heap'", "'no items'")) is None
    newer_builtin = modern.replace("LookupError('empty heap')", "PythonFinalizationError()")  # Python 3.13's
    assert issue_of(pre=modern, post=newer_builtin) is None
    broken = modern.replace("self.items.pop()", "heapq.heappop(self.items)")
    assert issue_of(pre=modern, post=broken).detail == (
        "post_code line 10: module 'heapq' used without an import (standard library)"
    )


@pytest.mark.parametrize(
    "comment",
    [
        "# ```python", "# ```", "# [Program After Edit]", "# Program Before Edit", "# **Program After Edit:**",
        "# [Descriptive]", "# **Lazy**", "## Lazy", "# Lazy:", "# <think>", "# </think>", "# <UNREASONABLE>",
        "### Explanation", "## Updated code", "# ## Updated Code", "# **Explanation:**", "# Explanation:",
        "## Changes made", "# **Key changes:**", "# Here is the updated code:", "## 1. Explanation",
    ],
)  # fmt: skip
def test_markup_comments(comment: str) -> None:
    assert is_markup_comment(comment)
    post = INVENTORY_AFTER.replace("    def most_common", f"    {comment}\n    def most_common")
    assert issue_of(post=post) == Issue("post_code_leftover_markup", f"post_code line 16: leftover markup {comment!r}")


@pytest.mark.parametrize(
    "comment",
    [
        "# Helpers", "# Example usage", "# Example usage:", "## Constants", "# Lazy evaluation of the cache", "# lazy",
        "# Descriptive statistics", "# Changes the value", "# Updated every second", "# Output:", "## Notes",
        "# code before the loop", "# Program entry point", "# Here is where we sort", "# ~~~~~~~~~~", "# ``````````",
        "# Here is the final assembly of the values", "# here is the new standard location for fonts",
    ],
)  # fmt: skip
def test_comments_that_are_not_markup(comment: str) -> None:
    assert not is_markup_comment(comment)
    assert issue_of(post=INVENTORY_AFTER.replace("    def most_common", f"    {comment}\n    def most_common")) is None


@pytest.mark.parametrize(
    "comment",
    [
        "# ...", "# …", "# . . .", "# ... existing code ...", "# rest of the code (remains) unchanged",
        "# Rest of the code unchanged", "# ... rest unchanged", "# other methods unchanged",
        "# remaining methods omitted", "# existing code as before", "# previous methods ... unchanged",
        "# same as before", "# implementation omitted", "# (unchanged)", "# [snip]", "# Other methods remain the same",
        "# code omitted for brevity",
        "# existing code here", "# ...other methods...", "# Rest of the class", "# keep existing code",
        "# The rest of the function remains the same", "# Previous code remains unchanged", "# ... more code ...",
    ],
)  # fmt: skip
def test_placeholder_comments(comment: str) -> None:
    assert is_placeholder_comment(comment)
    post = INVENTORY_AFTER.replace(TOTAL, f"{TOTAL}        {comment}\n")
    assert issue_of(post=post) == Issue("post_code_truncated", f"post_code line 15: placeholder comment {comment!r}")


@pytest.mark.parametrize(
    "comment",
    [
        "# keep the order unchanged", "# values stay unchanged if empty", "# ...and then merge",
        "# Other helpers below", "# Same as above but reversed", "# TODO: implement caching",
        "# The rest of the list is sorted",
        "# existing entries are kept", "# skip existing files", "# remaining items", "# return unchanged input",
        "# wait...", "# fall back to the existing value unchanged", "# Processing the file...", "# Loading data...",
        "# Handle the rest of the lines...", "# other cases...", "# blank lines removed", "# long lines truncated",
        "# Same as above", "# truncated",
    ],
)  # fmt: skip
def test_real_comments_are_not_placeholders(comment: str) -> None:
    assert not is_placeholder_comment(comment)
    assert issue_of(post=INVENTORY_AFTER.replace(TOTAL, f"{TOTAL}        {comment}\n")) is None


def test_markup_and_placeholders_inside_strings_are_text() -> None:
    docstring = (
        '    def total(self):\n        """Sum of counts, e.g.\n\n        ```python\n        # ```python\n'
        "        [Lazy]\n        ### Explanation\n        # ... rest of the code unchanged\n        ```\n"
        '        """\n'
    )
    pre = INVENTORY.replace("    def total(self):\n", docstring)
    post = INVENTORY_AFTER.replace("    def total(self):\n", docstring)
    assert issue_of(pre, post) is None
    assert issue_of(pre + "\n[Lazy]\n", post).detail == "pre_code line 25: leftover markup '[Lazy]'"


@pytest.mark.parametrize(("body", "cut_to"), [("...", "..."), ("pass", "pass"), ('"""Sum."""\n        ...', "...")])
def test_a_post_edit_body_cut_to_a_stub_is_truncated(body: str, cut_to: str) -> None:
    post = INVENTORY_AFTER.replace(TOTAL, f"        {body}\n")
    assert issue_of(post=post) == Issue(
        "post_code_truncated", f"post_code line 13: body of 'Inventory.total' cut to {cut_to!r}"
    )


@pytest.mark.parametrize(
    ("pre_total", "post_total"),
    [
        ("        pass\n", "        ...\n"),  # a stub before too
        ('        """Sum."""\n', "        pass\n"),  # only a docstring before
        (TOTAL, "        raise NotImplementedError\n"),  # a body, if a poor one
    ],
)
def test_stubs_that_are_not_truncation(pre_total: str, post_total: str) -> None:
    pre, post = INVENTORY.replace(TOTAL, pre_total), INVENTORY_AFTER.replace(TOTAL, post_total)
    assert issue_of(pre, post, only("truncated_code")) is None
    abstract = INVENTORY_AFTER.replace("    def total", "    @abstractmethod\n    def total").replace(
        TOTAL, "        ...\n"
    )
    assert issue_of(post=abstract, switches=only("truncated_code")) is None


def test_ruff_runs_once_per_call_and_not_at_all_with_its_checks_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    commands: list[list[str]] = []
    real_run = subprocess.run

    def spy(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        return real_run(command, **kwargs)

    monkeypatch.setattr(static_names.subprocess, "run", spy)
    records = [triplet(str(i), post_code=INVENTORY_AFTER + f"\nLIMIT = {i}\n") for i in range(5)]
    with caplog.at_level(logging.INFO, logger="editforge.filtering.static_names"):
        assert static_issues(records) == [None] * 5
    assert sum("check" in command for command in commands) == 1
    assert any("ruff 0." in message and "10 programs" in message for message in caplog.messages)
    commands.clear()
    off = {"missing_imports": False, "undefined_names": False}
    assert static_issues(records, off) == [None] * 5
    assert static_issues(records, dict.fromkeys(DEFAULT_STATIC_CHECKS, False)) == [None] * 5
    assert commands == []


def test_an_unknown_switch_is_named() -> None:
    with pytest.raises(ValueError, match="filtering.static_checks: unknown check 'unused_imports'"):
        static_issues([triplet()], {"unused_imports": True})


def fake_ruff(folder: Path, check: str) -> str:
    """A ruff that answers --version and config as ruff does, and ``check`` with ``check`` (shell)."""
    script = folder / "ruff"
    config = '{"value_type": "\\"py311\\" | \\"py312\\""}'
    script.write_text(f"#!/bin/sh\ncase \"$1\" in\n  --version) echo 'ruff 0.0.1';;\n  config) echo '{config}';;\n"
                      f"  *) {check};;\nesac\n")  # fmt: skip
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ("echo 'not json'", "cannot read ruff's output"),
        ('echo \'[{"code": "F821"}]\'', r"cannot read ruff's output \(KeyError"),
        ("echo 'error: unexpected argument' >&2; exit 2", r"`ruff check --isolated` failed with exit status 2 \(error"),
    ],
)
def test_a_broken_ruff_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, check: str, message: str
) -> None:
    monkeypatch.setattr(static_names, "ruff_binary", lambda: fake_ruff(tmp_path, check))
    with pytest.raises(StaticCheckError, match=message):
        static_issues([triplet()])


def test_a_missing_ruff_binary_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(static_names, "ruff_binary", lambda: str(tmp_path / "absent/ruff"))
    with pytest.raises(StaticCheckError, match=r"cannot run ruff at .*absent/ruff .*`pip install ruff`"):
        static_issues([triplet()])


def test_a_missing_ruff_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ruff", None)  # as if not installed: its import fails
    with pytest.raises(StaticCheckError, match=r"needs ruff, which is not installed here .*`pip install ruff`"):
        static_issues([triplet()])
