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
import re
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
            or merges them); `lsllm.inference.prediction.word_predictions` predicts "O" for them.
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
    """Tokenize texts (or several text fields: sentence pairs) for sequence classification.

    Equivalent to `tokenizer(text, truncation=True, max_length=max_length)` minus any EOS the
    tokenizer would append, done in one batched call that also counts what truncation cut.

    Args:
        examples: texts with labels (label None: unlabelled, no `labels` key): a class name,
            a list of names (multi-label) or a number (regression); `fields` for pairs.
        tokenizer: a Hugging Face tokenizer.
        label2id: label name -> id.
        max_length: maximum tokens per input, special tokens included.
        prompt: a template naming the input fields (``{text}``, or ``{premise}`` ...); examples
            with several fields and no prompt use `pair_prompt`. A long input is cut inside the
            template, longest field first, so the template's end (read by last-token pooling)
            always survives.
    """
    prefix = special_tokens(tokenizer)
    budget = max_length - len(prefix)
    if budget < 1:
        raise ValueError(f"max_length {max_length} leaves no room after {len(prefix)} special tokens")
    templates = [template_for(prompt, ex) for ex in examples]
    fields = [example_fields(ex) for ex in examples]
    rendered = [render(t, f) if t else ex.text for t, f, ex in zip(templates, fields, examples, strict=True)]
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"] if examples else []
    features, truncated = [], 0
    for ex, template, parts, content in zip(examples, templates, fields, ids, strict=True):
        if len(content) > budget:
            truncated += 1
            content = _cut_fields(tokenizer, template, parts, budget) if template else content[:budget]
        feature: dict[str, Any] = {"input_ids": prefix + list(content)}
        if ex.label is not None:
            feature["labels"] = _target(label2id, ex.label)
        features.append(feature)
    if truncated:
        logger.warning("%d of %d inputs are longer than max_length %d and were truncated", truncated, len(examples), max_length)
    return EncodedSplit(features, "seq", len(examples), n_truncated=truncated)


FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def prompt_fields(prompt: str) -> list[str]:
    """The input fields a prompt names, in order: ``{premise}`` ... (``{text}`` for one field)."""
    return FIELD.findall(prompt)


def pair_prompt(names: Sequence[str]) -> str:
    """The default template for several text fields: each on its own line after its name, so the model tells them apart.

    Example: ``sentence1: {sentence1}\\nsentence2: {sentence2}`` for STS-B.
    """
    return "\n".join(f"{name}: {{{name}}}" for name in names)


def template_for(prompt: str | None, example: SeqExample) -> str | None:
    """The template an example is rendered with: the run's prompt, the pair default, or None (the text as it is)."""
    if prompt:
        return prompt
    if example.fields and len(example.fields) > 1:
        return pair_prompt(list(example.fields))
    return None


def example_fields(example: SeqExample) -> dict[str, str]:
    """An example's text fields by name (one field is ``text``)."""
    return dict(example.fields) if example.fields else {"text": example.text}


def render(template: str, fields: dict[str, str]) -> str:
    """The template with each ``{field}`` replaced in one pass (a field's own braces are never read as fields)."""
    missing = [name for name in FIELD.findall(template) if name not in fields]
    if missing:
        raise DataError(f"the prompt names {{{missing[0]}}} but the input has only {', '.join(fields)}; "
                        "give that field or use a prompt with these names")
    return FIELD.sub(lambda m: fields[m.group(1)], template)


def apply_prompt(prompt: str | None, text: str | dict[str, str]) -> str:
    """One input (a text, or a record of fields) as the run encodes it: put in --prompt (or the pair default)."""
    example = SeqExample(text, fields=None) if isinstance(text, str) else SeqExample(" ".join(text.values()), fields=dict(text))
    template = template_for(prompt, example)
    return render(template, example_fields(example)) if template else example.text


def _cut_fields(tokenizer: Any, template: str, fields: dict[str, str], budget: int) -> list[int]:
    """Token ids of the template with its fields cut, longest first, until the whole fits in ``budget``.

    The template's own words are never cut (the prompt's end is what last-token pooling reads);
    fields are re-tokenized after each cut, since joining at a new boundary can cost a token.
    """
    ids = {name: tokenizer(value, add_special_tokens=False)["input_ids"] for name, value in fields.items()}
    keep = {name: len(v) for name, v in ids.items()}
    content: list[int] = []
    for _ in range(6):
        current = {name: tokenizer.decode(ids[name][: keep[name]]) if keep[name] < len(ids[name]) else fields[name]
                   for name in fields}
        content = tokenizer(render(template, current), add_special_tokens=False)["input_ids"]
        over = len(content) - budget
        if over <= 0:
            return content
        for _ in range(over):  # one token at a time off the longest field: fields end up cut evenly
            longest = max(keep, key=lambda name: keep[name])
            if keep[longest] == 0:
                return content[-budget:]  # the template alone is longer than max_length: keep its end
            keep[longest] -= 1
    return content[:budget] if len(content) > budget else content


def _target(label2id: dict[str, int], label: Any) -> Any:
    """The training target of a label: a class id, a multi-hot row (a list of names) or a number (regression)."""
    if isinstance(label, str):
        return _label_id(label2id, label)
    if isinstance(label, (list, tuple)):
        hot = [0.0] * len(label2id)
        for name in label:
            hot[_label_id(label2id, name)] = 1.0
        return hot
    return float(label)


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
        An EncodedSplit with one feature per window; `lsllm.inference.prediction.word_predictions` maps
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
