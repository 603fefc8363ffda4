"""Experiments (the config's ``experiments:`` block): dataset variants x students x training seeds, each
cell trained and evaluated, every variant compared with the baseline by paired intervals.

- ``grid``: the block expanded: variants (overrides, external, blend), the data stages each shares with
  the run, the cells and their ids (``variant~student~sSEED``, also their evaluation targets).
- ``external``: a published dataset read in its format, decontaminated, in our prompt template;
  ``external_sources``: its rows from a local file or folder or the hub.
- ``trainset``: a variant's training set at an exact, nested size, its held-out validation rows, and its manifest.
- ``plan``: the cells and the power preflight (jobs, GPU-hours, the smallest detectable difference).
- ``scores``: every cell's per-item counts on every benchmark (``per_problem.parquet``).
- ``statistics``: cluster-bootstrap intervals, paired contrasts, sign-flip permutation p-values, Holm,
  seed spread, the minimum detectable difference.
- ``table``: the results table (md, csv, tex) and ``deltas.csv``; ``forest``: the forest plot.
- ``curves``: every cell's train and validation loss per step (``curves.png``) and its final losses.

Only ``grid`` is imported here: the config check uses it, and the others load polars or matplotlib.
"""

from editforge.experiments.grid import Cell, Experiment, Variant, experiment

__all__ = ["Cell", "Experiment", "Variant", "experiment"]
