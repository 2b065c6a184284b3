"""The ONNX Runtime backend: an `lsllm export` folder run on the CPU with `Classifier`'s encoding and records.

`OnnxClassifier` is a `Classifier` whose model is an ONNX Runtime session over the exported
graph ``(input_ids, attention_mask) -> logits``: inputs are encoded, batched (padded, sorted by
length: `inference.prediction.padded_batch_plan`) and turned into records exactly as the torch
backend does. The graph's contract (file and tensor names) is defined here, where it is read;
`lsllm.export` writes graphs to it. `inference.backends` chooses this backend.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lsllm.errors import ConfigError
from lsllm.inference.classifier import Classifier
from lsllm.inference.prediction import padded_batch, padded_batch_plan
from lsllm.runs import read_export_info

MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "logits"
INSTALL_HINT = "pip install 'lsllm[onnx]' (or: pip install onnx onnxruntime)"


def require_onnx() -> None:
    for name in ("onnx", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            raise ConfigError(f"exporting to ONNX needs {name}, which is not installed: {INSTALL_HINT}") from None


class OnnxClassifier(Classifier):
    """An exported run served by ONNX Runtime, with `Classifier`'s encoding, problem type and records.

    Example:
        >>> clf = OnnxClassifier("exported/")
        >>> clf.predict_texts(["a gripping film"])   # the records of `lsllm predict`

    Args:
        out_dir: a folder written by `lsllm export`.
        int8: run model.int8.onnx (default: when the export made one).
        threads: ONNX Runtime intra-op threads (default: its own choice).
    """

    def __init__(self, out_dir: str | Path, int8: bool | None = None, threads: int | None = None):
        from lsllm.models.backbones import load_tokenizer

        require_onnx()
        import onnxruntime as ort

        folder = Path(out_dir)
        info = read_export_info(folder)
        if int8 is None:
            int8 = bool(info.int8_model)
        if int8 and not info.int8_model:
            raise ConfigError(f"{folder}: exported without --int8; there is no int8 graph")
        super().__init__(None, load_tokenizer(folder), **Classifier.record_settings(info))
        self.info = info
        self.backend = "onnxruntime int8" if int8 else "onnxruntime fp32"
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        model_file = folder / (info.int8_model if int8 else info.model)
        self.session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The graph's logits for a padded batch."""
        return torch.from_numpy(self.session.run([OUTPUT_NAME], {"input_ids": input_ids.numpy(),
                                                                 "attention_mask": attention_mask.numpy()})[0])

    def probabilities(self, encoded, progress=None) -> list[torch.Tensor]:
        """Per feature, as `Classifier.probabilities`: the problem type's outputs (token tasks: over each feature's positions)."""
        features = encoded.features
        out: list[torch.Tensor | None] = [None] * len(features)
        batches = padded_batch_plan([len(f["input_ids"]) for f in features], self.max_batch_tokens)
        for batch in progress(batches) if progress else batches:
            ids, mask = padded_batch([features[i] for i in batch], self.tokenizer.pad_token_id)
            outputs = self.problem.unpad(self.problem.outputs(self.logits(ids, mask).float()), mask)
            for row, index in enumerate(batch):
                out[index] = outputs[row]
        return out  # type: ignore[return-value]
