"""Prompt rendering: exact strings per template, real special tokens, one BOS, prompt ids as TRL makes them."""

from __future__ import annotations

import pytest

from lsllm.errors import ConfigError
from lsllm.sft.templates import PromptTemplate, format_system_prompt, truncate_input

SYSTEM = "Classify the text. Answer with exactly one of these labels: negative, positive."


def test_system_prompt_lists_the_labels_in_id_order():
    text = format_system_prompt("Answer with one of: {labels}. {not a label}", ["negative", "positive"])
    assert text == "Answer with one of: negative, positive. {not a label}"


def test_llama2_chat_exact_string_with_real_special_tokens(llama2_tokenizer):
    template = PromptTemplate("llama2-chat", llama2_tokenizer, SYSTEM)
    assert template.render("a fine film", "positive") == (
        f"<s>[INST] <<SYS>>\n{SYSTEM}\n<</SYS>>\n\na fine film [/INST] positive </s>"
    )
    ids = llama2_tokenizer(text=template.render("a fine film", "positive"))["input_ids"]
    assert ids[0] == llama2_tokenizer.bos_token_id and ids[-1] == llama2_tokenizer.eos_token_id
    assert ids.count(llama2_tokenizer.bos_token_id) == 1


def test_llama2_chat_has_one_bos_when_the_tokenizer_adds_it(llama2_tokenizer_adding_bos):
    tok = llama2_tokenizer_adding_bos
    template = PromptTemplate("llama2-chat", tok, SYSTEM)
    ids = template.prompt_ids("a fine film")
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    assert template.render("a fine film").startswith("<s>[INST] <<SYS>>\n")  # what the model sees
    assert tok.decode(ids) == template.render("a fine film")


def test_llama2_chat_uses_smollm2s_own_eos_not_literal_markup(smol_tokenizer):
    # In SmolLM2's vocabulary "<s>"/"</s>" are plain text: the template must use <|im_start|>/<|im_end|>.
    template = PromptTemplate("llama2-chat", smol_tokenizer, SYSTEM)
    full = template.render("a fine film", "positive")
    assert full == f"<|im_start|>[INST] <<SYS>>\n{SYSTEM}\n<</SYS>>\n\na fine film [/INST] positive <|im_end|>"
    assert "</s>" not in full
    assert smol_tokenizer(text=full)["input_ids"][-1] == smol_tokenizer.eos_token_id


def test_plain_exact_string(smol_tokenizer):
    template = PromptTemplate("plain", smol_tokenizer, SYSTEM)
    assert template.render("a fine film", "positive") == (
        f"<|im_start|>{SYSTEM}\n\nInput: a fine film\nAnswer: positive<|im_end|>"
    )
    assert template.row("a fine film", "positive") == {
        "prompt": f"<|im_start|>{SYSTEM}\n\nInput: a fine film\nAnswer:",
        "completion": " positive<|im_end|>",
    }


def test_chat_exact_string_with_smollm2_template(smol_tokenizer):
    template = PromptTemplate("chat", smol_tokenizer, SYSTEM)
    prompt = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\na fine film<|im_end|>\n<|im_start|>assistant\n"
    assert template.render("a fine film") == prompt
    assert template.render("a fine film", "positive") == prompt + "positive<|im_end|>\n"
    assert smol_tokenizer.decode(template.prompt_ids("a fine film")) == prompt
    row = template.row("a fine film", "positive")
    assert row["prompt"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "a fine film"}]
    assert row["completion"] == [{"role": "assistant", "content": "positive"}]


@pytest.mark.parametrize("name", ["llama2-chat", "plain"])
def test_prompt_ids_are_a_prefix_of_the_training_sequence(smol_tokenizer, name):
    # TRL finds the completion where the prompt's tokens end; a merge across the boundary would shift it.
    template = PromptTemplate(name, smol_tokenizer, SYSTEM)
    row = template.row("a fine film", "positive")
    full = smol_tokenizer(text=row["prompt"] + row["completion"])["input_ids"]
    prompt = template.prompt_ids("a fine film")
    assert full[: len(prompt)] == prompt
    assert smol_tokenizer.decode(full[len(prompt):]) == row["completion"]
    assert full[-1] == smol_tokenizer.eos_token_id


def test_chat_without_a_chat_template_is_a_config_error(llama2_tokenizer):
    llama2_tokenizer.chat_template = None
    with pytest.raises(ConfigError, match="no chat template"):
        PromptTemplate("chat", llama2_tokenizer, SYSTEM)


def test_truncate_input_cuts_at_a_token_boundary(smol_tokenizer):
    text = "one two three four five six"
    cut, was_cut = truncate_input(smol_tokenizer, text, 3)
    assert (cut, was_cut) == ("one two three", True)
    assert truncate_input(smol_tokenizer, text, 50) == (text, False)
