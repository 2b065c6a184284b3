"""Sentence pairs, multi-label and regression end to end on the tiny model: train, predict, eval, serve, merge.

A merged multi-label or regression run loads in stock transformers with `config.problem_type`
set, and `pipeline("text-classification")` gives what `lsllm predict` gives (sigmoid
probabilities; raw values with the regression scale folded into the head).
"""

from __future__ import annotations

import json
import re

import pytest
import transformers

from lsllm.cli import main
from lsllm.data.encoding import apply_prompt
from tests.conftest import NEGATIVE, POSITIVE, RUN_FLAGS

EMOTIONS = {"a great movie": ["joy"], "wonderful and warm": ["joy", "love"], "i loved it": ["love"], "great fun": ["joy"],
            "a moving , lovely film": ["love", "sadness"], "superb acting": [], "a dull mess": ["anger"],
            "boring and flat": [], "i hated it": ["anger"], "awful pacing": ["anger", "sadness"],
            "a tedious , lifeless film": ["sadness"], "terrible script": ["anger"]}
SCORES = {text: 4.5 - 0.3 * i for i, text in enumerate(POSITIVE)} | {text: 1.2 - 0.2 * i for i, text in enumerate(NEGATIVE)}


def _stdout_records(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("multi-data")
    for split, repeat in (("train", 3), ("validation", 1), ("test", 1)):
        lines = [json.dumps({"text": t, "labels": labels}) for _ in range(repeat) for t, labels in EMOTIONS.items()]
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path_factory.mktemp("multi-run") / "run"
    assert main(["train", "--data", str(folder), "--model", str(tiny_model_dir), "--output", str(out), *RUN_FLAGS]) == 0
    return out


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("regression-data")
    for split, repeat in (("train", 3), ("validation", 1), ("test", 1)):
        rows = ["text\tscore"] + [f"{t}\t{s:.2f}" for _ in range(repeat) for t, s in SCORES.items()]
        (folder / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    out = tmp_path_factory.mktemp("regression-run") / "run"
    assert main(["train", "--data", str(folder), "--model", str(tiny_model_dir), "--output", str(out), "--problem", "regression",
                 *RUN_FLAGS]) == 0
    return out


def test_multi_label_run_tunes_thresholds_on_validation_and_scores_jaccard(multi_run, capsys):
    metrics = json.loads((multi_run / "metrics.json").read_text())
    assert {"jaccard", "f1_micro", "f1_macro", "subset_accuracy", "per_label"} <= set(metrics["test"])
    info = json.loads((multi_run / "model" / "lsllm.json").read_text())
    assert info["problem"] == "multi-label" and info["labels"] == sorted({x for v in EMOTIONS.values() for x in v})
    thresholds = info["problem_state"]["thresholds"]
    assert len(thresholds) == len(info["labels"]) and metrics["test"]["thresholds"] == thresholds
    capsys.readouterr()
    assert main(["predict", str(multi_run), "a great movie"]) == 0
    [record] = _stdout_records(capsys)
    assert set(record["probabilities"]) == set(info["labels"]) and isinstance(record["labels"], list)
    assert record["labels"] == [k for k in info["labels"] if record["probabilities"][k] >= thresholds[info["labels"].index(k)]]
    assert main(["eval", str(multi_run), "--split", "test"]) == 0
    assert json.loads((multi_run / "eval-test.json").read_text())["test"]["jaccard"] == pytest.approx(metrics["test"]["jaccard"])


def test_a_merged_multi_label_run_gives_the_same_probabilities_in_a_stock_pipeline(multi_run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["predict", str(multi_run), "a great movie", "awful pacing"]) == 0
    records = _stdout_records(capsys)
    merged = tmp_path / "merged"
    assert main(["merge", str(multi_run), str(merged)]) == 0
    model = transformers.AutoModelForSequenceClassification.from_pretrained(merged)
    assert model.config.problem_type == "multi_label_classification"
    classify = transformers.pipeline("text-classification", model=model, tokenizer=transformers.AutoTokenizer.from_pretrained(merged),
                                     top_k=None, device="cpu")
    prompt = json.loads((multi_run / "model" / "lsllm.json").read_text())["prompt"]  # inputs go inside the run's prompt
    for record, scores in zip(records, classify([apply_prompt(prompt, t) for t in ("a great movie", "awful pacing")]), strict=True):
        assert {s["label"]: s["score"] for s in scores} == pytest.approx(record["probabilities"], abs=1e-4)


def test_regression_run_predicts_values_in_the_original_scale(regression_run, tmp_path, capsys):
    metrics = json.loads((regression_run / "metrics.json").read_text())
    assert {"pearson", "spearman", "mse", "mae"} <= set(metrics["test"])
    info = json.loads((regression_run / "model" / "lsllm.json").read_text())
    state = info["problem_state"]
    assert info["problem"] == "regression" and state["scale"] == 1.0  # folded into the saved head
    assert state["train_mean"] == pytest.approx(sum(SCORES.values()) / len(SCORES), abs=0.01)
    predictions = [json.loads(line) for line in (regression_run / "predictions.jsonl").read_text().splitlines()]
    assert all(isinstance(r["value"], float) and isinstance(r["gold"], float) for r in predictions)
    capsys.readouterr()
    assert main(["predict", str(regression_run), "a great movie"]) == 0
    [record] = _stdout_records(capsys)
    merged = tmp_path / "merged"
    assert main(["merge", str(regression_run), str(merged)]) == 0
    model = transformers.AutoModelForSequenceClassification.from_pretrained(merged)
    assert model.config.problem_type == "regression" and model.config.num_labels == 1
    classify = transformers.pipeline("text-classification", model=model, tokenizer=transformers.AutoTokenizer.from_pretrained(merged),
                                     function_to_apply="none", device="cpu")
    prompted = apply_prompt(info["prompt"], "a great movie")
    assert classify(prompted)[0]["score"] == pytest.approx(record["value"], abs=1e-4)


def test_a_regression_report_lists_the_largest_errors_and_its_pearson_curve(regression_run):
    from lsllm.report import collect

    html = (regression_run / "report.html").read_text()
    assert "examples are wrong" not in html and "confidence %" not in html
    assert "The largest errors" in html and "|error|" in html and "largest error first" in html
    predictions = [json.loads(line) for line in (regression_run / "predictions.jsonl").read_text().splitlines()]
    worst = max(abs(r["value"] - r["gold"]) for r in predictions)
    shown = [float(x) for x in re.findall(r'data-label="\|error\|">([0-9.]+)<', html)]
    assert shown and shown[0] == pytest.approx(worst, abs=1e-3) and shown == sorted(shown, reverse=True)
    curves = collect.read_run(regression_run).curves
    assert curves.metric == "pearson" and curves.selected_reason == "best validation pearson"
    assert "best validation pearson" in html and "best validation accuracy" not in html


def test_a_multi_label_report_names_jaccard_and_ranks_errors_by_confidence(multi_run):
    from lsllm.report import analysis, collect

    run = collect.read_run(multi_run)
    assert run.curves.metric == "jaccard" and "best validation jaccard" in (multi_run / "report.html").read_text()
    errors = analysis.seq_errors(run)
    assert all(e.confidence is not None and 0.0 <= e.confidence <= 1.0 for e in errors)
    assert analysis.multi_label_confidence(["joy"], ["anger"], {"joy": 0.3, "anger": 0.9}) == pytest.approx(0.9)
    assert analysis.multi_label_confidence(["joy", "love"], ["joy"], {"joy": 0.8, "love": 0.1}) == pytest.approx(0.9)


def test_the_regression_scale_is_what_training_standardised_by(regression_run):
    """Training divided the targets by the train std; the saved head must multiply exactly that back.

    predictions.jsonl is scored before the save (head output x the std, `Regression.outputs`), the
    loaded run after it (the std folded into the head's weights, scale 1): the two agree only when
    both apply the same std, the one training divided by. A missing or wrong fold, or outputs left
    on the standardised scale, makes them differ by a factor of the std (about 1.6 here).
    """
    import numpy as np

    from lsllm.pipeline import load_run

    state = json.loads((regression_run / "model" / "lsllm.json").read_text())["problem_state"]
    assert state["train_std"] == pytest.approx(float(np.std([round(s, 2) for s in SCORES.values()])), rel=1e-4)
    assert state["train_std"] > 1.3  # so the two scales are far apart
    predictions = [json.loads(line) for line in (regression_run / "predictions.jsonl").read_text().splitlines()]
    classifier, _ = load_run(regression_run, dtype="float32", device="cpu")
    loaded = [r["value"] for r in classifier.predict_texts([r["text"] for r in predictions])]
    assert max(abs(v) for v in loaded) > 0.05  # values near 0 could not tell the scales apart
    assert loaded == pytest.approx([r["value"] for r in predictions], abs=1e-3)


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("pair-data")
    rows = [(t, "the film", "positive") for t in POSITIVE] + [(t, "the film", "negative") for t in NEGATIVE]
    for split, repeat in (("train", 3), ("validation", 1), ("test", 1)):
        lines = ["premise\thypothesis\tlabel"] + [f"{p}\t{h}\t{label}" for _ in range(repeat) for p, h, label in rows]
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    out = tmp_path_factory.mktemp("pair-run") / "run"
    assert main(["train", "--data", str(folder), "--model", str(tiny_model_dir), "--output", str(out),
                 "--text-column", "premise", "hypothesis", "--prompt", "Premise: {premise}\\nHypothesis: {hypothesis}\\nAnswer:",
                 *RUN_FLAGS]) == 0
    return out


def test_a_pair_run_keeps_its_fields_through_predict_and_serve(pair_run, tmp_path, capsys):
    from fastapi.testclient import TestClient

    from lsllm.pipeline import load_run
    from lsllm.serve.app import create_app

    info = json.loads((pair_run / "model" / "lsllm.json").read_text())
    assert info["fields"] == ["premise", "hypothesis"]
    inputs = tmp_path / "pairs.jsonl"
    inputs.write_text(json.dumps({"premise": "a great movie", "hypothesis": "the film"}) + "\n")
    capsys.readouterr()
    assert main(["predict", str(pair_run), "--input", str(inputs)]) == 0
    [record] = _stdout_records(capsys)
    assert record["fields"] == {"premise": "a great movie", "hypothesis": "the film"}
    classifier, _ = load_run(pair_run, dtype="float32", device="cpu")
    with TestClient(create_app(classifier)) as client:
        assert client.get("/info").json()["fields"] == ["premise", "hypothesis"]
        answer = client.post("/predict", json={"records": [{"premise": "a great movie", "hypothesis": "the film"}]})
        assert answer.status_code == 200 and answer.json()["predictions"][0]["probabilities"] == record["probabilities"]
        refused = client.post("/predict", json={"texts": ["a great movie"]})
        assert refused.status_code == 422 and '"records"' in refused.json()["detail"]
        missing = client.post("/predict", json={"records": [{"premise": "a great movie"}]})
        assert missing.status_code == 422 and "'hypothesis' is missing" in missing.json()["detail"]


def test_problem_options_that_do_not_fit_are_one_line(tmp_path, tiny_model_dir, capsys):
    data = tmp_path / "scores.tsv"
    data.write_text("text\tscore\n" + "".join(f"{t}\t{s}\n" for t, s in SCORES.items()))
    base = ["train", "--data", str(data), "--model", str(tiny_model_dir), "--output", str(tmp_path / "r"), *RUN_FLAGS]
    cases = [([*base, "--problem", "regression", "--head-init", "labels", "--prompt", "Review: {text}\\nScore:"], "--head-init"),
             ([*base, "--problem", "regression", "--class-weights", "balanced"], "--class-weights"),
             ([*base, "--problem", "regression", "--prompt", "Premise: {premise}"], "{premise}"),
             ([*base, "--task", "token", "--problem", "multi-label"], "sequence tasks")]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
