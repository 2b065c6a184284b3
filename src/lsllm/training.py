"""One training run on the HF Trainer: data → model → LoRA → train → select on validation → report.

The Trainer brings distributed training (accelerate/torchrun), mixed precision, checkpoints and
logging. What is ours: packed batches (no padding, same examples), an fp32 head under a bf16
backbone, a non-finite loss guard, class weights, evaluation through the same `Classifier` used
by `eval`/`predict`/`serve`, atomic checkpoint completion markers and exact resume.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from transformers import Trainer

from lsllm import distributed, lifecycle, progress, rank_log, runs
from lsllm.config import RunConfig, apply_preset
from lsllm.data import Collator, DatasetBundle, class_weights, encode_split
from lsllm.data.encoding import prompt_fields
from lsllm.data.packing import PackingCollator
from lsllm.errors import ConfigError, ModelError
from lsllm.files import atomic_write_json
from lsllm.hardware import default_device
from lsllm.inference.classifier import Classifier
from lsllm.models.adapters import apply_lora, merged_for_inference
from lsllm.models.backbones import load_tokenizer, resolve_model
from lsllm.models.head_init import init_from_label_words, label_words
from lsllm.problems import Problem, family
from lsllm.recipe import choose as choose_recipe
from lsllm.run_outputs import write_reports

log = logging.getLogger(__name__)
MAX_BAD_STEPS = 10


class LSTrainer(Trainer):
    """Trainer with our loss (class weights, non-finite guard) and evaluation by `Classifier`."""

    def __init__(self, *args, classifier: Classifier, loss_weights: torch.Tensor | None = None, head_lr: float | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.head_lr = head_lr
        self.loss_fn = classifier.problem.loss
        self.model_accepts_loss_kwargs = False  # we compute the loss; the model must not rescale it
        self.classifier = classifier
        self.loss_weights = loss_weights
        self.bad_steps = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs.logits
        weight = None if self.loss_weights is None else self.loss_weights.to(logits.device)
        loss = self.loss_fn(logits, labels, weight)
        if not torch.isfinite(loss):
            self.bad_steps += 1
            if self.bad_steps >= MAX_BAD_STEPS:
                raise ModelError(f"loss was non-finite for {MAX_BAD_STEPS} batches in a row: lower --lr or use --dtype float32")
            log.warning("non-finite loss at step %d: batch skipped", self.state.global_step)
            loss = logits.sum() * 0.0  # zero gradients: the step changes nothing but the schedule
        else:
            self.bad_steps = 0
        return (loss, outputs) if return_outputs else loss

    def create_optimizer(self, model=None):
        """The Trainer's AdamW, with the head `score` in its own group when --head-lr is set."""
        head_lr = self.head_lr
        if head_lr is None or self.optimizer is not None:
            return super().create_optimizer(model)
        head, body = [], []
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                (head if ".score." in f".{name}." else body).append(param)
        groups = [{"params": body, "weight_decay": self.args.weight_decay},
                  {"params": head, "weight_decay": self.args.weight_decay, "lr": head_lr}]
        optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, self.model)
        self.optimizer = optimizer_cls(groups, **kwargs)
        return self.optimizer

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        self.classifier.model = self.model
        # every process evaluates in step (FSDP and ZeRO-3 gather each layer's weights as it runs); LoRA is folded into the
        # base weights for speed, except where each process holds only a share of them
        merged = contextlib.nullcontext() if distributed.weights_sharded(self) else merged_for_inference(self.model)
        with merged:  # multi-label: thresholds tuned on this validation split, then scored
            metrics, _ = self.classifier.evaluate(eval_dataset if eval_dataset is not None else self.eval_dataset, tune=True,
                                                  progress=progress.bar("validating"))
        flat = {f"{metric_key_prefix}_{k}": v for k, v in metrics.items() if isinstance(v, int | float)}
        self.log(flat)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, flat)
        return flat


def build_model(cfg: RunConfig, labels: list[str], problem: Problem, dtype: torch.dtype):
    """Backbone + attention mode + pooling + the problem type's head and loss, with LoRA (or all weights trainable: --no-lora).

    Returns:
        (the model to train: a PeftModel, or the classifier itself with --no-lora; tokenizer; weights source)
    """
    resolved = resolve_model(cfg.model.name)
    tokenizer = load_tokenizer(resolved.path)
    device = default_device()
    model = problem.model_class().from_pretrained(
        str(resolved.path),
        num_labels=problem.n_outputs(labels),
        **problem.model_kwargs(cfg.model.resolved_pooling),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        bidirectional=cfg.model.bidirectional,
        unmask_layers=cfg.model.unmask_layers,
        repeat=cfg.model.attention == "repeat",
        quantize=cfg.model.quantize,
        attn_implementation=cfg.model.attn_implementation,
        dtype=dtype,
    )
    model.config.lsllm_source = resolved.source
    model.set_loss(problem.loss)  # the family's loss when the model is called with labels
    model.config.pad_token_id = tokenizer.pad_token_id
    if cfg.model.head_init == "labels":  # refused by the problem type where it does not apply (LSMethod.prepare)
        words = label_words(labels, cfg.model.label_words)
        if words is not None:
            init_from_label_words(model, tokenizer, words, resolved.path)
    if cfg.model.quantize is None:
        model.to(device)
    if not cfg.lora.enabled:
        return model, tokenizer, resolved.source
    return apply_lora(model, cfg.lora, quantized=cfg.model.quantize is not None), tokenizer, resolved.source


class LSMethod(lifecycle.Method):
    """Label supervision's part of the run sequence: presets, the classifier, selection on validation, our loss."""

    trains_sharded = True

    def __init__(self, announce: Callable[[str], None] | None = None) -> None:
        self.classifier: Classifier | None = None
        self.source: dict = {}
        self.step0: dict | None = None
        self.announce = announce  # told the recipe chosen from the data (the CLI prints it)
        self.recipe_line: str | None = None

    def prepare(self, cfg: RunConfig, bundle: DatasetBundle, explicit: set[str]) -> None:
        problem = family(bundle.task, bundle.problem)
        if cfg.data.task is not None and not problem.is_task(cfg.data.task):
            raise ConfigError(f"--task {cfg.data.task} but {bundle.name} is a {bundle.task} dataset")
        cfg.data.task = problem.task
        cfg.data.problem = problem.saved_problem
        if not cfg.train.resume:
            apply_preset(cfg, bundle.task, explicit)
            line = choose_recipe(cfg, problem, bundle.labels, len(bundle.splits.get("train", [])),
                                 _fields_of(bundle), explicit)
            if line is not None:
                log.info("%s", line)
                self.recipe_line = line  # said once the run starts training (a refusal before it stays one line)
        problem.refuse_settings(cfg)  # --prompt, --pooling, --class-weights, --head-init where they do not apply
        if cfg.model.prompt is not None:
            fields = _fields_of(bundle) or ["text"]
            missing = [name for name in prompt_fields(cfg.model.prompt) if name not in fields]
            if missing:
                have = ", ".join("{" + n + "}" for n in fields)
                raise ConfigError(f"--prompt names {{{missing[0]}}} but the data's fields are {have}; use those names")

    def build_trainer(self, cfg: RunConfig, run: runs.RunDir, bundle: DatasetBundle, precision: lifecycle.Precision) -> LSTrainer:
        problem = family(bundle.task, bundle.problem, threshold_mode=cfg.train.thresholds)
        problem.fit([problem.gold(ex) for ex in bundle.splits.get("train", [])])
        model, tokenizer, self.source = build_model(cfg, bundle.labels, problem, precision.weights)
        self.weights_dtype = precision.weights
        self.classifier = Classifier(model, tokenizer, bundle.labels, problem, cfg.data.max_length,
                                     cfg.data.label_all_subtokens, prompt=cfg.model.prompt, fields=_fields_of(bundle))
        self.head_from_label_words = cfg.model.head_init == "labels"
        train_features = encode_split(bundle, "train", tokenizer, cfg.data.max_length, cfg.data.label_all_subtokens,
                                      prompt=cfg.model.prompt).features
        args = lifecycle.trainer_arguments(cfg, run, len(train_features), precision, select=problem.selection,
                                           remove_unused_columns=False)
        collator = PackingCollator(problem.packed_targets) if cfg.train.pack else Collator(tokenizer.pad_token_id)
        if rank_log.folder() is not None:  # LSLLM_DEBUG_RANKS: which examples each process trained on
            collator = rank_log.ExampleRecorder(collator, train_features)
        weights = None
        if cfg.train.class_weights == "balanced":  # single-label only (refused by the others in prepare)
            weights = torch.tensor(class_weights([f["labels"] for f in train_features], len(bundle.labels)), dtype=torch.float32)
        return LSTrainer(
            model=model,
            args=args,
            train_dataset=train_features,
            data_collator=collator,
            callbacks=lifecycle.trainer_callbacks(cfg, run),
            classifier=self.classifier,
            eval_dataset=bundle.splits["validation"],
            loss_weights=weights,
            head_lr=cfg.train.head_lr,
        )

    def before_fit(self, run: runs.RunDir, bundle: DatasetBundle) -> None:
        """The recipe chosen from the data, said; --head-init labels: validation before any training, logs/step0.json."""
        if self.recipe_line is not None and self.announce is not None:
            self.announce(self.recipe_line)
        if self.head_from_label_words:
            assert self.classifier is not None
            self.step0 = _step0(self.classifier, bundle)
            atomic_write_json(run.step0, self.step0)

    def unshard(self, cfg: RunConfig, bundle: DatasetBundle, state_dict: dict) -> torch.nn.Module:
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        assert self.classifier is not None
        unset_hf_deepspeed_config()  # a load now is a plain load, not ZeRO-3's sharded one (the process group is gone)
        model, _, _ = build_model(cfg, bundle.labels, self.classifier.problem, self.weights_dtype)
        model.load_state_dict(state_dict)
        return model

    def save(self, run: runs.RunDir, cfg: RunConfig, bundle: DatasetBundle, trainer: Trainer) -> None:
        """Score the selected model (validation first: multi-label thresholds are tuned there), then write model/."""
        assert self.classifier is not None
        self.classifier.model = trainer.model  # the selected checkpoint's weights
        self.evaluated = evaluate_splits(self.classifier, bundle)
        self.classifier.problem.prepare_to_save(self.classifier.model)  # regression: the saved head outputs the original scale
        save_classifier(run, self.classifier, cfg, self.source, bundle)

    def results(self, run: runs.RunDir, cfg: RunConfig, bundle: DatasetBundle, state, train_seconds: float) -> None:
        assert self.classifier is not None and self.evaluated is not None
        finish_run(run, cfg, bundle, self.classifier, self.source, state.log_history, self.step0, self.evaluated)


def train(cfg: RunConfig, explicit: set[str] | frozenset = frozenset(), callbacks: Sequence = (),
          announce: Callable[[str], None] | None = None) -> Path:
    """Train, select on validation, evaluate validation and test, and write the run directory.

    Args:
        cfg: the run's configuration (presets are applied here, after the task is known; without a
            preset, `recipe.choose` fills what ``explicit`` leaves open from the data).
        explicit: dotted config fields the user set explicitly; presets and the chosen recipe do not override them.
        callbacks: more Trainer callbacks (`lsllm tune` reports validation scores to Optuna through one).
        announce: called with the one line saying the recipe chosen from the data (the CLI prints it).

    Returns:
        The run directory.
    """
    return lifecycle.run_training(cfg, LSMethod(announce), explicit, callbacks)


def save_classifier(run: runs.RunDir, classifier: Classifier, cfg: RunConfig, source: dict, bundle: DatasetBundle) -> None:
    """model/: adapter + head (or, with --no-lora, every weight), classifier config, tokenizer and lsllm.json, atomically."""
    model = classifier.model
    base = model.get_base_model() if cfg.lora.enabled else model

    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        base.config.save_pretrained(folder)
        classifier.tokenizer.save_pretrained(folder)

    info = {
        "task": classifier.task,
        "labels": list(classifier.labels),
        "base_model": cfg.model.name,
        "weights": source,
        "finetune": "lora" if cfg.lora.enabled else "full",
        "bidirectional": bool(base.config.lsllm_bidirectional),
        "unmask_layers": base.config.lsllm_unmask_layers,
        "attention": cfg.model.attention,
        "pooling": classifier.problem.saved_pooling(base.config.lsllm_pooling),
        "max_length": classifier.max_length,
        "label_all_subtokens": classifier.label_all_subtokens,
        "prompt": classifier.prompt,
        "problem": classifier.problem.saved_problem,
        "problem_state": classifier.problem.saved_state(),
        "fields": classifier.fields,
        "data": bundle.name,
        "versions": runs.versions(),
    }
    runs.save_model(run, write, runs.RunInfo(**info))


def _step0(classifier: Classifier, bundle: DatasetBundle) -> dict:
    """Validation metrics before any training (with --head-init labels: the zero-shot choice among the labels)."""
    with merged_for_inference(classifier.model):
        metrics, _ = classifier.evaluate(bundle.splits["validation"], tune=True)
    headline = classifier.problem.headline[:2]
    log.info("step 0 (head from the label words): validation %s %.4f", headline[0], metrics[headline[0]])
    return {k: metrics[k] for k in (*headline, "n_examples")}


def evaluate_splits(classifier: Classifier, bundle: DatasetBundle) -> tuple[dict[str, dict], dict[str, list]]:
    """Metrics and records of validation (multi-label thresholds tuned on it) and then test, with the same decisions."""
    results, records = {}, {}
    for split in ("validation", "test"):
        if split in bundle.splits:
            results[split], records[split] = classifier.evaluate(bundle.splits[split], tune=split == "validation",
                                                                 progress=progress.bar(f"scoring {split}"))
    return results, records


def finish_run(run: runs.RunDir, cfg: RunConfig, bundle: DatasetBundle, classifier: Classifier, source: dict,
               history: list[dict], step0: dict | None,
               evaluated: tuple[dict[str, dict], dict[str, list]]) -> dict[str, dict]:
    """Write the result files of the selected model (model/ is saved already), from its scores on validation and test.

    ``step0``: validation metrics before training (--head-init labels), kept in metrics.json.
    """
    if step0 is None and run.step0.is_file():  # measured by the run's first process; a resumed one reads it back
        step0 = runs.read_json_object(run.step0)
    results, records = evaluated
    write_reports(run, cfg, bundle, classifier, results, records, history, source, extra={"step0": step0} if step0 else None)
    return results


def _fields_of(bundle: DatasetBundle) -> list[str] | None:
    """The names of the input fields when examples have several (sentence pairs), else None."""
    example = next((ex for split in bundle.splits.values() for ex in split if getattr(ex, "fields", None)), None)
    return list(example.fields) if example is not None else None
