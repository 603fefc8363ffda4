"""The one edit-prompt format shared by training and evaluation.

The reference scripts train with one layout and evaluate with another (header
colons, fencing probability, blank lines, a stray quote in the system prompt).
Here the dataset stage and the evaluation stage both call ``edit_messages``, so
a model is scored on exactly the prompt it was trained on. The benchmark's own
formats (for published models) live in ``evaluation.py``.
"""

from __future__ import annotations

SYSTEM_PROMPT = (
    "You are a code editor. You will be provided the original code snippet and an "
    "instruction that specifies the changes you need to make. You will produce the "
    "changed code, based on the original code and the instruction given. Only produce "
    "the code, do not include any additional prose."
)

FENCE_OPEN = "```python\n"
FENCE_CLOSE = "\n```"


def edit_user_prompt(before: str, instruction: str) -> str:
    return (
        f"## Code Before:\n{FENCE_OPEN}{before.rstrip()}{FENCE_CLOSE}\n"
        f"## Instruction:\n{instruction.strip()}\n"
        "## Code After:"
    )


def edit_answer(after: str) -> str:
    return f"{FENCE_OPEN}{after.rstrip()}{FENCE_CLOSE}"


def edit_messages(before: str, instruction: str) -> list[dict[str, str]]:
    """System and user turns asking for the edited program."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": edit_user_prompt(before, instruction)},
    ]


def training_messages(before: str, instruction: str, after: str) -> list[dict[str, str]]:
    """A full training conversation: the edit prompt and the fenced answer."""
    return [*edit_messages(before, instruction), {"role": "assistant", "content": edit_answer(after)}]


def render_plain(messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
    """A fixed text layout for tokenizers without a chat template (base models).

    Each turn is ``<role>:`` on its own line followed by its text; the prompt ends
    with ``assistant:`` and a newline so the answer starts on a fresh line.
    """
    parts = [f"{m['role']}:\n{m['content']}\n" for m in messages]
    if add_generation_prompt:
        parts.append("assistant:\n")
    return "\n".join(parts)
