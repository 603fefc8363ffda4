"""Mixing and export (rule ``dataset``): the filtered triplets made into the training set, its exports and card.

- ``mix``: ``run_mix``: samples per style and model, balanced over topics; stats and topics.
- ``topics``: the topic model over the triplets and max-min fair (water-filling) balancing.
- ``export``: the Alpaca and table layouts, the unfiltered set, LLaMA-Factory's ``dataset_info.json``.
- ``validation``: the held-out validation split, whole triplets, seeded and capped (``dataset.validation``).
- ``card``: the dataset card (``README.md``) with the Hub's metadata.
"""

from editforge.dataset.mix import run_mix

__all__ = ["run_mix"]
