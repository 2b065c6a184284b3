"""N training examples per label: a seeded, stratified sample (`--train-per-class N`).

Few-shot benchmarks are stated per class ("CLINC150 at 20 examples per intent"), and a user with
a big labelled file who wants a quick run wants every class represented. `--train-limit N` keeps
the first N rows, which for a file sorted by label (or a shuffled one with 150 classes) leaves
classes over- or under-represented; this keeps exactly N of every label (all of a label that
has fewer, said in the note), drawn with a seed so every method of a comparison trains on the
same examples. The sample keeps the file order of the rows it keeps.
"""

from __future__ import annotations

import random
from collections import defaultdict


def per_class(examples: list, n: int, seed: int) -> tuple[list, str]:
    """(the kept examples in file order, a note for the bundle) for N examples of each label, sampled with ``seed``.

    Single-label data only: a multi-label example has several labels, a regression label is a
    number, a sentence has a tag per word; none has one class to stratify by, and their problem
    types refuse the flag (`Problem.per_class`), which calls this for single-label data.
    """
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, example in enumerate(examples):
        by_label[example.label].append(index)
    rng = random.Random(seed)
    kept: list[int] = []
    short = []
    for label in sorted(by_label):  # a fixed order, so the draw depends on the seed and the data only
        indices = by_label[label]
        if len(indices) <= n:
            kept.extend(indices)
            if len(indices) < n:
                short.append(f"{label} ({len(indices)})")
        else:
            kept.extend(rng.sample(indices, n))
    note = (f"train sampled to {n} examples per label (seed {seed}): {len(kept)} of {len(examples)} examples, "
            f"{len(by_label)} labels")
    if short:
        shown = ", ".join(short[:5]) + (f" and {len(short) - 5} more" if len(short) > 5 else "")
        note += f"; fewer than {n} in train, all kept: {shown}"
    return [examples[i] for i in sorted(kept)], note
