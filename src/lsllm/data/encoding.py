"""Examples -> token ids with labels: sequence classification and word-aligned NER.

Sequence tasks: `tokenizer(text)` truncated to `max_length`, the tokenizer's BOS kept when it
adds one, no EOS appended; inputs cut by truncation are counted (`n_truncated`).

Token tasks: the words are joined with single spaces and tokenized as one natural sentence;
each sub-token is mapped back to its word through the character offsets. This is deliberate:
`is_split_into_words=True` tokenizes each word on its own, and byte-level BPE tokenizers with
`add_prefix_space=False` (SmolLM2, Llama 3, Qwen) then produce "re ject s" for the word
"rejects" in mid-sentence instead of the " rejects" the model saw in pre-training. Offsets work
for every fast tokenizer without touching its settings.

Labels go on the first sub-token of each word (-100 elsewhere) unless `label_all_subtokens`,
which labels continuation sub-tokens with the word's tag (B-X continued as I-X). Sentences
longer than `max_length` become overlapping windows; every word's prediction is owned by exactly
one window, the one where its first sub-token is most central (the earlier window on ties), so
word-level metrics see every gold word and nothing is silently truncated.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lsllm.data.examples import SeqExample, TokenExample
from lsllm.data.readers import paused_gc
from lsllm.errors import DataError

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


@dataclass
class EncodedSplit:
    """Features of one split, ready for a collator.

    Attributes:
        features: dicts with `input_ids` (list[int]) and, for labelled data, `labels`
            (int for seq, list[int] with -100 = ignored for token). Token features also carry
            `example_id` and `word_ids` (word index per position, -1 for special tokens,
            continuation positions of words owned by another window, and non-word positions).
        task: "seq" or "token".
        n_examples: examples encoded (token tasks: features can be more, one per window).
        n_truncated: seq: examples cut by `max_length`; token: 0 (windows never cut words).
        n_words: token tasks: words per example, to rebuild word-level predictions.
        n_windowed: token tasks: examples split into more than one window.
        n_unaligned: token tasks: words with no sub-token of their own (a tokenizer that drops
            or merges them); `lsllm.prediction.word_predictions` predicts "O" for them.
    """

    features: list[dict[str, Any]]
    task: str
    n_examples: int
    n_truncated: int = 0
    n_words: list[int] = field(default_factory=list)
    n_windowed: int = 0
    n_unaligned: int = 0

    def lengths(self) -> list[int]:
        """Token count of every feature, for length-grouped or token-budget batching."""
        return [len(f["input_ids"]) for f in self.features]


def special_tokens(tokenizer: Any) -> list[int]:
    """The ids the tokenizer puts before the text (its BOS, if any).

    Found by tokenizing a probe with and without special tokens, which works for any
    tokenizer whose post-processor wraps the text in fixed tokens.
    """
    probe = "Hello world"
    full = tokenizer(probe)["input_ids"]
    bare = tokenizer(probe, add_special_tokens=False)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return list(full[:start])
    raise ValueError(f"cannot locate the text inside the special tokens of {type(tokenizer).__name__}")


def _label_id(label2id: dict[str, int], label: str) -> int:
    try:
        return label2id[label]
    except KeyError:
        raise DataError(f"label {label!r} is not in the model's labels ({', '.join(label2id)})") from None


def encode_sequences(
    examples: Sequence[SeqExample], tokenizer: Any, label2id: dict[str, int], max_length: int, prompt: str | None = None
) -> EncodedSplit:
    """Tokenize texts for sequence classification.

    Equivalent to `tokenizer(text, truncation=True, max_length=max_length)` minus any EOS the
    tokenizer would append, done in one batched call that also counts what truncation cut.

    Args:
        examples: texts with labels (label None: unlabelled, no `labels` key).
        tokenizer: a Hugging Face tokenizer.
        label2id: label name -> id.
        max_length: maximum tokens per input, special tokens included.
        prompt: a template with one ``{text}``; the text is put in it before tokenizing, and a
            long text is cut inside the prompt, so the prompt's end (read by last-token pooling)
            always survives.
    """
    prefix = special_tokens(tokenizer)
    budget = max_length - len(prefix)
    if budget < 1:
        raise ValueError(f"max_length {max_length} leaves no room after {len(prefix)} special tokens")
    texts = [ex.text for ex in examples]
    wrap = lambda text: apply_prompt(prompt, text)  # noqa: E731
    ids = tokenizer([wrap(t) for t in texts], add_special_tokens=False)["input_ids"] if examples else []
    features, truncated = [], 0
    for ex, text, content in zip(examples, texts, ids, strict=True):
        if len(content) > budget:
            truncated += 1
            content = _cut_inside_prompt(tokenizer, text, wrap, len(content) - budget)[:budget] if prompt else content[:budget]
        feature: dict[str, Any] = {"input_ids": prefix + list(content)}
        if ex.label is not None:
            feature["labels"] = _label_id(label2id, ex.label)
        features.append(feature)
    if truncated:
        logger.warning("%d of %d inputs are longer than max_length %d and were truncated", truncated, len(examples), max_length)
    return EncodedSplit(features, "seq", len(examples), n_truncated=truncated)


def apply_prompt(prompt: str | None, text: str) -> str:
    """``text`` put in the run's --prompt template (``{text}``), or as it is without one."""
    return prompt.replace("{text}", text) if prompt else text


def _cut_inside_prompt(tokenizer: Any, text: str, wrap, over: int) -> list[int]:
    """Token ids of the prompt around ``text`` cut by about ``over`` tokens (re-tokenized until it fits)."""
    text_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    budget = None
    for extra in range(4):  # joining at a new boundary can cost a token or two
        keep = max(0, len(text_ids) - over - extra)
        wrapped = tokenizer(wrap(tokenizer.decode(text_ids[:keep])), add_special_tokens=False)["input_ids"]
        if budget is None:
            budget = len(tokenizer(wrap(text), add_special_tokens=False)["input_ids"]) - over
        if len(wrapped) <= budget:
            return wrapped
    return wrapped


def word_alignment(text: str, words: Sequence[str], offsets: Sequence[tuple[int, int]]) -> list[int]:
    """Word index of every token of `text` (= the words joined by spaces), -1 for none.

    A token belongs to the word holding its first non-space character; tokens that hold only
    spaces, or nothing (special tokens), belong to no word.
    """
    starts, pos = [], 0
    for word in words:
        starts.append(pos)
        pos += len(word) + 1
    out = []
    for s, e in offsets:
        c = s
        while c < e and text[c].isspace():
            c += 1
        out.append(bisect.bisect_right(starts, c) - 1 if c < e else -1)
    return out


def _windows(n: int, budget: int, overlap: int, word_of: list[int]) -> list[tuple[int, int]]:
    """Cover token positions [0, n) with windows of at most `budget`, overlapping by about
    `overlap`; a window starts at a word's first sub-token when one is near the cut."""
    if n <= budget:
        return [(0, n)]
    windows, start = [], 0
    while True:
        end = min(start + budget, n)
        windows.append((start, end))
        if end == n:
            return windows
        cut = end - overlap  # >= start + budget / 2: every window makes progress
        left = cut  # move back to the first sub-token of the word the cut falls in
        while left > start + 1 and word_of[left] >= 0 and word_of[left] == word_of[left - 1]:
            left -= 1
        mid_word = word_of[left] >= 0 and word_of[left] == word_of[left - 1]
        start = cut if mid_word else left


def encode_tokens(
    examples: Sequence[TokenExample],
    tokenizer: Any,
    label2id: dict[str, int],
    max_length: int,
    label_all_subtokens: bool = False,
    stride: int | None = None,
) -> EncodedSplit:
    """Tokenize word-split sentences for token classification (see the module docstring).

    Args:
        examples: words with BIO tags (tags None: unlabelled, no `labels` key).
        tokenizer: a fast Hugging Face tokenizer (character offsets are needed).
        label2id: tag -> id.
        max_length: maximum tokens per window, special tokens included.
        label_all_subtokens: label continuation sub-tokens too (B-X continues as I-X).
        stride: tokens shared by consecutive windows (default a quarter of the window).

    Returns:
        An EncodedSplit with one feature per window; `lsllm.prediction.word_predictions` maps
        predictions back to words.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise DataError(f"{type(tokenizer).__name__} is not a fast tokenizer: token tasks need character offsets (tokenizer.json)")
    prefix = special_tokens(tokenizer)
    budget = max_length - len(prefix)
    overlap = budget // 4 if stride is None else stride
    if budget < 2 or not 0 <= overlap <= budget // 2:
        raise ValueError(f"stride {overlap} must be between 0 and half the window ({budget // 2}); max_length {max_length}")
    with paused_gc():
        out = _encode_tokens(examples, tokenizer, label2id, prefix, budget, overlap, label_all_subtokens)
    if out.n_windowed:
        logger.info("%d of %d sentences exceed max_length %d: split into overlapping windows", out.n_windowed, len(examples), max_length)
    if out.n_unaligned:
        logger.warning("%d words have no sub-token of their own and are predicted as label id 0", out.n_unaligned)
    return out


def _encode_tokens(
    examples: Sequence[TokenExample],
    tokenizer: Any,
    label2id: dict[str, int],
    prefix: list[int],
    budget: int,
    overlap: int,
    label_all_subtokens: bool,
) -> EncodedSplit:
    texts = [" ".join(ex.tokens) for ex in examples]
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True) if texts else {"input_ids": [], "offset_mapping": []}
    out = EncodedSplit([], "token", len(examples))
    continuation = {}
    if label_all_subtokens:
        continuation = {tag: f"I-{tag[2:]}" if tag.startswith("B-") and f"I-{tag[2:]}" in label2id else tag for tag in label2id}
    for eid, (ex, text, ids, offsets) in enumerate(zip(examples, texts, enc["input_ids"], enc["offset_mapping"], strict=True)):
        word_of = word_alignment(text, ex.tokens, offsets)
        n_words = len(ex.tokens)
        out.n_words.append(n_words)
        first = [k for k, w in enumerate(word_of) if w >= 0 and (k == 0 or word_of[k - 1] != w)]
        out.n_unaligned += n_words - len(first)
        windows = _windows(len(ids), budget, overlap, word_of)
        out.n_windowed += len(windows) > 1
        owner = {}  # word -> window index owning its prediction
        for k in first:
            best, best_score = 0, -1
            for wi, (ws, we) in enumerate(windows):
                if ws <= k < we and min(k - ws, we - 1 - k) > best_score:
                    best, best_score = wi, min(k - ws, we - 1 - k)
            owner[word_of[k]] = best
        tag_ids = [_label_id(label2id, t) for t in ex.tags] if ex.tags is not None else None
        cont_ids = [label2id[continuation[t]] for t in ex.tags] if ex.tags is not None and label_all_subtokens else None
        for wi, (ws, we) in enumerate(windows):
            word_ids = [-1] * len(prefix)
            labels = [IGNORE_INDEX] * len(prefix)
            for k in range(ws, we):
                w = word_of[k]
                if w < 0 or owner.get(w) != wi:
                    word_ids.append(-1)
                    labels.append(IGNORE_INDEX)
                    continue
                word_ids.append(w)
                is_first = k == 0 or word_of[k - 1] != w
                if tag_ids is None:
                    labels.append(IGNORE_INDEX)
                elif is_first:
                    labels.append(tag_ids[w])
                else:
                    labels.append(cont_ids[w] if cont_ids is not None else IGNORE_INDEX)
            feature: dict[str, Any] = {"input_ids": prefix + list(ids[ws:we]), "example_id": eid, "word_ids": word_ids}
            if tag_ids is not None:
                feature["labels"] = labels
            out.features.append(feature)
    return out
