"""A debug aid for data-parallel runs: what each process trained on and which weights it ended with.

`LSLLM_DEBUG_RANKS=DIR` makes every training process append JSON lines to ``DIR/rank-<R>.jsonl``:
``{"rank", "pid", "batch", "examples"}`` for each training batch it collated (``examples``: the
indices of its training features, in the order the run encoded them), and one ``{"rank", "pid",
"trainable_sha256", "trainable_tensors"}`` after training (a digest of every trainable tensor:
LoRA and head; with weights sharded across processes, DeepSpeed ZeRO-3, only rank 0 records one,
of the gathered weights). With it one can check that the ranks split each epoch between them and ended with
identical weights (tests/test_distributed.py does). accelerate's dataloader collates one batch
ahead, so a run stopped by --max-steps inside an epoch records one batch it never trained on. LS
training only; unset, nothing is recorded and nothing changes. Not a feature: the format may
change with the tests that read it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

VARIABLE = "LSLLM_DEBUG_RANKS"


def folder() -> Path | None:
    """The folder named by LSLLM_DEBUG_RANKS, or None (recording off)."""
    value = os.environ.get(VARIABLE, "").strip()
    return Path(value) if value else None


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _append(record: dict[str, Any]) -> None:
    where = folder()
    assert where is not None
    where.mkdir(parents=True, exist_ok=True)
    with (where / f"rank-{_rank()}.jsonl").open("a", encoding="utf-8") as out:
        out.write(json.dumps({"rank": _rank(), "pid": os.getpid(), **record}) + "\n")


class ExampleRecorder:
    """A collator that records the indices of the training features it is given, then collates them as ``collate``.

    The Trainer's dataloader hands the collator the very dicts of the train list, so each is
    found by identity: the features themselves are not changed.
    """

    def __init__(self, collate: Any, features: list[dict]):
        self.collate = collate
        self.index = {id(feature): i for i, feature in enumerate(features)}
        self.batches = 0

    def __call__(self, features: list[dict]) -> Any:
        _append({"batch": self.batches, "examples": [self.index[id(f)] for f in features]})
        self.batches += 1
        return self.collate(features)


def record_weights(model: torch.nn.Module) -> None:
    """Append a sha256 of the trainable tensors (names, dtypes, shapes, bytes in name order) of this process."""
    digest = hashlib.sha256()
    named = sorted((name, p) for name, p in model.named_parameters() if p.requires_grad)
    for name, param in named:
        tensor = param.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    _append({"trainable_sha256": digest.hexdigest(), "trainable_tensors": len(named)})
