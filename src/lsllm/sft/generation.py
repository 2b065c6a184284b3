"""Batched greedy generation of short answers, computing the shared system prompt once.

Every SFT prompt starts with the same tokens (template + system prompt: 25 of the 42 tokens of
an SST-2 chat prompt for SmolLM2), and a label answer is a few tokens. Prefill is therefore most
of the cost, and most of prefill is the same work repeated. The fast path:

- runs the prompts' common token prefix once and gives every batch a copy of its KV cache, so
  each prompt only prefills its own tokens;
- sorts prompts by length and batches them by a budget of padded tokens (rows x longest), so
  padding stays small without a fixed batch size; pads sit between the shared prefix and each
  prompt's own tokens, masked, with positions taken from the mask (as `generate` does);
- decodes with `model.generate` itself (greedy, the model's logits processors and stop
  tokens), which ends a batch as soon as every row has emitted a stop token.

Greedy decoding makes evaluation deterministic, and this path gives the answers of plain
`model.generate` batch by batch (`reference_answers`, kept as the definition the tests and
bench/sft_speed.py compare against): causal attention makes the prefix's keys and values the
same whichever prompt follows it, so only rounding can differ.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import torch
from transformers import DynamicCache, GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

DEFAULT_BATCH_TOKENS = 1024
"""Padded prompt tokens per batch: on one CPU core 512-1024 was fastest (bench/sft_speed.py),
larger batches lose more to cache misses than they gain in matmul width."""


def stop_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The tokenizer's EOS plus any end-of-turn ids the model's generation config already lists."""
    ids = [tokenizer.eos_token_id]
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        configured = [configured]
    ids.extend(i for i in configured or [] if i not in ids)
    return ids


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def shared_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix all prompts share, leaving every prompt at least one token of its own.

    The lexicographically smallest and largest prompts share exactly the prefix that all share.
    """
    if len(prompts) < 2:
        return 0
    lo, hi = min(prompts), max(prompts)
    limit = min(len(p) for p in prompts) - 1  # the last token must be run to get next-token logits
    n = 0
    while n < limit and lo[n] == hi[n]:
        n += 1
    return n


def token_budget_batches(lengths: Sequence[int], max_tokens: int, max_rows: int) -> list[list[int]]:
    """Indices sorted longest first, cut into batches of at most `max_rows` rows and `max_tokens` padded tokens.

    A prompt longer than `max_tokens` gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    for i in order:
        # Longest first: the batch's first row sets its width.
        if batches and len(batches[-1]) < max_rows and lengths[batches[-1][0]] * (len(batches[-1]) + 1) <= max_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


class PrefixCache:
    """The keys and values of the prompts' shared prefix, computed once, copied for each batch.

    Args:
        model: the causal LM.
        prefix: the shared token ids (may be empty: then batches start with no cache).
    """

    def __init__(self, model: PreTrainedModel, prefix: Sequence[int]) -> None:
        self.prefix = list(prefix)
        self.device = next(model.parameters()).device
        self._cache: DynamicCache | None = None
        if self.prefix:
            self._cache = DynamicCache(config=model.config)
            ids = torch.tensor([self.prefix], dtype=torch.long, device=self.device)  # (1, P)
            model(input_ids=ids, past_key_values=self._cache, use_cache=True, logits_to_keep=1)

    def __len__(self) -> int:
        return len(self.prefix)

    def for_batch(self, rows: int) -> DynamicCache | None:
        """A fresh cache holding the prefix for `rows` rows (None when there is no prefix)."""
        if self._cache is None:
            return None
        cache = copy.deepcopy(self._cache)
        cache.batch_repeat_interleave(rows)  # (1, H, P, D) -> (rows, H, P, D) in every layer
        return cache


def progress_bar(total: int, desc: str, show: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ex", leave=False, disable=not show)


@torch.inference_mode()
def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[int]],
    max_new_tokens: int,
    batch_size: int = 32,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    show_progress: bool = False,
) -> list[str]:
    """Greedy answers for token-id prompts, in the order given.

    Args:
        model: a causal LM (merged LoRA or a PeftModel), already on its device.
        tokenizer: supplies pad/EOS ids and decodes the answers.
        prompts: one list of token ids per example (as `PromptTemplate.prompt_ids` returns).
        max_new_tokens: the most tokens generated per answer.
        batch_size: the most prompts per batch.
        batch_tokens: the most padded prompt tokens (after the shared prefix) per batch.
        show_progress: draw a progress bar (examples/s) on stderr.

    Returns:
        The generated continuations as text, special tokens removed, one per prompt.

    Example:
        >>> generate_answers(model, tokenizer, [template.prompt_ids("a fine film")], max_new_tokens=6)
        ['positive']
    """
    if not prompts:
        return []
    pad_id = pad_token_id(tokenizer)
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        pad_token_id=pad_id,
        eos_token_id=stop_token_ids(model, tokenizer),
        use_cache=True,
    )
    was_training = model.training
    model.eval()
    prefix = PrefixCache(model, prompts[0][: shared_prefix_length(prompts)])
    n_prefix = len(prefix)
    lengths = [len(p) - n_prefix for p in prompts]
    answers: list[str] = [""] * len(prompts)
    bar = progress_bar(len(prompts), "generating", show_progress)
    for rows in token_budget_batches(lengths, batch_tokens, batch_size):
        width = lengths[rows[0]]
        # (B, P + W): [shared prefix | pads | the prompt's own tokens]; positions follow the mask.
        input_ids = torch.full((len(rows), n_prefix + width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        input_ids[:, :n_prefix] = torch.tensor(prefix.prefix, dtype=torch.long)
        attention_mask[:, :n_prefix] = 1
        for r, i in enumerate(rows):
            own = prompts[i][n_prefix:]
            input_ids[r, n_prefix + width - len(own) :] = torch.tensor(own, dtype=torch.long)
            attention_mask[r, n_prefix + width - len(own) :] = 1
        out = model.generate(
            input_ids=input_ids.to(prefix.device),
            attention_mask=attention_mask.to(prefix.device),
            past_key_values=prefix.for_batch(len(rows)),
            generation_config=config,
        )
        new_tokens = out[:, n_prefix + width :]  # (B, <= max_new_tokens)
        for r, i in enumerate(rows):
            answers[i] = tokenizer.decode(new_tokens[r], skip_special_tokens=True)
        bar.update(len(rows))
    bar.close()
    log.info("generated %d answers (%d shared prefix tokens computed once)", len(prompts), n_prefix)
    if was_training:
        model.train()
    return answers


@torch.inference_mode()
def reference_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[int]],
    max_new_tokens: int,
    batch_size: int = 32,
) -> list[str]:
    """Plain `model.generate`, `batch_size` left-padded prompts at a time, longest first.

    The slow path this module replaced, kept as the definition `generate_answers` must match
    (tests/sft/test_generation.py) and as the "before" of bench/sft_speed.py.
    """
    pad_id = pad_token_id(tokenizer)
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, pad_token_id=pad_id,
                              eos_token_id=stop_token_ids(model, tokenizer), use_cache=True)
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
        out = model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), generation_config=config)
        for r, i in enumerate(rows):
            answers[i] = tokenizer.decode(out[r, width:], skip_special_tokens=True)
    if was_training:
        model.train()
    return answers
