"""The ``transformers`` backend: a causal LM run in this process, in deterministic batches.

torch and transformers are imported at the first call that needs them, not with this module.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from editforge.backend.base import Backend, Run
from editforge.backend.cache import CompletionCache, cache_key
from editforge.backend.models import model_identity, resolve_model_path
from editforge.backend.settings import TransformersSettings
from editforge.backend.types import Completion, Price, Request
from editforge.edit_format import render_plain


class TransformersBackend(Backend):
    """A causal LM run in this process, in batches that do not depend on the cache.

    Batches are cut from the full list of distinct (request, sample) items in input
    order, before looking at the cache, and each is seeded from its items' keys. A batch
    runs unless all its items are cached, and its new items are stored as soon as it
    ends, so a run killed and started again yields what an uninterrupted run yields
    (bit for bit on CPUs; on a GPU, batched bf16 kernels are not bit-exact from run to
    run, so a regenerated batch may sample other texts, as bench/gpu.py shows).
    """

    kind = "transformers"

    def __init__(
        self, name: str, settings: TransformersSettings, cache: CompletionCache | None, price: Price | None
    ) -> None:
        super().__init__(name, model_identity(settings.model), cache, price)
        self.settings = settings
        self._loaded: tuple[Any, Any] | None = None  # (model, tokenizer), on first need

    def _key_extras(self, request: Request) -> dict[str, Any]:
        # How messages become text is part of the prompt.
        return {"template": "chat" if self.settings.chat_template else "plain"}

    def generate(self, requests: Sequence[Request], *, desc: str = "generate") -> list[list[Completion]]:
        with Run(self, requests, desc) as run:
            for batch in _batches(run.items(), requests, self.settings.batch_size):
                if all(run.results[index][sample] is not None for index, sample in batch):
                    continue
                seed = int(cache_key({"batch": [run.keys[index][sample] for index, sample in batch]})[:15], 16)
                fresh = self._generate_batch([requests[index] for index, _ in batch], seed)
                for (index, sample), completion in zip(batch, fresh, strict=True):
                    if run.results[index][sample] is None:
                        run.deliver(index, sample, completion)
            return run.completions()

    def close(self) -> None:
        if self._loaded is not None:
            self._loaded = None
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _model(self) -> tuple[Any, Any]:
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    def _load(self) -> tuple[Any, Any]:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        settings = self.settings
        if settings.num_threads is not None:
            torch.set_num_threads(settings.num_threads)
        source = resolve_model_path(settings.model)
        device = settings.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = "auto" if settings.dtype == "auto" else getattr(torch, settings.dtype)
        tokenizer = AutoTokenizer.from_pretrained(source, padding_side="left")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, device_map=device).eval()
        return model, tokenizer

    def _encode(self, tokenizer: Any, request: Request) -> list[int]:
        """Prompt token ids: the rendered prompt with the prefill appended."""
        if request.prompt is not None:
            text, special = request.prompt, True
        elif self.settings.chat_template and tokenizer.chat_template:
            # The template writes its own special tokens.
            text = tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
            special = False
        else:
            text, special = render_plain(request.messages), True
        return list(tokenizer(text + request.prefill, add_special_tokens=special)["input_ids"])

    def _generate_batch(self, rows: list[Request], seed: int) -> list[Completion]:
        import torch

        model, tokenizer = self._model()
        sampling = rows[0].sampling  # _batches keeps one Sampling per batch
        prompts = [self._encode(tokenizer, request) for request in rows]
        inputs = tokenizer.pad({"input_ids": prompts}, padding=True, return_tensors="pt").to(model.device)
        options: dict[str, Any] = {"max_new_tokens": sampling.max_tokens, "pad_token_id": tokenizer.pad_token_id}
        if sampling.temperature > 0:
            # top_k=0: the whole nucleus, as OpenAI-style servers sample (transformers would cut at 50).
            options.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        else:
            options["do_sample"] = False
        if sampling.stop:
            from transformers import StoppingCriteriaList

            prompt_length = inputs["input_ids"].shape[1]
            options["stopping_criteria"] = StoppingCriteriaList([_StopStrings(tokenizer, sampling.stop, prompt_length)])
        torch.manual_seed(seed)
        with torch.inference_mode():
            output = model.generate(**inputs, **options)
        generated = output[:, inputs["input_ids"].shape[1] :].tolist()
        eos = _eos_ids(model, tokenizer)
        return [
            _decode(tokenizer, ids, eos, len(prompt), sampling.stop)
            for ids, prompt in zip(generated, prompts, strict=True)
        ]


def _batches(items: list[tuple[int, int]], requests: Sequence[Request], size: int) -> Iterator[list[tuple[int, int]]]:
    """Consecutive runs of at most ``size`` items that share one Sampling."""
    batch: list[tuple[int, int]] = []
    for item in items:
        if batch and (len(batch) == size or requests[batch[0][0]].sampling != requests[item[0]].sampling):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


class _StopStrings:
    """Ends a row once its generated text contains a stop string.

    Unlike transformers' own ``stop_strings``, a match may not reach back into the
    prompt (a prompt ending in "(" must not complete a stop string "((" for instance).
    """

    def __init__(self, tokenizer: Any, stops: tuple[str, ...], prompt_length: int) -> None:
        self.tokenizer = tokenizer
        self.stops = stops
        self.prompt_length = prompt_length
        # Checked after every token, so a new match ends within the last few tokens;
        # a token holds at least one character, or part of one.
        self.window = max(map(len, stops)) + 4

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        tails = input_ids[:, self.prompt_length :][:, -self.window :]
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=True)
        done = [any(stop in text for stop in self.stops) for text in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.add(tokenizer.eos_token_id)
    ids.discard(None)
    return ids


def _decode(tokenizer: Any, ids: list[int], eos: set[int], prompt_tokens: int, stop: tuple[str, ...]) -> Completion:
    """One generated row: text up to the end of sequence or the first stop string."""
    # A row that ended early is padded; the first end-of-sequence or pad token marks its
    # end (with pad == eos, as in SmolLM2, both are the same token).
    ends = eos | {tokenizer.pad_token_id}
    cut = next((position for position, token in enumerate(ids) if token in ends), None)
    if cut is None:
        used, finish = len(ids), "length"
    else:
        used, finish = cut + (ids[cut] in eos), "stop"
    text = tokenizer.decode(ids[:cut], skip_special_tokens=True)
    hits = [text.find(string) for string in stop if string in text]
    if hits:
        text, finish = text[: min(hits)], "stop"
    return Completion(text=text, finish_reason=finish, prompt_tokens=prompt_tokens, completion_tokens=used)
