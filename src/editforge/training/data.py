"""Tokenisation with the evaluation prompt, loss masks, batch layouts and the sample order.

Three layouts of a micro-batch, all with the same samples and the same loss:
``collate`` (dynamic padding), ``collate(..., width=max_seq_len)`` and ``collate_packed``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from editforge.edit_format import render_plain
from editforge.training.settings import TrainingError

IGNORE_INDEX = -100  # label of tokens that carry no loss (prompt, padding)
ROLES = ["system", "user", "assistant"]

Example = Mapping[str, list[int]]


def encode_prompt(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Mapping[str, str]], chat_template: bool
) -> list[int]:
    """Token ids of the edit prompt (system and user turns) as evaluation sends it.

    With a chat template the rendered text already holds its special tokens, so
    none are added (what ``apply_chat_template(..., tokenize=True)`` does); the
    plain layout gets the tokenizer's usual ones (a base model's BOS).
    """
    prompt = [dict(m) for m in messages[:2]]
    if chat_template and tokenizer.chat_template:
        text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(render_plain(prompt, add_generation_prompt=True))["input_ids"]


def tokenize_example(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[Mapping[str, str]],
    max_seq_len: int,
    chat_template: bool,
) -> dict[str, list[int]] | None:
    """``input_ids`` = prompt + answer + EOS and ``labels`` (-100 on the prompt), or None when too long.

    Each sample is tokenised as: the prompt exactly as evaluation sends it (the
    system and user turns through the chat template with the generation prompt, or
    ``edit_format.render_plain`` without a template), then the assistant's answer,
    then the EOS token. Only the answer and the EOS carry loss. Samples longer than
    ``max_seq_len`` are skipped, not truncated: a truncated answer would teach the
    model to stop mid-program (or, with a cut prompt, to edit code it never saw).
    """
    roles = [m.get("role") for m in messages]
    if roles != ROLES:
        raise TrainingError(f"a training sample needs messages with roles {ROLES}, got {roles}")
    if tokenizer.eos_token_id is None:
        raise TrainingError("the tokenizer has no EOS token, so the model could not learn to stop")
    prompt = encode_prompt(tokenizer, messages, chat_template)
    if not prompt:
        raise TrainingError("the prompt tokenised to nothing")
    answer = tokenizer(messages[2]["content"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if len(prompt) + len(answer) > max_seq_len:
        return None
    return {"input_ids": prompt + answer, "labels": [IGNORE_INDEX] * len(prompt) + answer}


def target_count(example: Example) -> int:
    """Tokens that carry loss: labelled tokens after the first (the first is never predicted)."""
    return sum(1 for label in example["labels"][1:] if label != IGNORE_INDEX)


def collate(batch: Sequence[Example], pad_id: int, width: int | None = None) -> dict[str, torch.Tensor]:
    """Right-pad to the longest sample (or to ``width``); padding is found by length, never by token id.

    (The pad id is often the EOS id, and the EOS at the end of each answer must keep its label.)

    - ``collate`` (dynamic padding): one sample per row, right-padded to the longest
      sample of the micro-batch, with an attention mask.
    - ``collate(..., width=max_seq_len)``: every row padded to ``max_seq_len``; only
      for comparison (``bench/finetune.py``) and static-shape compilers.
    """
    width = width or max(len(example["input_ids"]) for example in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        length = len(example["input_ids"])
        input_ids[row, :length] = torch.tensor(example["input_ids"])
        labels[row, :length] = torch.tensor(example["labels"])
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def pack_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: indices of ``lengths`` grouped into rows of at most ``capacity`` tokens.

    Rows keep their samples in decreasing length; ties keep input order, so the
    layout depends only on the lengths.
    """
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        if lengths[index] > capacity:
            raise TrainingError(f"a sample of {lengths[index]} tokens does not fit a row of {capacity}")
        for row, free in enumerate(room):
            if lengths[index] <= free:
                rows[row].append(index)
                room[row] -= lengths[index]
                break
        else:
            rows.append([index])
            room.append(capacity - lengths[index])
    return rows


def collate_packed(batch: Sequence[Example], pad_id: int, capacity: int | None = None) -> dict[str, torch.Tensor]:
    """The samples end to end in rows of at most ``capacity`` tokens (default: the longest sample's
    length), with per-sample ``position_ids``.

    A row shorter than the longest is padded with its own position run (0, 1, ...)
    and no labels; causal attention keeps the real tokens from seeing it. The
    first token of every sample is unlabelled, so no label crosses a boundary.

    ``collate_packed``: the samples laid end to end into as few rows as
    first-fit-decreasing finds, each no longer than the micro-batch's longest
    sample, with ``position_ids`` restarting at 0 for each sample and no attention
    mask. transformers then reads the sample boundaries from the position restarts
    and builds a block-diagonal causal mask (``masking_utils.find_packed_sequence_indices``;
    with flash-attention 2 the same ids select its variable-length kernel), so no
    token attends across samples; ``tests/test_training.py`` checks that packed
    logits equal those of each sample run alone.

    Rows are capped at the longest sample rather than at ``max_seq_len`` because
    SDPA and eager attention compute the whole row x row score matrix and only
    mask it: a row twice as wide costs four times the attention. Capped so, packing
    never computes more than dynamic padding and drops most of its padding.
    """
    lengths = [len(example["input_ids"]) for example in batch]
    rows = pack_rows(lengths, capacity or max(lengths))
    width = max(sum(len(batch[i]["input_ids"]) for i in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for i in row:
            length = len(batch[i]["input_ids"])
            input_ids[r, start : start + length] = torch.tensor(batch[i]["input_ids"])
            labels[r, start : start + length] = torch.tensor(batch[i]["labels"])
            labels[r, start] = IGNORE_INDEX
            position_ids[r, start : start + length] = torch.arange(length)
            start += length
        position_ids[r, start:] = torch.arange(width - start)
    return {"input_ids": input_ids, "position_ids": position_ids, "labels": labels}


def micro_batches(examples: int, batch_size: int, seed: int) -> Iterator[list[int]]:
    """Sample indices of each micro-batch, endlessly: every epoch in a fresh seeded order.

    The stream depends only on (examples, batch_size, seed), so every process
    computes the same one and a resumed run skips what was trained before.
    """
    order_rng = random.Random(seed)
    while True:
        order = list(range(examples))
        order_rng.shuffle(order)
        for start in range(0, examples, batch_size):
            yield order[start : start + batch_size]
