"""The run directory: the only module that knows its layout.

    <run>/config.yaml         resolved RunConfig (+ lsllm and format version); reloadable with --config
    <run>/model/              adapter + head (safetensors), classifier config with label map, tokenizer
    <run>/metrics.json        {"validation": {...}, "test": {...}} for the selected checkpoint
    <run>/predictions.jsonl   records of the test split (validation when there is no test)
    <run>/report.txt          classification report(s)
    <run>/confusion_matrix.png, learning_curve.png
    <run>/logs/               TensorBoard
    <run>/checkpoints/        Trainer checkpoints; a complete one holds COMPLETE_MARKER
    <run>/README.md           model card
    <run>/eval-<split>.json   written by `lsllm eval`

Every file is written atomically (temporary file + rename), so a killed run never leaves a
half-written file under its final name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from lsllm.errors import ConfigError

CONFIG = "config.yaml"
MODEL_DIR = "model"
METRICS = "metrics.json"
PREDICTIONS = "predictions.jsonl"
REPORT = "report.txt"
CONFUSION = "confusion_matrix.png"
CURVE = "learning_curve.png"
LOGS = "logs"
CHECKPOINTS = "checkpoints"
CARD = "README.md"
RUN_INFO = "lsllm.json"  # inside model/: task, labels, base weights, versions
COMPLETE_MARKER = "lsllm-complete"


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: Path, records: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def atomic_save_figure(figure, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    figure.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)


@dataclass
class RunDir:
    """Paths inside one run directory."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    def __getattr__(self, name: str) -> Path:
        names = {"config": CONFIG, "model": MODEL_DIR, "metrics": METRICS, "predictions": PREDICTIONS,
                 "report": REPORT, "confusion": CONFUSION, "curve": CURVE, "logs": LOGS,
                 "checkpoints": CHECKPOINTS, "card": CARD}
        if name in names:
            return self.root / names[name]
        raise AttributeError(name)

    def eval_file(self, split: str) -> Path:
        return self.root / f"eval-{split}.json"

    def exists(self) -> bool:
        return (self.root / CONFIG).is_file()

    def require_trained(self) -> None:
        if not (self.root / MODEL_DIR / RUN_INFO).is_file():
            hint = " (an SFT run: use `lsllm sft eval`)" if (self.root / MODEL_DIR / "lsllm-sft.json").is_file() else ""
            raise ConfigError(f"{self.root}: not a finished lsllm run (no {MODEL_DIR}/{RUN_INFO}){hint}; train it or pass another directory")

    def run_info(self) -> dict[str, Any]:
        self.require_trained()
        return json.loads((self.root / MODEL_DIR / RUN_INFO).read_text())


def is_main_process() -> bool:
    """True outside torchrun/accelerate and on rank 0: the process that owns the run directory."""
    return int(os.environ.get("RANK", "0")) == 0


def open_run(cfg, prefix: str = ""):
    """Name the run directory (refusing one that holds a run), or reopen it with its saved config for --resume.

    ``cfg`` is a RunConfig or SFTRunConfig; the saved config is read back with ``type(cfg).load``.
    Under torchrun/accelerate only rank 0 checks: it owns the directory and writes its config.

    Returns:
        (RunDir, the config to run with)
    """
    if cfg.train.output is None:
        stem = Path(cfg.data.data).name.replace(":", "_") or "run"
        cfg.train.output = str(Path("runs") / f"{prefix}{stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    run = RunDir(Path(cfg.train.output))
    main_process = is_main_process()
    if cfg.train.resume:
        if main_process and not run.exists():
            raise ConfigError(f"--resume: {run.root} holds no run (no {CONFIG}); start it without --resume")
        saved = type(cfg).load(run.config)
        saved.train.resume = True
        saved.train.output = str(run.root)
        return run, saved
    if main_process and run.exists():
        raise ConfigError(f"{run.root} already holds a run: pass --resume to continue it or choose another --output")
    return run, cfg


def mark_checkpoint_complete(checkpoint: Path) -> None:
    atomic_write_text(Path(checkpoint) / COMPLETE_MARKER, "ok\n")


class CheckpointCompleted(TrainerCallback):
    """Mark a checkpoint complete only once the Trainer has written all of it (safe --resume)."""

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            mark_checkpoint_complete(Path(args.output_dir) / f"checkpoint-{state.global_step}")


def last_complete_checkpoint(checkpoints: Path) -> Path | None:
    """The newest checkpoint that finished saving; incomplete ones (killed mid-save) are removed."""
    found = []
    for path in Path(checkpoints).glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and path.is_dir():
            if (path / COMPLETE_MARKER).is_file():
                found.append((int(match.group(1)), path))
            else:
                shutil.rmtree(path, ignore_errors=True)
    return max(found)[1] if found else None


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    from lsllm import __version__

    return {"lsllm": __version__, "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


def save_model(run: RunDir, classifier, cfg, source: dict, bundle) -> None:
    """Write model/: adapter + head (safetensors), classifier config, tokenizer, lsllm.json; atomically."""
    peft_model = classifier.model
    staging = run.root / f".model.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    peft_model.save_pretrained(staging)
    base = peft_model.get_base_model()
    base.config.save_pretrained(staging)
    classifier.tokenizer.save_pretrained(staging)
    info = {
        "task": classifier.task,
        "labels": list(classifier.labels),
        "base_model": cfg.model.name,
        "weights": source,
        "bidirectional": bool(base.config.lsllm_bidirectional),
        "unmask_layers": base.config.lsllm_unmask_layers,
        "pooling": base.config.lsllm_pooling if classifier.task == "seq" else None,
        "max_length": classifier.max_length,
        "label_all_subtokens": classifier.label_all_subtokens,
        "data": bundle.name,
        "versions": _versions(),
    }
    atomic_write_json(staging / RUN_INFO, info)
    target = run.model
    if target.exists():
        old = run.root / f".model.old-{os.getpid()}"
        os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)


def load_run(path: str | Path, merge: bool = True, dtype: str | None = None, device=None):
    """Rebuild a trained run's classifier exactly: base weights + adapter + head, label map, pooling.

    Args:
        merge: fold LoRA into the weights (fast inference); False keeps the PEFT model.
        dtype: "float32" | "bfloat16" | "auto" (default: the run's configured dtype).

    Returns:
        (Classifier, RunConfig)
    """
    import logging

    import torch
    from peft import PeftModel
    from transformers import AutoConfig

    from lsllm.config import RunConfig
    from lsllm.hardware import default_device, resolve_dtype
    from lsllm.models.backbones import load_tokenizer, resolve_model
    from lsllm.models.classifiers import LSForSequenceClassification, LSForTokenClassification
    from lsllm.pipeline import Classifier

    run = RunDir(Path(path))
    if not run.root.is_dir():
        raise ConfigError(f"{run.root}: no such run directory")
    info = run.run_info()
    cfg = RunConfig.load(run.config)
    resolved = resolve_model(cfg.model.name)
    recorded = info.get("weights", {})
    if recorded.get("sha256") != resolved.source.get("sha256") or recorded.get("kind") != resolved.source.get("kind"):
        logging.getLogger(__name__).warning(
            "the base weights differ from training (%s then, %s now): predictions may differ", recorded, resolved.source
        )
    config = AutoConfig.from_pretrained(run.model)
    cls = LSForSequenceClassification if info["task"] == "seq" else LSForTokenClassification
    device = device or default_device()
    model = cls.from_pretrained(str(resolved.path), config=config, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, str(run.model))
    if merge:
        model = model.merge_and_unload()  # merged in fp32, then cast: no bf16 rounding of the LoRA delta
    model = model.to(device=device, dtype=resolve_dtype(dtype or cfg.model.dtype, device)).eval()
    tokenizer = load_tokenizer(run.model)
    classifier = Classifier(model, tokenizer, info["labels"], info["task"], info["max_length"], info["label_all_subtokens"])
    return classifier, cfg
