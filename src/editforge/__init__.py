"""editforge: synthesize code-edit instruction data with open LLMs, fine-tune on it,
and score the result on CanItEdit. Each workflow stage has a subpackage of its name;
docs/layout.md lists every file."""

# The one place the version is set: pyproject.toml reads it, and CHANGELOG.md's latest entry matches it.
__version__ = "0.6.0"
