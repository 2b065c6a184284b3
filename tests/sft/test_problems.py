"""SFT on multi-label and regression data: answers written and read back (irregular ones included),
the metrics they are scored with, --scoring likelihood refused, sentence pairs, and a tiny run of each."""

from __future__ import annotations

import itertools
import json

import pytest

from lsllm.config import DataConfig, LoraSettings, ModelConfig, TrainConfig
from lsllm.data import SeqExample
from lsllm.errors import ConfigError
from lsllm.problems import family
from lsllm.runs import RunDir
from lsllm.sft.answers import (
    MultiLabelAnswers,
    RegressionAnswers,
    SingleLabelAnswers,
    decimals_of,
    parse_number,
)
from lsllm.sft.config import SFTConfig, SFTRunConfig
from lsllm.sft.evaluation import answer_budget, build_template, evaluate_examples, evaluate_sft
from lsllm.sft.generation import stop_token_ids
from lsllm.sft.templates import PromptTemplate, truncate_input
from lsllm.sft.training import build_train_dataset, train_sft

from .conftest import tiny_causal_lm

EMOTIONS = ["anger", "joy", "optimism", "sadness"]

# ----------------------------------------------------------------------------- multi-label answers


def test_multilabel_answers_list_the_labels_in_label_order_or_none():
    answers = MultiLabelAnswers(EMOTIONS)
    assert answers.answer(["sadness", "anger"]) == "anger, sadness"
    assert answers.answer(["joy"]) == "joy"
    assert answers.answer([]) == "none"
    assert answers.longest() == ["anger, joy, optimism, sadness", "none"]


def test_every_label_set_round_trips():
    answers = MultiLabelAnswers(EMOTIONS)
    for n in range(len(EMOTIONS) + 1):
        for subset in itertools.combinations(EMOTIONS, n):
            assert answers.parse(answers.answer(list(subset))) == list(subset)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(" Joy, Sadness.", ["joy", "sadness"]), ("sadness, joy", ["joy", "sadness"]), ("joy and anger", ["anger", "joy"]),
     ("anger, joy, and optimism", ["anger", "joy", "optimism"]), ("anger, joy and optimism", ["anger", "joy", "optimism"]),
     ("None.", []), ("NONE", []), ("joy, joy", ["joy"]), ('"optimism"', ["optimism"])],
)
def test_multilabel_answers_are_read_leniently_in_form(raw, expected):
    assert MultiLabelAnswers(EMOTIONS).parse(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "  ", "joy, happiness", "joy,, sadness", "none, joy", "joy sadness", "I feel joy", "joy; sadness",
     "joy and", "no emotion", "anger, joy, optimism, sadness, anger and fear"],
)
def test_a_multilabel_answer_with_any_part_that_is_not_a_label_is_irregular(raw):
    assert MultiLabelAnswers(EMOTIONS).parse(raw) is None


def test_labels_containing_and_parse_whole():
    answers = MultiLabelAnswers(["blues", "rock and roll", "rock", "roll"])
    assert answers.parse("Rock and Roll") == ["rock and roll"]  # the longest label first
    assert answers.parse("blues and rock and roll") == ["blues", "rock and roll"]
    assert answers.parse(answers.answer(["rock", "roll"])) == ["rock", "roll"]


@pytest.mark.parametrize(("labels", "match"), [(["joy", "None"], "reads as 'none'"), (["a,b", "c"], "comma"),
                                                (["Joy", "joy."], "read the same")])
def test_multilabel_label_sets_that_answers_could_not_tell_apart_are_refused(labels, match):
    with pytest.raises(ConfigError, match=match):
        MultiLabelAnswers(labels)


def test_multilabel_metrics_score_irregular_answers_as_the_empty_set():
    answers = MultiLabelAnswers(EMOTIONS)
    gold = [["joy"], ["anger", "sadness"], [], ["optimism"]]
    parsed = [["joy"], None, None, ["joy", "optimism"]]
    metrics = answers.score(gold, parsed, n_truncated=1)
    assert metrics == answers.score(gold, [["joy"], [], [], ["joy", "optimism"]], n_truncated=1)
    assert set(metrics) == {"jaccard", "f1_micro", "f1_macro", "subset_accuracy", "per_label", "n_examples", "n_truncated"}
    assert metrics["jaccard"] == pytest.approx((1 + 0 + 1 + 0.5) / 4)  # both empty: 1 (SemEval-2018 E-c)
    assert metrics["subset_accuracy"] == pytest.approx(0.5)
    assert set(metrics["per_label"]) == set(EMOTIONS) and metrics["n_truncated"] == 1
    assert answers.record(None) == {"labels": None} and answers.record([]) == {"labels": []}


# ----------------------------------------------------------------------------- regression answers


def test_decimals_are_the_training_targets_own_capped_at_three():
    assert decimals_of([5.0, 1.0]) == 0
    assert decimals_of([5.0, 3.8, 2.25]) == 2
    assert decimals_of([3.8, 2.6667]) == 3
    assert decimals_of([-0.15, 1e-9]) == 3


def test_regression_answers_use_the_datas_precision_and_range():
    answers = RegressionAnswers(["score"]).fit([0.0, 3.8, 5.0, 2.4])
    assert (answers.decimals, answers.train_mean, answers.train_min, answers.train_max) == (1, pytest.approx(2.8), 0.0, 5.0)
    assert answers.answer(3.8) == "3.8" and answers.answer(5) == "5.0" and answers.answer(2.25) == "2.2"
    assert answers.prompt_fields() == {"labels": "score", "min": "0", "max": "5"}
    assert answers.longest() == ["0.0", "5.0", "5.0"]
    wide = RegressionAnswers(["y"]).fit([-12.5, 3.0])
    assert wide.longest() == ["-12.5", "3.0", "-12.5"]
    again = family("seq", "regression").sft_answer_format().of(["score"], state=json.loads(json.dumps(answers.state())))
    assert again.state() == answers.state() and again.answer(3.8) == "3.8"


@pytest.mark.parametrize(
    ("raw", "value"),
    [("3.8", 3.8), (" 3.800 ", 3.8), ("3.8.", 3.8), ("4", 4.0), ("-0.5", -0.5), ("+2", 2.0), (".5", 0.5), ("3.", 3.0),
     ('"4.2"', 4.2), ("(1.25)", 1.25)],
)
def test_a_number_is_read_from_the_whole_answer(raw, value):
    assert parse_number(raw) == pytest.approx(value)


@pytest.mark.parametrize("raw", ["", "three", "3.8 out of 5", "about 3", "3,8", "3.8/5", "3.8.5", "1e3", "nan", "inf",
                                 "Score: 4", "4 4", "--1"])
def test_an_answer_that_is_not_one_number_is_irregular(raw):
    assert parse_number(raw) is None


def test_regression_round_trip_and_irregular_answers_scored_as_the_training_mean():
    answers = RegressionAnswers(["score"]).fit([1.0, 2.0, 3.0])
    for value in (0.0, 1.5, 2.0, 4.75):
        assert answers.parse(answers.answer(value)) == pytest.approx(round(value, answers.decimals))
    gold = [1.0, 2.0, 3.0, 4.0]
    metrics = answers.score(gold, [1.0, None, 3.5, None])
    assert metrics == answers.score(gold, [1.0, 2.0, 3.5, 2.0])
    assert set(metrics) == {"pearson", "spearman", "mse", "mae", "n_examples", "n_truncated"}
    assert answers.record(None) == {"value": None} and answers.record(2.5) == {"value": 2.5}


def test_single_label_answers_are_the_label_words():
    answers = family("seq").sft_answer_format().of(["negative", "positive"])
    assert isinstance(answers, SingleLabelAnswers) and answers.answer("positive") == "positive"
    assert answers.parse(" Positive.") == "positive" and answers.parse("maybe") is None
    assert answers.state() == {}


# ----------------------------------------------------------------------------- prompts, budget, pairs


def test_default_system_prompts_follow_the_problem_type(smol_tokenizer):
    regression = RegressionAnswers(["score"]).fit([0.0, 5.0])
    template = build_template(SFTConfig(system_prompt=RegressionAnswers.system_prompt), smol_tokenizer, ["score"],
                              regression)
    assert template.system == "Rate the text. Answer with a score from 0 to 5."
    template = build_template(SFTConfig(system_prompt=MultiLabelAnswers.system_prompt), smol_tokenizer, EMOTIONS,
                              MultiLabelAnswers(EMOTIONS))
    assert template.system.endswith("separated by commas, or none: anger, joy, optimism, sadness.")


def test_the_multilabel_budget_fits_the_answer_with_every_label(smol_tokenizer):
    template = PromptTemplate("chat", smol_tokenizer, "Answer.")
    stops = [smol_tokenizer.eos_token_id]
    answers = MultiLabelAnswers(EMOTIONS)
    budget = answer_budget(template, answers.longest(), stops)
    everything = template.answer_ids("", answers.answer(EMOTIONS), stops)
    assert budget == len(everything) + 4
    assert all(len(template.answer_ids("", answers.answer(list(s)), stops)) <= len(everything)
               for n in range(len(EMOTIONS) + 1) for s in itertools.combinations(EMOTIONS, n))


def test_pairs_are_shown_with_their_field_names_and_cut_at_the_end(smol_tokenizer):
    pair = SeqExample("sentence1: A plane is taking off.\nsentence2: An air plane is taking off.", 5.0,
                      {"sentence1": "A plane is taking off.", "sentence2": "An air plane is taking off."})
    template = PromptTemplate("plain", smol_tokenizer, "Rate the text.")
    answers = RegressionAnswers(["score"]).fit([5.0, 3.8])
    dataset, n_cut = build_train_dataset(template, [pair], 128, answers)
    assert n_cut == 0 and "Input: sentence1: A plane is taking off.\nsentence2: An air plane" in dataset[0]["prompt"]
    assert dataset[0]["completion"].startswith(" 5.0")
    text, cut = truncate_input(smol_tokenizer, pair.text, 8)
    assert cut and pair.text.startswith(text) and text.startswith("sentence1: A plane")


# ----------------------------------------------------------------------------- --scoring likelihood refused


@pytest.mark.parametrize("problem", ["multi-label", "regression"])
def test_likelihood_scoring_is_refused_for_multilabel_and_regression(problem):
    with pytest.raises(ConfigError, match=r"^--scoring likelihood .*use --scoring generate$"):
        SFTRunConfig(data=DataConfig(data="x.jsonl", problem=problem), sft=SFTConfig(scoring="likelihood"))


def test_likelihood_is_refused_when_the_data_turns_out_multilabel_before_a_model_is_loaded(tmp_path):
    data = tmp_path / "emotions.jsonl"
    data.write_text("".join(json.dumps({"text": f"t {i}", "labels": ["joy"] if i % 2 else []}) + "\n" for i in range(12)))
    cfg = SFTRunConfig(model=ModelConfig(name="no-such-model"), data=DataConfig(data=str(data)),
                       train=TrainConfig(output=str(tmp_path / "run")), sft=SFTConfig(scoring="likelihood"))
    with pytest.raises(ConfigError, match="--scoring likelihood .*multi-label"):
        train_sft(cfg)


def test_evaluate_examples_refuses_likelihood_for_multilabel(smol_tokenizer):
    template = PromptTemplate("plain", smol_tokenizer, "Answer.")
    with pytest.raises(ConfigError, match="--scoring generate"):
        evaluate_examples(tiny_causal_lm(smol_tokenizer), smol_tokenizer, template, EMOTIONS, [SeqExample("x", ["joy"])],
                          SFTConfig(scoring="likelihood"), 128, answers=MultiLabelAnswers(EMOTIONS))


def test_generated_multilabel_answers_are_parsed_recorded_and_scored(smol_tokenizer, monkeypatch):
    import lsllm.sft.evaluation as evaluation

    outputs = ["joy, optimism", "None", "joy and happiness", "sadness"]
    monkeypatch.setattr(evaluation, "generate_answers", lambda *args, **kwargs: iter(outputs))
    examples = [SeqExample("a", ["joy", "optimism"]), SeqExample("b", []), SeqExample("c", ["joy"]),
                SeqExample("d", ["anger"])]
    answers = MultiLabelAnswers(EMOTIONS)
    template = PromptTemplate("plain", smol_tokenizer, "Answer.")
    result = evaluate_examples(tiny_causal_lm(smol_tokenizer), smol_tokenizer, template, EMOTIONS, examples, SFTConfig(),
                               128, answers=answers)
    m = result.metrics
    assert m["irregular"] == 1 and m["irregular_top"] == [["joy and happiness", 1]] and m["n_examples"] == 4
    assert m["jaccard"] == pytest.approx(0.5) and m["subset_accuracy"] == pytest.approx(0.5)
    stops = stop_token_ids(tiny_causal_lm(smol_tokenizer), smol_tokenizer)
    assert m["max_new_tokens"] == answer_budget(template, answers.longest(), stops)
    assert [set(r) for r in result.predictions] == [{"text", "labels", "gold", "raw_output", "irregular"}] * 4
    assert [r["labels"] for r in result.predictions] == [["joy", "optimism"], [], None, ["sadness"]]
    assert [r["irregular"] for r in result.predictions] == [False, False, True, False]


# ----------------------------------------------------------------------------- tiny runs end to end


def _cfg(tmp_path, data: DataConfig) -> SFTRunConfig:
    return SFTRunConfig(
        model=ModelConfig(name=str(tmp_path / "tiny-llama"), dtype="float32"),
        lora=LoraSettings(r=8, alpha=16, dropout=0.0),
        data=data,
        train=TrainConfig(max_steps=16, batch_size=4, lr=1e-2, output=str(tmp_path / "run")),  # enough to answer in form
        sft=SFTConfig(template="chat", eval_batch_size=4),
    )


def _rows(run: RunDir) -> list[dict]:
    return [json.loads(line) for line in run.predictions.read_text().splitlines()]


def test_multilabel_run_end_to_end(tmp_path, tiny_model_dir):
    def write(name, n, offset):
        sets = [["joy"], ["anger", "sadness"], [], ["joy", "optimism"]]
        rows = [{"text": f"review {offset + i}: {' '.join(sets[i % 4]) or 'plain'}", "labels": sets[i % 4]} for i in range(n)]
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(tmp_path / name)

    data = DataConfig(data=write("train.jsonl", 16, 0), validation_file=write("dev.jsonl", 4, 100),
                      test_file=write("test.jsonl", 6, 200))
    run = RunDir(train_sft(_cfg(tmp_path, data)))
    saved = SFTRunConfig.load(run.config)
    assert saved.data.problem == "multi-label" and saved.data.labels == EMOTIONS
    assert saved.sft.system_prompt == MultiLabelAnswers.system_prompt
    info = json.loads((run.model / "lsllm-sft.json").read_text())
    assert info["problem"] == "multi-label" and info["labels"] == EMOTIONS

    m = json.loads(run.metrics.read_text())["test"]
    assert {"jaccard", "f1_micro", "f1_macro", "subset_accuracy", "per_label", "irregular", "irregular_top"} <= set(m)
    assert "accuracy" not in m and "thresholds" not in m and m["n_examples"] == 6
    rows = _rows(run)
    assert [set(r) for r in rows] == [{"text", "labels", "gold", "raw_output", "irregular"}] * 6
    assert all(r["irregular"] == (r["labels"] is None) for r in rows)
    assert sum(r["irregular"] for r in rows) == m["irregular"] < 6  # some answers are label lists
    exact = sum(set(r["labels"] or []) == set(r["gold"]) for r in rows) / 6  # irregular: the empty set
    assert m["subset_accuracy"] == pytest.approx(exact)
    card = run.card.read_text()
    assert "jaccard %" in card and "(multi-label)" in card and "assistant" in card

    again = evaluate_sft(run.root, split="test", predictions_path=tmp_path / "again.jsonl")
    assert {k: again[k] for k in ("jaccard", "f1_micro", "irregular")} == {k: m[k] for k in ("jaccard", "f1_micro", "irregular")}
    reread = [json.loads(line) for line in (tmp_path / "again.jsonl").read_text().splitlines()]
    assert [r["raw_output"] for r in reread] == [r["raw_output"] for r in rows]
    with pytest.raises(ConfigError, match="--scoring generate"):
        evaluate_sft(run.root, split="test", sft_overrides={"scoring": "likelihood"})


def test_regression_pairs_run_end_to_end(tmp_path, tiny_model_dir):
    def write(name, n, offset):
        lines = ["sentence1\tsentence2\tscore"]
        lines += [f"a man plays {offset + i}\ta man plays {offset + i + i % 3}\t{[5.0, 3.8, 1.25, 0.0][i % 4]}" for i in range(n)]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
        return str(tmp_path / name)

    data = DataConfig(data=write("train.tsv", 16, 0), validation_file=write("dev.tsv", 4, 100),
                      test_file=write("test.tsv", 6, 200), text_column=["sentence1", "sentence2"], label_column="score",
                      problem="regression")
    run = RunDir(train_sft(_cfg(tmp_path, data)))
    saved = SFTRunConfig.load(run.config)
    assert saved.data.problem == "regression" and saved.data.labels is None
    assert saved.sft.system_prompt == RegressionAnswers.system_prompt
    info = json.loads((run.model / "lsllm-sft.json").read_text())
    assert info["problem"] == "regression"
    assert info["problem_state"] == {"decimals": 2, "train_mean": pytest.approx(2.5125), "train_min": 0.0, "train_max": 5.0}

    m = json.loads(run.metrics.read_text())["test"]
    assert {"pearson", "spearman", "mse", "mae", "irregular", "irregular_top"} <= set(m) and m["n_examples"] == 6
    rows = _rows(run)
    assert [set(r) for r in rows] == [{"text", "value", "gold", "raw_output", "irregular"}] * 6
    assert rows[0]["text"].startswith("sentence1: a man plays 200\nsentence2: ")
    assert all(r["irregular"] == (r["value"] is None) for r in rows)
    assert sum(r["irregular"] for r in rows) == m["irregular"] < 6  # some answers are numbers
    values = [r["value"] if r["value"] is not None else info["problem_state"]["train_mean"] for r in rows]
    assert m["mae"] == pytest.approx(sum(abs(v - r["gold"]) for v, r in zip(values, rows, strict=True)) / 6)
    card = run.card.read_text()
    assert "pearson" in card and "from 0 to 5" in card and "training mean" in card

    again = evaluate_sft(run.root, split="test")
    assert {k: again[k] for k in ("mse", "mae", "irregular")} == {k: m[k] for k in ("mse", "mae", "irregular")}
