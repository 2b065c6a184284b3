"""Random-init models with real shapes for the benchmark (`--model-config llama2-7b|llama2-13b|llama-1b|tiny`).

A GPU machine without network has neither the 7B weights nor the embedded GGUF, and weights do not
change speed: the same matmuls run whatever the numbers are. So the benchmark can build a model
from its shapes alone. `random_model_dir` writes a folder with the model's config.json (marked
with RANDOM_INIT_MARKER) and a tokenizer, and every path builds the model from that config
directly on its device (`build_random`): no weight file is written or read.

The tokenizer is a byte-level BPE (as Llama 3 / SmolLM2) trained here on the benchmark's own
texts, 8,000 tokens or the model's vocabulary if smaller, so examples have realistic lengths
(about 20 % more tokens per SST-2 sentence than SmolLM2's 49k vocabulary gives).
"""

from __future__ import annotations

import json
from pathlib import Path

RANDOM_INIT_MARKER = "lsllm_bench_random_init.json"
TOKENIZER_VOCAB = 8000

# Shapes of the published configs (Llama-2 7B/13B: meta-llama/Llama-2-*-hf; 1B: Llama-3.2-1B).
MODEL_CONFIGS: dict[str, dict] = {
    "llama2-7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=32, vocab_size=32000, rms_norm_eps=1e-5, rope_theta=10000.0),
    "llama2-13b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40,
                       num_key_value_heads=40, vocab_size=32000, rms_norm_eps=1e-5, rope_theta=10000.0),
    "llama-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=64, vocab_size=128256, rms_norm_eps=1e-5, rope_theta=500000.0,
                     tie_word_embeddings=True),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=1024, rms_norm_eps=1e-5),
    "tiny-h32": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,  # heads of 32:
                     num_key_value_heads=1, vocab_size=1024, rms_norm_eps=1e-5),  # the smallest vLLM's CPU attention takes
}


def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE with <pad>=0, <s>=1 (prepended), </s>=2, trained on `texts`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def random_model_dir(name: str, texts: list[str], folder: Path) -> Path:
    """Write config.json (+ marker) and a tokenizer for the random-init model `name` into `folder`."""
    from transformers import LlamaConfig

    if name not in MODEL_CONFIGS:
        raise SystemExit(f"--model-config {name}: choose from {', '.join(MODEL_CONFIGS)}")
    shapes = MODEL_CONFIGS[name]
    tokenizer = train_tokenizer(texts, min(TOKENIZER_VOCAB, shapes["vocab_size"]))
    config = LlamaConfig(**shapes, max_position_embeddings=4096, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / RANDOM_INIT_MARKER).write_text(json.dumps({"model_config": name, "shapes": shapes,
                                                        "tokenizer_vocab": len(tokenizer)}, indent=1) + "\n")
    return folder


def is_random_init(model_dir: Path) -> bool:
    return (Path(model_dir) / RANDOM_INIT_MARKER).is_file()


def build_random(factory, model_dir: Path, labels: list[str], dtype, device: str):
    """`factory(config, dtype=...)` (e.g. `AutoModelForSequenceClassification.from_config`) with the
    parameters allocated and initialised on `device` itself (a 7B model is never built on the CPU)."""
    import torch
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir, num_labels=len(labels), id2label=dict(enumerate(labels)),
                                        label2id={label: i for i, label in enumerate(labels)})
    with torch.device(device):
        return factory(config, dtype=dtype)
