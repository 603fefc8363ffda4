"""What only a Snakemake run needs, around the stages.

- ``resources``: what each job asks for (memory, time, CPUs, GPUs), capped to the partitions
- ``preflight``: the checks before any paid call (models, keys, cache folder, benchmark)
- ``run_lock``: resuming after a hard kill with the same command
- ``run_summary``: the end-of-run screen

Rule files import a module (``from editforge.workflow import run_lock``), never the package
itself under the name ``workflow``: that would hide Snakemake's own ``workflow`` object. The
preflight is not re-exported: every Snakefile parse imports this package, and the preflight
brings the LLM client's settings with it.
"""

from editforge.workflow.resources import model_gpus, model_mem_mb
from editforge.workflow.run_lock import clear_stale_lock, record_owner, release_owner
from editforge.workflow.run_summary import end_of_run

__all__ = [
    "clear_stale_lock",
    "end_of_run",
    "model_gpus",
    "model_mem_mb",
    "record_owner",
    "release_owner",
]
