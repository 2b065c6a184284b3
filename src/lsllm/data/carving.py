"""Carving the selection split ("validation") out of train when a dataset has none.

`random` (the default) samples rows. `whole` samples only whole rows, the rows no other training
row contains, and takes out of train every row a carved one contains. It exists for treebank
data: SST-2's 67,349 training rows are the 6,885 sentences of the treebank's train part plus
their phrases (mean length 9.4 words; the sentences 19.4, like the 872 test sentences, 19.5), so a
random carve is mostly phrases and ranks recipes by how they read phrases. Measured 2026-12-03
on the six trials of an SST-2 tune (4,000 examples, docs/tune.md): a random-carve validation
chose a recipe at 84.86 % test; 872 whole sentences ranked the trials as test does but one swap
and chose one at 87.96 %. Taking the contained rows out keeps a carved sentence's phrases from
being trained on.
"""

from __future__ import annotations

import random

from lsllm.data.examples import SeqExample, TokenExample
from lsllm.data.readers import ReadSplit
from lsllm.errors import DataError

MAX_SPANS = 50_000_000  # word spans `whole` may enumerate: ~35 s; SST-2's train has ~4 M


def carve(train: ReadSplit, size: int, seed: int, how: str = "random") -> tuple[ReadSplit, ReadSplit, str]:
    """Split `size` examples off train with a seeded sample: (train, validation, a note for reports).

    Both parts keep file order. `how` is "random" or "whole" (see the module docstring).

    Raises:
        DataError: train too small for the slice, or (whole) too few whole rows, or rows too long.
    """
    n = len(train.examples)
    if size >= n:
        raise DataError(f"{train.origin}: {n} training examples are too few to carve a validation split of {size}; add a validation file")
    if how == "random":
        chosen = sorted(random.Random(seed).sample(range(n), size))
        chosen_set = set(chosen)
        return train.subset([i for i in range(n) if i not in chosen_set]), train.subset(chosen), ""
    texts = [_words(example) for example in train.examples]
    whole, spans_of = _whole_rows(texts, train.origin)
    if len(whole) < size:
        raise DataError(f"{train.origin}: --carve whole needs {size} whole rows (rows no other row contains), the data has "
                        f"{len(whole)}; use --carve random or add a validation file")
    chosen = sorted(random.Random(seed).sample(whole, size))
    inside: set[str] = set()
    for i in chosen:
        inside |= spans_of(texts[i])
    chosen_set = set(chosen)
    kept = [i for i in range(n) if i not in chosen_set and " ".join(texts[i]) not in inside]
    dropped = n - size - len(kept)
    note = (f"validation carved from whole rows ({len(whole)} of {n} rows no other row contains); "
            f"{dropped} rows inside the carved ones left train")
    return train.subset(kept), train.subset(chosen), note


def _words(example: SeqExample | TokenExample) -> list[str]:
    return list(example.tokens) if isinstance(example, TokenExample) else example.text.split()


def _whole_rows(texts: list[list[str]], origin: str):
    """Indices of the rows no other (longer) row contains as a run of words, and the span function."""
    total = sum(len(words) * (len(words) + 1) // 2 for words in texts)
    if total > MAX_SPANS:
        raise DataError(f"{origin}: rows too long for --carve whole ({total:,} word spans; it suits sentences and their "
                        f"phrases, at most {MAX_SPANS:,}); use --carve random or add a validation file")
    rows = {" ".join(words) for words in texts}
    lengths = {len(text.split()) for text in rows}

    def spans_of(words: list[str]) -> set[str]:
        n = len(words)
        return {" ".join(words[i:j]) for i in range(n) for j in range(i + 1, n + 1) if j - i in lengths}

    contained: set[str] = set()
    for words in texts:
        joined = " ".join(words)
        contained |= {span for span in spans_of(words) if span != joined and span in rows}
    return [i for i, words in enumerate(texts) if " ".join(words) not in contained], spans_of
