"""Stage 1: seed snippets cut from real Python code and paired for synthesis, or real commits.

The reference cuts a random 5-15 line window from each of two random commits, with no content
check, so many prompts are seeded with licence headers, import lists or blank lines, and the same
pair can recur. Here whole units are cut, filtered, deduplicated and paired without repeats:

- ``settings.py``: SeedSettings, SeedFilters, SeedError, the Tally of skips by reason
- ``sources.py``: folders, the standard library and table columns as documents; check_sources
- ``tables.py``: JSON Lines, parquet and hub-dataset rows, with counted skips
- ``filters.py``: path, content, length, licence-header and generated-file filters
- ``snippets.py``: syntactic and window cutting, the dedup key, collect_snippets
- ``pairing.py``: make_pairs
- ``commits.py``: commit rows: checks, dedup, records (``kind: commits``)
- ``stage.py``: sharding and run_seeds
- ``provenance.py``: a snippet's origin and the licence its file states
"""

from editforge.hub import select_hf_files
from editforge.seeds.commits import collect_commits
from editforge.seeds.pairing import make_pairs
from editforge.seeds.settings import SeedError
from editforge.seeds.snippets import collect_snippets
from editforge.seeds.stage import run_seeds

__all__ = ["SeedError", "collect_commits", "collect_snippets", "make_pairs", "run_seeds", "select_hf_files"]
