"""What runs a trained classifier: the backends, and the one place one is chosen (`open_classifier`).

    torch  a run's PyTorch model: LoRA merged into fp32 weights, cast to --dtype, packed rows
           (`pipeline.load_run`, `inference.prediction`); the CPU matmul kernel is chosen here too
           (`models.kernels`: --matmul auto measures once per machine whether oneDNN's packed
           weights beat nn.Linear).
    onnx   ONNX Runtime on the CPU over an `lsllm export` graph, fp32 or --int8
           (`inference.onnx.OnnxClassifier`); a run given with --backend onnx is exported first,
           with `lsllm.export.export_run`'s checks, into a temporary folder.

vLLM is not a backend here: `lsllm export --format vllm` writes a checkpoint that vLLM serves
itself (`lsllm.vllm_export`). A new backend is one `Backend` in `BACKENDS` (and its name in
`inference.settings.BACKEND_NAMES`, which the --backend flag lists without importing torch; a test
checks the two agree).

`open_classifier` applies the settings' threads (`hardware.configure_threads`) before loading, so
`lsllm eval/predict/serve` and a Python caller run with the same threads.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsllm.errors import ConfigError
from lsllm.inference.classifier import Classifier
from lsllm.inference.settings import InferenceSettings
from lsllm.runs import ExportInfo, RunDir, RunInfo, is_export_dir

logger = logging.getLogger(__name__)


@dataclass
class Opened:
    """A classifier ready to predict, with what a server or an eval says about it."""

    classifier: Classifier
    run_info: RunInfo | ExportInfo | None  # the run's model/lsllm.json, or the export's lsllm-export.json
    positions: int | None  # the model's max_position_embeddings, when known
    name: str
    keep: Any = None  # the TemporaryDirectory of a run exported at open: alive as long as this object


@dataclass(frozen=True)
class Backend:
    """One way to run a classifier: ``open(folder, settings, exported)`` -> Opened; ``refuse`` names a setting it cannot take."""

    name: str  # the --backend value
    opens_exports: bool  # can run an `lsllm export` folder
    refuse: Callable[[InferenceSettings], str | None]
    open: Callable[[Path, InferenceSettings, bool], Opened]


def _refuse_torch(settings: InferenceSettings) -> str | None:
    if settings.int8:
        return "--int8 applies to --backend onnx (the PyTorch backend runs fp32 or bf16: see docs/serving.md)"
    return None


def _open_torch(folder: Path, settings: InferenceSettings, exported: bool) -> Opened:
    from lsllm.models.kernels import choose_matmul, use_matmul
    from lsllm.pipeline import load_run

    run = RunDir(folder)
    run_info = run.run_info()  # a clear ConfigError for a folder that is not a finished run
    classifier, _ = load_run(run.root, dtype=settings.dtype, device=settings.device)
    classifier.matmul = choose_matmul(classifier.model, settings.matmul)
    use_matmul(classifier.model, classifier.matmul)
    return Opened(classifier, run_info, getattr(classifier.model.config, "max_position_embeddings", None), run.root.name)


def _refuse_onnx(settings: InferenceSettings) -> str | None:
    if settings.matmul not in (None, "auto"):
        return f"--matmul {settings.matmul} applies to the PyTorch backend; ONNX Runtime chooses its own kernels"
    if settings.dtype not in (None, "float32"):
        return (f"--dtype {settings.dtype} applies to the PyTorch backend; ONNX Runtime runs the fp32 graph "
                "(or the int8 one with --int8)")
    if settings.device not in (None, "cpu"):
        return f"--device {settings.device}: the onnx backend runs on the CPU (ONNX Runtime's CPU provider)"
    return None


def _open_onnx(folder: Path, settings: InferenceSettings, exported: bool) -> Opened:
    from lsllm.inference.onnx import OnnxClassifier, require_onnx

    keep = None
    source = folder
    if not exported:
        from lsllm.export import export_run

        RunDir(folder).run_info()  # not a run: one line before any work
        require_onnx()
        keep = tempfile.TemporaryDirectory(prefix="lsllm-onnx-")
        logger.warning("exporting %s to ONNX (%s): lsllm export %s OUT%s keeps it for next time", folder,
                       "int8" if settings.int8 else "fp32", folder, " --int8" if settings.int8 else "")
        export_run(folder, Path(keep.name) / "export", int8=settings.int8)
        folder = Path(keep.name) / "export"
    classifier = OnnxClassifier(folder, int8=settings.int8, threads=settings.threads)
    return Opened(classifier, classifier.info, classifier.info.max_position_embeddings, source.name, keep)


BACKENDS: dict[str, Backend] = {
    "torch": Backend("torch", opens_exports=False, refuse=_refuse_torch, open=_open_torch),
    "onnx": Backend("onnx", opens_exports=True, refuse=_refuse_onnx, open=_open_onnx),
}


def choose_backend(folder: Path, settings: InferenceSettings) -> tuple[Backend, bool]:
    """The backend that runs ``folder`` (a run: torch unless asked; an export folder: one that opens exports), and
    whether it is an export folder. Raises ConfigError for a backend that cannot run it or a setting it cannot take."""
    exported = is_export_dir(folder)
    name = settings.backend or ("onnx" if exported else "torch")
    backend = BACKENDS[name]
    if exported and not backend.opens_exports:
        raise ConfigError(f"{folder} is an `lsllm export` folder: it has no PyTorch weights; use --backend onnx "
                          "(or the run it came from)")
    refusal = backend.refuse(settings)
    if refusal:
        raise ConfigError(refusal)
    return backend, exported


def open_classifier(path: str | Path, settings: InferenceSettings | None = None, **fields: Any) -> Opened:
    """A run or an `lsllm export` folder, opened for inference as ``settings`` say (or as ``fields`` of them say).

    One place for `lsllm predict`, `eval` and `serve` (and Python) to choose what runs the model
    (`choose_backend`): "torch" (the default for a run: LoRA merged, fp32 or bf16) or "onnx" (ONNX
    Runtime on the CPU; an export folder always). ``int8`` runs the int8 graph; PyTorch has no int8
    path (docs/serving.md says why). The settings' threads are applied first (torch's, and ONNX
    Runtime's intra-op threads), and ``max_batch_tokens`` is set on the classifier.

    Example:
        >>> opened = open_classifier("runs/sst2", threads=2, matmul="auto")
        >>> opened.classifier.predict_texts(["a gripping film"])

    Raises:
        ConfigError: not a finished run or export, or a setting that does not apply to the backend.
    """
    from lsllm.hardware import configure_threads

    if settings is None:
        settings = InferenceSettings(**fields)
    elif fields:
        raise ConfigError(f"give settings or {', '.join(sorted(fields))}, not both")
    folder = Path(path)
    backend, exported = choose_backend(folder, settings)
    configure_threads(settings.threads)  # torch's threads (the onnx backend's tensors too); a busy machine: a warning
    opened = backend.open(folder, settings, exported)
    if settings.max_batch_tokens is not None:
        opened.classifier.max_batch_tokens = settings.max_batch_tokens
    return opened
