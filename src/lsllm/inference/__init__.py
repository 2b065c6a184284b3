"""Running a trained classifier: the `Classifier`, batched prediction, backends, inference settings.

    classifier.py   Classifier: encoding, batched outputs, records, metrics (what eval, predict,
                    serve and training's evaluation share); Classifier.from_record
    prediction.py   packed batches (torch) and padded ones (ONNX Runtime); the record helpers
    onnx.py         OnnxClassifier: an `lsllm export` folder on ONNX Runtime
    backends.py     BACKENDS (torch, onnx) and open_classifier: the one place a backend is chosen
    settings.py     InferenceSettings: --threads/--dtype/--backend/--int8/--matmul, generated flags

The names below are importable from here (``from lsllm.inference import open_classifier``); they
load on first use, so importing a submodule (or `lsllm --help`) does not load torch for nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Classifier": "lsllm.inference.classifier",
    "OnnxClassifier": "lsllm.inference.onnx",
    "BACKENDS": "lsllm.inference.backends",
    "Opened": "lsllm.inference.backends",
    "open_classifier": "lsllm.inference.backends",
    "InferenceSettings": "lsllm.inference.settings",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lsllm.inference' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
