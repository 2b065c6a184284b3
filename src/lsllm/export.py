"""`lsllm export RUN OUT --format onnx [--int8]`: a trained run as an ONNX graph for ONNX Runtime.

(`export_run` is where a format is chosen; ``--format vllm`` is written by `lsllm.vllm_export`.)

The run is loaded as `lsllm predict` loads it (LoRA merged into fp32 weights, on the CPU) and
wrapped in `OnnxGraph`: ``(input_ids, attention_mask) -> logits`` for padded batches, dynamic in
batch and sequence length. The wrapper does what `Classifier` does through packed rows, for a
padded batch and with export-friendly operations only: one 4D mask per batch built from
``attention_mask`` (padding hidden in every mode; causal, bidirectional, or bidirectional with the
lower layers kept causal by ``lsllm_sdpa`` for top-k unmasking), positions 0..n-1 per example
whatever the padding side, repetition laid out in the graph, pooling over the real tokens.

Before anything is written the wrapper is checked against the `Classifier` on a few texts; after
exporting, ONNX Runtime is checked against the same logits (fp32: at most `FP32_TOLERANCE`), and
with ``--int8`` the dynamically quantized graph too (looser, plus its argmax agreement). OUT
holds::

    model.onnx            inputs input_ids, attention_mask (int64, batch x sequence); output logits
    model.int8.onnx       --int8: int8 weights per channel, down_proj and the head fp32 (quantize_int8)
    tokenizer files       tokenizer.save_pretrained(OUT)
    lsllm-export.json     labels, task, problem and its state, prompt, fields, max_length, attention, run, versions

`OnnxClassifier(OUT)` (`lsllm.inference.onnx`, importable from here too) runs it with ONNX Runtime
and gives the records of `Classifier.predict_texts`; `lsllm.inference.backends.open_classifier`
chooses between it and PyTorch. vLLM is an export format (`lsllm.vllm_export`), not a backend of
ours: vLLM serves its checkpoint itself.
"""

from __future__ import annotations

import importlib.metadata
import logging
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from lsllm.errors import ConfigError, ModelError
from lsllm.inference.classifier import Classifier
from lsllm.inference.onnx import (  # noqa: F401  (OnnxClassifier: README's lsllm.export.OnnxClassifier)
    INPUT_NAMES,
    INT8_FILE,
    MODEL_FILE,
    OUTPUT_NAME,
    OnnxClassifier,
    require_onnx,
)
from lsllm.inference.prediction import padded_batch
from lsllm.problems import Problem
from lsllm.runs import ExportInfo, check_out_dir, write_info

if TYPE_CHECKING:
    from lsllm.vllm_export import VllmExportReport

logger = logging.getLogger(__name__)

FORMATS = ("onnx", "vllm")  # export_run chooses: onnx here, vllm in lsllm.vllm_export
OPSET = 18
FP32_TOLERANCE = 1e-3  # max |logit difference| ONNX Runtime fp32 vs PyTorch
INT8_TOLERANCE = 0.25  # int8, relative to the largest |logit| (at least 1): dynamic quantization is lossy
EXPORTERS = ("dynamo", "torchscript")  # tried in this order
SAMPLE_TEXTS = (
    "a great movie",
    "EU rejects German call to boycott British lamb .",
    "ok",
    "The European Commission said on Thursday it disagreed with German advice to consumers to shun British lamb .",
    "boring and flat , a tedious mess from start to end",
    "Peter Blackburn",
)


# ----------------------------------------------------------------------------- the graph


class OnnxGraph(nn.Module):
    """A merged LS classifier as ``(input_ids, attention_mask) -> logits`` for padded batches.

    Args of forward:
        input_ids: (B, T) int64 token ids, padded on either side.
        attention_mask: (B, T) 1 for real tokens, 0 for padding; each row's real tokens are
            contiguous (left or right padding).

    Returns:
        logits: (B, C) for sequence classifiers, (B, T, C) for token classifiers (padding
        positions carry logits that mean nothing).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        from lsllm.models.classifiers import LSForSequenceClassification

        self.classifier = model
        self.is_seq = isinstance(model, LSForSequenceClassification)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        from lsllm.models.attention import attn_implementation

        model = self.classifier
        backbone = model.model
        real = attention_mask > 0  # (B, T)
        second = None
        if model.repeat:
            input_ids, real_in, position_ids, second = _repeated(input_ids, real)
        else:
            real_in = real
            position_ids = (real.long().cumsum(1) - 1).clamp(min=0)  # 0..n-1 per example, either padding side
        dtype = backbone.get_input_embeddings().weight.dtype
        mask = _attention_mask(real_in, bool(backbone.config.is_causal), dtype, attn_implementation(backbone))
        hidden = backbone(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False).last_hidden_state
        if second is not None:  # (B, 2T, H) -> (B, T, H): the second copy of every token
            hidden = hidden.gather(1, second.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        hidden = hidden.float()
        if not self.is_seq:
            return model.score(model.dropout(hidden))
        return model.score(_pool(hidden, real, model.pooling))


def _attention_mask(real: torch.Tensor, causal: bool, dtype: torch.dtype, implementation: str) -> torch.Tensor:
    """`models.attention.packed_attention_mask` for a padded batch (one example per row), in operations
    both ONNX exporters and ONNX Runtime take (no EyeLike on booleans).

    A token sees the real tokens of its row (earlier ones only when ``causal``); a padding query
    sees itself, so softmax never meets an empty row. Returns (B, 1, T, T): boolean (True = attend)
    for SDPA, additive float for eager.
    """
    position = torch.arange(real.shape[1], device=real.device)
    allowed = real.unsqueeze(1)  # (B, 1, T): keys that are real tokens
    if causal:
        allowed = allowed & (position.unsqueeze(1) >= position.unsqueeze(0)).unsqueeze(0)  # (B, T, T)
    itself = (position.unsqueeze(1) == position.unsqueeze(0)).unsqueeze(0)  # (1, T, T)
    allowed = (allowed & real.unsqueeze(2)) | (itself & ~real.unsqueeze(2))  # (B, T, T)
    allowed = allowed.unsqueeze(1)
    if implementation == "eager":
        return torch.zeros(allowed.shape, dtype=dtype, device=real.device).masked_fill(~allowed, torch.finfo(dtype).min)
    return allowed


def _repeated(input_ids: torch.Tensor, real: torch.Tensor):
    """Each row's example [x] laid out as [x ; x] at the start of a (B, 2T) row (then padding).

    Returns (ids, real, position_ids, second): the repeated (B, 2T) ids, real-token mask and
    positions 0..2n-1, and (B, T) the repeated position of every original token's second copy.
    """
    length = input_ids.shape[1]
    n = real.long().sum(1, keepdim=True)  # (B, 1) real tokens
    start = (real.long().cumsum(1) == 0).long().sum(1, keepdim=True)  # (B, 1) leading padding
    p = torch.arange(2 * length, device=input_ids.device).unsqueeze(0)  # (1, 2T)
    inside = p < 2 * n  # (B, 2T)
    offset = torch.where(p < n, p, p - n)
    source = torch.where(inside, start + offset, torch.zeros_like(offset)).clamp(0, length - 1)
    ids = input_ids.gather(1, source)
    positions = torch.where(inside, p, torch.zeros_like(p))
    t = torch.arange(length, device=input_ids.device).unsqueeze(0)  # (1, T)
    second = (t - start + n).clamp(0, 2 * length - 1)  # (B, T)
    return ids, inside, positions, second


def _pool(hidden: torch.Tensor, real: torch.Tensor, mode: str) -> torch.Tensor:
    """`models.pooling.pool` for a padded batch, without data-dependent shapes: (B, T, H) -> (B, H)."""
    mask = real.unsqueeze(-1)  # (B, T, 1)
    if mode == "last":
        length = hidden.shape[1]
        marks = (torch.arange(length, device=hidden.device) + 1).unsqueeze(0) * real.long()  # (B, T)
        last = marks.argmax(1)  # the last real position
        return hidden.gather(1, last.view(-1, 1, 1).expand(-1, 1, hidden.shape[-1])).squeeze(1)
    if mode == "mean":
        summed = torch.where(mask, hidden, torch.zeros_like(hidden)).sum(1)
        return summed / real.sum(1, keepdim=True).clamp(min=1).to(hidden.dtype)
    if mode == "max":
        return torch.where(mask, hidden, torch.full_like(hidden, float("-inf"))).amax(1)
    raise ConfigError(f"pooling {mode!r} cannot be exported (last, mean or max)")


# ----------------------------------------------------------------------------- checks


def attention_mode(model: nn.Module) -> str:
    """causal | bidirectional | top-k | repeat: the run's attention mode, as the model is configured."""
    config = model.config
    if config.lsllm_repeat:
        return "repeat"
    if config.lsllm_bidirectional:
        return "top-k" if config.lsllm_unmask_layers else "bidirectional"
    return "causal"


def check_exportable(model: nn.Module, max_length: int) -> None:
    """Refuse, in one line, what the export cannot reproduce exactly."""
    from lsllm.models.attention import LSLLM_SDPA, attn_implementation

    implementation = attn_implementation(model.model)
    if implementation not in ("sdpa", LSLLM_SDPA, "eager"):
        raise ConfigError(f"attention implementation {implementation!r} cannot be exported; the run must use sdpa or eager")
    config = model.model.config
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None) or ()
    sliding = window and (any("sliding" in str(t) for t in layer_types)
                          or (not layer_types and getattr(config, "use_sliding_window", True)))
    if sliding and window < max_length:
        raise ConfigError(f"sliding-window attention (window {window} < max_length {max_length}) is not supported "
                          "by the ONNX export; export a run of a family without sliding windows, or one trained "
                          f"with --max-length {window} or less")


# ----------------------------------------------------------------------------- the check against PyTorch


def _max_diff(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    return max(float((x.float() - y.float()).abs().max()) for x, y in zip(a, b, strict=True))


def _argmax_agreement(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> tuple[int, int]:
    """(agreeing, total) decisions: one per sequence, one per real position (token)."""
    agree = total = 0
    for x, y in zip(a, b, strict=True):
        same = x.argmax(-1) == y.argmax(-1)
        agree += int(same.sum())
        total += same.numel()
    return agree, total


def sample_examples(classifier: Classifier, texts: Sequence[str] = SAMPLE_TEXTS) -> list:
    """A few inputs of different lengths to check the export on, as the classifier encodes them."""
    given: list = list(texts)
    if classifier.fields:  # a run on sentence pairs reads records of its fields
        given = [{name: texts[(i + k) % len(texts)] for k, name in enumerate(classifier.fields)} for i in range(len(texts))]
    return classifier.problem.from_texts(given, classifier.example)[0]


def reference_logits(classifier: Classifier, features: Sequence[dict]) -> list[torch.Tensor]:
    """The `Classifier`'s own logits per feature (its packed fast path, as `lsllm predict` runs)."""
    from lsllm.inference.prediction import feature_probabilities

    return feature_probabilities(classifier.model, features, classifier.tokenizer.pad_token_id,
                                 classifier.max_batch_tokens, activation=lambda logits: logits)


# ----------------------------------------------------------------------------- export


@dataclass
class ExportReport:
    out: Path
    n_texts: int
    wrapper_diff: float  # the wrapper vs the Classifier (PyTorch)
    onnx_diff: float  # ONNX Runtime fp32 vs the Classifier
    exporter: str  # "dynamo" | "torchscript"
    int8_diff: float | None = None
    int8_agreement: tuple[int, int] | None = None

    def lines(self) -> list[str]:
        lines = [f"ONNX Runtime fp32 vs PyTorch on {self.n_texts} texts: max |logit difference| {self.onnx_diff:.2e} "
                 f"(tolerance {FP32_TOLERANCE:g}; {self.exporter} exporter)"]
        if self.int8_diff is not None and self.int8_agreement is not None:
            agree, total = self.int8_agreement
            lines.append(f"ONNX Runtime int8 vs PyTorch: max |logit difference| {self.int8_diff:.2e}, "
                         f"argmax agrees on {agree}/{total} decisions")
        lines.append(f"exported to {self.out} (run it with lsllm.export.OnnxClassifier or onnxruntime; see docs/serving.md)")
        return lines

    def warnings(self) -> list[str]:
        if self.int8_agreement and self.int8_agreement[0] < self.int8_agreement[1]:
            return ["the int8 graph decides differently from the fp32 model on some of the check texts"]
        return []


def export_run(run_dir: str | Path, out_dir: str | Path, fmt: str = "onnx", int8: bool = False,
               texts: Sequence[str] = SAMPLE_TEXTS, log: Callable[[str], None] | None = None) -> ExportReport | VllmExportReport:
    """Export a trained LS run to ``out_dir`` (see the module docstring) and verify it: the one place a
    format is chosen (``fmt`` "onnx", or "vllm": `lsllm.vllm_export.export_vllm`).

    Raises:
        ConfigError: unknown format, OUT not empty, not a run, onnx/onnxruntime missing, or a
            mode the export cannot reproduce.
        ModelError: the exported graph does not give the run's logits.
    """
    from lsllm.files import atomic_replace_dir, staging_dir
    from lsllm.pipeline import load_run
    from lsllm.runs import RunDir

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "vllm":
        from lsllm.vllm_export import export_vllm

        if int8:
            raise ConfigError("--int8 applies to --format onnx (vLLM serves the checkpoint in fp32 or bf16: --dtype of vllm serve)")
        return export_vllm(run_dir, out_dir, texts=texts, log=log)
    out = Path(out_dir)
    check_out_dir(out)
    run = RunDir(Path(run_dir))
    if not run.root.is_dir():
        raise ConfigError(f"{run.root}: no such run directory")
    run.run_info()  # a finished LS run, or a one-line error
    require_onnx()
    classifier, cfg = load_run(run_dir, dtype="float32", device="cpu")
    model = classifier.model.eval()
    problem = classifier.problem
    check_exportable(model, classifier.max_length)
    graph = OnnxGraph(model).eval()

    features = classifier.encode(sample_examples(classifier, texts)).features
    expected = reference_logits(classifier, features)
    pad_id = classifier.tokenizer.pad_token_id
    ids, mask = padded_batch(features, pad_id)
    with torch.inference_mode():
        wrapped = problem.unpad(graph(ids, mask), mask)
        left_ids, left_mask = padded_batch(features, pad_id, left=True)
        left = problem.unpad(graph(left_ids, left_mask), left_mask)
    wrapper_diff = max(_max_diff(wrapped, expected), _max_diff(left, expected))
    if wrapper_diff > FP32_TOLERANCE:
        raise ModelError(f"the export wrapper does not reproduce the classifier (max |logit difference| "
                         f"{wrapper_diff:.2e} > {FP32_TOLERANCE:g} in {attention_mode(model)} mode); please report it")

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(out)
    staging.mkdir(parents=True)
    try:
        example = padded_batch(features[:2] if len(features) > 2 else features, pad_id)
        exporter = write_onnx(graph, example, staging / MODEL_FILE, problem)
        got = problem.unpad(torch.from_numpy(_run_session(staging / MODEL_FILE, ids, mask)), mask)
        onnx_diff = _max_diff(got, expected)
        if onnx_diff > FP32_TOLERANCE:
            raise ModelError(f"the ONNX graph does not reproduce the run: max |logit difference| {onnx_diff:.2e} > "
                             f"{FP32_TOLERANCE:g} (fp32, {exporter} exporter); please report it")
        report = ExportReport(out, len(features), wrapper_diff, onnx_diff, exporter)
        if int8:
            quantize_int8(staging / MODEL_FILE, staging / INT8_FILE, model)
            got8 = problem.unpad(torch.from_numpy(_run_session(staging / INT8_FILE, ids, mask)), mask)
            report.int8_diff = _max_diff(got8, expected)
            report.int8_agreement = _argmax_agreement(got8, expected)
            scale = max(1.0, max(float(x.abs().max()) for x in expected))
            if report.int8_diff > INT8_TOLERANCE * scale:
                raise ModelError(f"the int8 graph is too far from the run: max |logit difference| {report.int8_diff:.2e} > "
                                 f"{INT8_TOLERANCE * scale:.2e} ({INT8_TOLERANCE:g} x the largest logit); export without --int8")
        classifier.tokenizer.save_pretrained(staging)
        info = export_info(run_dir, classifier, cfg, model, exporter, report, int8)
        write_info(staging, info)
        if out.exists():  # empty (checked above): replaced by the finished folder
            out.rmdir()
        atomic_replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for line in report.lines() if log else ():
        log(line)
    return report


def write_onnx(graph: OnnxGraph, example: tuple[torch.Tensor, torch.Tensor], path: Path, problem: Problem) -> str:
    """torch.onnx.export with dynamic batch and sequence: the dynamo exporter (needs onnxscript), else
    the TorchScript one. Returns the exporter that wrote ``path``."""
    errors = []
    for exporter in EXPORTERS:
        for stale in path.parent.glob(f"{path.name}*"):
            stale.unlink()
        try:
            with warnings.catch_warnings(), _quiet(logging.getLogger("torch")), _quiet(logging.getLogger("onnxscript")):
                warnings.simplefilter("ignore")
                (_dynamo_export if exporter == "dynamo" else _torchscript_export)(graph, example, path, problem)
            return exporter
        except Exception as err:  # noqa: BLE001 - any exporter failure: try the next one
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            errors.append(f"{exporter}: {type(err).__name__}: {first}")
    raise ModelError("torch.onnx.export failed (" + "; ".join(errors) + "); please report it")


def _dynamo_export(graph: OnnxGraph, example: tuple[torch.Tensor, torch.Tensor], path: Path, problem: Problem) -> None:
    import onnxscript  # noqa: F401  (the dynamo exporter's dependency: ImportError -> the TorchScript exporter)

    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    shapes = {"input_ids": {0: batch, 1: sequence}, "attention_mask": {0: batch, 1: sequence}}
    program = torch.onnx.export(graph, example, dynamo=True, input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                                dynamic_shapes=shapes, opset_version=OPSET, verbose=False)
    program.save(str(path), external_data=_needs_external_data(graph))


def _torchscript_export(graph: OnnxGraph, example: tuple[torch.Tensor, torch.Tensor], path: Path, problem: Problem) -> None:
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            OUTPUT_NAME: dict(problem.onnx_output_axes)}
    torch.onnx.export(graph, example, str(path), dynamo=False, input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                      dynamic_axes=axes, opset_version=OPSET)


class _quiet:
    """Raise a logger's level for a block (the dynamo exporter logs its progress at INFO/WARNING)."""

    def __init__(self, logger) -> None:
        self.logger = logger

    def __enter__(self):
        self.level = self.logger.level
        self.logger.setLevel(40)

    def __exit__(self, *exc) -> None:
        self.logger.setLevel(self.level)


def quantize_int8(source: Path, target: Path, model: nn.Module) -> None:
    """The int8 graph of `source` (ONNX Runtime's dynamic quantization: int8 weights, activations
    quantized per batch as they come), written to `target`.

    Weights are quantized per output channel, and the MLP's output projections (``down_proj``:
    the MatMuls whose weight is intermediate x hidden) stay fp32: their inputs carry the few very
    large activations of decoder LLMs, which one int8 scale per batch crushes. Measured on SmolLM2
    runs (docs/serving.md): per-tensor int8 everywhere lost 18.5 Pearson points on STS-B and
    failed the export's own logit check on SST-2; this recipe keeps both close to fp32. The head
    (``score``, hidden x labels) stays fp32 too, as in training: it is a negligible share of the
    work, and its outputs are the logits themselves. (A pooled head exports as a Gemm, which ONNX
    Runtime's quantizer first rewrites as a MatMul named ``<gemm>_MatMul``: both names are excluded.)
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    config = model.config.get_text_config()
    keep = {(getattr(config, "intermediate_size", None), getattr(config, "hidden_size", None)),
            (model.score.in_features, model.score.out_features)}
    graph = onnx.load(str(source), load_external_data=False).graph
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    fp32 = [name for node in graph.node if _linear_shape(node, shapes) in keep
            for name in (node.name, f"{node.name}_MatMul")]
    with _quiet(logging.getLogger()):  # "consider pre-processing" on the root logger: not for our graphs
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         nodes_to_exclude=fp32, use_external_data_format=_needs_external_data(model))


def _linear_shape(node, shapes: dict[str, tuple[int, ...]]) -> tuple[int, ...] | None:
    """(in, out) of a MatMul or Gemm node whose weight is an initializer (a Gemm may hold it transposed)."""
    if node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2 or node.input[1] not in shapes:
        return None
    shape = shapes[node.input[1]]
    trans_b = any(a.name == "transB" and a.i for a in node.attribute)
    return tuple(reversed(shape)) if trans_b else shape


def _needs_external_data(module: nn.Module) -> bool:
    """ONNX files hold at most 2 GB (protobuf); larger models keep their weights in model.onnx.data."""
    return sum(p.numel() * p.element_size() for p in module.parameters()) > 1.8 * 2**30


def _run_session(path: Path, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()})[0]


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def export_info(run_dir: str | Path, classifier: Classifier, cfg: Any, model: nn.Module, exporter: str,
                report: ExportReport, int8: bool) -> ExportInfo:
    """lsllm-export.json: what a runner needs besides the graph and the tokenizer."""
    from lsllm import describe, runs
    from lsllm.version import __version__

    info = runs.RunDir(Path(run_dir)).run_info()
    config = model.config
    problem = classifier.problem
    return ExportInfo(**{
        "format": "onnx",
        "model": MODEL_FILE,
        "int8_model": INT8_FILE if int8 else None,
        "inputs": {"input_ids": "int64 (batch, sequence)", "attention_mask": "int64 (batch, sequence): 1 real token, "
                   "0 padding; left or right padding, each row's real tokens contiguous"},
        "outputs": {OUTPUT_NAME: problem.onnx_output},
        "task": classifier.task,
        "labels": list(classifier.labels),
        "problem": problem.saved_problem,
        "problem_state": problem.state(),
        "outputs_from_logits": problem.from_logits,
        "prompt": classifier.prompt,
        "fields": classifier.fields,
        "max_length": classifier.max_length,
        "label_all_subtokens": classifier.label_all_subtokens,
        "pad_token_id": classifier.tokenizer.pad_token_id,
        "max_position_embeddings": getattr(config, "max_position_embeddings", None),
        "attention": attention_mode(model),
        "attention_description": describe.attention(cfg.to_dict(), info),
        "unmask_layers": config.lsllm_unmask_layers,
        "pooling": problem.saved_pooling(config.lsllm_pooling),
        "run": str(Path(run_dir).resolve()),
        "base_model": info.base_model,
        "exporter": exporter,
        "opset": OPSET,
        "verification": {"texts": report.n_texts, "max_abs_logit_diff": report.onnx_diff,
                         "int8_max_abs_logit_diff": report.int8_diff,
                         "int8_argmax_agreement": list(report.int8_agreement) if report.int8_agreement else None},
        "versions": {"lsllm": __version__, "torch": torch.__version__, "transformers": _version("transformers"),
                     "onnx": _version("onnx"), "onnxruntime": _version("onnxruntime")},
    })
