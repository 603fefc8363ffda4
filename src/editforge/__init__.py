"""editforge: synthesize code-edit instruction data with open LLMs, fine-tune on it,
and score the result on CanItEdit. Each workflow stage has a module of its name."""

__version__ = "0.1.0"
