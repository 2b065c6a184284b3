"""The task family: what a run learns to predict, as one small object per kind.

`SingleLabel`, `MultiLabel` and `Regression` (sequence tasks: one decision per input) and
`TokenTagging` (NER: a BIO tag per word). The loss, the head's width, the model class, the
encoding, the decision, the records, the metrics (the headline, the selection metric, which print
as percentages), what a saved model must remember and which settings do not apply all differ by
family member, and by nothing else. Every layer asks the run's `Problem` instead of testing a
name (the way transformers' `problem_type` picks a loss):

    problem = family(info.task, info.problem, info.problem_state)   # a saved runs.RunInfo's strings -> object
    loss = problem.loss(logits, targets)                  # CE | BCE | MSE on standardised targets | CE per word
    outputs = problem.outputs(logits)                     # softmax | sigmoid | values | softmax per position
    records = problem.records(examples, outputs, encoded, labels)
    metrics = problem.metrics(gold, outputs, labels, records=records)

`family` is the one place where the strings that files hold ("seq"/"token", "single-label"...)
become an object; `Problem.task`, `Problem.name` and `Problem.saved_problem` turn it back into
them for config.yaml, lsllm.json and JSON outputs. No module outside this one compares them.

Adding a problem type is one class here (and its tests): its loss, outputs, records, metrics,
and the class attributes below that the layers read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from lsllm.config import TASKS, RunConfig
from lsllm.config import THRESHOLD_MODES as THRESHOLDS
from lsllm.errors import ConfigError, DataError
from lsllm.evaluation import (
    _multi_hot,
    jaccard,
    multilabel_metrics,
    regression_metrics,
    seq_metrics,
    seq_report_text,
    token_metrics,
    token_report_text,
)

SEQ_MEMBERS: dict[str, type[Problem]] = {}  # name -> sequence member, filled as the classes are defined


class Problem:
    """What one member of the task family means for the model, the loss, the decision, the metrics and the files."""

    task: ClassVar[str] = "seq"  # for files only (config.yaml data.task, lsllm.json): "seq" | "token"
    name: ClassVar[str]  # for files only: "single-label" | "multi-label" | "regression" | "token-tagging"
    hf_problem_type: ClassVar[str | None]  # transformers' config.problem_type, so a merged model runs in a stock pipeline
    hf_auto_class: ClassVar[str] = "AutoModelForSequenceClassification"  # the transformers class a merged model loads into
    selection: ClassVar[str]  # the validation metric that selects the checkpoint
    headline: ClassVar[tuple[str, ...]]  # the metrics of the terminal table and the model card
    percent: ClassVar[frozenset[str]] = frozenset()  # the headline metrics that are fractions, printed as percentages
    title: ClassVar[str]  # what the run is, in words (model card, describe())
    pooled: ClassVar[bool] = True  # one pooled hidden state per input (the run's --pooling applies)
    pins_labels: ClassVar[bool] = True  # evaluation reads data against the run's own label set (train is not read for it)
    from_logits: ClassVar[str]  # lsllm-export.json: how a runner turns the graph's logits into outputs
    onnx_output: ClassVar[str] = "float32 (batch, labels)"  # lsllm-export.json: the graph's output
    onnx_output_axes: ClassVar[dict[int, str]] = {0: "batch"}  # the output's dynamic axes (TorchScript exporter)
    vllm_refusal: ClassVar[str | None] = None  # why vLLM cannot serve such a run (None: it can)
    vllm_outputs: ClassVar[str]  # lsllm-vllm.json: what vLLM's /classify returns for it
    labels_note: ClassVar[str] = ""  # `lsllm datasets`: said after the label list
    # the measured recipe (lsllm.recipe, docs/accuracy.md), as it applies to this problem type
    label_head_refusal: ClassVar[str | None] = None  # why the head cannot start from the label names (None: it can)
    recipe_head_lr: ClassVar[bool] = False  # a 10x head learning rate even when the head starts random (STS-B, E-c)
    recipe_lora_qv: ClassVar[bool] = False  # LoRA on q/v only (measured for single-label)
    recipe_note: ClassVar[str | None] = None  # the recipe is not chosen from the data: the line that says so

    # ------------------------------------------------------------------ what the files hold

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every sequence member with a name of its own is registered: `make_problem` and `--problem` read SEQ_MEMBERS."""
        super().__init_subclass__(**kwargs)
        if cls.task == "seq" and "name" in cls.__dict__:
            SEQ_MEMBERS[cls.name] = cls

    @classmethod
    def restore(cls, state: dict[str, Any], threshold_mode: str = "global") -> Problem:
        """The member as a saved model left it (`state()`; multi-label thresholds, regression scale)."""
        return cls()

    @property
    def saved_problem(self) -> str | None:
        """The value written as "problem" in config.yaml, lsllm.json and JSON outputs (None for token tasks)."""
        return self.name

    def saved_state(self) -> dict[str, Any] | None:
        """The "problem_state" of lsllm.json (None for token tasks, as runs have always saved it)."""
        return self.state()

    def saved_pooling(self, pooling: str | None) -> str | None:
        """The pooling a run's files record: the model's for a pooled head, None for a per-word one."""
        return pooling if self.pooled else None

    def is_task(self, task: str | None) -> bool:
        """Whether a task name (a --task flag, a dataset's, a saved run's; None: seq) is this family member's task."""
        return (task or "seq") == self.task

    @property
    def kind(self) -> str:
        """`lsllm datasets`' task column: "seq single-label", ..., "token"."""
        return f"{self.task} {self.name}"

    @property
    def compared(self) -> tuple[str, ...]:
        """The two metrics a comparison of runs shows (lsllm.compare, the report)."""
        return self.headline[:2]

    def describe(self) -> str:
        """The run's kind in words: "sequence classification", ..., "token classification (NER)"."""
        return self.title

    # ------------------------------------------------------------------ the model

    def model_class(self) -> type:
        """The lsllm model class that carries this head (a pooled sequence head, or a head on every position)."""
        from lsllm.models.classifiers import LSForSequenceClassification

        return LSForSequenceClassification

    def model_kwargs(self, pooling: str | None) -> dict[str, Any]:
        """The keyword arguments of `model_class().from_pretrained` that depend on the problem type."""
        return {"problem_type": self.hf_problem_type, "pooling": pooling}

    def n_outputs(self, labels: Sequence[str]) -> int:
        return len(labels)

    def refuse_settings(self, cfg: RunConfig) -> None:
        """Refuse, in one line, a training setting that does not apply to this problem type."""
        if cfg.train.class_weights:
            raise ConfigError(f"--class-weights balanced applies to single-label tasks; this is {self.name}: drop it")

    def prepare_to_save(self, model: torch.nn.Module) -> None:
        """Make the trained model output what predictions are made of before it is saved (regression: fold the scale)."""

    # ------------------------------------------------------------------ inputs

    def encode(self, examples: Sequence, tokenizer: Any, label2id: dict[str, int], max_length: int,
               prompt: str | None = None, label_all_subtokens: bool = False, stride: int | None = None):
        """Examples -> an `EncodedSplit` of model features, the same way for training, evaluation and prediction
        (``stride``: token tasks' window overlap, `encode_tokens`; a sequence task ignores it)."""
        from lsllm.data.encoding import encode_sequences

        return encode_sequences(examples, tokenizer, label2id, max_length, prompt)

    def input_text(self, text: str | dict[str, str], prompt: str | None) -> str:
        """The string the tokenizer reads for one raw input (to count its tokens): the run's prompt applied."""
        from lsllm.data.encoding import apply_prompt

        return apply_prompt(prompt, text)

    def from_texts(self, texts: Sequence[Any], example: Callable[[int, Any], Any]) -> tuple[list, dict[str, Any]]:
        """Raw inputs -> (examples, what `records` needs besides them); ``example(i, given)`` makes a sequence example."""
        return [example(i, given) for i, given in enumerate(texts)], {}

    def from_tokens(self, sentences: Sequence[Sequence[str]]) -> list:
        """Inputs given as word lists -> examples (a sequence classifier refuses them)."""
        raise DataError("this is a sequence classifier: send texts, not tokens")

    def check_token_inputs(self, where: Any) -> None:
        """Refuse a file of word lists (CoNLL, JSONL "tokens") for a classifier that reads texts."""
        raise ConfigError(f"{where}: token inputs (CoNLL, or JSONL with \"tokens\") for a sequence classifier; "
                          "give texts: .txt one per line, .tsv/.csv with a text column, or .jsonl with \"text\"")

    def gold(self, example: Any) -> Any:
        """The gold value of a labelled example (compared with `prediction` of its record)."""
        return example.label

    def target(self, label: Any, label2id: dict[str, int]) -> Any:
        """The model's training target for one example's label (ints, multi-hot floats, or a number)."""
        raise NotImplementedError

    def packed_targets(self, labels: Sequence[Any]) -> torch.Tensor:
        """A packed batch's feature labels as one target tensor (class ids, multi-hot rows or numbers)."""
        from lsllm.data.packing import seq_targets

        return seq_targets(labels)

    # ------------------------------------------------------------------ training and outputs

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def outputs(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, K) logits -> what predictions are made of: probabilities, or values in the original scale."""
        raise NotImplementedError

    def stock_outputs(self, logits: torch.Tensor) -> torch.Tensor:
        """What a stock transformers/vLLM head of `hf_problem_type` gives for these logits (no lsllm state applied)."""
        return logits

    def unpad(self, outputs: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """A padded batch's outputs -> one tensor per feature (ONNX Runtime runs padded batches)."""
        return list(outputs)

    def record(self, output: torch.Tensor, labels: Sequence[str]) -> dict[str, Any]:
        raise NotImplementedError

    def records(self, examples: Sequence, outputs: Sequence[torch.Tensor], encoded: Any, labels: Sequence[str],
                **context: Any) -> list[dict]:
        """One prediction record per example (``context``: what `from_texts` returned besides the examples)."""
        from lsllm.inference.prediction import seq_records

        return seq_records(examples, outputs, labels, self)

    def prediction(self, record: dict[str, Any]) -> Any:
        """The decided value of a record (compared with the gold label)."""
        raise NotImplementedError

    def record_columns(self, labels: Sequence[str]) -> list[tuple[str, Any]]:
        """The Arrow columns of a record after its text (and fields): `record_files.record_schema`."""
        raise NotImplementedError

    def metrics(self, gold: Sequence[Any], outputs: Sequence[torch.Tensor], labels: Sequence[str],
                n_truncated: int = 0, records: Sequence[dict] | None = None) -> dict[str, Any]:
        """Metrics in the schema of docs/metrics.md (``records``: the examples' records, for members that score them)."""
        raise NotImplementedError

    def report_text(self, gold: Sequence[Any], predicted: Sequence[Any], labels: Sequence[str]) -> str:
        """The human-readable table of report.txt for gold vs decided values."""
        raise NotImplementedError

    def fit(self, train_targets: Sequence[Any]) -> None:
        """Learn what the problem needs from the training examples' gold values (regression: their scale)."""

    def tune(self, gold: Sequence[Any], outputs: Sequence[torch.Tensor], labels: Sequence[str]) -> None:
        """Choose decision settings on validation (multi-label: the thresholds)."""

    def state(self) -> dict[str, Any]:
        """What a saved model must remember to decide as it was validated (in lsllm.json)."""
        return {}

    # ------------------------------------------------------------------ the measured recipe

    def prompt_answer(self, labels: Sequence[str]) -> str:
        """The last line of the prompt the recipe writes: what the model is asked for."""
        return "Label:"

    # ---- asked by report, serve, study, tune (family-outputs)
    per_word: ClassVar[bool] = False  # a prediction per word (tags, entities), read over overlapping windows: none is truncated
    numeric: ClassVar[bool] = False  # a prediction is a number, never exactly right: errors are distances, no label is chosen
    label_sets: ClassVar[bool] = False  # a prediction is a set of labels (possibly empty), not one label
    tune_attention: ClassVar[tuple[str, ...]] = ("causal", "bidirectional")  # the attention modes `lsllm tune` searches
    sft_refusal: ClassVar[str | None] = None  # why the SFT baseline is not offered for it (None: it is)

    # ---- reading labelled data (family-data): lsllm.data asks these. The data functions they call get the
    # member passed in and never import this module (lazy imports here; tests/test_imports.py).

    @property
    def label_columns(self) -> tuple[str, ...]:
        """The label column (JSON key) names looked for, in order, when --label-column is not given."""
        from lsllm.data.readers import LABEL_COLUMNS

        return LABEL_COLUMNS

    def is_problem(self, problem: str | None) -> bool:
        """Whether a problem name (a --problem flag, a dataset's, a saved run's; None: single-label) names this member."""
        return (problem or "single-label") == self.name

    def refuse_label_settings(self, problem: str | None, label_columns: Sequence[str] | None,
                              label_separator: str | None, data: str | None = None) -> None:
        """Refuse, in one line, label settings this member cannot read its labels with.

        ``problem``: the --problem asked for (None: none, the problem type is found from the labels);
        ``label_columns`` / ``label_separator``: several labels per example; ``data``: the dataset's name when
        its task was found from its files (the error then names it). A multi-label member reads them all.
        """

    def read_file(self, path: Any, text_columns: Sequence[str] | None = None, label_column: str | None = None,
                  tag_column: int = -1, labelled: bool = True, *, label_columns: Sequence[str] | None = None,
                  label_separator: str | None = None, detect: bool = False) -> Any:
        """Read one split file as this member's examples, with the reader its extension calls for: a `ReadSplit`.

        Sequence members read .tsv/.csv/.jsonl: several ``text_columns`` become the examples' fields; each
        label is parsed by `parse_label` from ``label_column``, or is the ``label_columns`` (0/1 each) that
        are 1, or names joined by ``label_separator``. ``detect``: no problem type was asked for, so a JSON
        list makes that example's label a list and anything else stays one name (`detected` then decides).
        """
        from lsllm.data.readers import LabelFormat, read_seq_file

        columns = tuple(label_columns) if label_columns else None
        fmt = LabelFormat(label_column, columns, label_separator, None if detect else self)
        return read_seq_file(path, text_columns, labelled, fmt)

    def parse_label(self, value: Any, fmt: Any, where: str, table: bool = False) -> Any:
        """One example's label from its label column: a table cell (``table``) or a JSON / hub value, read as
        ``fmt`` (the file's `data.readers.LabelFormat`) says. Raises a one-line DataError naming ``where``."""
        raise NotImplementedError

    def hub_reading(self, first: Any, ref: str, text_columns: Sequence[str] | None, label_column: str | None,
                    label_columns: Sequence[str] | None, label_separator: str | None, detect: bool) -> Any:
        """How a hub dataset's splits are read for this member (`data.hub.HubReading`: its columns, label
        names and rows), from its train split ``first``; the label settings as for `read_file`."""
        from lsllm.data.hub import seq_reading
        from lsllm.data.readers import LabelFormat

        columns = tuple(label_columns) if label_columns else None
        return seq_reading(first, ref, text_columns, label_column,
                           LabelFormat(label_column, columns, label_separator, None if detect else self))

    def detected(self, read: dict[str, Any], source: Any) -> Problem:
        """The member the labels read show: the one asked for (--problem, a built-in's), else multi-label for
        label lists or label columns, else single-label (`data.labels.seq_problem`)."""
        from lsllm.data.labels import seq_problem

        return make_problem(seq_problem(read, source))

    def labels_known(self, source: Any, cfg: Any) -> bool:
        """Whether the label list is known without reading train (``cfg``: the DataConfig)."""
        from lsllm.data.labels import explicit_labels

        return explicit_labels(source, cfg) is not None

    def label_set(self, read: dict[str, Any], source: Any, cfg: Any) -> tuple[list[str], str | None, list[str]]:
        """Fix the label list of the splits read, map integer labels to names and check every label:
        (labels in id order, the tag scheme found (token tasks; else None), notes for the bundle)."""
        raise NotImplementedError

    def per_class(self, examples: list, n: int, seed: int) -> tuple[list, str]:
        """--train-per-class: N training examples of each label, a seeded sample (single-label data only)."""
        raise DataError(f"--train-per-class samples N examples of each label, which needs single-label data; this is "
                        f"{self.name}: use --train-limit N instead")

    def folder_files(self, name: str) -> str:
        """The files a data folder of a built-in dataset of this kind holds, for the message that asks for them."""
        return f"{name}/train.tsv (and validation/test.tsv)"

    def encoding_settings(self, label_all_subtokens: bool, stride: int | None) -> dict[str, Any]:
        """The encoding settings that change this member's features (the tokenization cache's key holds them)."""
        return {"label_all_subtokens": None, "stride": None}

    # ---- the SFT baseline's answers (family-data): lsllm.sft asks this

    def sft_answer_format(self, data: str | None = None) -> type:
        """This member's SFT answer format: a `lsllm.sft.answers.Answers` class (what the model is taught to write,
        how an answer is read back and scored, the default system prompt, the model card's words).

        Raises:
            ConfigError: the SFT baseline is not offered for this member (`sft_refusal`; ``data``: the
                dataset's name, to say which).
        """
        where = f"{data}: " if data else ""
        raise ConfigError(f"{where}{self.sft_refusal or 'SFT is not offered for ' + self.title}: use `lsllm train` for those")


class SingleLabel(Problem):
    """One class per input: softmax over the labels, cross-entropy, argmax."""

    name = "single-label"
    hf_problem_type = "single_label_classification"
    selection = "accuracy"
    headline = ("accuracy", "f1_macro", "f1_weighted")
    percent = frozenset(headline)
    title = "sequence classification"
    from_logits = "softmax"
    vllm_outputs = "softmax over the labels"
    recipe_lora_qv = True

    def refuse_settings(self, cfg):
        """Every setting applies to single-label sequence tasks."""

    def target(self, label: Any, label2id: dict[str, int]) -> int:
        return label2id[label]

    def loss(self, logits, targets, weight=None):
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), weight=weight, ignore_index=-100)

    def outputs(self, logits):
        return logits.float().softmax(-1)

    def stock_outputs(self, logits):
        return logits.softmax(-1)

    def record(self, output, labels):
        best = int(output.argmax())
        return {"label": labels[best], "score": round(float(output[best]), 6),
                "probabilities": {label: round(float(v), 6) for label, v in zip(labels, output.tolist(), strict=True)}}

    def prediction(self, record):
        return record["label"]

    def record_columns(self, labels):
        import pyarrow as pa

        return [("label", pa.string()), ("score", pa.float64()), ("probabilities", _probabilities_type(labels))]

    def metrics(self, gold, outputs, labels, n_truncated=0, records=None):
        predicted = [labels[int(o.argmax())] for o in outputs]
        return seq_metrics(list(gold), predicted, labels, n_truncated=n_truncated)

    def report_text(self, gold, predicted, labels):
        return seq_report_text(list(gold), list(predicted), labels)

    # ---- reading labelled data (family-data)

    def refuse_label_settings(self, problem, label_columns, label_separator, data=None):
        """Several labels per example where --problem single-label was asked for."""
        if problem is not None and (label_columns or label_separator):
            raise ConfigError("--label-columns / --label-separator give several labels per example: use --problem multi-label")

    def parse_label(self, value, fmt, where, table=False):
        """One name; a JSON list is refused (one label per example)."""
        from lsllm.data.readers import name_label, shown

        if isinstance(value, list):
            raise DataError(f"{where}: label is a list ({shown(value)}), one label per example is expected; pass "
                            "--problem multi-label (or drop --problem) to read a list of labels")
        return name_label(value, fmt, where, table)

    def label_set(self, read, source, cfg):
        from lsllm.data.labels import single_label_set

        return single_label_set(read, source, cfg), None, []

    def per_class(self, examples, n, seed):
        from lsllm.data.sampling import per_class

        return per_class(examples, n, seed)

    def folder_files(self, name):
        return f"{name}/train.tsv (and validation/test.tsv, labels.txt)"

    def sft_answer_format(self, data=None):
        """The label word (`SingleLabelAnswers`)."""
        from lsllm.sft.answers import SingleLabelAnswers

        return SingleLabelAnswers


class MultiLabel(Problem):
    """Any number of labels per input (none included): a sigmoid per label, BCE, thresholds tuned on validation."""

    name = "multi-label"
    hf_problem_type = "multi_label_classification"
    selection = "jaccard"
    headline = ("jaccard", "f1_micro", "f1_macro", "subset_accuracy")
    percent = frozenset(headline)
    title = "multi-label classification"
    from_logits = "sigmoid, then each label's threshold"
    vllm_outputs = "a sigmoid per label, then lsllm-vllm.json's thresholds"
    label_head_refusal = "multi-label: label-name rows are not measured for sigmoid outputs"
    recipe_head_lr = True

    @classmethod
    def restore(cls, state, threshold_mode="global"):
        return cls(state.get("thresholds"), state.get("threshold_mode", threshold_mode))

    def __init__(self, thresholds: list[float] | None = None, mode: str = "global") -> None:
        if mode not in THRESHOLDS:
            raise ConfigError(f"--thresholds must be {' or '.join(THRESHOLDS)}, got {mode!r}")
        self.thresholds = thresholds  # one per label; None: 0.5 (no validation data to tune on)
        self.mode = mode

    def target(self, label, label2id):
        hot = [0.0] * len(label2id)
        for name in label:
            hot[label2id[name]] = 1.0
        return hot

    def loss(self, logits, targets, weight=None):
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float(), pos_weight=weight)

    def outputs(self, logits):
        return logits.float().sigmoid()

    def stock_outputs(self, logits):
        return torch.sigmoid(logits)

    def prompt_answer(self, labels):
        return "Labels:"

    def _cut(self, n: int) -> torch.Tensor:
        return torch.tensor(self.thresholds if self.thresholds is not None else [0.5] * n)

    def record(self, output, labels):
        chosen = output >= self._cut(len(labels))
        return {"labels": [label for label, on in zip(labels, chosen.tolist(), strict=True) if on],
                "probabilities": {label: round(float(v), 6) for label, v in zip(labels, output.tolist(), strict=True)}}

    def prediction(self, record):
        return record["labels"]

    def record_columns(self, labels):
        import pyarrow as pa

        return [("labels", pa.list_(pa.string())), ("probabilities", _probabilities_type(labels))]

    def metrics(self, gold, outputs, labels, n_truncated=0, records=None):
        probs = torch.stack(list(outputs)) if outputs else torch.zeros((0, len(labels)))
        predicted = (probs >= self._cut(len(labels))).numpy().astype(int)
        return multilabel_metrics(_multi_hot(gold, labels), predicted, labels, n_truncated,
                                  thresholds=list(self.thresholds) if self.thresholds is not None else [0.5] * len(labels))

    def report_text(self, gold, predicted, labels):
        from sklearn.metrics import classification_report

        return classification_report(_multi_hot(gold, labels), _multi_hot(predicted, labels), target_names=list(labels),
                                     digits=4, zero_division=0)

    def tune(self, gold, outputs, labels):
        """The threshold(s) that maximise validation Jaccard: one for all labels, or one per label (--thresholds)."""
        if not outputs:
            return
        probs = torch.stack(list(outputs)).numpy()
        truth = _multi_hot(gold, labels)
        grid = np.round(np.arange(0.05, 0.951, 0.025), 3)
        if self.mode == "global":
            scores = [jaccard(truth, (probs >= t).astype(int)) for t in grid]
            self.thresholds = [float(grid[int(np.argmax(scores))])] * len(labels)
            return
        cuts = np.full(len(labels), 0.5)
        for _ in range(2):  # coordinate ascent: each label's threshold given the others'
            for k in range(len(labels)):
                best, best_score = cuts[k], -1.0
                for t in grid:
                    cuts[k] = t
                    score = jaccard(truth, (probs >= cuts).astype(int))
                    if score > best_score:
                        best, best_score = t, score
                cuts[k] = best
        self.thresholds = [float(c) for c in cuts]

    def state(self):
        return {"thresholds": self.thresholds, "threshold_mode": self.mode}

    # ---- asked by report, serve, study, tune (family-outputs)
    label_sets = True

    # ---- reading labelled data (family-data)

    def parse_label(self, value, fmt, where, table=False):
        """A list of names: a JSON list, names joined by --label-separator, or one name (a list of one)."""
        from lsllm.data.readers import name_label

        return name_label(value, fmt, where, table, listed=True)

    def label_set(self, read, source, cfg):
        from lsllm.data.labels import multi_label_set

        labels, notes = multi_label_set(read, source, cfg)
        return labels, None, notes

    def sft_answer_format(self, data=None):
        """Every label that applies, comma-separated, or "none" (`MultiLabelAnswers`)."""
        from lsllm.sft.answers import MultiLabelAnswers

        return MultiLabelAnswers


class Regression(Problem):
    """One number per input: MSE on standardised targets, predictions in the original scale.

    Targets are scaled by the training set's standard deviation, not centred: transformers'
    stock sequence heads have no bias, and a merged model must give the same values in a stock
    pipeline, so the scale is folded into the head's weights when the model is saved
    (`fold_scale`) and the saved model outputs the original scale directly.
    """

    name = "regression"
    hf_problem_type = "regression"
    selection = "pearson"
    headline = ("pearson", "spearman", "mse", "mae")
    title = "regression"
    pins_labels = False  # labels is [the score column's name]
    from_logits = "logit x scale"
    vllm_outputs = "none: the value itself, in the original scale"
    label_head_refusal = "a regression has one output"
    recipe_head_lr = True

    @classmethod
    def restore(cls, state, threshold_mode="global"):
        return cls(float(state.get("scale", 1.0)), state.get("train_mean"), state.get("train_std"))

    def __init__(self, scale: float = 1.0, mean: float | None = None, std: float | None = None) -> None:
        self.scale = scale  # model output x scale = value; 1 once folded into the head
        self.mean, self.std = mean, std  # of the training targets, for the record

    def n_outputs(self, labels):
        return 1

    def refuse_settings(self, cfg):
        super().refuse_settings(cfg)
        if cfg.model.head_init == "labels":
            raise ConfigError("--head-init labels needs label words; a regression head has one output: drop --head-init")

    def target(self, label, label2id):
        return float(label)

    def fit(self, train_targets):
        values = np.asarray([float(t) for t in train_targets], dtype=np.float64)
        if values.size == 0:
            return
        self.mean, self.std = float(values.mean()), float(values.std())
        self.scale = self.std if self.std > 0 else 1.0

    def loss(self, logits, targets, weight=None):
        return F.mse_loss(logits.float().reshape(-1), targets.float().reshape(-1) / self.scale)

    def outputs(self, logits):
        return logits.float() * self.scale

    def prompt_answer(self, labels):
        return f"{labels[0].replace('_', ' ').capitalize()}:"  # the score column's name

    def record(self, output, labels):
        return {"value": round(float(output.reshape(-1)[0]), 6)}

    def prediction(self, record):
        return record["value"]

    def record_columns(self, labels):
        import pyarrow as pa

        return [("value", pa.float64())]

    def metrics(self, gold, outputs, labels, n_truncated=0, records=None):
        values = [float(o.reshape(-1)[0]) for o in outputs]
        return regression_metrics([float(g) for g in gold], values, n_truncated)

    def report_text(self, gold, predicted, labels):
        m = regression_metrics([float(g) for g in gold], [float(p) for p in predicted])
        return "\n".join(f"{k:<10}{m[k]:.4f}" for k in self.headline) + f"\n{'n':<10}{m['n_examples']}\n"

    def prepare_to_save(self, model):
        self.fold_scale(model)

    def fold_scale(self, model: torch.nn.Module) -> None:
        """Multiply the trained head `score` by the target scale, so the model itself outputs the original scale."""
        if self.scale == 1.0:
            return
        with torch.no_grad():
            for name, param in model.named_parameters():
                if ".score." in f".{name}." and param.requires_grad:
                    param.mul_(self.scale)
        self.scale = 1.0

    def state(self):
        return {"scale": self.scale, "train_mean": self.mean, "train_std": self.std}

    # ---- asked by report, serve, study, tune (family-outputs)
    numeric = True

    # ---- reading labelled data (family-data)

    @property
    def label_columns(self):
        """A "score" column (STS-B) is the label too."""
        from lsllm.data.readers import SCORE_COLUMNS

        return SCORE_COLUMNS

    def refuse_label_settings(self, problem, label_columns, label_separator, data=None):
        """A regression reads one number per example, from one column."""
        if label_columns or label_separator:
            raise ConfigError("--problem regression reads one numeric label column; drop --label-columns / --label-separator")

    def parse_label(self, value, fmt, where, table=False):
        """A finite number (a JSON number, or a decimal such as "3.5")."""
        from lsllm.data.readers import number_label

        return number_label(value, where)

    def labels_known(self, source, cfg):
        """Always: the label list is the label column's name."""
        return True

    def label_set(self, read, source, cfg):
        from lsllm.data.labels import regression_label_set

        labels, notes = regression_label_set(read, source, cfg)
        return labels, None, notes

    def sft_answer_format(self, data=None):
        """The number, with the training targets' precision (`RegressionAnswers`)."""
        from lsllm.sft.answers import RegressionAnswers

        return RegressionAnswers


class TokenTagging(Problem):
    """NER: a BIO tag per word, a softmax per position, cross-entropy per word (-100 where no loss applies),
    entity-level seqeval metrics (`evaluation.token_metrics`); words read at their first sub-token."""

    task = "token"
    name = "token-tagging"
    hf_problem_type = None
    hf_auto_class = "AutoModelForTokenClassification"
    selection = "f1"
    headline = ("f1", "precision", "recall", "f1_strict", "token_accuracy")
    percent = frozenset(headline)
    title = "token classification (NER)"
    pooled = False
    pins_labels = False  # the BIO tag list is read from the data
    from_logits = "softmax per position"
    onnx_output = "float32 (batch, sequence, labels): padding positions mean nothing"
    onnx_output_axes = {0: "batch", 1: "sequence"}
    vllm_refusal = ("a token classification (NER) run cannot be exported for vLLM: its word-level decoding "
                    "(first sub-word labels, windows, entities) is lsllm's")
    vllm_outputs = "none: vLLM cannot serve token classification"
    labels_note = " (BIO)"
    label_head_refusal = "token tags are not words"
    recipe_note = ("recipe: token task, the library defaults (LS-LLM, causal); --preset lsllm is the measured NER recipe "
                   "(bidirectional, lr 5e-4, 2 epochs)")

    @property
    def saved_problem(self):
        return None

    def saved_state(self):
        return None

    @property
    def kind(self):
        return self.task

    def model_class(self):
        from lsllm.models.classifiers import LSForTokenClassification

        return LSForTokenClassification

    def model_kwargs(self, pooling):
        return {}

    def refuse_settings(self, cfg):
        if cfg.model.prompt is not None:
            raise ConfigError("--prompt applies to sequence tasks (NER reads every word); drop it")
        if cfg.model.pooling is not None:
            raise ConfigError("--pooling applies to sequence tasks only (token tasks classify every word)")
        if cfg.train.class_weights:
            raise ConfigError("--class-weights balanced applies to sequence tasks")
        if cfg.model.head_init == "labels":
            raise ConfigError("--head-init labels applies to sequence tasks (token tags are not words); drop it")

    def encode(self, examples, tokenizer, label2id, max_length, prompt=None, label_all_subtokens=False, stride=None):
        from lsllm.data.encoding import encode_tokens

        return encode_tokens(examples, tokenizer, label2id, max_length, label_all_subtokens, stride)

    def input_text(self, text, prompt):
        """Raw text is split into words, then joined by spaces (as the tagger reads it)."""
        from lsllm.inference.prediction import split_words

        return " ".join(split_words(text)[0])

    def from_texts(self, texts, example):
        """Raw texts split into words, with each word's character span (entities get character offsets)."""
        from lsllm.data.examples import TokenExample
        from lsllm.data.text import has_visible_text
        from lsllm.inference.prediction import split_words

        for i, text in enumerate(texts):
            if not isinstance(text, str) or not has_visible_text(text):
                raise DataError(f"input {i + 1}: empty text; give at least one visible character")
        split = [split_words(t) for t in texts]
        return [TokenExample(words) for words, _ in split], {"texts": list(texts), "spans": [s for _, s in split]}

    def from_tokens(self, sentences):
        from lsllm.data.examples import TokenExample

        for i, words in enumerate(sentences):
            if not words or any(not isinstance(w, str) or not w.strip() for w in words):
                raise DataError(f"input {i + 1}: tokens must be a non-empty list of non-empty strings")
        return [TokenExample(list(w)) for w in sentences]

    def check_token_inputs(self, where):
        """A tagger takes word lists."""

    def gold(self, example):
        return example.tags

    def target(self, label, label2id):
        return [label2id[tag] for tag in label]

    def packed_targets(self, labels):
        """The features' per-token labels laid end to end in one row, as the packed inputs are."""
        return torch.tensor([[label for feature in labels for label in feature]], dtype=torch.long)

    def loss(self, logits, targets, weight=None):
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), weight=weight, ignore_index=-100)

    def outputs(self, logits):
        return logits.float().softmax(-1)

    def stock_outputs(self, logits):
        return logits.softmax(-1)

    def unpad(self, outputs, mask):
        return [outputs[row][mask[row] > 0] for row in range(outputs.shape[0])]

    def records(self, examples, outputs, encoded, labels, texts=None, spans=None):
        """Tags per word (read at each word's first sub-token, over windows) and the entities they make."""
        from lsllm.inference.prediction import token_records, word_predictions

        words = word_predictions(encoded.features, outputs, [len(e.tokens) for e in examples])
        return token_records(examples, words, labels, texts, spans)

    def prediction(self, record):
        return record["tags"]

    def record_columns(self, labels):
        """tokens, tags, entities (char_start/char_end null for inputs given as tokens)."""
        import pyarrow as pa

        entity = pa.struct([("type", pa.string()), ("start", pa.int64()), ("end", pa.int64()), ("text", pa.string()),
                            ("score", pa.float64()), ("char_start", pa.int64()), ("char_end", pa.int64())])
        return [("tokens", pa.list_(pa.string())), ("tags", pa.list_(pa.string())), ("entities", pa.list_(entity))]

    def metrics(self, gold, outputs, labels, n_truncated=0, records=None):
        if records is None:
            raise ValueError("token metrics are computed from the records (tags per word)")
        return token_metrics(list(gold), [r["tags"] for r in records], n_truncated=n_truncated)

    def report_text(self, gold, predicted, labels):
        return token_report_text(list(gold), list(predicted))

    # ---- asked by report, serve, study, tune (family-outputs)
    per_word = True
    tune_attention = ("bidirectional", "repeat")  # causal NER reads no word after the one it tags
    sft_refusal = "SFT is not offered for token tasks (NER)"

    # ---- reading labelled data (family-data)

    @property
    def label_columns(self):
        """The tag list's key (JSONL, hub)."""
        from lsllm.data.readers import TAG_KEYS

        return TAG_KEYS

    def is_problem(self, problem):
        """A tag per word is single-label: a token task's files say no problem, or single-label."""
        return problem in (None, "single-label", self.name)

    def refuse_label_settings(self, problem, label_columns, label_separator, data=None):
        """--problem, --label-columns and --label-separator are sequence tasks' (one tag per word)."""
        if self.is_problem(problem) and not label_columns and not label_separator:
            return
        if data is None:
            raise ConfigError("--problem / --label-columns / --label-separator apply to sequence tasks (a tag per word is "
                              "single-label); drop them for --task token")
        raise DataError(f"{data} is a token task (one tag per word): --problem / --label-columns / "
                        "--label-separator apply to sequence tasks; drop them")

    def read_file(self, path, text_columns=None, label_column=None, tag_column=-1, labelled=True, *,
                  label_columns=None, label_separator=None, detect=False):
        """CoNLL columns (.txt/.conll..., the tag in ``tag_column``) or JSONL with tokens/tags
        (``text_columns[0]`` / ``label_column`` name the keys)."""
        from lsllm.data.readers import read_token_file

        return read_token_file(path, text_columns, label_column, tag_column, labelled)

    def hub_reading(self, first, ref, text_columns, label_column, label_columns, label_separator, detect):
        from lsllm.data.hub import token_reading

        return token_reading(first, ref, text_columns, label_column)

    def detected(self, read, source):
        return self

    def label_set(self, read, source, cfg):
        """Tags checked, the scheme converted to BIO; "O" then B-/I- of each entity type."""
        from lsllm.data.labels import token_labels

        return token_labels(read, source, cfg)

    def per_class(self, examples, n, seed):
        raise DataError("--train-per-class samples N examples of each label, which needs single-label data; this is "
                        "a token task (a tag per word): use --train-limit N instead")

    def folder_files(self, name):
        return f"{name}/train.txt (and validation/test.txt)"

    def encoding_settings(self, label_all_subtokens, stride):
        return {"label_all_subtokens": label_all_subtokens, "stride": stride}


def make_problem(name: str | None, state: dict[str, Any] | None = None, threshold_mode: str = "global") -> Problem:
    """The sequence `Problem` of a name (None: single-label), restored from a saved model's state when given.

    The names are the registered members' (`Problem.__init_subclass__`): a new problem type is its class."""
    member = SEQ_MEMBERS.get(name or SingleLabel.name)
    if member is None:
        raise ConfigError(f"--problem must be one of {', '.join(SEQ_MEMBERS)}, got {name!r}")
    return member.restore(state or {}, threshold_mode)


def family(task: str | None, problem: str | None = None, state: dict[str, Any] | None = None,
           threshold_mode: str = "global") -> Problem:
    """The one place saved strings become the family member: "token" -> `TokenTagging`, "seq" (or None, as
    files written before the task was saved say) -> `make_problem(problem, state, threshold_mode)`."""
    if task == "token":
        return TokenTagging()
    if task not in (None, "seq"):
        raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    return make_problem(problem, state, threshold_mode)


def _probabilities_type(labels: Sequence[str]) -> Any:
    """A record's probabilities as an Arrow struct: one float64 field per label."""
    import pyarrow as pa

    return pa.struct([(label, pa.float64()) for label in labels])
