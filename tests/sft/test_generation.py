"""The fast generation path gives plain `model.generate`'s answers, and computes the shared prefix once.

The reference is `reference_answers` (the previous implementation: `model.generate` on 32
left-padded prompts at a time). Equality is checked in fp32 on tiny random models of several
families and, marked slow, on the real SmolLM2-135M with real SST-2 sentences.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaForCausalLM

from lsllm.sft.evaluation import answer_budget
from lsllm.sft.generation import (
    generate_answers,
    reference_answers,
    shared_prefix_length,
    stop_token_ids,
    token_budget_batches,
)
from lsllm.sft.templates import PromptTemplate

from ..conftest import tiny_config
from .conftest import FIXTURES, tiny_causal_lm

SYSTEM = "Classify the text. Answer with exactly one of these labels: negative, positive."


def fixture_texts() -> list[str]:
    lines = (FIXTURES / "tiny_train.tsv").read_text().splitlines()[1:]
    return [line.split("\t")[0] for line in lines]


def test_shared_prefix_leaves_every_prompt_a_token_of_its_own():
    assert shared_prefix_length([]) == 0 and shared_prefix_length([[1, 2, 3]]) == 0
    assert shared_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3, 9, 9]]) == 2
    assert shared_prefix_length([[7, 8, 9], [7, 8, 9, 10]]) == 2  # not 3: the shortest keeps its last token
    assert shared_prefix_length([[1, 2], [3, 2]]) == 0


def test_token_budget_batches_cover_every_prompt_once_within_the_budget():
    lengths = [5, 17, 3, 3, 9, 40, 12, 12, 1, 7]
    batches = token_budget_batches(lengths, max_tokens=36, max_rows=3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) == 1 or max(lengths[i] for i in batch) * len(batch) <= 36
        assert lengths[batch[0]] == max(lengths[i] for i in batch)  # the first row sets the width
    assert batches[0] == [5]  # 40 tokens > budget: alone


def prompts_for(tokenizer, template_name: str) -> list[list[int]]:
    template = PromptTemplate(template_name, tokenizer, SYSTEM)
    return [template.prompt_ids(text) for text in fixture_texts()]


def stopping_model(tokenizer, prompts: list[list[int]], family: str | None = None):
    """A tiny random causal LM that also stops on the token its greedy answers use most after their first.

    Rows then stop at different steps, some not at all: both stopping paths are exercised.
    """
    if family is None:
        model = tiny_causal_lm(tokenizer)
    else:
        torch.manual_seed(0)
        config = tiny_config(family, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
                             max_position_embeddings=512)
        model = AutoModelForCausalLM.from_config(config)
    model.eval()
    answers = reference_answers(model, tokenizer, prompts, 6)
    encoded = [tokenizer(text=a, add_special_tokens=False)["input_ids"] for a in answers]
    first = {ids[0] for ids in encoded if ids}
    counts = Counter(t for ids in encoded for t in ids[1:] if t not in first)
    extra = counts.most_common(1)[0][0] if counts else None  # None: the answers repeat one token
    if extra is not None:
        model.generation_config.eos_token_id = [tokenizer.eos_token_id, extra]
    return model, extra


@pytest.mark.parametrize("template", ["chat", "plain", "llama2-chat"])
def test_fast_answers_equal_plain_generate(smol_tokenizer, template):
    tok = smol_tokenizer
    prompts = prompts_for(tok, template)
    model, stop = stopping_model(tok, prompts)
    expected = reference_answers(model, tok, prompts, max_new_tokens=6)
    # Small token budgets: several batches of differing sizes, unlike the reference's.
    for batch_size, batch_tokens in ((32, 1024), (5, 40), (1, 1)):
        got = generate_answers(model, tok, prompts, max_new_tokens=6, batch_size=batch_size, batch_tokens=batch_tokens)
        assert got == expected, (batch_size, batch_tokens)
    lengths = {len(tok(text=a, add_special_tokens=False)["input_ids"]) for a in expected}
    assert len(lengths) > 1  # some rows stopped early, others ran to the budget
    assert stop in stop_token_ids(model, tok)


@pytest.mark.parametrize("family", ["qwen2", "mistral", "gemma3"])
def test_fast_answers_equal_plain_generate_across_families(smol_tokenizer, family):
    tok = smol_tokenizer
    prompts = prompts_for(tok, "plain")
    model, _ = stopping_model(tok, prompts, family)
    expected = reference_answers(model, tok, prompts, max_new_tokens=5)
    assert generate_answers(model, tok, prompts, max_new_tokens=5, batch_size=7, batch_tokens=200) == expected


def test_the_shared_prefix_is_computed_once(smol_tokenizer):
    tok = smol_tokenizer
    model = tiny_causal_lm(tok).eval()
    prompts = prompts_for(tok, "chat")
    n_prefix = shared_prefix_length(prompts)
    assert n_prefix >= 20  # template + system prompt
    shapes: list[tuple[int, int]] = []
    hook = model.get_input_embeddings().register_forward_hook(lambda m, args, out: shapes.append(tuple(args[0].shape)))
    try:
        generate_answers(model, tok, prompts, max_new_tokens=1, batch_size=8)
    finally:
        hook.remove()
    assert shapes[0] == (1, n_prefix)
    own = max(len(p) for p in prompts) - n_prefix
    assert all(width <= own for _, width in shapes[1:])  # batches embed only their own tokens
    assert sum(rows for rows, _ in shapes[1:]) == len(prompts)  # max_new_tokens=1: one prefill per batch, nothing else


def test_budget_is_the_longest_answer_plus_the_margin(smol_tokenizer):
    template = PromptTemplate("chat", smol_tokenizer, SYSTEM)
    stops = [smol_tokenizer.eos_token_id]
    assert template.answer_ids("a fine film", "positive", stops) == [*smol_tokenizer.encode("positive"), stops[0]]
    assert answer_budget(template, ["negative", "positive"], stops) == 2 + 4
    assert answer_budget(template, ["negative", "Sci/Tech"], stops) == 4 + 4


def test_empty_input_and_training_mode_is_restored(smol_tokenizer):
    model = tiny_causal_lm(smol_tokenizer)
    model.train()
    assert generate_answers(model, smol_tokenizer, [], 4) == []
    generate_answers(model, smol_tokenizer, prompts_for(smol_tokenizer, "plain")[:3], 2)
    assert model.training


@pytest.mark.slow
def test_real_smollm2_fast_answers_equal_plain_generate(real_model_dir, shared_data):
    from lsllm.models.backbones import load_tokenizer

    tok = load_tokenizer(real_model_dir)
    model = LlamaForCausalLM.from_pretrained(real_model_dir, dtype=torch.float32).eval()
    lines = (shared_data / "sst2" / "validation.tsv").read_text().splitlines()[1:25]
    template = PromptTemplate("chat", tok, SYSTEM)
    prompts = [template.prompt_ids(line.split("\t")[0].strip()) for line in lines]
    for max_new in (8, answer_budget(template, ["negative", "positive"], stop_token_ids(model, tok))):
        expected = reference_answers(model, tok, prompts, max_new)
        assert generate_answers(model, tok, prompts, max_new, batch_size=16, batch_tokens=128) == expected
