"""A run folder as a classifier: `load_run` rebuilds a trained run's `Classifier` (the torch
backend's loader) and `evaluate_run` scores it on a split of its data (`lsllm eval`).

The classifier itself lives in `lsllm.inference.classifier` (re-exported here:
``from lsllm.pipeline import Classifier, load_run`` keeps working); choosing a backend, threads
and dtype for eval/predict/serve is `lsllm.inference.backends.open_classifier`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lsllm.errors import ConfigError, DataError
from lsllm.inference.classifier import Classifier
from lsllm.runs import RunDir

__all__ = ["Classifier", "evaluate_run", "load_run"]


def load_run(path: str | Path, dtype: str | None = None, device=None) -> tuple[Classifier, Any]:
    """Rebuild a trained run's classifier exactly: base weights + adapter + head (or a --no-lora
    run's own weights), label map, pooling.

    LoRA is merged into fp32 base weights (fast inference, no bf16 rounding of the delta) and the
    model is then cast to ``dtype`` ("float32" | "bfloat16" | "auto"; default the run's own).

    Returns:
        (Classifier, RunConfig)

    Raises:
        ConfigError: ``path`` is not a finished LS run.
    """
    from transformers import AutoConfig

    from lsllm.config import RunConfig
    from lsllm.hardware import default_device, resolve_dtype
    from lsllm.models.adapters import attach_adapter
    from lsllm.models.backbones import load_tokenizer, resolve_model, warn_if_weights_differ

    run = RunDir(Path(path))
    if not run.root.is_dir():
        raise ConfigError(f"{run.root}: no such run directory")
    info = run.run_info()
    cfg = RunConfig.load(run.config)
    classifier = Classifier.from_record(info, None, load_tokenizer(run.model))
    cls = classifier.problem.model_class()
    device = device or default_device()
    dtype = resolve_dtype(dtype or cfg.model.dtype, device)
    if info.finetune == "full":  # --no-lora: model/ holds every weight
        model = cls.from_pretrained(str(run.model), config=AutoConfig.from_pretrained(run.model), dtype=torch.float32)
        model = model.to(device=device, dtype=dtype).eval()
    else:
        resolved = resolve_model(cfg.model.name)
        warn_if_weights_differ(info.weights, resolved.source)
        base = cls.from_pretrained(str(resolved.path), config=AutoConfig.from_pretrained(run.model), dtype=torch.float32)
        model = attach_adapter(base, run.model, device=device, dtype=dtype)
    classifier.model = model
    return classifier, cfg


def evaluate_run(path: str | Path, split: str = "test", data_overrides: dict[str, Any] | None = None,
                 progress=None, dtype: str | None = None, classifier: Classifier | None = None) -> tuple[dict[str, Any], Any]:
    """Score a trained LS run on one split of its own data (or of ``data_overrides``' data).

    Only the evaluated split is read (plus train where validation is carved from it), against
    the run's own label set, so labels the run never saw are an error, not a new class.
    ``classifier`` scores instead of the run's PyTorch model (the run's ONNX graph, say).

    Returns:
        (metrics in the schema of docs/metrics.md, the DataConfig that was read)
    """
    import dataclasses

    from lsllm.data import load_data

    if classifier is None:
        classifier, cfg = load_run(path, dtype=dtype)
    else:
        from lsllm.config import RunConfig

        cfg = RunConfig.load(RunDir(Path(path)).config)
    overrides = dict(data_overrides or {})
    unknown = set(overrides) - {f.name for f in dataclasses.fields(cfg.data)}
    if unknown:
        raise ConfigError(f"unknown data setting(s): {', '.join(sorted(unknown))}")
    data_cfg = dataclasses.replace(cfg.data, **overrides)
    if classifier.problem.pins_labels:  # the run's labels: train is not read for them
        data_cfg.labels = list(classifier.labels)
    bundle = load_data(data_cfg, splits=(split,))
    if not classifier.problem.is_task(bundle.task):
        raise ConfigError(f"the run is a {classifier.task} model but {bundle.name} is a {bundle.task} dataset")
    unknown = sorted(set(bundle.labels) - set(classifier.labels))
    if unknown:
        raise ConfigError(f"labels {', '.join(unknown)} of {bundle.name} are not in the run's label set "
                          f"({', '.join(classifier.labels)}); evaluate on data with the same labels")
    if not bundle.splits.get(split):
        raise DataError(f"{bundle.name} has no {split!r} split to evaluate (it has {', '.join(bundle.splits) or 'none'})")
    metrics, _ = classifier.evaluate(bundle.splits[split], progress=progress)
    return metrics, data_cfg
