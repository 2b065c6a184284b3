"""The lsllm path of the throughput benchmark: the library's own fast path, same model, data and LoRA.

What differs from the stock recipes (and nothing else):
- backbone weights stored in bf16 where the CPU/GPU multiplies bf16 natively (no autocast
  re-casting fp32 weights at every op), LoRA adapters and the head in fp32;
- training batches packed into one row (no padding; block-diagonal attention, positions reset
  per example), 16 examples per step as in the tuned recipe (random order, as `lsllm train`);
- attention per example within packed rows (`lsllm.models.attention`), in fp32 when training on CPU;
- LoRA dropout with a cheaper random mask on CPU (`lsllm.models.dropout.FastDropout`, p = 0.1 as the others);
- inference with LoRA merged into the weights (no adapter ops), `inference_mode`, inputs sorted by
  length and packed into one row of up to 2048 tokens per batch
  (`lsllm.inference.prediction.feature_probabilities`, as `lsllm predict` and the server), the weights
  multiplied by the kernel `lsllm predict --matmul auto` chooses (`lsllm.models.kernels`: oneDNN
  with packed weights where the machine's cached probe finds it faster, nn.Linear elsewhere).
  As `lsllm predict` merges and packs once at load, the path merges and packs at its first
  inference call (the untimed warm-up) and keeps that state until it trains again.

`lsllm-fp32` is the same path in fp32 (vLLM's fp32 peer; inference only).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import torch
from _random_init import build_random, is_random_init
from _stock import LEARNING_RATE, LORA, train_epoch

from lsllm.config import LoraSettings
from lsllm.data import SeqExample, TokenExample, encode_sequences, encode_tokens
from lsllm.data.packing import PackingCollator
from lsllm.inference.prediction import feature_probabilities, packed_batches, word_predictions
from lsllm.models.adapters import apply_lora, merged_for_inference
from lsllm.models.backbones import load_tokenizer
from lsllm.models.classifiers import LSForSequenceClassification, LSForTokenClassification
from lsllm.models.kernels import choose_matmul, matmul_for_inference

BATCH_SIZE = 16
MAX_LENGTH = 64


class LsllmPath:
    name = "lsllm"

    def __init__(self, model_dir: Path, task: str, labels: list[str], fast_dtype: str, device: str, seed: int):
        self.task, self.labels, self.device, self.seed = task, labels, device, seed
        self.compute_dtype = fast_dtype
        self.tokenizer = load_tokenizer(model_dir)
        cls = LSForSequenceClassification if task == "seq" else LSForTokenClassification
        torch.manual_seed(seed)
        if is_random_init(model_dir):  # --model-config: real shapes, random weights, built on the device
            model = build_random(cls._from_config, model_dir, labels, getattr(torch, fast_dtype), device)
            model.score.float()  # as from_pretrained does: the head stays fp32
        else:
            model = cls.from_pretrained(str(model_dir), num_labels=len(labels), id2label=dict(enumerate(labels)),
                                        label2id={label: i for i, label in enumerate(labels)}, dtype=getattr(torch, fast_dtype))
        settings = LoraSettings(r=LORA["r"], alpha=LORA["lora_alpha"], dropout=LORA["lora_dropout"],
                                target_modules=list(LORA["target_modules"]))
        self.model = apply_lora(model, settings).to(device)
        self.label2id = {label: i for i, label in enumerate(labels)}
        self.collator = PackingCollator(task)
        self._epoch = 0
        self.learning_rate = LEARNING_RATE
        self.batch_size = BATCH_SIZE
        self.matmul_setting = "auto"  # throughput.py --matmul
        self.matmul = None  # chosen at the first inference call
        self._inference: ExitStack | None = None  # merged (and packed) while inferring; undone by train()

    def encode(self, examples: list):
        if self.task == "seq":
            return encode_sequences([SeqExample(e.text, e.label) for e in examples], self.tokenizer, self.label2id, MAX_LENGTH)
        return encode_tokens([TokenExample(e.tokens, e.tags) for e in examples], self.tokenizer, self.label2id, MAX_LENGTH)

    def _ready_for_inference(self) -> None:
        """LoRA merged and the chosen kernel in place, as `lsllm predict` loads a run; kept until the next train()."""
        if self._inference is None:
            stack = ExitStack()
            stack.enter_context(merged_for_inference(self.model))
            self.matmul = choose_matmul(self.model, self.matmul_setting)
            stack.enter_context(matmul_for_inference(self.model, self.matmul))
            self._inference = stack

    def train(self, examples: list) -> dict:
        if self._inference is not None:  # back to the adapter and nn.Linear, weights bit for bit
            self._inference.close()
            self._inference = None
        features = self.encode(examples).features
        self._epoch += 1
        self.model.train()
        generator = torch.Generator().manual_seed(self.seed + self._epoch)
        order = torch.randperm(len(features), generator=generator).tolist()
        size = self.batch_size
        rows = (self.collator([features[i] for i in order[start:start + size]]) for start in range(0, len(order), size))
        batches = ({k: v.to(self.device) for k, v in batch.items()} for batch in rows)
        return train_epoch(self.model, features, batches, size, self.learning_rate)

    def infer(self, examples: list) -> dict:
        encoded = self.encode(examples)
        self._ready_for_inference()
        probs = feature_probabilities(self.model, encoded.features, self.tokenizer.pad_token_id)
        if self.task == "seq":
            out = [self.labels[int(p.argmax())] for p in probs]
        else:
            words = word_predictions(encoded.features, probs, [len(e.tokens) for e in examples])
            out = [[self.labels[t] for t, _ in sentence] for sentence in words]
        return {
            "examples": len(examples),
            "real_tokens": sum(len(f["input_ids"]) for f in encoded.features),
            "computed_tokens": sum(b.inputs["input_ids"].numel() for b in packed_batches(encoded.features, 0, 2048)),
            "predictions": out,
            "matmul": self.matmul,
        }


def build(name: str, model_dir: Path, task: str, labels: list[str], fast_dtype: str,
          device: str = "cpu", seed: int = 0) -> LsllmPath:
    path = LsllmPath(model_dir, task, labels, "float32" if name == "lsllm-fp32" else fast_dtype, device, seed)
    path.name = name
    return path
