"""A trained classifier ready to use: model + tokenizer + labels + the same encoding as training.

`Classifier` is what `eval`, `predict`, `serve` and the training loop's evaluation share, so a
model is always scored and served exactly the way it was validated. It runs a PyTorch model
through `inference.prediction`'s packed batches; `inference.onnx.OnnxClassifier` is the same
classifier with ONNX Runtime behind it. `lsllm.pipeline.load_run` builds one from a run folder,
`inference.backends.open_classifier` from a run or an export with the backend asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lsllm.data.examples import SeqExample, fields_text
from lsllm.data.text import has_visible_text
from lsllm.errors import DataError
from lsllm.inference.prediction import feature_probabilities
from lsllm.problems import Problem, family
from lsllm.runs import ExportInfo, RunInfo


@dataclass
class Classifier:
    model: Any
    tokenizer: Any
    labels: list[str]
    problem: Problem  # the task family member: single-label | multi-label | regression | token tagging (NER)
    max_length: int
    label_all_subtokens: bool = False
    max_batch_tokens: int = 2048  # tokens per inference batch (one packed row): measured a little faster than 1024 on CPU
    prompt: str | None = None  # seq: the template every input is wrapped in (training's --prompt)
    fields: list[str] | None = None  # seq: the input's text fields when it has several (sentence pairs)
    backend = "torch"  # what runs the model (/info); OnnxClassifier: "onnxruntime fp32" | "onnxruntime int8"
    matmul = "torch"  # torch: what multiplies the weights (models.kernels: "torch" | "onednn"; set by inference.backends.open_classifier)

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    @property
    def task(self) -> str:
        """"seq" | "token", for the files that record it (the family's `Problem.task`); code asks `problem`."""
        return self.problem.task

    @staticmethod
    def record_settings(record: RunInfo | ExportInfo) -> dict[str, Any]:
        """What a saved run or export gives a classifier: labels, the problem restored with its state, encoding settings."""
        return {"labels": list(record.labels), "problem": family(record.task, record.problem, record.problem_state),
                "max_length": record.max_length, "label_all_subtokens": record.label_all_subtokens,
                "prompt": record.prompt, "fields": record.fields}

    @classmethod
    def from_record(cls, record: RunInfo | ExportInfo, model: Any, tokenizer: Any, **settings: Any) -> Classifier:
        """A classifier as a run's model/lsllm.json (`runs.RunInfo`) or an export's lsllm-export.json recorded it.

        ``model`` may be None and set later (`load_run` asks the problem for the model class
        first); ``settings`` override the record's or set the rest (``max_batch_tokens``).
        """
        return cls(model, tokenizer, **{**cls.record_settings(record), **settings})

    def encode(self, examples: Sequence):
        return self.problem.encode(examples, self.tokenizer, self.label2id, self.max_length, self.prompt,
                                   self.label_all_subtokens)

    def input_lengths(self, kind: str, inputs: Sequence, tokenizer: Any = None) -> list[int]:
        """Tokens each input takes as this classifier encodes it: the run's --prompt included, special tokens not.

        Args:
            kind: "texts" (raw strings; a token classifier splits them into words) or "tokens" (word lists).
            tokenizer: a copy of the classifier's tokenizer, for callers on other threads (default: its own).
        """
        if kind == "tokens":
            texts = [" ".join(words) for words in inputs]
        else:  # texts, or records of the run's fields (pairs)
            texts = [self.problem.input_text(text, self.prompt) for text in inputs]
        return [len(ids) for ids in (tokenizer or self.tokenizer)(texts, add_special_tokens=False)["input_ids"]]

    def probabilities(self, encoded, progress=None) -> list[torch.Tensor]:
        """Per feature: the problem type's outputs (probabilities or values; token tasks: per position)."""
        return feature_probabilities(self.model, encoded.features, self.tokenizer.pad_token_id, self.max_batch_tokens,
                                     progress=progress, activation=self.problem.outputs)

    def predict_examples(self, examples: Sequence, progress=None, **context) -> tuple[list[dict], Any]:
        """Records for examples (labels ignored) and the encoded split they came from (``context``: the raw
        texts and word spans a token classifier gives entities character offsets from)."""
        encoded = self.encode(examples)
        probs = self.probabilities(encoded, progress)
        return self.problem.records(examples, probs, encoded, self.labels, **context), encoded

    def predict_texts(self, texts: Sequence[str | dict[str, str]], progress=None) -> list[dict]:
        """Raw texts (or, for a run on sentence pairs, records of its fields): a decision each (seq), or
        entities with word and character offsets (token)."""
        examples, context = self.problem.from_texts(texts, self.example)
        return self.predict_examples(examples, progress, **context)[0]

    def predict_tokens(self, sentences: Sequence[Sequence[str]], progress=None) -> list[dict]:
        return self.predict_examples(self.problem.from_tokens(sentences), progress)[0]

    def example(self, i: int, given: str | dict[str, str]) -> SeqExample:
        """One input to a sequence classifier as an example: a text, or a record of the run's fields (pairs)."""
        if isinstance(given, dict):
            wanted = self.fields or ["text"]
            missing = [name for name in wanted if not isinstance(given.get(name), str) or not has_visible_text(given[name])]
            if missing:
                raise DataError(f"input {i + 1}: field {missing[0]!r} is missing or empty; this run reads {', '.join(wanted)}")
            if not self.fields:
                given = given["text"]
            else:
                fields = {name: given[name] for name in wanted}
                return SeqExample(fields_text(fields), fields=fields)
        if not isinstance(given, str) or not has_visible_text(given):
            raise DataError(f"input {i + 1}: empty text; give at least one visible character")
        if self.fields:
            raise DataError(f"input {i + 1}: this run reads several fields ({', '.join(self.fields)}); "
                            "give a record of them (JSONL / a table with those columns), not one text")
        return SeqExample(given)

    def evaluate(self, examples: Sequence, progress=None, tune: bool = False) -> tuple[dict, list[dict]]:
        """Metrics (schema of docs/metrics.md) and prediction records for labelled examples.

        ``tune``: first choose the problem type's decision settings on these examples (multi-label
        thresholds; only ever on validation), then score with them.
        """
        encoded = self.encode(examples)
        outputs = self.probabilities(encoded, progress)
        gold = [self.problem.gold(e) for e in examples]
        if tune:
            self.problem.tune(gold, outputs, self.labels)
        records = self.problem.records(examples, outputs, encoded, self.labels)
        for record, label in zip(records, gold, strict=True):
            record["gold"] = label
        metrics = self.problem.metrics(gold, outputs, self.labels, n_truncated=encoded.n_truncated, records=records)
        return metrics, records
