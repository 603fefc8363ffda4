"""How a model is asked for an edit, and how its answer becomes a program.

A model's ``prompt_format`` (``PromptFormat``) is our own ``editforge`` chat format, or the
CanItEdit harness at the paper-era version or at HEAD (``CANITEDIT_FORMATS``). Prompts, stop
strings and extraction are byte-exact with the harness version named.
"""

from __future__ import annotations

import ast
import re
from dataclasses import replace
from typing import Literal, get_args

from editforge.backend import Request, Sampling
from editforge.edit_format import edit_messages
from editforge.evaluation.benchmark import Problem
from editforge.records import STYLES, Style

# Prompt formats (a model's ``prompt_format``):
#
# * ``editforge``: our own chat format (``edit_format.edit_messages``), the one the
#   fine-tuned students are trained on, with our own extraction (below).
# * ``canitedit-direct`` and ``canitedit-chat``: the CanItEdit harness
#   (nuprl/CanItEdit ``benchmark/generate_completions.py``) as the CanItEdit
#   paper ran it: commit ``1a87cb4``, whose generation code is the v2 code of
#   2024-03-19. These names are the paper-era versions because the published rows
#   the report quotes beside ours (GPT-4, EditCoder, CodeLlama-Instruct,
#   DeepSeekCoder-Instr, from Cassano et al.) came from this code, and OpenCodeEdit
#   evaluated with a modified copy of it.
# * ``canitedit-direct-head`` and ``canitedit-chat-head``: the same harness at
#   HEAD (``8796791``, 2025-09), which changed stops, extraction and the chat
#   prompt.
PromptFormat = Literal[
    "editforge", "canitedit-direct", "canitedit-chat", "canitedit-direct-head", "canitedit-chat-head"
]
PROMPT_FORMATS: tuple[PromptFormat, ...] = get_args(PromptFormat)
Harness = Literal["paper", "head"]
Family = Literal["direct", "chat"]

# Prompts, stop strings and extraction are byte-exact with the harness version
# named. The direct prompt (``## Code Before:`` / ``## Instruction:`` /
# ``## Code After:`` lines, no fences) is the same in both; the rest differs:
#
# * direct stops: ``PAPER_DIRECT_STOPS`` (3) at the paper, ``HEAD_DIRECT_STOPS``
#   (8) at HEAD.
# * direct program: the raw generation at the paper; at HEAD
#   ``first_fence_span``, or the raw text when that finds no closed fence.
# * chat prompt: at the paper the PythonEditGPT system prompt, a one-shot add/sub
#   user/assistant pair, then the problem; at HEAD the system prompt and the
#   problem (zero-shot), with a ``## Code After`` heading closing the user turn.
# * chat stops: ``[/INST]`` at the paper (its ``chat`` type, for open models
#   served by vLLM; its ``openai`` type, with the same prompt and extraction, sent
#   none), none at HEAD.
# * chat program: ``first_fence_lines`` of the answer stripped of surrounding
#   whitespace at the paper (its chat models strip every answer), of the raw
#   answer at HEAD.
#
# Not reproduced: the paper-era ``--no-system`` switch (system text folded into
# the user turns) and its prompt truncation to 16,384 tokens, which no CanItEdit
# prompt reaches.
#
# Each CanItEdit format: the harness's model type and the harness version it follows.
CANITEDIT_FORMATS: dict[str, tuple[Family, Harness]] = {
    "canitedit-direct": ("direct", "paper"),
    "canitedit-chat": ("chat", "paper"),
    "canitedit-direct-head": ("direct", "head"),
    "canitedit-chat-head": ("chat", "head"),
}

PAPER_DIRECT_STOPS = ("## Code After:", "## Instruction:", "## Code Before:")
# HEAD adds two more headers, then AgentPack's (each starts with a newline).
HEAD_DIRECT_STOPS = (
    *PAPER_DIRECT_STOPS,
    "## Test Case:",
    "## Explanation:",
    "\n# Code Before",
    "\n# Code After",
    "\n# Instruction",
)
# The paper-era `chat` type (open models through vLLM) stopped at Llama-2's turn marker.
PAPER_CHAT_STOPS = ("[/INST]",)
STOPS: dict[tuple[Family, Harness], tuple[str, ...]] = {
    ("direct", "paper"): PAPER_DIRECT_STOPS,
    ("direct", "head"): HEAD_DIRECT_STOPS,
    ("chat", "paper"): PAPER_CHAT_STOPS,
    ("chat", "head"): (),
}

CHAT_SYSTEM_PROMPT = (
    "You are PythonEditGPT. You will be provided the original code snippet and an instruction that "
    "specifies the changes you need to make. You will produce the changed code, based on the original "
    "code and the instruction given. Only produce the code, do not include any additional prose."
)

# The paper-era chat format's one-shot example: add a `sub` function, add
# docstrings, rename the parameters.
ONE_SHOT_BEFORE = "def add(a, b):\n    return a + b"
ONE_SHOT_INSTRUCTION = (
    'Add a "sub" function that subtracts two numbers. Also write docstrings for both functions and change a,b to x,y.'
)
ONE_SHOT_AFTER = (
    "def add(x, y):\n"
    '    """Adds two numbers."""\n'
    "    return x + y\n"
    "\n"
    "def sub(x, y):\n"
    '    """Subtracts two numbers."""\n'
    "    return x - y"
)

FENCE = "```"
# An editforge fence tag that names Python; the fence line is never code when it is one of these.
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
    family, harness = _canitedit(fmt)
    # The harness appends its stops to the caller's.
    sampling = replace(sampling, stop=tuple(dict.fromkeys((*sampling.stop, *STOPS[family, harness]))))
    if family == "direct":
        return Request(prompt=direct_prompt(problem["before"], text), sampling=sampling, n=n)
    return Request(messages=chat_messages(problem["before"], text, harness), sampling=sampling, n=n)


def direct_prompt(before: str, instruction_text: str) -> str:
    return f"## Code Before:\n{before}\n## Instruction:\n{instruction_text}\n## Code After:\n"


def chat_messages(before: str, instruction_text: str, harness: Harness) -> list[dict[str, str]]:
    """The paper-era one-shot conversation, or the zero-shot one of HEAD.

    The harness strips each template once filled in; only the paper's last turn
    can change by it (trailing blanks of the instruction go), so only it is stripped.
    """
    system = {"role": "system", "content": CHAT_SYSTEM_PROMPT}
    fenced = f"## Code Before\n```py\n{before}\n```\n"
    if harness == "head":
        return [system, {"role": "user", "content": f"{fenced}\n## Instruction\n{instruction_text}\n\n## Code After"}]
    return [
        system,
        {
            "role": "user",
            "content": f"## Code Before\n```py\n{ONE_SHOT_BEFORE}\n```\n\n## Instruction\n{ONE_SHOT_INSTRUCTION}",
        },
        {"role": "assistant", "content": f"## Code After\n```py\n{ONE_SHOT_AFTER}\n```"},
        # Unlike the example, no blank line before "## Instruction".
        {"role": "user", "content": f"{fenced}## Instruction\n{instruction_text}".strip()},
    ]


def postprocess(text: str, fmt: str) -> str:
    """The program to test, from a model's answer ``text`` in format ``fmt``.

    CanItEdit formats follow the harness (see the comment above ``CANITEDIT_FORMATS``): the answer
    is cut at the format's first stop string, then

    * ``canitedit-direct``: the cut text as it is;
    * ``canitedit-direct-head``: ``first_fence_span``, or the cut text if that
      finds no closed fence;
    * ``canitedit-chat``: ``first_fence_lines`` of the cut text stripped of
      surrounding whitespace (the harness's chat models strip every answer);
    * ``canitedit-chat-head``: ``first_fence_lines`` of the cut text.

    ``editforge`` (our format, no harness to follow): the first fenced block
    anywhere (``first_fenced_block``); with no fence, the text itself if it is
    Python, else ``""``.

    Our backends honour stop strings; ``postprocess`` cuts at them again, so a
    backend that ignores them gives the same program. Thinking blocks get no special
    treatment, as in the harness: a fence inside one is the first fence.
    """
    if fmt == "editforge":
        block = first_fenced_block(text)
        if block is not None:
            return block
        return text if text.strip() and _parses(text) else ""
    family, harness = _canitedit(fmt)
    text = cut_at_stops(text, STOPS[family, harness])
    if family == "direct":
        if harness == "paper":
            return text
        span = first_fence_span(text)
        return text if span is None else span
    return first_fence_lines(text.strip() if harness == "paper" else text)


def first_fence_lines(text: str) -> str:
    """The harness's chat extraction: every line after the first line that starts
    with three backticks, up to the next such line (or the end), each followed by
    a newline. Whatever follows the opening backticks is dropped with its line; an
    indented fence is no fence. ``""`` without a fence: the sample fails."""
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith(FENCE)), len(lines))
    program = []
    for line in lines[start + 1 :]:
        if line.startswith(FENCE):
            break
        program.append(line + "\n")
    return "".join(program)


def first_fence_span(text: str) -> str | None:
    """HEAD's direct extraction; None without two occurrences of three backticks.

    Works on characters, not lines: the text between the first two occurrences of
    three backticks anywhere (inside a line too), stripped; cut before any
    ``# Example usage:``; its first line dropped as a language tag if more than one
    line remains (a real first code line of an untagged fence goes too); stripped.
    """
    opening = text.find(FENCE)
    if opening < 0:
        return None
    closing = text.find(FENCE, opening + len(FENCE))
    if closing < 0:
        return None
    code = text[opening + len(FENCE) : closing].strip()
    code = code.split("# Example usage:")[0]
    newline = code.find("\n")
    if newline > 0:
        code = code[newline + 1 :]
    return code.strip()


def cut_at_stops(text: str, stops: tuple[str, ...]) -> str:
    """``text`` before the earliest stop string, as a server applying ``stops`` returns it."""
    cut = min((i for i in (text.find(stop) for stop in stops) if i >= 0), default=len(text))
    return text[:cut]


def first_fenced_block(text: str) -> str | None:
    """The ``editforge`` extraction; None without a fence.

    The lines after the first line that opens a fence (after optional spaces),
    up to the next line that starts with one, or to the end when the answer was
    cut off. The opening line's text after the backticks is dropped only when it
    names Python (``python``, ``py``, ``python3``, any case); anything else is
    kept as the first code line, and an untagged fence keeps its first line. An
    indented fence (in a list item) has that much indentation removed from each
    line, as CommonMark does.
    """
    lines = text.split("\n")
    for start, line in enumerate(lines):
        stripped = line.lstrip(" ")
        if not stripped.startswith(FENCE):
            continue
        indent = len(line) - len(stripped)
        tag = stripped.lstrip("`").strip()
        body = [] if not tag or _PYTHON_TAG.fullmatch(tag.split()[0]) else [tag]
        for inner in lines[start + 1 :]:
            if inner.lstrip().startswith(FENCE):
                break
            body.append(_unindent(inner, indent))
        return "\n".join(body)
    return None


def _canitedit(fmt: str) -> tuple[Family, Harness]:
    if fmt not in CANITEDIT_FORMATS:
        raise ValueError(f"unknown prompt_format {fmt!r}; expected one of {', '.join(PROMPT_FORMATS)}")
    return CANITEDIT_FORMATS[fmt]


def _unindent(line: str, indent: int) -> str:
    removable = len(line) - len(line.lstrip(" "))
    return line[min(indent, removable) :]


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True
