"""Topic balancing: a topic model over the triplets, then max-min fair sampling.

The reference (OpenCodeEdit) flattens the topic distribution of each
instruction style's mix: a gensim HDP model over pre-edit code tokens and
instruction words gives each sample its dominant topic, and a water-filling
budget keeps small topics whole and caps large ones at an equal share, down to
10,000 samples per style. This module does the same, with changes that the
docstrings of each step name: the documents (``topic_document``), vocabulary
pruning (``_vocabulary``), the model and the assignment (``fit_topics``,
``_fit_hdp``, ``_fit_lda``) and the balancing (``water_fill``, ``balance``).

``fit_topics`` returns a ``TopicFit`` (assignments, top words, sizes) that the
dataset stage records in each training sample and in ``topics.json``.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from editforge.pycode.canonical import identifiers

METHODS = ("auto", "hdp", "lda", "none")
DEFAULTS: dict[str, Any] = {
    "method": "auto",
    "max_topics": 150,  # hdp: the truncation level T (gensim's default, as the reference)
    "num_topics": 20,  # lda: the number of topics
    "passes": 1,  # hdp: online passes over the corpus (the reference made one)
    "max_iter": 20,  # lda
    "min_df": 2,
    "max_df": 0.9,  # near-ubiquitous words only: a dominant theme's words must survive
    "top_words": 10,
}
NO_TOPIC = -1  # the topic of a document with no word in the vocabulary

# NLTK's English stop list (179 words; contractions appear split at the apostrophe).
STOP_WORDS = frozenset(
    """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers herself
    it its itself they them their theirs themselves what which who whom this that these those am is are was were be
    been being have has had having do does did doing a an the and but if or because as until while of at by for with
    about against between into through during before after above below to from up down in out on off over under
    again further then once here there when where why how all any both each few more most other some such no nor not
    only own same so than too very s t can will just don should now d ll m o re ve y ain aren couldn didn doesn hadn
    hasn haven isn ma mightn mustn needn shan shouldn wasn weren won wouldn
    """.split()
)
# Names every program has that say nothing about its topic.
CODE_STOP_WORDS = frozenset({"self", "cls", "args", "kwargs", "none", "true", "false"})

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

log = logging.getLogger(__name__)

T = TypeVar("T")


class TopicError(ValueError):
    """The topic settings are wrong, or the library a method needs is missing."""


def split_identifier(name: str) -> list[str]:
    """Lower-cased parts of a snake_case or camelCase name: ``parseHTTPHeader_v2`` -> parse, http, header, v."""
    return [part.lower() for part in _PART.findall(name) if not part.isdigit()]


def code_words(source: str) -> list[str]:
    """The topic words of a program: its identifiers' parts, minus stop words and single letters."""
    return [
        part
        for name in identifiers(source)
        for part in split_identifier(name)
        if len(part) > 1 and part not in CODE_STOP_WORDS and part not in STOP_WORDS
    ]


def instruction_words(text: str) -> list[str]:
    """The topic words of an instruction: its words (identifiers split into parts), minus stop words."""
    return [
        part
        for word in _IDENTIFIER.findall(text)
        for part in split_identifier(word)
        if len(part) > 1 and part not in STOP_WORDS and part not in CODE_STOP_WORDS
    ]


def topic_document(pre_code: str, instruction: str) -> list[str]:
    """The words the topic model sees for one sample: the pre-edit code's, then the instruction's.

    Code contributes its identifiers only (keywords, literals, comments and
    strings are not topic words), split at snake_case and camelCase boundaries
    (``getHTTPResponse`` -> get, http, response); instructions contribute their
    words, with identifiers in them split the same way (the reference dropped
    ``snake_case`` words from instructions altogether), minus NLTK's English stop
    list and a few names every program has (``self``, ``none``...; the
    reference's code stop list held capitalised None/True/False, which never
    matched its lower-cased tokens). Words of one character and numbers are
    dropped.
    """
    return code_words(pre_code) + instruction_words(instruction)


@dataclass
class TopicFit:
    """A fitted topic model's result over a list of documents."""

    method: str
    assignments: list[int]  # the dominant topic of each document (NO_TOPIC: no known word)
    top_words: dict[int, list[str]]  # topic -> its most probable words (only topics that were assigned)
    vocabulary: int  # words the model used after pruning
    pruned: bool  # whether document-frequency pruning was applied
    settings: dict[str, Any] = field(default_factory=dict)

    def sizes(self) -> dict[int, int]:
        return dict(Counter(self.assignments))


def topic_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The topic settings with defaults filled in and checked."""
    merged = DEFAULTS | dict(settings or {})
    unknown = set(merged) - set(DEFAULTS)
    if unknown:
        raise TopicError(f"unknown topic settings {sorted(unknown)}; known: {', '.join(DEFAULTS)}")
    if merged["method"] not in METHODS:
        raise TopicError(f"topic method {merged['method']!r}; expected one of {', '.join(METHODS)}")
    for key in ("max_topics", "num_topics", "passes", "max_iter", "min_df", "top_words"):
        if not isinstance(merged[key], int) or isinstance(merged[key], bool) or merged[key] < 1:
            raise TopicError(f"topic setting {key} must be a positive integer, got {merged[key]!r}")
    if not 0 < merged["max_df"] <= 1:
        raise TopicError(f"topic setting max_df must be in (0, 1], got {merged['max_df']!r}")
    return merged


def fit_topics(documents: Sequence[Sequence[str]], settings: Mapping[str, Any] | None, seed: int) -> TopicFit:
    """Fit the configured topic model to ``documents`` (word lists) and assign each its dominant topic.

    ``method``: ``hdp`` (``_fit_hdp``, the paper's model), ``lda`` (``_fit_lda``),
    ``none`` (no model; every sample is topic 0, and balancing is a plain random
    sample) or ``auto`` (the default): ``hdp`` where gensim is installed, else
    ``lda`` (logged; ``topics.json`` records the method used). Name the method in
    the config for results that do not depend on what is installed.

    On 3,000 standard-library functions with their docstrings as instructions
    (a stand-in corpus), both fit in about 4 s on 2 cores; HDP spreads the
    documents over ~150 topics with a generic largest topic (16%), LDA with 50
    topics gives more coherent word lists and a flatter spread. On 20,000
    synthetic triplets HDP (one pass) took 33 s and LDA (50 topics) 53 s, so
    the paper's 60,000 per style take a few minutes.

    The reference cached fitted models under the input's file name and could
    silently reuse a stale one; here the model is refitted on every run (the
    workflow reruns the step only when its inputs change).

    Assignment: the argmax of each document's topic weights. A document with no
    word in the vocabulary gets topic -1 ("no topic"): not a topic, so it is
    not capped like one; it keeps its share of the pool (``balance``).
    """
    config = topic_settings(settings)
    method = config["method"]
    if method == "auto":
        method = "hdp" if _has_gensim() else "lda"
        if method == "lda":
            log.warning("gensim is not installed: topic method 'auto' falls back to scikit-learn's LDA")
    if method == "none" or not documents:
        return TopicFit(method, [0] * len(documents), {0: []} if documents else {}, 0, False, config)
    vocabulary, pruned = _vocabulary(documents, config["min_df"], config["max_df"])
    if not vocabulary:
        return TopicFit(method, [NO_TOPIC] * len(documents), {NO_TOPIC: []}, 0, pruned, config)
    if method == "hdp":
        assignments, words_of = _fit_hdp(documents, vocabulary, config, seed)
    else:
        assignments, words_of = _fit_lda(documents, vocabulary, config, seed)
    top_words = {t: words_of(t) if t != NO_TOPIC else [] for t in sorted(set(assignments))}
    return TopicFit(method, assignments, top_words, len(vocabulary), pruned, config)


def _has_gensim() -> bool:
    try:
        import gensim  # noqa: F401
    except ImportError:
        return False
    return True


def _vocabulary(documents: Sequence[Sequence[str]], min_df: int, max_df: float) -> tuple[list[str], bool]:
    """The words to model, sorted, and whether pruning applied; pruning that would leave nothing is skipped.

    Words in fewer than ``min_df`` documents or in more than ``max_df`` (0.9) of
    them are dropped (the reference kept every word). The upper bound is loose on
    purpose: at 0.5 the words of a theme that holds most of the data, the very
    theme balancing must cap, would vanish. A corpus too small for pruning (the
    demo) is modelled unpruned.
    """
    frequency = Counter(word for document in documents for word in set(document))
    limit = max_df * len(documents)
    kept = sorted(w for w, n in frequency.items() if n >= min_df and n <= limit)
    if kept:
        return kept, True
    return sorted(frequency), False


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """gensim logs every topic at INFO after each update; keep the stage log readable."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _fit_hdp(
    documents: Sequence[Sequence[str]], vocabulary: list[str], config: Mapping[str, Any], seed: int
) -> tuple[list[int], Any]:
    """gensim's online HDP, the paper's model, which also picks the number of topics (up to
    ``max_topics``, gensim's T=150).

    The choice: gensim 4.4 is maintained, supports Python 3.11-3.13 and numpy 2,
    and its HDP is the only way to reproduce the paper's topic step. One online
    pass as in the reference; ``passes`` makes more. Deterministic for a seed.
    """
    try:
        from gensim.corpora import Dictionary
        from gensim.models import HdpModel
    except ImportError as err:
        raise TopicError(
            "topic method 'hdp' needs gensim (pip install 'gensim>=4.4'); "
            "or set dataset.topics.method to 'lda' (scikit-learn) or 'none'"
        ) from err
    chunksize = 256
    with _quiet("gensim"):
        dictionary = Dictionary([vocabulary])  # ids in sorted word order, whatever the document order
        corpus = [dictionary.doc2bow(list(document)) for document in documents]
        chunks_per_pass = math.ceil(len(corpus) / chunksize)
        model = HdpModel(
            corpus,
            id2word=dictionary,
            T=config["max_topics"],
            chunksize=chunksize,
            max_chunks=config["passes"] * chunks_per_pass,
            random_state=seed,
        )
        weights = model.inference(corpus)
    assignments = [int(np.argmax(row)) if row.any() else NO_TOPIC for row in weights]

    def words_of(topic: int) -> list[str]:
        with _quiet("gensim"):
            return [word for word, _ in model.show_topic(topic, topn=config["top_words"])]

    return assignments, words_of


def _fit_lda(
    documents: Sequence[Sequence[str]], vocabulary: list[str], config: Mapping[str, Any], seed: int
) -> tuple[list[int], Any]:
    """scikit-learn's LatentDirichletAllocation with ``num_topics`` topics (batch variational Bayes,
    deterministic for a seed), for where gensim is not installed or a fixed topic count is wanted."""
    try:
        from scipy.sparse import csr_matrix
        from sklearn.decomposition import LatentDirichletAllocation
    except ImportError as err:
        raise TopicError("topic method 'lda' needs scikit-learn (pip install scikit-learn)") from err
    index = {word: i for i, word in enumerate(vocabulary)}
    rows, cols, values = [], [], []
    for row, document in enumerate(documents):
        for word, count in Counter(w for w in document if w in index).items():
            rows.append(row)
            cols.append(index[word])
            values.append(count)
    matrix = csr_matrix((values, (rows, cols)), shape=(len(documents), len(vocabulary)), dtype=np.float64)
    model = LatentDirichletAllocation(
        n_components=config["num_topics"], max_iter=config["max_iter"], learning_method="batch", random_state=seed
    )
    weights = model.fit_transform(matrix)
    empty = np.asarray(matrix.sum(axis=1)).ravel() == 0
    assignments = [NO_TOPIC if empty[i] else int(np.argmax(row)) for i, row in enumerate(weights)]

    def words_of(topic: int) -> list[str]:
        order = np.argsort(-model.components_[topic], kind="stable")[: config["top_words"]]
        return [vocabulary[i] for i in order]

    return assignments, words_of


def water_fill(sizes: Mapping[int, int], budget: int) -> dict[int, int]:
    """Max-min fair quotas: how many samples to take from each topic to keep ``budget`` in all.

    Topics no larger than the equal share of what is left are kept whole; the
    rest get that share, rounded down, and the leftover units go one each to the
    largest of them (the lower topic number on ties). A budget at or above the
    total keeps everything.

    As the reference, but the leftover units of an uneven split go to the
    largest capped topics (not to the first in file order), and a budget at or
    above the number of samples keeps them all (the reference divided by zero
    there).
    """
    if budget < 0:
        raise ValueError(f"budget must not be negative, got {budget}")
    if budget >= sum(sizes.values()):
        return dict(sizes)
    quotas: dict[int, int] = {}
    capped = dict(sizes)
    while True:
        share = (budget - sum(quotas.values())) / len(capped)
        small = {topic: size for topic, size in capped.items() if size <= share}
        if not small:
            break
        quotas.update(small)
        capped = {topic: size for topic, size in capped.items() if topic not in small}
    left = budget - sum(quotas.values())
    base = left // len(capped)
    extra = left - base * len(capped)
    by_size = sorted(capped, key=lambda topic: (-capped[topic], topic))
    for rank, topic in enumerate(by_size):
        quotas[topic] = base + (rank < extra)
    return {topic: quotas[topic] for topic in sizes}


def balance(items: Sequence[T], topics: Sequence[int], budget: int, rng: random.Random) -> list[T]:
    """A topic-balanced sample of ``budget`` items (all of them when there are fewer), in input order.

    The items with no topic (NO_TOPIC) are a bucket of their own: they get
    their share of the pool (``budget`` times their fraction of the items,
    rounded), and the topics share the rest by ``water_fill``. Within a bucket the items are drawn uniformly with
    ``rng``.
    """
    if len(items) != len(topics):
        raise ValueError(f"{len(items)} items but {len(topics)} topics")
    members: dict[int, list[int]] = {}
    for position, topic in enumerate(topics):
        members.setdefault(topic, []).append(position)
    unplaced = members.pop(NO_TOPIC, [])
    budget = min(budget, len(items))
    unplaced_quota = round(budget * len(unplaced) / len(items)) if items else 0
    quotas = water_fill({topic: len(positions) for topic, positions in members.items()}, budget - unplaced_quota)
    chosen = rng.sample(unplaced, unplaced_quota) if unplaced_quota < len(unplaced) else list(unplaced)
    for topic in sorted(members):
        positions = members[topic]
        chosen += positions if quotas[topic] >= len(positions) else rng.sample(positions, quotas[topic])
    return [items[position] for position in sorted(chosen)]
