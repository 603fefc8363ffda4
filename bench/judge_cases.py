"""The judge bench's inputs (see bench/judge.py): labelled cases made from real triplets by known
corruptions, and the two scripted judges that answer them without a model (``--fake``).

Each case is a (style, instruction, pre-edit code, post-edit code) the judge sees, with the verdicts it
should give: the kinds are in ``EXPECTED_FAILS``. An ``unrelated_change`` case is the correct edit plus
one unrelated semantic change, alternating between two variants (each falls back to the other where it
cannot be made): ``changed_literal``, an integer literal on a line the edit does not touch raised by one,
and ``appended_function``, a function or class of the other triplet's post-edit program (one whose name
the triplet's program lacks) appended at the end; where neither can be made, ``APPENDED_FALLBACK``.
The scripted judges read only the prompt (``scripted_verdicts`` has their rules).
"""

from __future__ import annotations

import ast
import builtins
import difflib
import hashlib
import io
import json
import keyword
import random
import re
import tokenize
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from editforge.filtering.judge import VERDICTS

STYLES = ("lazy", "descriptive")
# The verdicts each kind of case should fail; every other verdict should pass.
EXPECTED_FAILS: dict[str, tuple[str, ...]] = {
    "correct": (),
    "post_unchanged": ("edit_complete",),
    "other_program": ("edit_complete", "edit_focused"),
    "other_instruction": ("edit_complete", "edit_focused"),
    "unrelated_change": ("edit_focused",),
    "already_done": ("edit_needed",),
}
KINDS = tuple(EXPECTED_FAILS)
# What another triplet must differ in to lend its program and instructions.
LENT_FIELDS = ("pre_code", "post_code", *(f"instruction_{style}" for style in STYLES))
APPENDED_FALLBACK = "def reversed_sorted(values):\n    return sorted(values, reverse=True)\n"


class BenchError(ValueError):
    """Input the bench cannot build cases from."""


@dataclass(frozen=True)
class Case:
    kind: str
    style: str
    triplet: str  # id of the triplet it was made from
    instruction: str
    pre_code: str
    post_code: str
    other: str | None = None  # id of the triplet that lent a program, an instruction or a function
    variant: str | None = None  # of an unrelated_change: changed_literal, appended_function

    @property
    def expected(self) -> dict[str, str]:
        return {v: "FAIL" if v in EXPECTED_FAILS[self.kind] else "PASS" for v in VERDICTS}

    def record(self) -> dict[str, Any]:
        """The case as a triplet record, the judge's input."""
        return {
            "id": f"{self.triplet}:{self.kind}:{self.style}",
            "model": "bench",
            "status": "ok",
            "pre_code": self.pre_code,
            "post_code": self.post_code,
            f"instruction_{self.style}": self.instruction,
        }


def build_cases(triplets: Sequence[Mapping[str, Any]], count: int, seed: int) -> list[Case]:
    """Cases of every kind and style for up to ``count`` of ``triplets`` (status "ok" ones), picked by ``seed``."""
    kept = [t for t in triplets if t.get("status") == "ok"]
    if len(kept) < 2:
        raise BenchError(f"{len(kept)} kept (status 'ok') triplets; the bench needs at least 2 to lend programs")
    rng = random.Random(seed)
    picked = rng.sample(kept, min(count, len(kept)))
    cases: list[Case] = []
    for number, triplet in enumerate(picked):
        others = [o for o in kept if all(o[field] != triplet[field] for field in LENT_FIELDS)]
        if not others:
            raise BenchError(f"triplet {triplet['id']}: every other kept triplet shares its program or instructions")
        other = rng.choice(others)
        unrelated, variant = unrelated_change(triplet, other, rng, prefer_literal=number % 2 == 0)
        own, lent, pre, post = triplet["id"], other["id"], triplet["pre_code"], triplet["post_code"]
        for style in STYLES:
            asked = triplet[f"instruction_{style}"]
            cases += [
                Case("correct", style, own, asked, pre, post),
                Case("post_unchanged", style, own, asked, pre, pre),
                Case("other_program", style, own, asked, pre, other["post_code"], lent),
                Case("other_instruction", style, own, other[f"instruction_{style}"], pre, post, lent),
                Case("unrelated_change", style, own, asked, pre, unrelated, lent, variant),
                Case("already_done", style, own, asked, post, post),
            ]
    return cases


def unrelated_change(
    triplet: Mapping[str, Any], other: Mapping[str, Any], rng: random.Random, *, prefer_literal: bool
) -> tuple[str, str]:
    """The triplet's post-edit code with one unrelated semantic change, and the variant made."""
    makers = [("changed_literal", changed_literal), ("appended_function", appended_function)]
    for variant, make in makers if prefer_literal else makers[::-1]:
        if (changed := make(triplet, other, rng)) is not None:
            return changed, variant
    return triplet["post_code"].rstrip("\n") + "\n\n\n" + APPENDED_FALLBACK, "appended_function"


def changed_literal(triplet: Mapping[str, Any], other: Mapping[str, Any], rng: random.Random) -> str | None:
    """An integer literal on a post-edit line the edit left alone, raised by one; None where there is none."""
    post = triplet["post_code"]
    lines = post.splitlines(keepends=True)
    untouched = untouched_lines(triplet["pre_code"], post)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(post).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    spots = [t for t in tokens if t.type == tokenize.NUMBER and t.string.isdigit() and t.start[0] - 1 in untouched]
    if not spots:
        return None
    token = rng.choice(spots)
    row, col = token.start[0] - 1, token.start[1]
    line = lines[row]
    lines[row] = line[:col] + str(int(token.string) + 1) + line[col + len(token.string) :]
    return "".join(lines)


def untouched_lines(pre: str, post: str) -> set[int]:
    """The 0-based numbers of the post-edit lines that the line diff keeps as they were."""
    matcher = difflib.SequenceMatcher(None, pre.splitlines(), post.splitlines(), autojunk=False)
    return {j for tag, _, _, j1, j2 in matcher.get_opcodes() if tag == "equal" for j in range(j1, j2)}


def appended_function(triplet: Mapping[str, Any], other: Mapping[str, Any], rng: random.Random) -> str | None:
    """The post-edit code with a top-level function or class of ``other``'s post-edit program appended,
    one whose name the post-edit code does not use; None where ``other`` has none."""
    try:
        module = ast.parse(other["post_code"])
    except SyntaxError:
        return None
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    donors = [
        node
        for node in module.body
        if isinstance(node, definitions) and not re.search(rf"\b{node.name}\b", triplet["post_code"])
    ]
    if not donors:
        return None
    source = ast.get_source_segment(other["post_code"], rng.choice(donors))
    return None if source is None else triplet["post_code"].rstrip("\n") + "\n\n\n" + source + "\n"


# ---------------------------------------------------------------- the scripted judges (--fake)

SCRIPTED_JUDGES = ("scripted-strict", "scripted-lenient")
UNPARSEABLE_PERCENT = 4  # of the answers, picked by a hash of the prompt: no JSON, or JSON cut off
# The sample as templates/judge_v1.txt lays it out.
_SAMPLE = re.compile(
    r"## Instruction\n(?P<instruction>.*?)\n\n## Program before the edit\n```python\n(?P<pre>.*?)\n```\n\n"
    r"## Program after the edit\n```python\n(?P<post>.*?)\n```\n\n## Diff\n```diff\n(?P<diff>.*?)\n```",
    re.DOTALL,
)
_NAMED = re.compile(r"`([A-Za-z_][\w.]*)(?:\(\))?`|\b([A-Za-z]\w*_\w+|[a-z]+[A-Z]\w*|[A-Z][a-z]+[A-Z]\w*)\b|\b(\w+)\(")
_COMMON = frozenset(dir(builtins)) | frozenset(keyword.kwlist)
_STOPWORDS = frozenset(
    "that this with from into when then than them they there their these those should would could which what "
    "will make sure change update modify edit code program function method class file instead also each every "
    "only just like have does done need needs used uses using given keep rest same other where while about".split()
)


def scripted_answer(body: dict[str, Any], index: int) -> str:
    """A ``FakeServer`` responder: the scripted judge named by the request's model answers the prompt."""
    prompt = body["messages"][-1]["content"]
    roll = int(hashlib.sha256(f"{body['model']}\n{prompt}".encode()).hexdigest()[:8], 16)
    sample = _SAMPLE.search(prompt)
    if sample is None or roll % 100 < UNPARSEABLE_PERCENT:
        return "I cannot tell without running the program." if roll % 2 else '{"edit_needed": {"verdict": "PA'
    strict = body["model"] == SCRIPTED_JUDGES[0]
    verdicts = scripted_verdicts(sample["instruction"], sample["pre"], sample["post"], sample["diff"], strict)
    values = {
        name: (value.lower() if roll % 5 == 0 else value) if roll % 3 == 0 else {"verdict": value, "reason": reason}
        for name, (value, reason) in verdicts.items()
    }
    answer = json.dumps(values)
    dressed = (
        answer,
        f"```json\n{answer}\n```",
        f"Here is my review of the sample.\n\n{answer}\n\nEach verdict looks at the code shown only.",
        f"<think>First the instruction, then the diff; edit_needed looks like PASS.</think>\n```json\n{answer}\n```",
    )
    return dressed[roll % 4]


def scripted_verdicts(instruction: str, pre: str, post: str, diff: str, strict: bool) -> dict[str, tuple[str, str]]:
    """Verdict -> (value, reason) from surface features only; the strict judge fails more than the lenient one.

    - edit_needed fails only for identical programs where every identifier the instruction names (in
      backticks, snake_case, camelCase, or called) is already in the code (lenient: UNCERTAIN).
    - edit_complete fails for identical programs (lenient: only when a named identifier is missing, else
      it passes), for a named identifier in neither program, and when few of the instruction's content
      words (5-letter stems) are on the diff's changed lines (strict: FAIL under 15%, UNCERTAIN under
      30%; lenient: UNCERTAIN under 15%).
    - edit_focused fails for a function or class the post-edit code defines, the pre-edit code does not,
      and the instruction does not name (lenient: UNCERTAIN for just one, PASS when a word of its name
      is in the instruction); the strict one also fails an edit that touches an existing function the
      instruction does not name, where it names one.
    """
    named = {m.split(".")[-1] for groups in _NAMED.findall(instruction) for m in groups if m} - _COMMON
    pre_words, post_words = set(re.findall(r"\w+", pre)), set(re.findall(r"\w+", post))
    unseen = sorted(named - pre_words - post_words)
    same = pre.strip() == post.strip()
    words = _words(instruction) - _STOPWORDS
    changed = [line[1:] for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    stems = {word[:5] for word in _words("\n".join(changed))}
    coverage = sum(word[:5] in stems for word in words) / len(words) if words else 1.0
    verdicts: dict[str, tuple[str, str]] = {}

    if same and not (named - pre_words):
        verdicts["edit_needed"] = ("FAIL" if strict else "UNCERTAIN", "the program already has all it names")
    else:
        verdicts["edit_needed"] = ("PASS", "the program lacks what the instruction asks for")

    if same and (strict or named - pre_words):
        verdicts["edit_complete"] = ("FAIL", "the program is unchanged")
    elif same:
        verdicts["edit_complete"] = ("PASS", "the program already does it")
    elif unseen:
        verdicts["edit_complete"] = ("FAIL", f"`{unseen[0]}` is in neither program")
    elif coverage < 0.15:
        verdicts["edit_complete"] = ("FAIL" if strict else "UNCERTAIN", "the diff is not about the instruction")
    elif coverage < 0.3 and strict:
        verdicts["edit_complete"] = ("UNCERTAIN", "the diff is barely about the instruction")
    else:
        verdicts["edit_complete"] = ("PASS", "the diff does what the instruction says")

    verdicts["edit_focused"] = ("PASS", "nothing beyond the instruction")
    pre_defs, post_defs = _definitions(pre), _definitions(post)
    if same:
        return verdicts
    if pre_defs is None or post_defs is None:
        verdicts["edit_focused"] = ("UNCERTAIN", "a program does not parse")
        return verdicts
    extra = sorted(n for n in post_defs.keys() - pre_defs.keys() if n not in named)
    if not strict:
        extra = [name for name in extra if not _words(name.replace("_", " ")) & words]
    touched = {
        innermost for line in _changed_lines(pre, post) if (innermost := _innermost(post_defs, line)) in pre_defs
    }
    if extra:
        verdicts["edit_focused"] = (
            "FAIL" if strict or len(extra) > 1 else "UNCERTAIN",
            f"`{extra[0]}` is not asked for",
        )
    elif strict and named & pre_defs.keys() and (touched - named):
        verdicts["edit_focused"] = ("FAIL", f"`{sorted(touched - named)[0]}` changes unasked")
    return verdicts


def _words(text: str) -> set[str]:
    """Lower-case words of four letters or more, identifiers split at underscores and capitals."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text).replace("_", " ")
    return {word.lower() for word in re.findall(r"[A-Za-z]{4,}", spaced)}


def _definitions(code: str) -> dict[str, set[int]] | None:
    """Name -> the line numbers (from 1) of every function and class the code defines; None if it does not parse."""
    try:
        module = ast.parse(code)
    except SyntaxError:
        return None
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {
        node.name: set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        for node in ast.walk(module)
        if isinstance(node, kinds)
    }


def _innermost(definitions: Mapping[str, set[int]], line: int) -> str | None:
    """The name of the innermost function or class holding the line, if any."""
    holding = [(len(lines), name) for name, lines in definitions.items() if line in lines]
    return min(holding)[1] if holding else None


def _changed_lines(pre: str, post: str) -> set[int]:
    """The line numbers (from 1) of the post-edit lines the line diff does not keep."""
    kept = untouched_lines(pre, post)
    return {number + 1 for number in range(len(post.splitlines())) if number not in kept}
