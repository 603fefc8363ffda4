"""Aider's code-editing benchmark: the 133 Exercism Python practice exercises (the 2023 set).

The set is exercism/python ``exercises/practice/`` at commit ``7aef5e9a8940a624f3cd4d604e99955d610058bf``
(2023-06-07, ``EXERCISM_COMMIT``), the last state with the 133 exercises behind Aider's 2023-2024
leaderboard; later clones have 133 different ones. It is not on the hub: ``EDITFORGE_AIDER_EXERCISM``
names a local ``.jsonl`` copy, one record per exercise, ``{"slug", "files": {path: text}}``.

Each exercise asks the model to implement its stub file(s) (every top-level file with no ``test`` in its
name and not starting with ``.``) from the exercise text (introduction, instructions and
``instructions.append``, concatenated as Aider does, then an addendum). The tests (``*_test.py``, with
``test_utils.py`` where there is one) are never shown, nor is anything under ``.meta/``, ``.approaches/``
or ``.articles/``. A sample passes when ``unittest discover`` finds tests in the exercise folder and they
all pass within 60 s; zero tests found is a failure, and so is a candidate that does not import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from editforge.backend import Request, Sampling
from editforge.edit_format import FENCE_CLOSE, FENCE_OPEN, edit_messages
from editforge.evaluation.benchmarks.base import Benchmark, BenchmarkProblem, Program, QuotedRow, folder_program
from editforge.evaluation.prompts import FENCE, postprocess
from editforge.evaluation.sources import BenchmarkError

EXERCISM_COMMIT = "7aef5e9a8940a624f3cd4d604e99955d610058bf"  # exercism/python, 2023-06-07
TIMEOUT_S = 60
KIND = "instructions"

INTRODUCTION = ".docs/introduction.md"
INSTRUCTIONS = ".docs/instructions.md"
APPEND = ".docs/instructions.append.md"
EXAMPLE = ".meta/example.py"
TEST_UTILS = "test_utils.py"


WHOLE_FORMAT_SYSTEM = (
    "You are an expert software developer. You are given a task and the files it concerns; make the "
    "changes the task asks for.\n"
    "Return every file you change as a complete listing, in this format: the file's name alone on one "
    "line, then a fenced code block holding the whole new content of that file, from its first line to "
    'its last. Never leave out, shorten or summarise any part of a file (no "..." and no "rest of the '
    'code unchanged" comments). Do not return files you leave unchanged.\n'
    "For example:\n\n"
    "path/to/file.py\n"
    "```python\n"
    "# the whole content of the file\n"
    "```"
)

ADDENDUM = (
    "\n####\n\n"
    "Use the instructions above to modify the supplied files: {names}\n"
    "Keep the names of the existing functions and classes unchanged, as other code, such as unit tests, "
    "may refer to them.\n"
    "Use only the Python standard library; don't suggest installing any packages.\n"
)

RETRY = (
    "{output}\n\n####\n\n"
    "See the testing errors above. The tests are correct, don't try and change them. "
    "Fix the code in {names} to resolve the errors."
)
RETRY_LINES = 50  # the lines of test output the retry shows

# unittest discovery in the folder: a pass needs at least one test run and every test passing; a
# candidate that does not import is a failed test of discovery, so it fails too. On success the
# program runs to its end (no sys.exit(0)), so the sandbox sees its tests finish.
UNITTEST_COMMAND = (
    "import unittest\n"
    "result = unittest.main(\n"
    "    module=None, argv=['unittest', 'discover', '-s', '.', '-t', '.', '-p', '*_test.py'], exit=False\n"
    ").result\n"
    "if not (result.wasSuccessful() and result.testsRun):\n"
    "    print(f'unittest: {result.testsRun} tests run; not a pass', file=sys.stderr)\n"
    "    sys.exit(1)"
)


def is_stub(path: str) -> bool:
    """A file the model edits: at the top of the folder, no ``test`` in its name, not hidden."""
    return "/" not in path and "test" not in path and not path.startswith(".")


def is_test(path: str) -> bool:
    return "/" not in path and (path.endswith("_test.py") or path == TEST_UTILS)


class AiderExercism(Benchmark):
    """The exercises as one instruction kind (``instructions``), in two prompt formats.

    Formats:

    * ``harness``: Aider's ``whole`` edit format: the model returns each changed file as its name alone on
      a line, then a fenced block with the whole file. A stub's new content is the last fenced block whose
      preceding non-blank line names it (``harness_files``); with one stub, an answer that names no file but
      has exactly one fenced block counts as that stub. No stub found: the answer is not well formed.
    * ``editforge``: our own format (``edit_format.edit_messages``): the main stub (``<slug>.py``) is the code
      before, the exercise text the instruction; the program is our usual extraction of the answer
      (``prompts.postprocess``). No exercise of the 2023 set has more than one stub; were there one, the
      other stubs would be listed in the instruction (name and fenced block) and left unchanged.

    Only the first try (Aider's ``pass_rate_1``) is scored; ``second_turn`` builds the retry request that
    ``pass_rate_2`` needs. Aider's own harness, edit-format parser and prompts are not used: the wording
    here is ours, after the harness's published description.
    """

    name = "aider_exercism"
    title = "Aider code editing (Exercism Python, 2023 set)"
    env_var = "EDITFORGE_AIDER_EXERCISM"
    default_source = None  # not on the hub: a local copy must be named
    hub_split = "test"  # unused: the source is a local file
    kinds = (KIND,)
    size = 133
    timeout_s = TIMEOUT_S
    instruction_fields = ("instructions",)
    sampling_defaults = {"max_tokens": 4096}  # whole files: the longest example solution is about 2,600 tokens
    retries = True
    quoted = (
        QuotedRow(
            model="Qwen2.5-Coder-7B-Instruct",
            scores={KIND: 51.9},  # pass_rate_1, keyed by the one instruction kind
            source="Aider leaderboard, Aider-AI/aider aider/website/_data/edit_leaderboard.yml, 2024-10-16, "
            "whole format",
            caveat="first try; Aider's own harness and edit format, tests run with unittest in python:3.8/3.10 images",
        ),
    )

    def check(self, row: Any, where: str) -> dict[str, Any]:
        if not isinstance(row, Mapping):
            raise BenchmarkError(f"{where}: not an object")
        slug, files = row.get("slug"), row.get("files")
        if not isinstance(slug, str) or not slug:
            raise BenchmarkError(f"{where}: 'slug' must be a non-empty string")
        texts = isinstance(files, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
        if not texts:
            raise BenchmarkError(f"{where} ({slug}): 'files' must map file names to texts")
        stubs = {path: files[path] for path in sorted(files) if is_stub(path)}
        tests = {path: files[path] for path in sorted(files) if is_test(path)}
        missing = [
            what
            for what, present in (
                ("a stub file (a top-level file without 'test' in its name)", stubs),
                ("a *_test.py file", [path for path in tests if path.endswith("_test.py")]),
                (INSTRUCTIONS, INSTRUCTIONS in files),
                (f"{EXAMPLE} (the reference solution)", EXAMPLE in files),
            )
            if not present
        ]
        if missing:
            raise BenchmarkError(f"{where} ({slug}): missing {', '.join(missing)}")
        main = f"{slug.replace('-', '_')}.py"
        return {
            "id": slug,
            "order": slug,
            "slug": slug,
            "files": dict(files),
            "stubs": stubs,
            "main_stub": main if main in stubs else next(iter(stubs)),
            "tests": tests,
            "instructions": "".join(files.get(path, "") for path in (INTRODUCTION, INSTRUCTIONS, APPEND)),
            "example": files[EXAMPLE],
        }

    def request(self, problem: BenchmarkProblem, kind: str, family: str, sampling: Sampling, n: int) -> Request:
        self.check_kind(kind)
        self.check_family(family)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise BenchmarkError(f"{self.name}: n must be a positive integer, got {n!r}")
        return Request(messages=first_messages(problem, family), sampling=sampling, n=n)

    def program(self, problem: BenchmarkProblem, kind: str, family: str, answer: str) -> Program | None:
        self.check_kind(kind)
        self.check_family(family)
        if family == "harness":
            changed = harness_files(answer, list(problem["stubs"]))
        else:
            code = postprocess(answer, "editforge")
            changed = {problem["main_stub"]: code} if code else {}
        if not changed:
            return None
        return exercise_program(problem, changed)

    def reference_programs(self, problem: BenchmarkProblem, kind: str) -> tuple[Program, Program]:
        """The main stub replaced by the example solution (the oracle) or left as it is (the anti-oracle),
        each ending with one newline, as a whole-format answer gives a file (3 stubs and 1 example of the
        2023 set end otherwise: with blank lines, trailing spaces or no newline)."""
        self.check_kind(kind)
        main = problem["main_stub"]
        oracle, anti_oracle = (whole_file(text) for text in (problem["example"], problem["stubs"][main]))
        return exercise_program(problem, {main: oracle}), exercise_program(problem, {main: anti_oracle})

    def reference_answers(self, problem: BenchmarkProblem, kind: str, family: str) -> tuple[str, str]:
        """The example solution and the unchanged main stub as answers: ``harness``, the stub's name line
        and the file in a fenced block (Aider's ``whole`` format); ``editforge``, the fenced block alone."""
        self.check_kind(kind)
        self.check_family(family)
        main = problem["main_stub"]
        texts = (whole_file(problem["example"]), whole_file(problem["stubs"][main]))
        if family == "harness":
            oracle, anti_oracle = (file_listing({main: text}).lstrip("\n") for text in texts)
        else:
            oracle, anti_oracle = (FENCE_OPEN + text + FENCE_CLOSE for text in texts)
        return oracle, anti_oracle

    def retry_request(
        self, problem: BenchmarkProblem, kind: str, family: str, answer: str, test_output: str, sampling: Sampling
    ) -> Request:
        self.check_kind(kind)
        self.check_family(family)
        return Request(messages=second_turn(problem, answer, test_output, family), sampling=sampling, n=1)

    def reference_texts(self, problem: BenchmarkProblem) -> dict[str, str]:
        # The exercise's texts joined by blank lines (the request joins them as Aider does, with nothing between).
        files = problem["files"]
        docs = "\n\n".join(files[path].strip() for path in (INTRODUCTION, INSTRUCTIONS, APPEND) if path in files)
        texts = {"instructions": docs, "example": problem["example"]}
        texts.update({f"stub:{path}": text for path, text in problem["stubs"].items()})
        texts.update({f"test:{path}": text for path, text in problem["tests"].items()})
        return texts


def exercise_program(problem: BenchmarkProblem, changed: Mapping[str, str]) -> Program:
    """The exercise folder (its stubs, with ``changed`` replacing some, and its tests) running unittest."""
    files = {**problem["stubs"], **changed, **problem["tests"]}
    return folder_program(files, UNITTEST_COMMAND, TIMEOUT_S)


def whole_file(text: str) -> str:
    """A file as a whole-format answer gives it: its text without its trailing newlines, then one."""
    return text.rstrip("\n") + "\n"


def exercise_text(problem: BenchmarkProblem) -> str:
    """The request without the file listing: the exercise text and the addendum naming the stubs."""
    return problem["instructions"] + ADDENDUM.format(names=" ".join(problem["stubs"]))


def file_listing(files: Mapping[str, str]) -> str:
    """Each file as its name alone on a line, then a fenced block with its content."""
    return "".join(f"\n{path}\n{FENCE}python\n{text.rstrip(chr(10))}\n{FENCE}\n" for path, text in files.items())


def first_messages(problem: BenchmarkProblem, family: str) -> list[dict[str, str]]:
    """The first try's conversation in format ``family``."""
    if family == "harness":
        user = exercise_text(problem) + file_listing(problem["stubs"])
        return [{"role": "system", "content": WHOLE_FORMAT_SYSTEM}, {"role": "user", "content": user}]
    main = problem["main_stub"]
    others = {path: text for path, text in problem["stubs"].items() if path != main}
    instruction = exercise_text(problem)
    if others:  # never in the 2023 set: the other stubs go along as context, unchanged
        instruction += f"\nThe code before is {main}; the other files, for reference:\n" + file_listing(others)
    return edit_messages(before=problem["stubs"][main], instruction=instruction)


def second_turn(
    problem: BenchmarkProblem, first_answer: str, test_output: str, family: str = "harness"
) -> list[dict[str, str]]:
    """The retry conversation (Aider's second try, for ``pass_rate_2``): the first try, the model's
    answer, then the first 50 lines of the test output and the request to fix the code."""
    head = "\n".join(test_output.splitlines()[:RETRY_LINES])
    retry = RETRY.format(output=head, names=" ".join(problem["stubs"]))
    return [
        *first_messages(problem, family),
        {"role": "assistant", "content": first_answer},
        {"role": "user", "content": retry},
    ]


def harness_files(answer: str, stubs: list[str]) -> dict[str, str]:
    """The stubs' new contents in an answer in Aider's ``whole`` format.

    A fenced block opens at a line starting (after spaces) with three backticks and closes at the next
    such line, or at the end of a cut-off answer; an indented fence has its indentation removed from
    each line, and a block ends with one newline. A block belongs to a stub when the last non-blank
    line before it, once stripped of spaces, asterisks, backticks, ``#``, ``:`` and quotes around it,
    is the stub's name, with or without a path before it (``**src/two_fer.py**``, ``### two_fer.py:``).
    When a stub is given twice the last block wins. With one stub, an answer naming no stub but holding
    exactly one block gives that block. ``{}``: no stub's content found (not well formed).
    """
    lines = answer.split("\n")
    blocks: list[tuple[str, str]] = []  # (the line before the block, the block)
    before = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.lstrip(" ").startswith(FENCE):
            before = line if line.strip() else before
            index += 1
            continue
        indent = len(line) - len(line.lstrip(" "))
        end = index + 1
        while end < len(lines) and not lines[end].lstrip(" ").startswith(FENCE):
            end += 1
        body = [inner[min(indent, len(inner) - len(inner.lstrip(" "))) :] for inner in lines[index + 1 : end]]
        blocks.append((before, "\n".join(body).rstrip("\n") + "\n"))
        before = ""
        index = end + 1
    found = {}
    for name_line, block in blocks:
        name = file_name(name_line)
        if name in stubs:
            found[name] = block
    if not found and len(stubs) == 1 and len(blocks) == 1:
        found[stubs[0]] = blocks[0][1]
    return found


def file_name(line: str) -> str:
    """The file a name line gives: decoration and any path before the name removed."""
    name = line.strip().strip("*`#:'\" ").strip()
    return name.replace("\\", "/").rsplit("/", 1)[-1]
