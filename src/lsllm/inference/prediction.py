"""Batched inference and the one record schema shared by `predict`, predictions.jsonl and the server.

(`packed_batches`/`feature_probabilities`: the torch backend; `padded_batch`/`padded_batch_plan`:
padded batches for ONNX Runtime's graph, `inference.onnx`.)

The fast path: LoRA merged into the base weights (no adapter ops), ``torch.inference_mode``,
inputs sorted by length and packed end to end into one row per batch up to a token budget
(positions restarting per input; attention runs per input, see ``models.attention``): no compute
goes to padding, and the matmuls see long rows.

Records:
    seq:   {"text", "label", "score", "probabilities": {label: p}}
    token: {"text", "tokens", "tags", "entities": [{"type", "start", "end", "text", "score"}]}
           start/end are word indices (end exclusive); raw-text inputs add "char_start"/"char_end".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from seqeval.metrics.sequence_labeling import get_entities

from lsllm.data.examples import SeqExample, TokenExample
from lsllm.data.packing import pack_rows

# Raw text → words: the training data is PTB-tokenized ("British lamb ."), so words are runs of
# letters/digits (with inner hyphens, apostrophes, periods or commas as in "U.S.", "1,000", "don't")
# and every other non-space character stands alone.
WORD_PATTERN = re.compile(r"\w+(?:[-'.,]\w+)*|[^\w\s]")


def split_words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Split raw text into words and their character spans (end exclusive)."""
    matches = list(WORD_PATTERN.finditer(text))
    return [m.group() for m in matches], [m.span() for m in matches]


@dataclass
class Batch:
    """Packed rows: each row holds several examples end to end (``seq_index`` tells them apart)."""

    indices: list[int]  # feature index of each example, in example-id order
    inputs: dict[str, torch.Tensor]


def packed_batches(features: Sequence[dict], pad_id: int, max_tokens: int, row_tokens: int | None = None) -> list[Batch]:
    """Length-sorted examples packed into rows of at most ``row_tokens``, rows batched up to ``max_tokens``.

    No compute goes to padding (only row ends are padded). With lsllm's attention, which runs per
    example, one row per batch (``row_tokens=None``, the default) is fastest; shorter rows bound
    the cost of attention implementations that pay for the whole row (eager).
    """
    row_tokens = row_tokens or max_tokens
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    rows: list[list[int]] = []
    for index in order:
        n = len(features[index]["input_ids"])
        if rows and sum(len(features[i]["input_ids"]) for i in rows[-1]) + n <= row_tokens:
            rows[-1].append(index)
        else:
            rows.append([index])
    batches, current, width = [], [], 0
    for row in rows:
        row_width = sum(len(features[i]["input_ids"]) for i in row)
        if current and max(width, row_width) * (len(current) + 1) > max_tokens:
            batches.append(current)
            current, width = [], 0
        current.append(row)
        width = max(width, row_width)
    if current:
        batches.append(current)
    return [_pack(b, features, pad_id) for b in batches]


def _pack(rows: list[list[int]], features: Sequence[dict], pad_id: int) -> Batch:
    packed = pack_rows([[features[i]["input_ids"] for i in row] for row in rows], pad_id)
    return Batch([i for row in rows for i in row], packed)


@torch.inference_mode()
def feature_probabilities(model, features: Sequence[dict], pad_id: int, max_tokens: int = 2048, row_tokens: int | None = None,
                          progress=None, activation=None) -> list[torch.Tensor]:
    """Outputs per feature: seq (C,), token (T, C) over the feature's own positions.

    ``activation`` turns fp32 logits into outputs (the problem type's: softmax, sigmoid or values); default softmax.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[torch.Tensor | None] = [None] * len(features)
    batches = packed_batches(features, pad_id, max_tokens, row_tokens)
    for batch in progress(batches) if progress else batches:
        inputs = {k: v.to(device) for k, v in batch.inputs.items()}
        logits = model(**inputs).logits.float()
        probs = (activation(logits) if activation is not None else logits.softmax(-1)).cpu()
        if probs.dim() == 2:  # seq: (N, C) in example-id order
            for example, index in enumerate(batch.indices):
                out[index] = probs[example]
            continue
        seq_index = batch.inputs["seq_index"]  # token: (B, T, C); gather each example's positions
        for example, index in enumerate(batch.indices):
            out[index] = probs[seq_index == example]
    model.train(was_training)
    return out  # type: ignore[return-value]


def seq_records(examples: Sequence[SeqExample], outputs: Sequence[torch.Tensor], labels: Sequence[str], problem) -> list[dict]:
    """One record per input: its text (and fields) and the problem type's decision (label, labels or value)."""
    records = []
    for example, output in zip(examples, outputs, strict=True):
        record: dict = {"text": example.text}
        if example.fields:
            record["fields"] = dict(example.fields)
        records.append({**record, **problem.record(output, labels)})
    return records


def word_predictions(features: Sequence[dict], probs: Sequence[torch.Tensor], n_words: Sequence[int]) -> list[list[tuple[int, float]]]:
    """(tag id, probability) per word of every example, read at each word's first owned sub-token."""
    words: list[list[tuple[int, float] | None]] = [[None] * n for n in n_words]
    for feature, p in zip(features, probs, strict=True):
        target = words[feature["example_id"]]
        for position, word in enumerate(feature["word_ids"]):
            if word is not None and word >= 0 and target[word] is None:
                best = int(p[position].argmax())
                target[word] = (best, float(p[position, best]))
    return [[w if w is not None else (0, 0.0) for w in example] for example in words]


def token_records(examples: Sequence[TokenExample], words: Sequence[list[tuple[int, float]]], labels: Sequence[str],
                  texts: Sequence[str] | None = None, spans: Sequence[list[tuple[int, int]]] | None = None) -> list[dict]:
    records = []
    for i, (example, predicted) in enumerate(zip(examples, words, strict=True)):
        tags = [labels[t] for t, _ in predicted]
        entities = []
        for kind, start, last in get_entities(tags):
            entity = {
                "type": kind,
                "start": start,
                "end": last + 1,
                "text": " ".join(example.tokens[start : last + 1]),
                "score": round(sum(s for _, s in predicted[start : last + 1]) / (last + 1 - start), 6),
            }
            if spans is not None:
                entity["char_start"], entity["char_end"] = spans[i][start][0], spans[i][last][1]
                entity["text"] = texts[i][entity["char_start"] : entity["char_end"]]
            entities.append(entity)
        text = texts[i] if texts is not None else " ".join(example.tokens)
        records.append({"text": text, "tokens": list(example.tokens), "tags": tags, "entities": entities})
    return records


# Padded batches: what a runner without packed rows takes (ONNX Runtime's graph, the export's check).


def padded_batch(features: Sequence[dict], pad_id: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) int64 tensors of encoded features, padded to the longest."""
    width = max(len(f["input_ids"]) for f in features)
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    for row, feature in enumerate(features):
        n = len(feature["input_ids"])
        where = slice(width - n, width) if left else slice(0, n)
        ids[row, where] = torch.tensor(feature["input_ids"], dtype=torch.long)
        mask[row, where] = 1
    return ids, mask


def padded_batch_plan(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices into ``lengths`` grouped into padded batches: sorted by length (little padding), each
    batch at most ``max_tokens`` padded tokens (a longer single input is a batch of its own)."""
    batches: list[list[int]] = []
    current: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if current and lengths[index] * (len(current) + 1) > max_tokens:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches
