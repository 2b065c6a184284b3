"""`train_sft`: instruction-tune a decoder to write the label word, with TRL's SFTTrainer + LoRA.

This is the baseline the LS-LLaMA paper argues against: the model reads a system prompt that
lists the labels, the input, and learns to answer with the label word (loss on the answer
tokens only, TRL's prompt-completion format). It is evaluated by greedy generation, and answers
that name no label are counted as irregular. Multi-label data is answered with every label that
applies ("joy, optimism", or "none"), regression data with the number ("3.8"): the task family
member's answer format (`Problem.sft_answer_format()`).

Example (the original study: Llama-2-13b-chat, QLoRA, SST-2, 1,000 examples)::

    from lsllm.sft import SFTRunConfig, SFTConfig
    from lsllm.sft.training import train_sft
    cfg = SFTRunConfig()
    cfg.model.name, cfg.model.quantize = "meta-llama/Llama-2-13b-chat-hf", "4bit"
    cfg.data.data, cfg.data.train_limit = "sst2", 1000
    cfg.sft = SFTConfig(template="llama2-chat")
    run_dir = train_sft(cfg)
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from datasets import Dataset
from peft import LoraConfig
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from trl import SFTConfig as TRLSFTConfig
from trl import SFTTrainer

from lsllm import lifecycle
from lsllm.errors import DataError
from lsllm.models.attention import attend_per_example, packed_segments
from lsllm.models.dropout import use_fast_dropout
from lsllm.problems import family
from lsllm.runs import RunDir
from lsllm.sft import rundir
from lsllm.sft.answers import Answers, SingleLabelAnswers
from lsllm.sft.config import SFTRunConfig
from lsllm.sft.evaluation import SplitResult, build_template, evaluate_examples, summary
from lsllm.sft.loading import load_base_model, load_trained
from lsllm.sft.templates import PromptTemplate, truncate_input

log = logging.getLogger(__name__)


def build_train_dataset(template: PromptTemplate, examples: list, max_length: int,
                        answers: Answers | None = None) -> tuple[Dataset, int]:
    """TRL prompt-completion rows for the training examples, inputs cut to `max_length` tokens.

    The completion is `answers.answer(label)`: the label word (default), the labels that apply
    joined by ", " or "none" (multi-label), or the number (regression).

    Returns:
        The dataset and the number of inputs that were cut.

    Raises:
        DataError: a training example has no label.
    """
    rows, n_cut = [], 0
    answer = answers.answer if answers is not None else str
    for i, ex in enumerate(examples):
        if ex.label is None:
            raise DataError(f"training example {i + 1} has no label: SFT trains on labelled examples only")
        text, was_cut = truncate_input(template.tokenizer, ex.text, max_length)
        n_cut += was_cut
        rows.append(template.row(text, answer(ex.label)))
    return Dataset.from_list(rows), n_cut


# transformers 5.23 renamed gradient_checkpointing to activation_checkpointing; 5.17-5.22 know only the old name.
CHECKPOINTING = "activation_checkpointing" if "activation_checkpointing" in TRLSFTConfig.__dataclass_fields__ else "gradient_checkpointing"


def trl_config(cfg: SFTRunConfig, run: RunDir, n_train: int, precision: lifecycle.Precision) -> TRLSFTConfig:
    """TRL's SFTConfig: the shared mapping (`lifecycle.trainer_arguments`) plus what only SFT sets."""
    return lifecycle.trainer_arguments(
        cfg, run, n_train, precision, select=None, args_cls=TRLSFTConfig,
        **{CHECKPOINTING: cfg.sft.gradient_checkpointing},
        # Our prompt-completion rows: loss on the answer (and its EOS) only.
        completion_only_loss=True,
        # Inputs are already cut to data.max_length, so the answer is never truncated away.
        max_length=None,
        packing=False,
        # --pack: a batch is one row of concatenated examples with restarting position_ids and
        # no pads; transformers turns such position_ids into a block-diagonal mask (sdpa, eager)
        # or varlen kernels (flash attention), so examples never see each other.
        padding_free=cfg.train.pack,
        remove_unused_columns=True,
    )


def lora_config(cfg: SFTRunConfig):
    return LoraConfig(
        task_type="CAUSAL_LM",
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.target_modules),
    )


@contextlib.contextmanager
def _answer_positions_only():
    """Make TRL's fused LM head project only the positions that have a label, on every device.

    TRL (`trl.trainer.utils.add_fused_lm_head`) does so on Triton devices and projects every
    position elsewhere (static tile shapes for compilers such as Neuron's). On CPU that sent all
    ~48 tokens of an SST-2 example through the 49k-word head to score its 2-3 answer tokens: a
    third of an SFT step. The loss is the same either way (tests/sft/test_training.py).
    """
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if original is None:  # a TRL without this switch: leave it alone
        yield
        return
    trl_utils._use_triton = lambda device: True
    try:
        yield
    finally:
        trl_utils._use_triton = original


class FastSFTTrainer(SFTTrainer):
    """TRL's SFTTrainer whose completion-only loss projects only the answer positions through the LM head."""

    def compute_loss(self, *args, **kwargs):
        with _answer_positions_only():
            return super().compute_loss(*args, **kwargs)


def _with_segments(collate):
    """Padding-free rows: add each example's length (`lsllm_segments`), so `lsllm_sdpa` attends per example."""

    def collate_with_segments(features):
        batch = collate(features)
        if "position_ids" in batch and "attention_mask" not in batch:
            example = (batch["position_ids"] == 0).cumsum(-1) - 1  # (1, T): positions restart per example
            batch["lsllm_segments"] = packed_segments(example)
        return batch

    return collate_with_segments


def build_trainer(cfg: SFTRunConfig, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, train_dataset: Dataset,
                  run: RunDir, precision: lifecycle.Precision | None = None):
    """The TRL SFTTrainer for this run (LoRA applied by TRL from `cfg.lora`; --no-lora: none), TensorBoard logs in run/logs.

    On CPU the padding-free rows of --pack attend per example, as LS training does: transformers
    turns their restarting positions into one block-diagonal mask and SDPA pays for the whole row
    (T^2 for 16 examples of ~48 tokens, a fifth of a step). LoRA dropout uses LS's cheaper mask.
    """
    precision = precision or lifecycle.training_precision(cfg, SFTMethod.autocast_bf16_weights)
    args = trl_config(cfg, run, len(train_dataset), precision)
    per_example = cfg.train.pack and next(model.parameters()).device.type == "cpu" and attend_per_example(model)
    trainer = FastSFTTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=lora_config(cfg) if cfg.lora.enabled else None,  # None: TRL trains every weight
        callbacks=lifecycle.trainer_callbacks(cfg, run),
    )
    if per_example:
        trainer.data_collator = _with_segments(trainer.data_collator)
    use_fast_dropout(trainer.model)
    return trainer


def loss_summary(log_history: list[dict[str, Any]]) -> dict[str, float | None]:
    """Training loss at the first and last logged step (the curve itself is in logs/)."""
    losses = [float(entry["loss"]) for entry in log_history if "loss" in entry]
    return {"train_loss_start": losses[0] if losses else None, "train_loss_end": losses[-1] if losses else None}


class SFTMethod(lifecycle.Method):
    """SFT's part of the run sequence: refuse token tasks, TRL's trainer, the causal-LM adapter, answers scored after training."""

    prefix = "sft-"
    command = "lsllm sft train"
    autocast_bf16_weights = True

    def __init__(self) -> None:
        self.source: dict = {}
        self.template: PromptTemplate | None = None
        self.answers: Answers | None = None
        self.n_cut = 0

    def prepare(self, cfg: SFTRunConfig, bundle, explicit: set[str]) -> None:
        problem = family(bundle.task, bundle.problem)
        answer_format = problem.sft_answer_format(bundle.name)  # token tasks: not offered
        if not bundle.splits.get("train"):
            raise DataError(f"{bundle.name}: no training examples")
        answer_format.check_scoring(cfg.sft.scoring)  # before any weights are read
        # Refuse label sets whose answers cannot be told apart, before training; regression: decimals, mean, range.
        self.answers = answer_format.of(bundle.labels, train_targets=[problem.gold(ex) for ex in bundle.splits["train"]])
        if not cfg.train.resume:
            # Saved: evaluation scores against exactly these (regression: the score's name is not a class list).
            cfg.data.labels = list(bundle.labels) if problem.pins_labels else None
            cfg.data.task = bundle.task
            cfg.data.problem = problem.saved_problem
            cfg.sft.system_prompt = answer_format.default_system_prompt(cfg.sft.system_prompt)  # saved as used

    def build_trainer(self, cfg: SFTRunConfig, run: RunDir, bundle, precision: lifecycle.Precision):
        model, tokenizer, self.source = load_base_model(cfg.model, dtype=precision.weights)
        self.template = build_template(cfg.sft, tokenizer, bundle.labels, self.answers)
        train_examples = bundle.splits["train"]  # load_data applied train_limit / eval_limit
        train_dataset, self.n_cut = build_train_dataset(self.template, train_examples, cfg.data.max_length, self.answers)
        log.info("SFT on %s (%s): %d training examples (%d inputs cut to %d tokens), template %s", bundle.name,
                 bundle.problem, len(train_examples), self.n_cut, cfg.data.max_length, cfg.sft.template)
        return build_trainer(cfg, model, tokenizer, train_dataset, run, precision)

    def save(self, run: RunDir, cfg: SFTRunConfig, bundle, trainer) -> None:
        rundir.save_model(run, trainer.model, trainer.processing_class, cfg, bundle.labels, self.source, self.answers)

    def results(self, run: RunDir, cfg: SFTRunConfig, bundle, state, train_seconds: float) -> None:
        """Score the splits by generation (or likelihood) from the saved run, exactly as `evaluate_sft` will load it."""
        assert self.template is not None
        answers = self.answers or SingleLabelAnswers(bundle.labels)
        train_examples = bundle.splits["train"]
        metrics: dict[str, Any] = {
            "train": {
                **loss_summary(state.log_history),
                "n_examples": len(train_examples),
                "n_truncated": self.n_cut,
                "steps": state.global_step,
                "seconds": round(train_seconds, 1),
            }
        }
        model, tokenizer, _ = load_trained(cfg.model, run.model)
        template = build_template(cfg.sft, tokenizer, bundle.labels, answers)
        results: dict[str, SplitResult] = {}
        splits = [split for split in cfg.sft.eval_splits if bundle.splits.get(split)]
        if not splits and bundle.splits.get("validation"):  # no labelled test split: report validation instead
            splits = ["validation"]
        for split in splits:
            examples = bundle.splits[split]
            started = time.perf_counter()
            results[split] = evaluate_examples(model, tokenizer, template, bundle.labels, examples, cfg.sft, cfg.data.max_length,
                                               show_progress=True, answers=answers)
            metrics[split] = {**results[split].metrics, "seconds": round(time.perf_counter() - started, 1)}
            log.info("%s: %s", split, summary(metrics[split], family(bundle.task, bundle.problem)))
        reported = "test" if "test" in results else "validation"
        rundir.write_results(run, metrics, results[reported].predictions if reported in results else [])
        first = train_examples[0]
        rundir.write_model_card(run, cfg, bundle, metrics, self.source, template.render(first.text, answers.answer(first.label)))


def train_sft(cfg: SFTRunConfig) -> Path:
    """Train an SFT run and evaluate it; returns the run directory.

    Writes config.yaml (labels resolved), model/ (LoRA adapter, tokenizer, lsllm-sft.json),
    checkpoints/, logs/ (TensorBoard, trainer_state.json), metrics.json ({"train",
    "validation", "test"}), predictions.jsonl (the test split, else validation) and README.md.

    Raises:
        ConfigError: a token (NER) dataset, QLoRA without CUDA, settings SFT does not use, or
            an --output that already holds a run (without --resume).
        DataError / ModelError: from loading data or weights.
    """
    return lifecycle.run_training(cfg, SFTMethod())
