"""The two stock recipes: transformers `LlamaFor{Sequence,Token}Classification` + PEFT LoRA.

`reference` is how the original research scripts train: every batch padded to max_length=64,
batch 8, fp32, random order. `tuned` is the same model with what a careful HF user switches on:
dynamic padding, Trainer's `group_by_length` ordering (LengthGroupedSampler's indices, in
transformers 5 used for evaluation too), batch 16 and bf16 autocast where the CPU has bf16 instructions.

The loop is a plain torch loop over the HF Trainer's own ingredients (AdamW with weight decay 0,
linear decay schedule, gradient clipping at 1.0, the HF data collators and samplers), so the
per-step work is what `Trainer.train()` does without its logging and callback overhead.

A path is an object with `train(examples) -> stats` and `infer(examples) -> stats`; the
benchmark times those calls from outside, so tokenization and batching are inside the timing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch
from _common import MAX_LENGTH, SeqExample, TokenExample
from _random_init import build_random, is_random_init
from peft import LoraConfig, TaskType, get_peft_model
from torch.profiler import record_function
from torch.utils.data import RandomSampler
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    get_linear_schedule_with_warmup,
)
from transformers.trainer_pt_utils import get_length_grouped_indices

LORA = {"r": 12, "lora_alpha": 32, "lora_dropout": 0.1, "target_modules": ["q_proj", "v_proj"]}
LEARNING_RATE = 1e-4


def train_epoch(model, features: list[dict], batches, batch_size: int, learning_rate: float,
                autocast=contextlib.nullcontext) -> dict:
    """The one training loop of every path: AdamW (weight decay 0), linear decay, clipping at 1.0.

    `batches` yields the epoch's model inputs (on the device), `batch_size` features each. Named
    ranges (free when no profiler is running) let bench/profile_steps.py split the time.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    steps = -(-len(features) // batch_size)
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    schedule = get_linear_schedule_with_warmup(optimizer, 0, steps)
    computed, losses = 0, []
    for batch in batches:
        with record_function("step.forward"), autocast():
            loss = model(**batch).loss
        with record_function("step.backward"):
            loss.backward()
        with record_function("step.optimizer"):
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
        computed += batch["input_ids"].numel()
        losses.append(loss.item())
    return {
        "examples": len(features),
        "real_tokens": sum(len(f["input_ids"]) for f in features),
        "computed_tokens": computed,
        "steps": steps,
        "loss_first": losses[0],
        "loss_last_mean": sum(losses[-10:]) / len(losses[-10:]),
    }


@dataclass(frozen=True)
class StockRecipe:
    """The knobs that differ between the reference and the tuned recipe."""

    name: str
    batch_size: int
    pad_to_max_length: bool  # True: every batch padded to MAX_LENGTH; False: to its longest row
    group_by_length: bool  # True: transformers' LengthGroupedSampler order (train and eval)
    autocast_dtype: str | None  # "bfloat16": torch.autocast; None: plain fp32


def recipe(name: str, fast_dtype: str) -> StockRecipe:
    """`reference` or `tuned`; `fast_dtype` is the dtype the hardware runs fast (cpu_info)."""
    if name == "reference":
        return StockRecipe("reference", 8, True, False, None)
    if name == "reference-dynamic":  # the accuracy check: same updates as reference, less padding work
        return StockRecipe("reference", 8, False, False, None)
    if name == "tuned":
        return StockRecipe("tuned", 16, False, True, "bfloat16" if fast_dtype == "bfloat16" else None)
    raise ValueError(f"unknown stock recipe {name!r}")


class StockPath:
    """One stock HF + PEFT model for one task, trained and run by one recipe."""

    def __init__(self, recipe: StockRecipe, model_dir: Path, task: str, labels: list[str],
                 device: str = "cpu", seed: int = 0):
        self.recipe, self.task, self.labels, self.device, self.seed = recipe, task, labels, device, seed
        self.name = recipe.name
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        auto = AutoModelForSequenceClassification if task == "seq" else AutoModelForTokenClassification
        torch.manual_seed(seed)  # the head and LoRA initialisation
        if is_random_init(model_dir):  # --model-config: real shapes, random weights, built on the device
            model = build_random(auto.from_config, model_dir, labels, torch.float32, device)
        else:
            model = auto.from_pretrained(
                model_dir, num_labels=len(labels), id2label=dict(enumerate(labels)),
                label2id={label: i for i, label in enumerate(labels)}, dtype=torch.float32,
            )
        # Stock sequence classification finds each row's last token by the first pad id.
        model.config.pad_token_id = self.tokenizer.pad_token_id
        task_type = TaskType.SEQ_CLS if task == "seq" else TaskType.TOKEN_CLS
        self.model = get_peft_model(model, LoraConfig(task_type=task_type, **LORA)).to(device)
        self.label2id = {label: i for i, label in enumerate(labels)}
        collator = DataCollatorWithPadding if task == "seq" else DataCollatorForTokenClassification
        self.collator = collator(
            self.tokenizer,
            padding="max_length" if recipe.pad_to_max_length else "longest",
            max_length=MAX_LENGTH if recipe.pad_to_max_length else None,
        )
        self.learning_rate = LEARNING_RATE
        self._epoch = 0

    # ------------------------------------------------------------------ encoding
    def encode(self, examples: list) -> list[dict]:
        """Token ids truncated to MAX_LENGTH; labels (seq: int; token: first sub-token of each word)."""
        if self.task == "seq":
            enc = self.tokenizer([ex.text for ex in examples], truncation=True, max_length=MAX_LENGTH)
            return [
                {"input_ids": ids, "attention_mask": mask, "labels": self.label2id[ex.label]}
                for ids, mask, ex in zip(enc["input_ids"], enc["attention_mask"], examples, strict=True)
            ]
        # Byte-level BPE: a word inside a sentence must carry its leading space, which
        # is_split_into_words does not add for this tokenizer (add_prefix_space=False).
        words = [[w if i == 0 else " " + w for i, w in enumerate(ex.tokens)] for ex in examples]
        enc = self.tokenizer(words, is_split_into_words=True, truncation=True, max_length=MAX_LENGTH)
        features = []
        for row, ex in enumerate(examples):
            word_ids = enc.word_ids(row)
            labels, previous = [], None
            for w in word_ids:
                first = w is not None and w != previous
                labels.append(self.label2id[ex.tags[w]] if first else -100)
                previous = w
            features.append({"input_ids": enc["input_ids"][row], "attention_mask": enc["attention_mask"][row],
                             "labels": labels, "word_ids": word_ids})
        return features

    def _order(self, features: list[dict], train: bool) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed + self._epoch)
        if self.recipe.group_by_length:
            # LengthGroupedSampler's ordering with its full-epoch megabatch (50 batches): the
            # sampler shrinks the megabatch to len/4 batches, which on the benchmark's small
            # example sets would leave batches unsorted and understate what grouping does.
            lengths = [len(f["input_ids"]) for f in features]
            return get_length_grouped_indices(lengths, self.recipe.batch_size, mega_batch_mult=50, generator=generator)
        if train:
            return list(RandomSampler(features, generator=generator))
        return list(range(len(features)))

    def _batches(self, features: list[dict], train: bool):
        order = self._order(features, train)
        size = self.recipe.batch_size
        for start in range(0, len(order), size):
            idx = order[start:start + size]
            rows = [{k: features[i][k] for k in ("input_ids", "attention_mask", "labels")} for i in idx]
            batch = self.collator(rows)
            yield idx, {k: v.to(self.device) for k, v in batch.items()}

    def _autocast(self):
        if self.recipe.autocast_dtype is None:
            return contextlib.nullcontext()
        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        return torch.autocast(device_type, dtype=getattr(torch, self.recipe.autocast_dtype))

    # ------------------------------------------------------------------ the path API
    def train(self, examples: list) -> dict:
        """One epoch over `examples`; returns token counts and the mean loss."""
        features = self.encode(examples)
        self._epoch += 1
        self.model.train()
        batches = (batch for _, batch in self._batches(features, train=True))
        return train_epoch(self.model, features, batches, self.recipe.batch_size, self.learning_rate, self._autocast)

    @torch.inference_mode()
    def infer(self, examples: list) -> dict:
        """Predictions (label strings; token task: one per word, "O" for words cut by truncation)."""
        features = self.encode(examples)
        model = self.model
        model.eval()
        out: list = [None] * len(features)
        computed = 0
        for idx, batch in self._batches(features, train=False):
            with self._autocast():
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            pred = logits.argmax(-1).cpu()
            computed += batch["input_ids"].numel()
            for row, i in enumerate(idx):
                if self.task == "seq":
                    out[i] = self.labels[int(pred[row])]
                else:
                    words = ["O"] * len(examples[i].tokens)
                    for pos, label in enumerate(features[i]["labels"]):
                        if label != -100:
                            words[features[i]["word_ids"][pos]] = self.labels[int(pred[row, pos])]
                    out[i] = words
        return {
            "examples": len(features),
            "real_tokens": sum(len(f["input_ids"]) for f in features),
            "computed_tokens": computed,
            "predictions": out,
        }


def build(name: str, model_dir: Path, task: str, labels: list[str], fast_dtype: str,
          device: str = "cpu", seed: int = 0) -> StockPath:
    """Entry point the benchmark uses for the `reference` and `tuned` paths."""
    return StockPath(recipe(name, fast_dtype), model_dir, task, labels, device=device, seed=seed)


__all__ = ["StockPath", "StockRecipe", "build", "recipe", "SeqExample", "TokenExample"]
