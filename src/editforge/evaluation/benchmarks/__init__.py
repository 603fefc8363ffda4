"""The benchmarks behind the one evaluation harness, each a plug-in (``base.Benchmark``).

- ``base``: the interface: loading, instruction kinds, requests, the program a sample runs,
  the reference check, the texts decontamination must find, quoted rows
- ``registry``: the benchmarks by name
- ``canitedit``: CanItEdit (105): edit a program as a lazy or a descriptive instruction asks
- ``humanevalfix``: HumanEvalFix (Python, 164): fix the bug in one function
- ``aider_exercism``: Aider's Exercism Python set (133, the 2023 set): implement a stub file
"""

from editforge.evaluation.benchmarks.base import Benchmark, Program, QuotedRow, folder_program
from editforge.evaluation.benchmarks.registry import BENCHMARKS, benchmark

__all__ = ["BENCHMARKS", "Benchmark", "Program", "QuotedRow", "benchmark", "folder_program"]
