"""End to end through `lsllm.cli.main` on a tiny model: one test per command, as a user runs them."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

from lsllm.cli import main
from lsllm.data.encoding import apply_prompt

TRAIN_FLAGS = ["--max-steps", "6", "--eval-steps", "3", "--batch-size", "4", "--lr", "1e-3", "--lora-r", "4", "--dtype", "float32"]
RUN_FILES = {"config.yaml", "model", "metrics.json", "predictions.jsonl", "report.txt", "learning_curve.png", "logs", "run.json", "report.html",
             "checkpoints", "README.md"}


@pytest.fixture
def seq_run(tmp_path, tiny_model_dir, tiny_seq_data):
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_seq_data), "--model", str(tiny_model_dir), "--output", str(out), *TRAIN_FLAGS]) == 0
    return out


def test_train_writes_exactly_the_run_files_and_eval_reproduces_them(seq_run, capsys):
    assert {p.name for p in seq_run.iterdir()} == RUN_FILES | {"confusion_matrix.png"}
    metrics = json.loads((seq_run / "metrics.json").read_text())
    assert set(metrics) == {"validation", "test", "step0"} and 0 <= metrics["test"]["accuracy"] <= 1  # head from the label names
    assert metrics["test"]["n_examples"] == 12
    records = [json.loads(line) for line in (seq_run / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == 12 and set(records[0]) >= {"text", "label", "score", "probabilities"}
    assert main(["eval", str(seq_run), "--split", "test"]) == 0
    again = json.loads((seq_run / "eval-test.json").read_text())["test"]
    assert again["accuracy"] == metrics["test"]["accuracy"]
    assert again["confusion_matrix"] == metrics["test"]["confusion_matrix"]


def test_predict_and_merge_agree(seq_run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["predict", str(seq_run), "a great movie", "boring and flat"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in records] == ["a great movie", "boring and flat"]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in records)
    merged = tmp_path / "merged"
    assert main(["merge", str(seq_run), str(merged)]) == 0
    model = transformers.AutoModelForSequenceClassification.from_pretrained(merged).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(merged)
    prompt = json.loads((seq_run / "model" / "lsllm.json").read_text())["prompt"]  # the plain command chooses one
    with torch.no_grad():  # a stock model reads the input as the run encodes it: inside the run's prompt
        probs = model(**tokenizer([apply_prompt(prompt, "a great movie")], return_tensors="pt")).logits.softmax(-1)[0]
    expected = records[0]["probabilities"]
    assert probs.tolist() == pytest.approx([expected[model.config.id2label[i]] for i in range(2)], abs=1e-4)


def test_token_run_predicts_entities_with_word_and_character_offsets(tmp_path, tiny_model_dir, tiny_token_data, capsys):
    out = tmp_path / "ner"
    assert main(["train", "--data", str(tiny_token_data), "--model", str(tiny_model_dir), "--output", str(out),
                 "--bidirectional", *TRAIN_FLAGS]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"f1", "precision", "recall", "f1_strict", "token_accuracy", "per_type"} <= set(metrics["test"])
    capsys.readouterr()
    text = "EU rejects German call to boycott British lamb."
    assert main(["predict", str(out), text]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["tokens"][-2:] == ["lamb", "."] and len(record["tags"]) == len(record["tokens"])
    for entity in record["entities"]:
        assert text[entity["char_start"]:entity["char_end"]] == entity["text"]
        assert " ".join(record["tokens"][entity["start"]:entity["end"]]) == entity["text"].replace("  ", " ")


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path, tiny_model_dir, tiny_seq_data, monkeypatch):
    from lsllm import training

    flags = ["--data", str(tiny_seq_data), "--model", str(tiny_model_dir), "--max-steps", "8", "--eval-steps", "2",
             "--batch-size", "4", "--lr", "1e-3", "--lora-r", "4", "--dtype", "float32"]
    assert main(["train", *flags, "--output", str(tmp_path / "whole")]) == 0

    original_step = training.LSTrainer.training_step

    def dying_step(self, *args, **kwargs):
        if self.state.global_step == 5:
            raise KeyboardInterrupt  # as if killed between checkpoints 4 and 6
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(training.LSTrainer, "training_step", dying_step)
    assert main(["train", *flags, "--output", str(tmp_path / "cut")]) == 130
    assert not (tmp_path / "cut" / "metrics.json").exists()
    monkeypatch.setattr(training.LSTrainer, "training_step", original_step)
    assert main(["train", "--output", str(tmp_path / "cut"), "--resume"]) == 0
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    cut = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert cut == whole
    from safetensors.torch import load_file

    a = load_file(tmp_path / "whole" / "model" / "adapter_model.safetensors")
    b = load_file(tmp_path / "cut" / "model" / "adapter_model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)


def test_user_errors_are_one_line_without_traceback(tmp_path, capsys):
    assert main(["train", "--data", "no-such-dataset", "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "sst2" in err and "Traceback" not in err
    if not torch.cuda.is_available():
        assert main(["train", "--data", "sst2", "--quantize", "4bit", "--output", str(tmp_path / "y")]) == 2
        assert "CUDA" in capsys.readouterr().err


def test_datasets_lists_every_builtin(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("sst2", "sst5", "agnews", "twitterfin", "clinc150", "conll03", "ontonotesv5", "wnut17", "sst2-sample"):
        assert f"\n{name} " in out
    assert "accept_reservations, account_blocked" in out and "(150 in all)" in out and "who_made_you" not in out  # one line


def test_train_shows_one_bar_a_table_and_the_next_steps(tmp_path, tiny_model_dir, tiny_seq_data, capfd, monkeypatch):
    """The terminal of `lsllm train`: a bar with the loss in its postfix, no Trainer dicts, no third-party noise."""
    monkeypatch.setenv("LSLLM_PROGRESS", "1")
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_seq_data), "--model", str(tiny_model_dir), "--output", str(out), *TRAIN_FLAGS]) == 0
    captured = capfd.readouterr()
    assert "{'loss'" not in captured.err + captured.out and "'grad_norm'" not in captured.err
    assert "training" in captured.err and "loss=" in captured.err and "val accuracy=" in captured.err
    assert "FutureWarning" not in captured.err and "LOAD REPORT" not in captured.err and "Loading weights" not in captured.err
    assert f"report: {out / 'report.html'}" in captured.out
    assert f"lsllm predict {out} " in captured.out and f"lsllm serve {out}" in captured.out and f"lsllm report {out}" in captured.out
    assert f"lsllm predict {out} 'a moving , lovely film'\n" in captured.out  # an input of the user's own test split


def test_next_steps_take_an_input_from_the_runs_own_data(tmp_path):
    from lsllm.cli import example_input, next_steps
    from lsllm.runs import RunDir

    def run_with(records, info=None):
        root = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        (root / "model").mkdir(parents=True)
        (root / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        if info:
            (root / "model" / "lsllm.json").write_text(json.dumps(info))
        return RunDir(root)

    intents = run_with([{"text": "hi"}, {"text": "what is the traffic like on the road to downtown dallas"},
                        {"text": "roll a six sided die"}, {"text": "book a table for two at eight tonight please"}])
    assert example_input(intents) == "roll a six sided die"  # the shortest of four words or more
    assert "lsllm predict " + str(intents.root) + " 'roll a six sided die'" in next_steps(intents)
    tokens = run_with([{"text": "x", "tokens": ["EU", "rejects", "German", "call", "."]}], {"task": "token"})
    assert example_input(tokens) == "EU rejects German call ."
    pairs = run_with([{"text": "premise: a b c\nhypothesis: d e", "fields": {"premise": "a b c", "hypothesis": "d e"}}],
                     {"task": "seq", "labels": ["yes", "no"], "max_length": 64, "label_all_subtokens": False,
                      "fields": ["premise", "hypothesis"]})  # the least a model/lsllm.json holds
    assert '# one {"premise": "a b c", "hypothesis": "d e"} per line' in next_steps(pairs)
    empty = RunDir(tmp_path / "nothing")
    assert example_input(empty) is None and "gripping" not in next_steps(empty)


def test_quiet_draws_no_bar(tmp_path, tiny_model_dir, tiny_seq_data, capfd, monkeypatch):
    monkeypatch.setenv("LSLLM_PROGRESS", "1")
    out = tmp_path / "run"
    assert main(["--quiet", "train", "--data", str(tiny_seq_data), "--model", str(tiny_model_dir), "--output", str(out),
                 *TRAIN_FLAGS]) == 0
    assert "training" not in capfd.readouterr().err
    monkeypatch.delenv("LSLLM_PROGRESS")


def test_lsllm_alone_lists_the_commands(capsys):
    assert main([]) == 0
    shown = capsys.readouterr().out
    assert all(command in shown for command in ("train", "predict", "serve", "report", "study")) and "start here" in shown
