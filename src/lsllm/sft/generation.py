"""Batched greedy generation of short answers.

Prompts are left-padded so that every row's next token sits in the last column, sorted by
length so that a batch pads little, and decoded without special tokens. Greedy decoding makes
the evaluation deterministic: the same adapter gives the same answers.
"""

from __future__ import annotations

import logging

import torch
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)


def stop_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The tokenizer's EOS plus any end-of-turn ids the model's generation config already lists."""
    ids = [tokenizer.eos_token_id]
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        configured = [configured]
    ids.extend(i for i in configured or [] if i not in ids)
    return ids


@torch.inference_mode()
def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[int]],
    max_new_tokens: int,
    batch_size: int = 32,
) -> list[str]:
    """Greedy answers for token-id prompts, in the order given.

    Args:
        model: a causal LM (a PeftModel works too), already on its device.
        tokenizer: supplies pad/EOS ids and decodes the answers.
        prompts: one list of token ids per example (as `PromptTemplate.prompt_ids` returns).
        max_new_tokens: the most tokens generated per answer.
        batch_size: prompts per `generate` call.

    Returns:
        The generated continuations as text, special tokens removed, one per prompt.
    """
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        pad_token_id=pad_id,
        eos_token_id=stop_token_ids(model, tokenizer),
        use_cache=True,
    )
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
    answers: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(len(prompts[i]) for i in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (B, T), left-padded
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            ids = prompts[i]
            input_ids[r, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[r, width - len(ids) :] = 1
        out = model.generate(
            input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), generation_config=config
        )
        new_tokens = out[:, width:]  # (B, <= max_new_tokens)
        for r, i in enumerate(rows):
            answers[i] = tokenizer.decode(new_tokens[r], skip_special_tokens=True)
        log.info("generated %d/%d answers", min(start + batch_size, len(order)), len(order))
    if was_training:
        model.train()
    return answers
