"""The problem types as objects: loss, decision, thresholds, standardisation and metrics, without a model."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lsllm.config import ModelConfig, RunConfig, TrainConfig
from lsllm.data.examples import TokenExample
from lsllm.errors import ConfigError
from lsllm.problems import (
    MultiLabel,
    Regression,
    SingleLabel,
    TokenTagging,
    family,
    jaccard,
    make_problem,
    regression_metrics,
)

LABELS = ["anger", "joy", "love"]


def test_single_label_is_cross_entropy_and_argmax():
    problem = SingleLabel()
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.1, 3.0]])
    targets = torch.tensor([0, 2])
    assert torch.allclose(problem.loss(logits, targets), F.cross_entropy(logits, targets))
    outputs = problem.outputs(logits)
    assert [problem.record(o, LABELS)["label"] for o in outputs] == ["anger", "love"]
    assert problem.metrics(["anger", "joy"], list(outputs), LABELS)["accuracy"] == 0.5


def test_multi_label_is_bce_with_a_sigmoid_per_label_and_half_without_validation():
    problem = MultiLabel()
    logits = torch.tensor([[3.0, -2.0, 0.1], [-1.0, -1.0, -1.0]])
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    assert torch.allclose(problem.loss(logits, targets), F.binary_cross_entropy_with_logits(logits, targets))
    outputs = problem.outputs(logits)
    assert torch.allclose(outputs, logits.sigmoid())
    first, second = (problem.record(o, LABELS) for o in outputs)
    assert first["labels"] == ["anger", "love"] and second["labels"] == []  # 0.5 cut: sigmoid(0.1) > 0.5, none for row 2
    assert set(first["probabilities"]) == set(LABELS)
    assert problem.target(["love", "anger"], {name: i for i, name in enumerate(LABELS)}) == [1.0, 0.0, 1.0]


def test_jaccard_is_the_e_c_metric_with_empty_sets_scoring_one():
    truth = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0]])
    predicted = np.array([[1, 1, 1], [0, 0, 0], [1, 0, 0]])
    assert jaccard(truth, predicted) == pytest.approx((2 / 3 + 1 + 0) / 3)


def _noisy_validation(seed: int = 0):
    """Probabilities whose best cut differs per label: label 0 separates at 0.8, label 1 at 0.2, label 2 at 0.5."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, size=(400, 3))
    centres = np.array([[0.7, 0.9], [0.1, 0.3], [0.4, 0.6]])  # (label, [negative centre, positive centre])
    probs = np.stack([centres[k, truth[:, k]] + rng.normal(0, 0.04, size=400) for k in range(3)], 1).clip(0, 1)
    gold = [[LABELS[k] for k in range(3) if row[k]] for row in truth]
    return gold, [torch.tensor(p, dtype=torch.float32) for p in probs]


def test_thresholds_are_tuned_on_validation_globally_or_per_label():
    gold, outputs = _noisy_validation()
    untuned = MultiLabel().metrics(gold, outputs, LABELS)["jaccard"]
    global_ = MultiLabel(mode="global")
    global_.tune(gold, outputs, LABELS)
    assert len(set(global_.thresholds)) == 1
    per_label = MultiLabel(mode="per-label")
    per_label.tune(gold, outputs, LABELS)
    assert per_label.thresholds[0] > 0.7 and per_label.thresholds[1] < 0.3 and 0.4 < per_label.thresholds[2] < 0.6
    scores = [p.metrics(gold, outputs, LABELS)["jaccard"] for p in (global_, per_label)]
    assert untuned < scores[0] < scores[1] and scores[1] > 0.95
    restored = make_problem("multi-label", per_label.state())  # what lsllm.json keeps decides the same
    assert restored.thresholds == per_label.thresholds and restored.mode == "per-label"


def test_multi_label_metrics_schema():
    gold, outputs = _noisy_validation(1)
    m = MultiLabel().metrics(gold, outputs, LABELS, n_truncated=2)
    assert {"jaccard", "f1_micro", "f1_macro", "subset_accuracy", "per_label", "thresholds", "n_examples"} <= set(m)
    assert set(m["per_label"]) == set(LABELS) and m["n_truncated"] == 2
    assert m["per_label"]["joy"]["support"] == sum("joy" in g for g in gold)


def test_regression_standardises_targets_and_folds_the_scale_into_the_head():
    problem = Regression()
    problem.fit([0.0, 1.0, 4.0, 5.0])
    assert problem.scale == pytest.approx(np.std([0.0, 1.0, 4.0, 5.0]))
    logits = torch.tensor([[0.5], [1.5]])
    targets = torch.tensor([1.0, 4.0])
    assert torch.allclose(problem.loss(logits, targets), F.mse_loss(logits.reshape(-1), targets / problem.scale))
    head = torch.nn.Module()
    head.score = torch.nn.Linear(4, 1, bias=False)
    hidden = torch.randn(3, 4)
    before = problem.outputs(head.score(hidden))
    problem.fold_scale(head)
    assert problem.scale == 1.0 and torch.allclose(problem.outputs(head.score(hidden)), before, atol=1e-6)
    restored = make_problem("regression", problem.state())
    assert restored.scale == 1.0 and restored.mean == pytest.approx(2.5)
    assert problem.record(before[0], ["score"]) == {"value": round(float(before[0, 0]), 6)}


def test_regression_metrics():
    m = regression_metrics([1.0, 2.0, 3.0, 4.0], [1.1, 1.9, 3.2, 3.9])
    assert m["pearson"] > 0.99 and m["spearman"] == pytest.approx(1.0)
    assert m["mae"] == pytest.approx(0.125) and m["mse"] == pytest.approx((0.01 + 0.01 + 0.04 + 0.01) / 4)
    assert regression_metrics([1.0, 1.0], [0.0, 2.0])["pearson"] == 0.0  # constant gold: no correlation, not NaN


def test_unknown_problem_and_threshold_mode_are_one_line():
    with pytest.raises(ConfigError, match="--problem"):
        make_problem("ordinal")
    with pytest.raises(ConfigError, match="--thresholds"):
        MultiLabel(mode="best")


def test_family_turns_saved_strings_into_the_member_and_back():
    assert isinstance(family("token"), TokenTagging) and isinstance(family("token", "single-label"), TokenTagging)
    assert isinstance(family(None), SingleLabel) and isinstance(family("seq", "regression"), Regression)
    restored = family("seq", "multi-label", state={"thresholds": [0.3, 0.4, 0.5], "threshold_mode": "per-label"})
    assert isinstance(restored, MultiLabel) and restored.state() == {"thresholds": [0.3, 0.4, 0.5], "threshold_mode": "per-label"}
    with pytest.raises(ConfigError, match="task must be one of seq, token"):
        family("ner")
    token, multi = family("token"), family("seq", "multi-label")
    # what the files hold: as runs have always saved them (token: no problem, no state, no pooling)
    assert (token.task, token.saved_problem, token.saved_state(), token.saved_pooling("last")) == ("token", None, None, None)
    assert (multi.task, multi.saved_problem, multi.saved_pooling("mean")) == ("seq", "multi-label", "mean")
    assert token.is_task("token") and not token.is_task("seq") and multi.is_task(None) and not multi.is_task("token")
    assert (token.kind, multi.kind, token.selection, multi.selection) == ("token", "seq multi-label", "f1", "jaccard")
    assert token.compared == ("f1", "precision") and Regression().percent == frozenset()


def test_token_tagging_is_cross_entropy_per_word_ignoring_unlabelled_positions():
    problem = TokenTagging()
    logits = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([[0, 2, -100, 1], [-100, 1, 1, 0]])
    keep = targets.reshape(-1) != -100
    expected = F.cross_entropy(logits.reshape(-1, 3)[keep], targets.reshape(-1)[keep])
    assert torch.allclose(problem.loss(logits, targets), expected)
    assert torch.allclose(problem.outputs(logits), logits.softmax(-1))
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    assert [t.shape for t in problem.unpad(problem.outputs(logits), mask)] == [(3, 3), (2, 3)]
    assert problem.packed_targets([[1, 2], [0]]).tolist() == [[1, 2, 0]]  # one packed row, as the inputs are


def test_token_tagging_records_words_at_their_first_sub_token_and_scores_entities():
    problem = TokenTagging()
    labels = ["O", "B-PER", "I-PER"]
    examples = [TokenExample(["Peter", "Blackburn", "spoke"], ["B-PER", "I-PER", "O"])]
    encoded = SimpleNamespace(features=[{"example_id": 0, "word_ids": [-1, 0, 1, 1, 2]}])
    outputs = [torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.9, 0.05, 0.05], [0.6, 0.2, 0.2]])]
    records = problem.records(examples, outputs, encoded, labels)
    assert records[0]["tags"] == ["B-PER", "I-PER", "O"] and records[0]["entities"][0]["text"] == "Peter Blackburn"
    gold = [problem.gold(e) for e in examples]
    metrics = problem.metrics(gold, outputs, labels, records=records)
    assert metrics["f1"] == 1.0 and set(problem.headline) <= set(metrics)
    assert problem.prediction(records[0]) == gold[0] and "PER" in problem.report_text(gold, [records[0]["tags"]], labels)


def test_settings_that_do_not_apply_are_refused_by_the_member_in_one_line():
    def cfg(**model):
        train = {"class_weights": model.pop("class_weights", None)}
        return RunConfig(model=ModelConfig(**model), train=TrainConfig(**train))

    for settings, message in (({"prompt": "Text: {text}\nLabel:"}, "--prompt"), ({"pooling": "mean"}, "--pooling"),
                              ({"class_weights": "balanced"}, "--class-weights"), ({"head_init": "labels"}, "--head-init")):
        with pytest.raises(ConfigError, match=message):
            TokenTagging().refuse_settings(cfg(**settings))
    with pytest.raises(ConfigError, match="--class-weights balanced applies to single-label tasks; this is multi-label"):
        MultiLabel().refuse_settings(cfg(class_weights="balanced"))
    with pytest.raises(ConfigError, match="--head-init labels needs label words"):
        Regression().refuse_settings(cfg(head_init="labels"))
    SingleLabel().refuse_settings(cfg(class_weights="balanced", head_init="labels", pooling="mean"))  # all apply


def test_a_new_problem_type_is_one_class():
    """Defining a sequence member registers it: make_problem, family and --problem (checked where the config meets the data) know it."""
    from lsllm import problems
    from lsllm.config import DataConfig
    from lsllm.data import load_data

    class Ordinal(problems.SingleLabel):
        name = "ordinal-for-test"

    try:
        assert type(problems.make_problem("ordinal-for-test")) is Ordinal
        assert type(problems.family("seq", "ordinal-for-test")) is Ordinal
        assert "ordinal-for-test" in problems.SEQ_MEMBERS
        with pytest.raises(ConfigError, match="--problem must be one of .*ordinal-for-test"):
            problems.make_problem("ordinal-typo")
        with pytest.raises(ConfigError, match="--problem must be one of"):
            load_data(DataConfig(data="sst2-sample", problem="ordinal-typo"))
    finally:
        problems.SEQ_MEMBERS.pop("ordinal-for-test", None)
    assert "ordinal-for-test" not in problems.SEQ_MEMBERS
