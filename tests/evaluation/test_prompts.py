"""CanItEdit prompts and extraction, byte for byte as the official harness does them.

Expected values come from reading nuprl/CanItEdit ``benchmark/generate_completions.py``
at the paper-era commit 1a87cb4 (``canitedit-direct``, ``canitedit-chat``) and at
HEAD 8796791 (the ``-head`` formats):

* direct, paper: the generation cut at its 3 stop strings, nothing else.
* direct, HEAD: cut at its 8 stop strings; then the text between the first two
  occurrences of three backticks (anywhere, inside a line too), stripped, cut
  before ``# Example usage:``, its first line dropped when more than one line is
  left, stripped again; the cut text itself when there are not two occurrences.
* chat, paper: cut at ``[/INST]``, stripped; then every line after the first line
  that starts with three backticks, up to the next such line, each followed by
  ``"\\n"``; ``""`` without one.
* chat, HEAD: the same lines, from the answer as it came (no stop, no strip).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import pytest

from editforge.backend import Backend, Completion, Request, Sampling
from editforge.evaluation import Problem, build_request, load_benchmark, postprocess

SAMPLING = Sampling(temperature=0.2, top_p=0.95, max_tokens=2048)
CANITEDIT = ("canitedit-direct", "canitedit-direct-head", "canitedit-chat", "canitedit-chat-head")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def problem(benchmark_path: Path) -> Problem:
    """The benchmark's first problem (1_cipher)."""
    first = load_benchmark(str(benchmark_path))[0]
    assert first["full_name"] == "1_cipher"
    return first


# ---------------------------------------------------------------- prompts

SYSTEM = (
    "You are PythonEditGPT. You will be provided the original code snippet and an instruction that specifies "
    "the changes you need to make. You will produce the changed code, based on the original code and the "
    "instruction given. Only produce the code, do not include any additional prose."
)
# sha256 of what the harness's own prompt functions return for 1_cipher's lazy
# instruction (direct_edit_prompt, openai_edit_prompt_1shot at 1a87cb4,
# chat_edit_prompt_zeroshot at HEAD; run once outside this project): the direct
# prompt, and the chat messages as json.dumps(messages).
HARNESS_SHA256 = {
    "canitedit-direct": "72adf80c34dea80142bb08dc65a6388adde70738b596fcf0a6bdd3577d71b15c",
    "canitedit-chat": "21159691bcb248e1403154543c8ed8bcc17701cda6f3b1229c8d1f591f5522e6",
    "canitedit-chat-head": "15f086c92996f886498b764ac77b5ec1d85bcd203d5b64345a0d67780e7800bd",
}


def _digest(request: Request) -> str:
    text = request.prompt if request.prompt is not None else json.dumps(request.messages)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.mark.parametrize("fmt", ["canitedit-direct", "canitedit-direct-head"])
def test_direct_prompt_is_the_harness_prompt(problem: Problem, fmt: str) -> None:
    for kind in ("lazy", "descriptive"):
        instruction = problem["instruction_lazy"] if kind == "lazy" else problem["instruction_descriptive"]
        request = build_request(problem, kind, fmt, SAMPLING, 20)
        assert request.prompt == (
            "## Code Before:\n" + problem["before"] + "\n## Instruction:\n" + instruction + "\n## Code After:\n"
        )
        assert (request.messages, request.n, request.prefill) == ([], 20, "")
    assert _digest(build_request(problem, "lazy", fmt, SAMPLING, 1)) == HARNESS_SHA256["canitedit-direct"]


def test_paper_chat_prompt_is_one_shot(problem: Problem) -> None:
    request = build_request(problem, "lazy", "canitedit-chat", SAMPLING, 20)
    assert request.prompt is None
    assert request.messages == [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": "## Code Before\n"
            "```py\n"
            "def add(a, b):\n"
            "    return a + b\n"
            "```\n"
            "\n"
            "## Instruction\n"
            'Add a "sub" function that subtracts two numbers. Also write docstrings for both functions and '
            "change a,b to x,y.",
        },
        {
            "role": "assistant",
            "content": "## Code After\n"
            "```py\n"
            "def add(x, y):\n"
            '    """Adds two numbers."""\n'
            "    return x + y\n"
            "\n"
            "def sub(x, y):\n"
            '    """Subtracts two numbers."""\n'
            "    return x - y\n"
            "```",
        },
        {
            "role": "user",
            # no blank line before "## Instruction" here, unlike the example
            "content": "## Code Before\n```py\n"
            + problem["before"]
            + "\n```\n## Instruction\n"
            + problem["instruction_lazy"],
        },
    ]
    assert _digest(request) == HARNESS_SHA256["canitedit-chat"]


def test_paper_chat_prompt_strips_the_last_turn(problem: Problem) -> None:
    # The harness strips each filled-in template: trailing blanks of the instruction go.
    padded: Problem = {**problem, "instruction_lazy": problem["instruction_lazy"] + "  \n"}
    last = build_request(padded, "lazy", "canitedit-chat", SAMPLING, 1).messages[-1]["content"]
    assert last.endswith("## Instruction\n" + problem["instruction_lazy"])


def test_head_chat_prompt_is_zero_shot(problem: Problem) -> None:
    request = build_request(problem, "descriptive", "canitedit-chat-head", SAMPLING, 20)
    assert request.messages == [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": "## Code Before\n```py\n"
            + problem["before"]
            + "\n```\n\n## Instruction\n"
            + problem["instruction_descriptive"]
            + "\n\n## Code After",
        },
    ]
    lazy = build_request(problem, "lazy", "canitedit-chat-head", SAMPLING, 1)
    assert _digest(lazy) == HARNESS_SHA256["canitedit-chat-head"]


@pytest.mark.parametrize(
    ("fmt", "stops"),
    [
        ("canitedit-direct", ("## Code After:", "## Instruction:", "## Code Before:")),
        (
            "canitedit-direct-head",
            (
                "## Code After:",
                "## Instruction:",
                "## Code Before:",
                "## Test Case:",
                "## Explanation:",
                "\n# Code Before",
                "\n# Code After",
                "\n# Instruction",
            ),
        ),
        ("canitedit-chat", ("[/INST]",)),
        ("canitedit-chat-head", ()),
        ("editforge", ()),
    ],
)
def test_stop_strings(problem: Problem, fmt: str, stops: tuple[str, ...]) -> None:
    assert build_request(problem, "lazy", fmt, SAMPLING, 1).sampling.stop == stops
    # the harness appends its own stops to the caller's (here without repeating one)
    caller = Sampling(stop=("<|end|>", "## Instruction:"))
    merged = (*caller.stop, *(s for s in stops if s not in caller.stop))
    assert build_request(problem, "lazy", fmt, caller, 1).sampling.stop == merged


class _KeyOnly(Backend):
    kind = "keys"

    def __init__(self) -> None:
        super().__init__("keys", "keys", None, None)

    def close(self) -> None:
        pass

    def generate(self, requests: Sequence[Request], *, desc: str = "generate") -> list[list[Completion]]:
        raise NotImplementedError


def test_every_format_has_its_own_cache_keys(problem: Problem) -> None:
    backend = _KeyOnly()
    keys = {backend.key(build_request(problem, "lazy", fmt, SAMPLING, 1), 0) for fmt in (*CANITEDIT, "editforge")}
    assert len(keys) == 5


def test_unknown_format_is_refused(problem: Problem) -> None:
    with pytest.raises(ValueError, match="unknown prompt_format 'canitedit-chat-zeroshot'"):
        build_request(problem, "lazy", "canitedit-chat-zeroshot", SAMPLING, 1)
    with pytest.raises(ValueError, match="unknown prompt_format 'alpaca'"):
        postprocess("x = 1", "alpaca")


# ---------------------------------------------------------------- extraction


class As(Enum):
    ANSWER = "the answer, unchanged"
    PAPER = "the same as with the paper-era harness"


@dataclass(frozen=True)
class Shape:
    """An answer and the program each CanItEdit format makes of it.

    Written positionally as (name, answer, direct_head, chat): the paper-era
    direct program is the answer itself unless ``direct`` says otherwise, and the
    HEAD chat program is the paper-era one unless ``chat_head`` says otherwise.
    """

    name: str
    answer: str
    direct_head: str | As
    chat: str
    direct: str | As = As.ANSWER
    chat_head: str | As = As.PAPER


def expected(shape: Shape, fmt: str) -> str:
    value = {
        "canitedit-direct": shape.direct,
        "canitedit-direct-head": shape.direct_head,
        "canitedit-chat": shape.chat,
        "canitedit-chat-head": shape.chat_head,
    }[fmt]
    if value is As.PAPER:
        value = expected(shape, fmt.removesuffix("-head"))
    return shape.answer if value is As.ANSWER else value


CODE = "def f(x):\n    return x + 1"
LINES = CODE + "\n"  # the chat extraction ends every line with a newline
BODY = "    return x + 1"

SHAPES = [
    # ---- fences of every kind
    Shape("python tag", f"```python\n{CODE}\n```", CODE, LINES),
    Shape("py tag", f"```py\n{CODE}\n```", CODE, LINES),
    Shape("Python3 tag, newline after the close", f"```Python3\n{CODE}\n```\n", CODE, LINES),
    # HEAD direct drops the first line of every block: here a real code line
    Shape("untagged fence", f"```\n{CODE}\n```", BODY.strip(), LINES),
    Shape("untagged fence, one line", "```\nx = 1\n```", "x = 1", "x = 1\n"),
    Shape("text tag", f"```text\n{CODE}\n```", CODE, LINES),
    Shape("tag with a file name", f"```python:main.py\n{CODE}\n```", CODE, LINES),
    Shape("tag with attributes", f'```python title="f.py"\n{CODE}\n```', CODE, LINES),
    Shape("diff tag", "```diff\n-a = 1\n+a = 2\n```", "-a = 1\n+a = 2", "-a = 1\n+a = 2\n"),
    Shape("four backticks", f"````python\n{CODE}\n````", CODE, LINES),
    Shape("tildes are no fence", f"~~~python\n{CODE}\n~~~", As.ANSWER, ""),
    Shape("code on the opening line", "```x = 1\ny = 2\n```", "y = 2", "y = 2\n"),
    Shape("one-line block", "```x = 1```", "x = 1", ""),
    Shape("empty block", "```python\n```", "python", ""),
    Shape("blank lines inside the block", f"```python\n\n{CODE}\n\n```", CODE, f"\n{CODE}\n\n"),
    Shape(
        "indented code in the block",
        "```python\n    x = 1\n    y = 2\n```",
        "x = 1\n    y = 2",
        "    x = 1\n    y = 2\n",
    ),
    Shape(
        "CRLF line endings",
        "```python\r\ndef f(x):\r\n    return x\r\n```\r\n",
        "def f(x):\r\n    return x",
        "def f(x):\r\n    return x\r\n",
    ),
    Shape("text after the closing backticks", f"```python\n{CODE}\n```Hope this helps!", CODE, LINES),
    Shape("nested fences", f"````markdown\n```python\n{CODE}\n```\n````", "`markdown", ""),
    # ---- indentation
    Shape(
        "indented fence in a list item",
        "1. The edit:\n   ```python\n   def f():\n       return 1\n   ```",
        "def f():\n       return 1",
        "",
    ),
    # the paper strips the answer, so only its first fence line loses its indentation
    Shape(
        "answer opening with an indented fence",
        f"   ```python\n{CODE}\n   ```",
        CODE,
        f"{CODE}\n   ```\n",
        chat_head="",
    ),
    Shape("tab-indented fence", f"\t```python\n{CODE}\n\t```", CODE, f"{CODE}\n\t```\n", chat_head=""),
    Shape(
        "indented backticks inside the code",
        "```python\ndef f():\n    s = '''\n    ```\n    '''\n    return s\n```",
        "def f():\n    s = '''",
        "def f():\n    s = '''\n    ```\n    '''\n    return s\n",
    ),
    Shape("blank lines before the fence", f"\n\n```python\n{CODE}\n```", CODE, LINES),
    # ---- prose before and after
    Shape("prose before", f"Here is the code:\n```python\n{CODE}\n```", CODE, LINES),
    Shape("prose after", f"```python\n{CODE}\n```\nThis adds one.", CODE, LINES),
    Shape("prose around", f"Sure!\n\n```python\n{CODE}\n```\n\nLet me know.", CODE, LINES),
    Shape("heading before, as in the one-shot answer", f"## Code After\n```py\n{CODE}\n```", CODE, LINES),
    Shape("two blocks: the first", "```python\na = 1\n```\nor\n```python\nb = 2\n```", "a = 1", "a = 1\n"),
    Shape("inline backticks in the prose", f"Use ```python``` blocks:\n```python\n{CODE}\n```", "python", LINES),
    Shape("prose only", "I would change the function so that it works.", As.ANSWER, ""),
    # ---- example usage
    Shape(
        "example usage inside the block",
        f"```python\n{CODE}\n\n# Example usage:\nprint(f(1))\n```",
        CODE,
        f"{CODE}\n\n# Example usage:\nprint(f(1))\n",
    ),
    Shape("example usage after the block", f"```python\n{CODE}\n```\n\n# Example usage:\nprint(f(1))", CODE, LINES),
    Shape(
        "example usage without a colon",
        f"```python\n{CODE}\n\n# Example usage\nprint(f(1))\n```",
        f"{CODE}\n\n# Example usage\nprint(f(1))",
        f"{CODE}\n\n# Example usage\nprint(f(1))\n",
    ),
    Shape("example usage, no fence", f"{CODE}\n\n# Example usage:\nprint(f(1))", As.ANSWER, ""),
    # ---- unclosed fences
    Shape("unclosed fence", f"```python\n{CODE}", As.ANSWER, LINES),
    Shape("unclosed fence, trailing newline", f"```python\n{CODE}\n", As.ANSWER, LINES, chat_head=f"{CODE}\n\n"),
    Shape("opening fence only", "```python", As.ANSWER, ""),
    # ---- no fence
    Shape("bare code", CODE, As.ANSWER, ""),
    Shape("bare code with a trailing newline", f"\n{CODE}\n", As.ANSWER, ""),
    # ---- stop strings (cut again here, in case a backend ignored them)
    Shape("direct stop ## Instruction:", f"{CODE}\n## Instruction:\nmore", f"{CODE}\n", "", direct=f"{CODE}\n"),
    Shape("direct stop ## Code After: first", f"## Code After:\n{CODE}", "", "", direct=""),
    Shape(
        "HEAD-only stop ## Test Case:",
        f"{CODE}\n## Test Case:\nassert f(1) == 2",
        f"{CODE}\n",
        "",
    ),
    Shape("HEAD-only stop ## Explanation:", f"{CODE}\n## Explanation:\nI added one.", f"{CODE}\n", ""),
    Shape("HEAD-only AgentPack stop", f"{CODE}\n# Code Before\nold", CODE, ""),
    Shape("HEAD-only AgentPack stop, after a fence", f"```python\n{CODE}\n```\n# Code After\n```", CODE, LINES),
    Shape(
        "a stop inside the block",
        f"```python\n{CODE}\n## Code Before:\nx\n```",
        f"```python\n{CODE}\n",
        f"{CODE}\n## Code Before:\nx\n",
        direct=f"```python\n{CODE}\n",
    ),
    Shape(
        "opening fence, then a stop",
        f"\n```python\n{CODE}\n```\n## Code Before:\n",
        CODE,
        LINES,
        direct=f"\n```python\n{CODE}\n```\n",
    ),
    Shape("chat stop [/INST] before the fence", f"Sure.[/INST]\n```python\n{CODE}\n```", CODE, "", chat_head=LINES),
    Shape("chat stop [/INST] after the fence", f"```python\n{CODE}\n```\n[/INST] again", CODE, LINES),
    # ---- empty answers
    Shape("empty", "", "", ""),
    Shape("blank", "  \n\n", As.ANSWER, ""),
    # ---- thinking blocks (no special treatment in the harness)
    Shape("thinking, then a fence", f"<think>\nAdd one.\n</think>\n\n```python\n{CODE}\n```", CODE, LINES),
    Shape(
        "a fence inside the thinking comes first",
        f"<think>\nMaybe:\n```python\nx = 0\n```\n</think>\n```python\n{CODE}\n```",
        "x = 0",
        "x = 0\n",
    ),
    Shape("cut off while thinking", "<think>\nLet me think", As.ANSWER, ""),
]


def test_the_table_is_large_and_names_are_unique() -> None:
    assert len(SHAPES) >= 40
    assert len({shape.name for shape in SHAPES}) == len(SHAPES)


@pytest.mark.parametrize("fmt", CANITEDIT)
@pytest.mark.parametrize("shape", SHAPES, ids=[shape.name for shape in SHAPES])
def test_extraction_follows_the_harness(shape: Shape, fmt: str) -> None:
    assert postprocess(shape.answer, fmt) == expected(shape, fmt)
