"""How a model is asked for an edit, and how its answer becomes a program.

Three prompt formats (a model's ``prompt_format``):

* ``editforge``: our own chat format (``edit_format.edit_messages``), the one the
  fine-tuned students are trained on.
* ``canitedit-direct``: the benchmark's text-completion prompt for base models
  and EditCoder: ``## Code Before:`` / ``## Instruction:`` / ``## Code After:``
  lines, no fences, with the harness's stop strings.
* ``canitedit-chat``: the benchmark's paper-era chat prompt: the PythonEditGPT
  system prompt, a one-shot example (add/sub) as a user/assistant pair, then the
  problem in the same form.

``postprocess`` turns an answer into the program that is tested; its docstring
lists every rule and where it departs from the benchmark's own harness.
"""

from __future__ import annotations

import ast
import re
from dataclasses import replace
from typing import Literal

from editforge.backend import Request, Sampling
from editforge.edit_format import edit_messages
from editforge.evaluation.benchmark import Problem
from editforge.records import STYLES, Style

PromptFormat = Literal["editforge", "canitedit-direct", "canitedit-chat"]
PROMPT_FORMATS: tuple[PromptFormat, ...] = ("editforge", "canitedit-direct", "canitedit-chat")

# The harness's stop list for its direct (EditCoder) format.
DIRECT_STOPS = ("## Code After:", "## Instruction:", "## Code Before:", "## Test Case:", "## Explanation:")

CHAT_SYSTEM_PROMPT = (
    "You are PythonEditGPT. You will be provided the original code snippet and an instruction that "
    "specifies the changes you need to make. You will produce the changed code, based on the original "
    "code and the instruction given. Only produce the code, do not include any additional prose."
)

# The one-shot example of the chat format (the shape the harness uses: add a
# `sub` function, add docstrings, rename the parameters).
ONE_SHOT_BEFORE = "def add(a, b):\n    return a + b"
ONE_SHOT_INSTRUCTION = (
    'Add a "sub" function that subtracts two numbers. Also write docstrings for both functions and change a,b to x,y.'
)
ONE_SHOT_AFTER = (
    "def add(x, y):\n"
    '    """Adds two numbers."""\n'
    "    return x + y\n"
    "\n"
    "\n"
    "def sub(x, y):\n"
    '    """Subtracts y from x."""\n'
    "    return x - y"
)

# A fence tag that names Python; the fence line is never code when it is one of these.
_PYTHON_TAG = re.compile(r"(?i)(py|python)[0-9.]*")


def instruction(problem: Problem, kind: Style) -> str:
    if kind not in STYLES:
        raise ValueError(f"instruction kind must be one of {', '.join(STYLES)}, got {kind!r}")
    return problem["instruction_lazy"] if kind == "lazy" else problem["instruction_descriptive"]


def build_request(problem: Problem, kind: Style, fmt: str, sampling: Sampling, n: int) -> Request:
    """The request asking for ``n`` samples of ``problem``'s edit in format ``fmt``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    text = instruction(problem, kind)
    if fmt == "editforge":
        return Request(messages=edit_messages(problem["before"], text), sampling=sampling, n=n)
    if fmt == "canitedit-direct":
        stops = tuple(dict.fromkeys((*sampling.stop, *DIRECT_STOPS)))
        return Request(prompt=direct_prompt(problem["before"], text), sampling=replace(sampling, stop=stops), n=n)
    if fmt == "canitedit-chat":
        return Request(messages=chat_messages(problem["before"], text), sampling=sampling, n=n)
    raise ValueError(f"unknown prompt_format {fmt!r}; expected one of {', '.join(PROMPT_FORMATS)}")


def direct_prompt(before: str, instruction_text: str) -> str:
    return f"## Code Before:\n{before}\n## Instruction:\n{instruction_text}\n## Code After:\n"


def chat_messages(before: str, instruction_text: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": CHAT_SYSTEM_PROMPT},
        {"role": "user", "content": _chat_user(ONE_SHOT_BEFORE, ONE_SHOT_INSTRUCTION)},
        {"role": "assistant", "content": f"## Code After\n```py\n{ONE_SHOT_AFTER}\n```"},
        {"role": "user", "content": _chat_user(before, instruction_text)},
    ]


def _chat_user(before: str, instruction_text: str) -> str:
    return f"## Code Before\n```py\n{before}\n```\n\n## Instruction\n{instruction_text}"


def postprocess(text: str, fmt: str) -> str:
    """The program to test, from a model's answer ``text`` in format ``fmt``.

    Rules (each is tested):

    * ``canitedit-direct``: the text is cut at the first stop string (a backend
      that ignores stops is handled the same). If the answer then *opens* with a
      fence (first non-blank line), the fenced block is the program; otherwise
      the raw text is. A fence later in the text is left alone, so code whose
      strings contain backticks survives (the harness at HEAD takes the first
      fence anywhere; the paper-era harness kept the raw text).
    * Chat formats (``editforge``, ``canitedit-chat``): the first fenced block
      anywhere in the answer (models often write a sentence first). With no
      fence, the raw text if it parses as Python, else ``""`` (a failure). The
      harness returns ``""`` for any answer without a fence; code given bare is
      kept here, prose is not.
    * A fenced block is the lines after the opening fence line up to the next
      line that starts with a fence, or to the end when the answer was cut off.
      The opening line's tag is dropped only when it names Python (``python``,
      ``py``, ``python3``, any case); anything else written after the backticks
      is kept as the first code line. An untagged fence keeps its first code
      line (the harness drops the first line of every block, assuming a tag).
      When the opening fence is indented, that much indentation is removed from
      each line (as CommonMark does), so a fence inside a list item still gives
      top-level code.
    * A trailing ``# Example usage`` section is kept: the harness cut it only in
      its newer direct format, and the paper's numbers, which we compare with,
      come from code that ran it as written.
    """
    if fmt == "canitedit-direct":
        text = _cut_at_stops(text, DIRECT_STOPS)
        opening = next((line for line in text.splitlines() if line.strip()), "")
        block = first_fenced_block(text) if opening.lstrip().startswith("```") else None
        return text if block is None else block
    if fmt in ("editforge", "canitedit-chat"):
        block = first_fenced_block(text)
        if block is not None:
            return block
        return text if text.strip() and _parses(text) else ""
    raise ValueError(f"unknown prompt_format {fmt!r}; expected one of {', '.join(PROMPT_FORMATS)}")


def first_fenced_block(text: str) -> str | None:
    """The content of the first ``` block (see ``postprocess``), or None without one."""
    lines = text.split("\n")
    for start, line in enumerate(lines):
        stripped = line.lstrip(" ")
        if not stripped.startswith("```"):
            continue
        indent = len(line) - len(stripped)
        tag = stripped.lstrip("`").strip()
        body = [] if not tag or _PYTHON_TAG.fullmatch(tag.split()[0]) else [tag]
        for inner in lines[start + 1 :]:
            if inner.lstrip().startswith("```"):
                break
            body.append(_unindent(inner, indent))
        return "\n".join(body)
    return None


def _unindent(line: str, indent: int) -> str:
    removable = len(line) - len(line.lstrip(" "))
    return line[min(indent, removable) :]


def _cut_at_stops(text: str, stops: tuple[str, ...]) -> str:
    cut = min((i for i in (text.find(stop) for stop in stops) if i >= 0), default=len(text))
    return text[:cut]


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True
