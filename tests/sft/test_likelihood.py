"""Label likelihood: batched branch scoring equals one forward pass per (example, label), and evaluation
by likelihood picks the most probable label and never reports an irregular output."""

from __future__ import annotations

import pytest
import torch

from lsllm.data import SeqExample
from lsllm.errors import ConfigError
from lsllm.sft.config import SFTConfig
from lsllm.sft.evaluation import evaluate_examples
from lsllm.sft.generation import stop_token_ids
from lsllm.sft.likelihood import label_log_likelihoods
from lsllm.sft.templates import PromptTemplate

from .conftest import tiny_causal_lm
from .test_generation import fixture_texts

LABELS = ["negative", "positive", "Sci/Tech"]  # answers of 2 and 4 tokens: branches of unequal width
SYSTEM = "Classify the text. Answer with exactly one of these labels: negative, positive, Sci/Tech."


@torch.no_grad()
def brute_force(model, prompt: list[int], answer: list[int]) -> float:
    """log p(answer | prompt) from one unbatched, unpadded forward pass over prompt + answer."""
    ids = torch.tensor([prompt + answer])
    logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)  # (T, V)
    return sum(float(logprobs[len(prompt) - 1 + j, token]) for j, token in enumerate(answer))


def inputs(tokenizer, template_name: str, texts: list[str]):
    template = PromptTemplate(template_name, tokenizer, SYSTEM)
    stops = [tokenizer.eos_token_id]
    prompts = [template.prompt_ids(t) for t in texts]
    answers = [[template.answer_ids(t, label, stops) for label in LABELS] for t in texts]
    return prompts, answers


@pytest.mark.parametrize("template", ["chat", "llama2-chat"])
def test_batched_scores_equal_one_pass_per_example_and_label(smol_tokenizer, template):
    model = tiny_causal_lm(smol_tokenizer).eval()
    prompts, answers = inputs(smol_tokenizer, template, fixture_texts()[:10])
    assert len({len(a) for a in answers[0]}) > 1
    expected = torch.tensor([[brute_force(model, p, a) for a in per_label] for p, per_label in zip(prompts, answers, strict=True)])
    for batch_size, batch_tokens in ((32, 1024), (3, 60), (1, 1)):
        got = label_log_likelihoods(model, prompts, answers, batch_size, batch_tokens)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
        assert got.argmax(1).tolist() == expected.argmax(1).tolist()


def test_branches_do_not_see_each_other(smol_tokenizer):
    """Label order must not matter: a branch that saw an earlier one would score differently."""
    model = tiny_causal_lm(smol_tokenizer).eval()
    prompts, answers = inputs(smol_tokenizer, "chat", fixture_texts()[:4])
    forward = label_log_likelihoods(model, prompts, answers)
    backward = label_log_likelihoods(model, prompts, [a[::-1] for a in answers])
    torch.testing.assert_close(backward, forward.flip(1), atol=1e-5, rtol=1e-5)


def test_flash_attention_is_refused(smol_tokenizer):
    model = tiny_causal_lm(smol_tokenizer).eval()
    model.config._attn_implementation = "flash_attention_2"
    prompts, answers = inputs(smol_tokenizer, "chat", fixture_texts()[:2])
    with pytest.raises(ConfigError, match="attn-implementation sdpa or eager"):
        label_log_likelihoods(model, prompts, answers)


def test_evaluation_by_likelihood_predicts_the_argmax_label_and_no_irregular_outputs(smol_tokenizer):
    tok = smol_tokenizer
    model = tiny_causal_lm(tok).eval()
    labels = ["negative", "positive"]
    examples = [SeqExample(t, labels[i % 2]) for i, t in enumerate(fixture_texts()[:8])]
    template = PromptTemplate("chat", tok, SYSTEM)
    result = evaluate_examples(model, tok, template, labels, examples, SFTConfig(scoring="likelihood"), 128)
    m = result.metrics
    assert m["scoring"] == "likelihood" and "no irregular outputs" in m["scoring_note"]
    assert m["irregular"] == 0 and m["irregular_top"] == [] and m["n_examples"] == 8
    stops = stop_token_ids(model, tok)
    for ex, row in zip(examples, result.predictions, strict=True):
        scores = {label: brute_force(model, template.prompt_ids(ex.text), template.answer_ids(ex.text, label, stops))
                  for label in labels}
        assert row["label"] == max(scores, key=scores.get)
        assert row["log_likelihood"] == pytest.approx(scores, abs=1e-3)
        assert row["raw_output"] is None and row["irregular"] is False
    assert m["accuracy"] == pytest.approx(sum(r["label"] == r["gold"] for r in result.predictions) / 8)


def test_evaluation_by_generation_records_its_budget(smol_tokenizer):
    tok = smol_tokenizer
    model = tiny_causal_lm(tok).eval()
    examples = [SeqExample(t, "positive") for t in fixture_texts()[:3]]
    template = PromptTemplate("chat", tok, SYSTEM)
    result = evaluate_examples(model, tok, template, ["negative", "positive"], examples, SFTConfig(), 128)
    assert result.metrics["scoring"] == "generate" and result.metrics["max_new_tokens"] == 6
    assert result.metrics["irregular"] == 3  # a random model names no label


@pytest.mark.slow
def test_real_smollm2_scores_equal_one_pass_per_example_and_label(real_model_dir, shared_data):
    from transformers import LlamaForCausalLM

    from lsllm.models.backbones import load_tokenizer

    tok = load_tokenizer(real_model_dir)
    model = LlamaForCausalLM.from_pretrained(real_model_dir, dtype=torch.float32).eval()
    lines = (shared_data / "sst2" / "validation.tsv").read_text().splitlines()[1:9]
    texts = [line.split("\t")[0].strip() for line in lines]
    template = PromptTemplate("chat", tok, "Classify the text. Answer with exactly one of these labels: negative, positive.")
    stops = stop_token_ids(model, tok)
    prompts = [template.prompt_ids(t) for t in texts]
    answers = [[template.answer_ids(t, label, stops) for label in ("negative", "positive")] for t in texts]
    expected = torch.tensor([[brute_force(model, p, a) for a in per_label] for p, per_label in zip(prompts, answers, strict=True)])
    got = label_log_likelihoods(model, prompts, answers, batch_size=4)
    torch.testing.assert_close(got, expected, atol=2e-3, rtol=1e-4)
    assert got.argmax(1).tolist() == expected.argmax(1).tolist()
