"""Undefined names and modules used without an import, by ruff's pyflakes rules, one ruff run per batch.

``undefined_names`` reads every program of a batch in one ``ruff check`` (F821 undefined name, F822
undefined name in ``__all__``, F823 local referenced before assignment); ruff parses the current
grammar whatever interpreter runs the stage. An undefined name used as a module (``json.dumps``,
``np.zeros``) that is a standard-library module or in WELL_KNOWN_MODULES is a missing import. A star
import hides what is defined (ruff then says F405, which is not selected), so such names pass. The
name is read from the source at ruff's location, not from its message.

Ruff rather than pyflakes: on 20,000 programs of ~27 lines, pyflakes in process took 13.1 s, more than
the 9.5 s of all of filter_shard's other checks; one ruff run 1.65 s, most of it writing the files.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# The pyflakes rules ruff checks, and how a finding reads.
RUFF_RULES = {"F821": "undefined name {!r}", "F822": "undefined name {!r} in __all__",
              "F823": "local variable {!r} referenced before assignment"}  # fmt: skip

# Well-known third-party modules by the name a program uses for them (an undefined one is a missing
# import, as a standard-library module is): the module and its conventional alias.
WELL_KNOWN_MODULES = {
    "numpy": "numpy", "np": "numpy", "pandas": "pandas", "pd": "pandas", "matplotlib": "matplotlib",
    "mpl": "matplotlib", "plt": "matplotlib.pyplot", "seaborn": "seaborn", "sns": "seaborn", "scipy": "scipy",
    "sklearn": "sklearn", "torch": "torch", "nn": "torch.nn", "tensorflow": "tensorflow", "tf": "tensorflow",
    "keras": "keras", "jax": "jax", "jnp": "jax.numpy", "requests": "requests", "httpx": "httpx",
    "aiohttp": "aiohttp", "yaml": "yaml", "networkx": "networkx", "nx": "networkx", "sympy": "sympy",
    "polars": "polars", "pl": "polars", "cv2": "cv2", "PIL": "PIL", "bs4": "bs4", "flask": "flask",
    "django": "django", "pytest": "pytest", "click": "click", "tqdm": "tqdm", "pydantic": "pydantic",
}  # fmt: skip

_RUFF_LINES = re.compile(r"\r\n|\r|\n")  # ruff's rows
_QUOTES = re.compile(r"^[A-Za-z]*['\"]+|['\"]+$")  # of the string in __all__ that F822 points at


@dataclass(frozen=True)
class _Diagnostic:
    code: str
    row: int  # 1-based
    column: int  # 1-based, in characters
    end_row: int
    end_column: int


class StaticCheckError(RuntimeError):
    """The analyzer cannot run, or its output cannot be read."""


@dataclass(frozen=True)
class UndefinedName:
    """A name a program uses but never defines."""

    name: str
    row: int  # 1-based
    module: str | None  # the module it stands for when used as one (a missing import), else None
    what: str  # how a person reads it: "undefined name 'helper'", "module 'json' used without an import (...)"


def undefined_names(programs: Sequence[str]) -> list[list[UndefinedName]]:
    """Each program's undefined names in order of position, from one ruff run over them all."""
    return [
        [_undefined_name(_RUFF_LINES.split(code), diagnostic) for diagnostic in diagnostics]
        for code, diagnostics in zip(programs, _ruff(programs))
    ]


def _undefined_name(lines: list[str], diagnostic: _Diagnostic) -> UndefinedName:
    line = lines[diagnostic.row - 1] if diagnostic.row <= len(lines) else ""
    end = diagnostic.end_column - 1 if diagnostic.end_row == diagnostic.row else len(line)
    name = line[diagnostic.column - 1 : end]
    name = name if name.isidentifier() else _QUOTES.sub("", name)
    module = _module(name, line[end:]) if diagnostic.code == "F821" else None
    what = f"module {name!r} used without an import ({module})" if module else RUFF_RULES[diagnostic.code].format(name)
    return UndefinedName(name, diagnostic.row, module, what)


def _module(name: str, after: str) -> str | None:
    """The module an undefined name stands for: a standard-library or well-known module (or its
    conventional alias) used as one, with an attribute (``json.dumps``); None otherwise."""
    if not after.lstrip().startswith("."):
        return None
    if name in WELL_KNOWN_MODULES:
        return WELL_KNOWN_MODULES[name]
    return "standard library" if name in sys.stdlib_module_names else None


def ruff_binary() -> str:
    """The ruff installed beside this package (the ruff wheel's own locator)."""
    try:
        from ruff import find_ruff_bin

        return find_ruff_bin()
    except (ImportError, FileNotFoundError) as error:
        raise StaticCheckError(
            f"filtering.static_checks needs ruff, which is not installed here ({str(error).splitlines()[0]}): "
            "install it with `pip install ruff`"
        ) from None


def _ruff(programs: Sequence[str]) -> list[list[_Diagnostic]]:
    """Ruff's RUFF_RULES diagnostics of each program in order of position, from one run over them all."""
    binary = ruff_binary()
    version, target = _ruff_identity(binary)
    started = time.perf_counter()
    encoded = [code.encode("utf-8", "replace") for code in programs]  # a lone surrogate: "?", columns kept
    with tempfile.TemporaryDirectory(prefix="editforge-static-", dir=_scratch(sum(map(len, encoded)))) as folder:
        for number, data in enumerate(encoded):
            handle = os.open(os.path.join(folder, f"{number}.py"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(handle, data)
            finally:
                os.close(handle)
        output = _run(
            [binary, "check", "--isolated", "--no-cache", "--no-respect-gitignore", "--ignore-noqa", "--select",
             ",".join(RUFF_RULES), "--target-version", target, "--output-format", "json", "--exit-zero", folder]
        )  # fmt: skip
    found: list[list[_Diagnostic]] = [[] for _ in programs]
    try:
        for entry in json.loads(output):
            if entry["code"] in RUFF_RULES:  # not syntax errors: tree-sitter's check ran before
                start, end = entry["location"], entry["end_location"]
                diagnostic = _Diagnostic(entry["code"], start["row"], start["column"], end["row"], end["column"])
                found[int(Path(entry["filename"]).stem)].append(diagnostic)
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise StaticCheckError(
            f"filtering.static_checks: cannot read ruff's output ({type(error).__name__}: {error}); "
            f"reinstall ruff with `pip install --force-reinstall ruff` ({binary})"
        ) from None
    log.info(
        "static checks: ruff %s (target %s) read %d programs in %.2f s", version, target, len(programs),
        time.perf_counter() - started,
    )  # fmt: skip
    return [sorted(diagnostics, key=lambda d: (d.row, d.column)) for diagnostics in found]


def _scratch(size: int) -> str | None:
    """Memory (/dev/shm) for the programs ruff reads where it has room for them twice over: a disk
    folder costs more to write thousands of small files to than ruff takes to read them."""
    memory = "/dev/shm"
    if os.path.isdir(memory) and os.access(memory, os.W_OK) and shutil.disk_usage(memory).free > 2 * size:
        return memory
    return None  # the default temporary folder ($TMPDIR)


@functools.cache
def _ruff_identity(binary: str) -> tuple[str, str]:
    """(ruff's version, the newest Python it knows as a target version): newer syntax is then no error."""
    version = _run([binary, "--version"]).split()[-1]
    setting = json.loads(_run([binary, "config", "target-version", "--output-format", "json"]))
    minors = [int(minor) for minor in re.findall(r"py3(\d+)", setting.get("value_type", ""))]
    if not minors:
        raise StaticCheckError(f"filtering.static_checks: ruff {version} names no target version: pip install -U ruff")
    return version, f"py3{max(minors)}"


def _run(command: list[str]) -> str:
    """The standard output of a ruff command; a clear error when it cannot run or fails."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as error:
        raise StaticCheckError(
            f"filtering.static_checks cannot run ruff at {command[0]} ({error.strerror}): "
            "install it with `pip install ruff`"
        ) from None
    if result.returncode != 0:
        said = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise StaticCheckError(
            f"filtering.static_checks: `ruff {' '.join(command[1:3])}` failed with exit status {result.returncode} "
            f"({said}); reinstall it with `pip install --force-reinstall ruff`"
        )
    return result.stdout
