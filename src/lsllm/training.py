"""One training run on the HF Trainer: data → model → LoRA → train → select on validation → report.

The Trainer brings distributed training (accelerate/torchrun), mixed precision, checkpoints and
logging. What is ours: packed batches (no padding, same examples), an fp32 head under a bf16
backbone, a non-finite loss guard, class weights, evaluation through the same `Classifier` used
by `eval`/`predict`/`serve`, atomic checkpoint completion markers and exact resume.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter
from transformers import EarlyStoppingCallback, Trainer, TrainingArguments
from transformers.integrations import TensorBoardCallback

from lsllm import runs
from lsllm.config import RunConfig, apply_preset
from lsllm.data import Collator, DatasetBundle, class_weights, encode_split, load_data
from lsllm.data.packing import PackingCollator
from lsllm.errors import ConfigError, ModelError
from lsllm.hardware import default_device, resolve_dtype
from lsllm.models.adapters import apply_lora, merged_for_inference
from lsllm.models.backbones import load_tokenizer, quantization_config, resolve_model
from lsllm.models.classifiers import LSForSequenceClassification, LSForTokenClassification
from lsllm.pipeline import Classifier
from lsllm.reporting import write_reports

log = logging.getLogger(__name__)
MAX_BAD_STEPS = 10


def selection_metric(task: str) -> str:
    return "accuracy" if task == "seq" else "f1"


class LSTrainer(Trainer):
    """Trainer with our loss (class weights, non-finite guard) and evaluation by `Classifier`."""

    def __init__(self, *args, classifier: Classifier, loss_weights: torch.Tensor | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False  # we compute the loss; the model must not rescale it
        self.classifier = classifier
        self.loss_weights = loss_weights
        self.bad_steps = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs.logits
        weight = None if self.loss_weights is None else self.loss_weights.to(logits.device)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), weight=weight, ignore_index=-100)
        if not torch.isfinite(loss):
            self.bad_steps += 1
            if self.bad_steps >= MAX_BAD_STEPS:
                raise ModelError(f"loss was non-finite for {MAX_BAD_STEPS} batches in a row: lower --lr or use --dtype float32")
            log.warning("non-finite loss at step %d: batch skipped", self.state.global_step)
            loss = logits.sum() * 0.0  # zero gradients: the step changes nothing but the schedule
        else:
            self.bad_steps = 0
        return (loss, outputs) if return_outputs else loss

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        self.classifier.model = self.model
        with merged_for_inference(self.model):
            metrics, _ = self.classifier.evaluate(eval_dataset if eval_dataset is not None else self.eval_dataset)
        flat = {f"{metric_key_prefix}_{k}": v for k, v in metrics.items() if isinstance(v, int | float)}
        self.log(flat)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, flat)
        return flat


def build_model(cfg: RunConfig, labels: list[str], task: str):
    """Backbone + attention mode + pooling + head, with LoRA; returns (peft model, tokenizer, source)."""
    resolved = resolve_model(cfg.model.name)
    tokenizer = load_tokenizer(resolved.path)
    device = default_device()
    dtype = resolve_dtype(cfg.model.dtype, device)
    cls = LSForSequenceClassification if task == "seq" else LSForTokenClassification
    if task == "token" and cfg.model.pooling is not None:
        raise ConfigError("--pooling applies to sequence tasks only (token tasks classify every word)")
    model = cls.from_pretrained(
        str(resolved.path),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        bidirectional=cfg.model.bidirectional,
        unmask_layers=cfg.model.unmask_layers,
        pooling=cfg.model.resolved_pooling if task == "seq" else None,
        quantize=cfg.model.quantize,
        attn_implementation=cfg.model.attn_implementation,
        dtype=dtype,
    )
    model.config.lsllm_source = resolved.source
    model.config.pad_token_id = tokenizer.pad_token_id
    if cfg.model.quantize is None:
        model.to(device)
    peft_model = apply_lora(model, cfg.lora, quantized=cfg.model.quantize is not None)
    return peft_model, tokenizer, resolved.source


def train(cfg: RunConfig, explicit: set[str] | frozenset = frozenset()) -> Path:
    """Train, select on validation, evaluate validation and test, and write the run directory.

    Args:
        cfg: the run's configuration (presets are applied here, after the task is known).
        explicit: dotted config fields the user set explicitly; presets do not override them.

    Returns:
        The run directory.
    """
    quantization_config(cfg.model.quantize)  # refuse QLoRA without CUDA before any work is done
    run, cfg = runs.open_run(cfg)
    run.root.mkdir(parents=True, exist_ok=True)
    bundle = load_data(cfg.data)
    if cfg.data.task is not None and cfg.data.task != bundle.task:
        raise ConfigError(f"--task {cfg.data.task} but {bundle.name} is a {bundle.task} dataset")
    cfg.data.task = bundle.task
    if not cfg.train.resume:
        apply_preset(cfg, bundle.task, set(explicit))
        if runs.is_main_process():
            cfg.save(run.config)
    torch.manual_seed(cfg.train.seed)

    model, tokenizer, source = build_model(cfg, bundle.labels, bundle.task)
    classifier = Classifier(model, tokenizer, bundle.labels, bundle.task, cfg.data.max_length, cfg.data.label_all_subtokens)
    train_features = encode_split(bundle, "train", tokenizer, cfg.data.max_length, cfg.data.label_all_subtokens).features
    trainer = _make_trainer(cfg, run, bundle, classifier, train_features)
    checkpoint = runs.last_complete_checkpoint(run.checkpoints) if cfg.train.resume else None
    if cfg.train.resume and checkpoint is None:
        log.warning("no complete checkpoint in %s: starting the run from the beginning", run.checkpoints)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

    if trainer.is_world_process_zero():
        classifier.model = trainer.model
        finish_run(run, cfg, bundle, classifier, source, trainer.state.log_history)
    return run.root


def _make_trainer(cfg: RunConfig, run: runs.RunDir, bundle: DatasetBundle, classifier: Classifier, train_features: list[dict]) -> LSTrainer:
    t = cfg.train
    steps_per_epoch = max(1, math.ceil(len(train_features) / (t.batch_size * t.grad_accum)))
    eval_steps = t.eval_steps or steps_per_epoch
    args = TrainingArguments(
        output_dir=str(run.checkpoints),
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.lr,
        weight_decay=t.weight_decay,
        lr_scheduler_type=t.scheduler,
        warmup_steps=t.warmup_ratio,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model=selection_metric(bundle.task),
        greater_is_better=True,
        logging_steps=max(1, min(50, eval_steps // 4 or 1)),
        report_to="none",
        seed=t.seed,
        data_seed=t.seed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        save_only_model=False,
        disable_tqdm=False,
    )
    pad_id = classifier.tokenizer.pad_token_id
    collator = PackingCollator(bundle.task) if t.pack else Collator(pad_id)
    weights = None
    if t.class_weights == "balanced":
        if bundle.task != "seq":
            raise ConfigError("--class-weights balanced applies to sequence tasks")
        weights = torch.tensor(class_weights([f["labels"] for f in train_features], len(bundle.labels)), dtype=torch.float32)
    callbacks: list[Any] = [runs.CheckpointCompleted(), TensorBoardCallback(tb_writer=SummaryWriter(str(run.logs)))]
    if t.early_stopping:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=t.early_stopping))
    return LSTrainer(
        model=classifier.model,
        args=args,
        train_dataset=train_features,
        data_collator=collator,
        callbacks=callbacks,
        classifier=classifier,
        eval_dataset=bundle.splits["validation"],
        loss_weights=weights,
    )


def finish_run(run: runs.RunDir, cfg: RunConfig, bundle: DatasetBundle, classifier: Classifier, source: dict,
               history: list[dict]) -> dict[str, dict]:
    """Evaluate the selected model on validation and test and write every run file."""
    results, records = {}, {}
    for split in ("validation", "test"):
        if split in bundle.splits:
            results[split], records[split] = classifier.evaluate(bundle.splits[split])
    runs.save_model(run, classifier, cfg, source, bundle)
    write_reports(run, cfg, bundle, classifier, results, records, history, source)
    return results
