"""Per-triplet checks: syntax, a real change, diff size, instruction length and leaks."""

from __future__ import annotations

from typing import Any

import pytest

from editforge.filtering.checks import count_sentences, filter_triplet
from helpers.triplets import INVENTORY, INVENTORY_AFTER, SETTINGS, numbered_functions, triplet


def test_valid_triplet_passes() -> None:
    assert filter_triplet(triplet(), SETTINGS) is None


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"pre_code": "def broken(:\n    pass\n"}, "pre_code_syntax"),
        ({"pre_code": "  \n"}, "pre_code_syntax"),
        ({"post_code": INVENTORY_AFTER + "    return )\n"}, "post_code_syntax"),
        ({"instruction_lazy": " \n"}, "empty_instruction"),
        ({"instruction_descriptive": ""}, "empty_instruction"),
        (
            # Comments, blank lines, spacing and quoting only.
            {
                "post_code": "# inventory\n"
                + INVENTORY.replace('"not enough "', "'not enough '")
                .replace("\n\n", "\n    # why\n\n\n")
                .replace("(self,", "( self ,")
            },
            "no_change",
        ),
        ({"instruction_lazy": "Add a method. It returns the top item. Name it most_common. Do it."}, "lazy_too_long"),
        ({"instruction_lazy": "Add:\n- a method\n- for the top item\n- named most_common"}, "lazy_too_long"),
        (
            {"instruction_descriptive": f"Rewrite the program as:\n```python\n{INVENTORY_AFTER}```"},
            "descriptive_leaks_post_code",
        ),
        (
            {
                "instruction_descriptive": "Add this method to the class:\n    def most_common(self):\n"
                "        if not self.items:\n            return None\n"
                "        return max(self.items, key=self.items.get)"
            },
            "descriptive_leaks_post_code",
        ),
        ({"post_code": INVENTORY + "\n" + numbered_functions(25)}, "too_many_changed_lines"),
        (
            {"pre_code": numbered_functions(40), "post_code": numbered_functions(40, {0, 5, 10, 15, 20, 25, 30, 35})},
            "too_many_hunks",
        ),
    ],
)
def test_each_check_drops_with_its_reason(fields: dict[str, Any], reason: str) -> None:
    assert filter_triplet(triplet(**fields), SETTINGS) == reason


def test_the_syntax_check_knows_the_current_grammar_whatever_python_runs_it() -> None:
    """3.12 generics and 3.14's unparenthesised except pass on any interpreter; Python 2 does not."""
    modern = "class Box[T]:\n    def get(self) -> T:\n        try:\n            return self.item\n" \
             "        except AttributeError, KeyError:\n            return None\n"
    edited = modern.replace("return None", "raise LookupError('empty box') from None")
    fields = {"pre_code": modern, "post_code": edited, "instruction_descriptive": "Raise LookupError when empty."}
    assert filter_triplet(triplet(**fields), SETTINGS | {"min_changed_lines": 1}) is None
    assert filter_triplet(triplet(pre_code="print 'total'\n"), SETTINGS) == "pre_code_syntax"


def test_too_few_changed_lines() -> None:
    assert filter_triplet(triplet(), SETTINGS | {"min_changed_lines": 6}) == "too_few_changed_lines"
    assert filter_triplet(triplet(), SETTINGS | {"min_changed_lines": 5}) is None


def test_seven_hunks_pass_and_a_docstring_change_is_a_change() -> None:
    seven = numbered_functions(40, {0, 5, 10, 15, 20, 25, 30})
    assert filter_triplet(triplet(pre_code=numbered_functions(40), post_code=seven), SETTINGS) is None
    documented = INVENTORY.replace("    def total(self):\n", '    def total(self):\n        """Sum of counts."""\n')
    assert filter_triplet(triplet(post_code=documented), SETTINGS) is None


def test_count_sentences_ignores_code_abbreviations_and_decimals() -> None:
    assert count_sentences("Use `self.items.get()` instead, e.g. for counts above 3.5 items. Then stop!") == 2
    assert count_sentences("Fix it") == 1


def test_quoting_one_new_line_is_not_a_leak() -> None:
    # The default triplet's descriptive instruction quotes one of the four new lines.
    assert "return max(self.items, key=self.items.get)" in triplet()["instruction_descriptive"]
    assert filter_triplet(triplet(), SETTINGS) is None
