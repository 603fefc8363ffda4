"""Topic documents, topic models and max-min fair balancing."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest

from editforge.dataset import topics
from editforge.dataset.topics import (
    NO_TOPIC,
    TopicError,
    balance,
    code_words,
    fit_topics,
    instruction_words,
    split_identifier,
    topic_document,
    water_fill,
)

THEMES = {
    "matrix": (
        "def {v}_matrix(rows, cols):\n    grid = [[0] * cols for _ in range(rows)]\n    return transpose_grid(grid)\n",
        "Make the matrix transpose skip empty rows of the grid",
    ),
    "http": (
        (
            "def fetch_{v}(url, timeout):\n    response = http_client.get(url, timeout=timeout)\n"
            "    return response.status_code\n"
        ),
        "Retry the http request when the server response times out",
    ),
    "files": (
        "def read_{v}(path):\n    with open(path) as handle:\n        return handle.read().splitlines()\n",
        "Skip blank lines when reading the file at the given path",
    ),
}


def themed_documents(per_theme: int, seed: int = 0) -> tuple[list[list[str]], list[str]]:
    rng = random.Random(seed)
    documents, labels = [], []
    for i in range(per_theme * len(THEMES)):
        theme = list(THEMES)[i % len(THEMES)]
        code, instruction = THEMES[theme]
        variant = rng.choice(["alpha", "beta", "gamma", "delta"])
        documents.append(topic_document(code.format(v=variant), f"{instruction} {variant}"))
        labels.append(theme)
    return documents, labels


# ---------------------------------------------------------------- documents


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("parseHTTPHeader_v2", ["parse", "http", "header", "v"]),
        ("snake_case_name", ["snake", "case", "name"]),
        ("__init__", ["init"]),
        ("XMLParser", ["xml", "parser"]),
        ("x2", ["x"]),
    ],
)
def test_split_identifier(name: str, parts: list[str]) -> None:
    assert split_identifier(name) == parts


def test_code_words_are_identifier_parts_without_keywords_strings_or_comments() -> None:
    source = 'class HTTPServer:  # serves pages\n    def get_page(self, url):\n        return "not words" + url\n'
    assert code_words(source) == ["http", "server", "get", "page", "url", "url"]


def test_instruction_words_drop_stop_words_and_split_identifiers() -> None:
    text = "Make `most_common` return None when the inventoryItems are empty, and don't crash."
    assert instruction_words(text) == ["make", "common", "return", "inventory", "items", "empty", "crash"]


def test_topic_document_is_code_then_instruction() -> None:
    assert topic_document("total = count + 1\n", "Double the total.") == ["total", "count", "double", "total"]


# ---------------------------------------------------------------- water-filling


def test_water_fill_keeps_small_topics_whole_and_caps_large_ones() -> None:
    assert water_fill({0: 100, 1: 10, 2: 5}, 45) == {0: 30, 1: 10, 2: 5}
    # 17 left for two capped topics of equal size: the extra unit goes to the lower topic number.
    assert water_fill({0: 50, 1: 50, 2: 3}, 20) == {0: 9, 1: 8, 2: 3}
    # The extra unit goes to the larger capped topic.
    assert water_fill({0: 40, 1: 60}, 11) == {0: 5, 1: 6}


@pytest.mark.parametrize("budget", [0, 10, 165, 1000])
def test_water_fill_never_exceeds_a_topic_and_keeps_all_when_the_budget_allows(budget: int) -> None:
    sizes = {0: 100, 1: 50, 2: 10, NO_TOPIC: 5}
    quotas = water_fill(sizes, budget)
    assert sum(quotas.values()) == min(budget, sum(sizes.values()))
    assert all(0 <= quotas[t] <= sizes[t] for t in sizes)
    if budget >= sum(sizes.values()):
        assert quotas == sizes


def test_water_fill_is_max_min_fair_on_random_sizes() -> None:
    rng = random.Random(1)
    for _ in range(200):
        sizes = {t: rng.randrange(1, 200) for t in range(rng.randrange(1, 12))}
        budget = rng.randrange(0, sum(sizes.values()) + 5)
        quotas = water_fill(sizes, budget)
        assert sum(quotas.values()) == min(budget, sum(sizes.values()))
        capped = [quotas[t] for t in sizes if quotas[t] < sizes[t]]
        if capped:
            # A capped topic gets at least as much as any other topic, give or take the leftover unit.
            assert min(capped) >= max(quotas.values()) - 1


def test_water_fill_rejects_a_negative_budget() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        water_fill({0: 1}, -1)


# ---------------------------------------------------------------- balance


def test_balance_flattens_topics_deterministically_in_input_order() -> None:
    items = list(range(100))
    labels = [0] * 80 + [1] * 15 + [2] * 5
    chosen = balance(items, labels, 30, random.Random(7))
    assert Counter(labels[i] for i in chosen) == {0: 13, 1: 12, 2: 5}
    assert chosen == sorted(chosen)
    assert balance(items, labels, 30, random.Random(7)) == chosen
    assert balance(items, labels, 30, random.Random(8)) != chosen


def test_items_without_a_topic_keep_their_share_instead_of_being_capped_like_a_topic() -> None:
    items = list(range(270))
    labels = [0] * 50 + [1] * 50 + [NO_TOPIC] * 170
    chosen = balance(items, labels, 100, random.Random(0))
    counts = Counter(labels[i] for i in chosen)
    assert counts[NO_TOPIC] == 63  # 170/270 of the budget, not the 1/3 share of a topic
    assert counts == {0: 18, 1: 19, NO_TOPIC: 63} or counts == {0: 19, 1: 18, NO_TOPIC: 63}
    only = balance(list(range(40)), [NO_TOPIC] * 40, 10, random.Random(0))
    assert len(only) == 10 and only == sorted(only)


def test_balance_with_fewer_items_than_the_budget_keeps_them_all() -> None:
    assert balance(["a", "b", "c"], [0, 0, 1], 10_000, random.Random(0)) == ["a", "b", "c"]
    assert balance([], [], 5, random.Random(0)) == []
    with pytest.raises(ValueError, match="3 items but 2 topics"):
        balance(["a", "b", "c"], [0, 1], 2, random.Random(0))


# ---------------------------------------------------------------- topic models


def test_lda_separates_clear_themes_and_is_deterministic() -> None:
    documents, labels = themed_documents(30)
    fit = fit_topics(documents, {"method": "lda", "num_topics": 3}, seed=0)
    assert fit.method == "lda" and fit.pruned
    pairs = Counter(zip(labels, fit.assignments))
    assert len(pairs) == 3 and set(pairs.values()) == {30}  # each theme is one topic
    topic_of_http = next(t for (label, t) in pairs if label == "http")
    assert {"http", "response"} <= set(fit.top_words[topic_of_http])
    assert fit_topics(documents, {"method": "lda", "num_topics": 3}, seed=0).assignments == fit.assignments


def test_hdp_topics_are_pure_and_deterministic() -> None:
    pytest.importorskip("gensim")
    documents, labels = themed_documents(30)
    fit = fit_topics(documents, {"method": "hdp"}, seed=0)
    assert fit.method == "hdp"
    themes_of_topic: dict[int, set[str]] = defaultdict(set)
    for label, topic in zip(labels, fit.assignments):
        themes_of_topic[topic].add(label)
    assert all(len(themes) == 1 for themes in themes_of_topic.values())  # no topic mixes two themes
    assert fit_topics(documents, {"method": "hdp"}, seed=0).assignments == fit.assignments
    assert set(fit.top_words) == set(fit.assignments) and all(fit.top_words.values())


def test_auto_uses_hdp_where_gensim_is_installed_else_lda(monkeypatch: pytest.MonkeyPatch) -> None:
    documents, _ = themed_documents(5)
    monkeypatch.setattr(topics, "_has_gensim", lambda: False)
    assert fit_topics(documents, None, seed=0).method == "lda"
    monkeypatch.setattr(topics, "_has_gensim", lambda: True)
    pytest.importorskip("gensim")
    assert fit_topics(documents, {}, seed=0).method == "hdp"


def test_empty_documents_get_no_topic_and_none_puts_everything_in_one() -> None:
    documents, _ = themed_documents(10)
    fit = fit_topics([*documents, [], ["zzzunseen"]], {"method": "lda", "num_topics": 3}, seed=0)
    assert fit.assignments[-2:] == [NO_TOPIC, NO_TOPIC]  # no word, or only a pruned one
    assert fit.top_words[NO_TOPIC] == []
    assert fit_topics(documents, {"method": "none"}, seed=0).assignments == [0] * len(documents)
    assert fit_topics([], {"method": "lda"}, seed=0).assignments == []


def test_a_tiny_corpus_is_modelled_unpruned() -> None:
    fit = fit_topics([["alpha", "beta"], ["gamma"]], {"method": "lda", "num_topics": 2}, seed=0)
    assert not fit.pruned and fit.vocabulary == 3 and NO_TOPIC not in fit.assignments


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"method": "bertopic"}, "topic method 'bertopic'"),
        ({"num_topic": 3}, "unknown topic settings ['num_topic']"),
        ({"num_topics": 0}, "num_topics must be a positive integer"),
        ({"max_df": 0}, "max_df must be in (0, 1]"),
    ],
)
def test_bad_settings_are_clear_errors(settings: dict, message: str) -> None:
    with pytest.raises(TopicError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        fit_topics([["a"]], settings, seed=0)


def test_hdp_gives_empty_documents_no_topic() -> None:
    pytest.importorskip("gensim")
    fit = fit_topics([["alpha", "beta"], [], ["alpha"], ["beta", "gamma"]], {"method": "hdp"}, seed=0)
    assert fit.assignments[1] == NO_TOPIC and NO_TOPIC not in fit.assignments[:1] + fit.assignments[2:]
