"""The report rules (``report``, ``report_figures``, ``report_training``, ``report_tables``): what a reader
sees at the end.

- ``funnel``: the triplets each stage kept, why the rest were dropped, what the calls cost
- ``figures``: the diff-size and topic-size histograms
- ``training``: the students' training curves (loss and validation loss, learning rate, tokens per
  second) and their final numbers (``training.csv``, ``training.md``)
- ``tables``: pass@1 per benchmark beside its quoted rows (and the students' final losses), and the funnel,
  as HTML pages for ``snakemake --report``
"""

from editforge.reporting.figures import write_figures
from editforge.reporting.funnel import write_funnel
from editforge.reporting.tables import write_tables
from editforge.reporting.training import write_training_report

__all__ = ["write_figures", "write_funnel", "write_tables", "write_training_report"]
