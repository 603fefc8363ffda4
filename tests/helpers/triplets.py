"""Support for the filtering tests: the filter settings, small programs and triplet records built from them."""

from __future__ import annotations

from typing import Any

SETTINGS: dict[str, Any] = {
    "min_changed_lines": 1,
    "max_changed_lines": 70,
    "max_hunks": 7,
    "lazy_max_sentences": 3,
    "minhash": {"num_perm": 128, "threshold": 0.8, "shingle_words": 5},
    "decontamination": {"code_containment": 0.25, "instruction_containment": 0.6, "max_contaminated_share": 0.5},
    "execution_check": False,
    "execution_timeout_s": 10,
}

INVENTORY = """class Inventory:
    def __init__(self):
        self.items = {}

    def add(self, name, count):
        self.items[name] = self.items.get(name, 0) + count

    def remove(self, name, count):
        if self.items.get(name, 0) < count:
            raise ValueError("not enough " + name)
        self.items[name] -= count

    def total(self):
        return sum(self.items.values())
"""

INVENTORY_AFTER = (
    INVENTORY
    + """
    def most_common(self):
        if not self.items:
            return None
        return max(self.items, key=self.items.get)
"""
)

TEXT_STATS = """import re


def word_counts(text):
    counts = {}
    for word in re.findall(r"[a-z']+", text.lower()):
        counts[word] = counts.get(word, 0) + 1
    return counts


def longest_word(text):
    words = re.findall(r"[a-z']+", text.lower())
    return max(words, key=len) if words else ""
"""

MATRIX = """def transpose(matrix):
    return [list(row) for row in zip(*matrix)]


def multiply(a, b):
    rows, cols, inner = len(a), len(b[0]), len(b)
    result = [[0] * cols for _ in range(rows)]
    for i in range(rows):
        for j in range(cols):
            for k in range(inner):
                result[i][j] += a[i][k] * b[k][j]
    return result
"""


def triplet(id_: str = "t0", **fields: Any) -> dict[str, Any]:
    record = {
        "id": id_,
        "model": "m1",
        "shard": "0",
        "pair_id": "p0",
        "fewshot_id": "f0",
        "pre_code": INVENTORY,
        "post_code": INVENTORY_AFTER,
        "instruction_lazy": "Add a method that returns the most stocked item.",
        "instruction_descriptive": (
            "Add a method `most_common` to `Inventory` that returns the name with the largest count, "
            "or None when the inventory is empty, ending with `return max(self.items, key=self.items.get)`."
        ),
        "status": "ok",
    }
    return record | fields


def numbered_functions(count: int, changed: set[int] = frozenset()) -> str:
    """``count`` three-line functions; those in ``changed`` return a different value."""
    return "".join(
        f"def f{i}(x):\n    y = x * {i}\n    return y{' + 1' if i in changed else ''}\n\n" for i in range(count)
    )
