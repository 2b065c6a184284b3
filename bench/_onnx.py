"""The ONNX Runtime paths of the throughput benchmark: the peer a deployer on a CPU would reach for.

`ort-fp32` and `ort-int8` are the lsllm path's model (same weights, same LoRA, merged) exported
by `lsllm export`'s own graph (`lsllm.export.OnnxGraph`, the dynamo or TorchScript exporter) and
run by ONNX Runtime's CPU provider; `ort-int8` is that graph after
`lsllm.export.quantize_int8` (ONNX Runtime's dynamic quantization, as `lsllm export --int8`
writes it). Inference only: ONNX Runtime does not train these models.

Batches are what a deployer sends: inputs sorted by length, right-padded, at most 2,048 padded
tokens per batch (the token budget of the lsllm path's packed rows), ORT's intra-op threads set to
torch's thread count so both sides use the same cores.

`int8_peak` measures the machine's int8 matmul peak the way `_peak.peak` measures fp32 and bf16:
a 2048^3 `MatMulInteger` (uint8 x int8 -> int32) graph in ONNX Runtime, repeated for a few
seconds; the int8 path's MFU is against it.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch
from _lsllm import LsllmPath

from lsllm.export import (
    INT8_FILE,
    MODEL_FILE,
    OnnxGraph,
    quantize_int8,
    write_onnx,
)
from lsllm.inference.prediction import padded_batch, padded_batch_plan, word_predictions
from lsllm.problems import family

MAX_BATCH_TOKENS = 2048
CACHE_ENV = "LSLLM_BENCH_ONNX_CACHE"


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OrtPath:
    """Inference through ONNX Runtime on the lsllm path's merged model (fp32 graph, or int8)."""

    def __init__(self, name: str, model_dir: Path, task: str, labels: list[str], fast_dtype: str, device: str, seed: int):
        if device != "cpu":
            raise SystemExit(f"{name}: the ONNX Runtime paths run on the CPU only (--device cpu)")
        self.name, self.task, self.labels = name, task, labels
        self.problem = family(task)  # the bench's tasks: single-label seq, or NER
        self.int8 = name == "ort-int8"
        self.compute_dtype = "int8" if self.int8 else "float32"
        # The same model the lsllm path measures, built in fp32 (ONNX Runtime's CPU kernels are fp32 or int8).
        source = LsllmPath(model_dir, task, labels, "float32", "cpu", seed)
        self.encode, self.tokenizer = source.encode, source.tokenizer
        model = source.model.merge_and_unload().eval()
        graph = OnnxGraph(model).eval()
        # Exported once per task and seed: the repeats and the other ORT path reuse the graph (CACHE_ENV,
        # set by throughput.py to a folder of its own); without it, into a folder of this process.
        cache = os.environ.get(CACHE_ENV)
        self._tmp = None if cache else tempfile.TemporaryDirectory(prefix="lsllm-bench-onnx-")
        folder = Path(cache or self._tmp.name) / f"{Path(model_dir).name}-{task}-seed{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / MODEL_FILE
        if not path.exists():
            features = self.encode([source_example(task, labels)] * 2)
            example = padded_batch(features.features, self.tokenizer.pad_token_id)
            write_onnx(graph, example, folder / "partial.onnx", self.problem)
            (folder / "partial.onnx").rename(path)  # a graph cut short by a crash is never reused
        if self.int8:
            if not (folder / INT8_FILE).exists():  # as `lsllm export --int8` quantizes
                quantize_int8(path, folder / "partial.int8.onnx", model)
                (folder / "partial.int8.onnx").rename(folder / INT8_FILE)
            path = folder / INT8_FILE
        self.session = _session(path, torch.get_num_threads())

    def infer(self, examples: list) -> dict:
        features = self.encode(examples).features
        pad_id = self.tokenizer.pad_token_id
        probs: list = [None] * len(features)
        computed = 0
        for batch in padded_batch_plan([len(f["input_ids"]) for f in features], MAX_BATCH_TOKENS):
            ids, mask = padded_batch([features[i] for i in batch], pad_id)
            computed += ids.numel()
            logits = torch.from_numpy(self.session.run(["logits"], {"input_ids": ids.numpy(),
                                                                    "attention_mask": mask.numpy()})[0])
            for index, row in zip(batch, self.problem.unpad(logits, mask), strict=True):
                probs[index] = row
        if self.task == "seq":
            out = [self.labels[int(p.argmax())] for p in probs]
        else:
            words = word_predictions(features, probs, [len(e.tokens) for e in examples])
            out = [[self.labels[t] for t, _ in sentence] for sentence in words]
        return {"examples": len(examples), "real_tokens": sum(len(f["input_ids"]) for f in features),
                "computed_tokens": computed, "predictions": out}


def source_example(task: str, labels: list[str]):
    """One short example to trace the graph with (batch and length stay dynamic)."""
    from _common import SeqExample, TokenExample

    if task == "seq":
        return SeqExample("a short example to trace the graph", labels[0])
    return TokenExample(["EU", "rejects", "German", "call"], [labels[0]] * 4)


def int8_peak(size: int = 2048, seconds: float = 3.0, threads: int | None = None) -> float:
    """int8 OP/s of ONNX Runtime's MatMulInteger (uint8 x int8 -> int32), `size`^3, on `threads` threads."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.UINT8, [size, size])
    b = helper.make_tensor_value_info("b", TensorProto.INT8, [size, size])
    y = helper.make_tensor_value_info("y", TensorProto.INT32, [size, size])
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "int8_peak", [a, b], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with tempfile.TemporaryDirectory(prefix="lsllm-int8-peak-") as tmp:
        path = Path(tmp) / "matmul.onnx"
        onnx.save(model, str(path))
        session = _session(path, threads or torch.get_num_threads())
    rng = np.random.default_rng(0)
    feeds = {"a": rng.integers(0, 255, (size, size), dtype=np.uint8), "b": rng.integers(-127, 127, (size, size), dtype=np.int8)}
    for _ in range(2):
        session.run(None, feeds)
    n, start = 0, time.perf_counter()
    while True:
        session.run(None, feeds)
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    return 2.0 * size**3 * n / elapsed


def build(name: str, model_dir: Path, task: str, labels: list[str], fast_dtype: str,
          device: str = "cpu", seed: int = 0) -> OrtPath:
    return OrtPath(name, model_dir, task, labels, fast_dtype, device, seed)
