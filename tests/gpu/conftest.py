"""The GPU tier (`pytest -m gpu`): what differs on CUDA, on tiny random models, with nothing downloaded.

Every module here marks its tests `gpu` and skips them without CUDA, so `make test` and CI (no GPU)
report them as skipped. Nothing here needs the embedded SmolLM2 GGUF (too big to carry to a GPU
machine): the tokenizer is a small byte-level BPE trained here in code on the toy texts, and the
model a random-init 2-layer Llama over its vocabulary. bench/gpu_check.sh runs this tier on a GPU.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from tests.conftest import CONLL, NEGATIVE, POSITIVE

DEVICE = os.environ.get("LSLLM_GPU_TIER_DEVICE", "cuda")
"""Where the tier runs. `LSLLM_GPU_TIER_DEVICE=cpu` runs it on the CPU to check the tests' own logic on a
machine without a GPU (bench/gpu_check.sh --dry-run); only CUDA runs say anything about CUDA."""
ON_CUDA = DEVICE.startswith("cuda")
HAVE_DEVICE = torch.cuda.is_available() if ON_CUDA else True
requires_cuda = pytest.mark.skipif(not HAVE_DEVICE, reason="needs a CUDA GPU (the GPU tier)")
GPU = [pytest.mark.gpu, requires_cuda]
"""`pytestmark = GPU` in every module of this folder."""

TEXTS = POSITIVE + NEGATIVE + [" ".join(line.split()[0] for line in block.splitlines()) for block in CONLL.split("\n\n")]


@pytest.fixture(autouse=True)
def exact_fp32_matmuls():
    """fp32 comparisons on CUDA mean fp32: no TF32 rounding (10-bit mantissa) in matmuls or convolutions."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def bpe_tokenizer():
    """Byte-level BPE (as SmolLM2 / Llama 3) with <s> prepended, pad token <pad>, trained on TEXTS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(TEXTS * 4, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def llama_config(vocab_size: int, **overrides):
    """A tiny Llama with the shapes a GPU kernel cares about (head_dim 16, GQA 4:2); 4-bit needs hidden % 64 == 0."""
    from transformers import LlamaConfig

    values = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, pad_token_id=0,
                  bos_token_id=1, eos_token_id=2, tie_word_embeddings=True)
    return LlamaConfig(**{**values, **overrides})


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random-init Llama causal LM + the BPE tokenizer, saved as a local `--model` directory."""
    from transformers import LlamaForCausalLM

    tokenizer = bpe_tokenizer()
    folder = tmp_path_factory.mktemp("gpu-tiny-llama")
    torch.manual_seed(0)
    LlamaForCausalLM(llama_config(len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def seq_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gpu-seq-data")
    rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
    for split, repeat in (("train", 3), ("validation", 1), ("test", 1)):
        lines = ["text\tlabel"] + [f"{t}\t{label}" for _ in range(repeat) for t, label in rows]
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="session")
def token_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gpu-token-data")
    for split, repeat in (("train", 4), ("validation", 1), ("test", 1)):
        (folder / f"{split}.txt").write_text("\n".join([CONLL] * repeat))
    return folder


TRAIN_FLAGS = ["--max-steps", "6", "--eval-steps", "3", "--batch-size", "4", "--lora-r", "4", "--lr", "1e-3"]


def train_run(data: Path, model: Path, out: Path, *flags: str) -> Path:
    """`lsllm train` in this process (on CUDA: the default device when there is one)."""
    from lsllm.cli import main

    if not ON_CUDA:
        flags = (*flags, "--threads", "1")

    code = main(["train", "--data", str(data), "--model", str(model), "--output", str(out), *TRAIN_FLAGS, *flags])
    assert code == 0, f"lsllm train {' '.join(flags)} failed"
    return out


@pytest.fixture(scope="session")
def seq_run(tmp_path_factory, tiny_model_dir, seq_data) -> Path:
    """A sequence run trained on CUDA with a bf16 backbone (the fixture of predict/merge/serve)."""
    if not HAVE_DEVICE:
        pytest.skip("needs a CUDA GPU (the GPU tier)")
    return train_run(seq_data, tiny_model_dir, tmp_path_factory.mktemp("gpu-seq") / "run", "--dtype", "bfloat16")


@pytest.fixture(scope="session")
def token_run(tmp_path_factory, tiny_model_dir, token_data) -> Path:
    if not HAVE_DEVICE:
        pytest.skip("needs a CUDA GPU (the GPU tier)")
    return train_run(token_data, tiny_model_dir, tmp_path_factory.mktemp("gpu-token") / "run", "--dtype", "bfloat16")
