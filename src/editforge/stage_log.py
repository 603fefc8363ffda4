"""Send a stage's output, progress bars and tracebacks to its Snakemake log."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def logged(path: str | os.PathLike[str]) -> Iterator[None]:
    """Redirect stdout and stderr (Python's and the C-level streams) to ``path``.

    A failure is written to the log with its traceback and raised again, so
    Snakemake marks the job failed and points at the log; its message, one line, also
    goes to the job's own stderr (the terminal of a local run), so the cause shows first.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a", buffering=1, encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        old_streams = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = log
        logging.basicConfig(
            stream=log, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True
        )
        for chatty in ("httpx", "httpx2"):  # a line per HTTP request (batch polls): editforge's own lines suffice
            logging.getLogger(chatty).setLevel(logging.WARNING)
        failure: BaseException | None = None
        try:
            yield
        except BaseException as err:
            failure = err
            log.write(traceback.format_exc())
            raise
        finally:
            log.flush()
            sys.stdout, sys.stderr = old_streams
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            if isinstance(failure, Exception):
                print(f"editforge error ({path}): {one_line(failure)}", file=sys.stderr, flush=True)


def one_line(err: BaseException) -> str:
    """The error's message on one line; its type where the message does not say what went wrong."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if isinstance(err, (ValueError, RuntimeError)) else f"{type(err).__name__}: {text}"
