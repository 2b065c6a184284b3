"""--head-init labels: the untrained head equals the LM's zero-shot choice among the label words."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from transformers import LlamaForCausalLM

from lsllm.cli import main
from lsllm.config import ModelConfig, RunConfig, TrainConfig
from lsllm.data import SeqExample, encode_sequences
from lsllm.errors import ConfigError
from lsllm.models.head_init import label_words, name_rows, name_token_ids, phrase
from lsllm.problems import SingleLabel
from lsllm.training import build_model

PROMPT = "Review: {text}\nSentiment:"


def test_untrained_head_scores_equal_the_lm_logits_of_the_label_words(tiny_model_dir):
    cfg = RunConfig(model=ModelConfig(name=str(tiny_model_dir), dtype="float32", head_init="labels", prompt=PROMPT))
    model, tokenizer, _ = build_model(cfg, ["negative", "positive"], SingleLabel(), torch.float32)
    model.eval()
    lm = LlamaForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    ids = [tokens[0] for tokens in name_token_ids(tokenizer, ["negative", "positive"])]
    assert name_token_ids(tokenizer, ["negative", "positive"]) == [[i] for i in ids]  # one token each: exact zero-shot
    texts = ["a great movie", "boring and flat , a mess"]
    encoded = encode_sequences([SeqExample(t) for t in texts], tokenizer, {}, 64, prompt=PROMPT)
    for feature in encoded.features:
        x = torch.tensor([feature["input_ids"]])
        with torch.no_grad():
            scores = model(input_ids=x).logits[0]  # (C,)
            expected = lm(input_ids=x).logits[0, -1, ids]  # the LM's next-token logits of " negative" / " positive"
        torch.testing.assert_close(scores, expected, atol=1e-4, rtol=1e-4)


def test_label_names_read_as_words_and_opaque_ones_as_none():
    assert phrase("change_ai_name") == phrase("change-ai-name") == phrase("changeAiName") == "change ai name"
    assert phrase("BookFlight") == "Book flight" and phrase("HTTPError") == "HTTP error" and phrase("Sci/Tech") == "Sci Tech"
    assert phrase("very negative") == "very negative" and phrase("rollover_401k") == "rollover 401k" and phrase("w2") == "w2"
    for opaque in ("0", "17", "3.5", "LABEL_3", "label_0", "class 2", "Class-12", "__", ""):
        assert phrase(opaque) is None, opaque
    intents = ["change_accent", "change_ai_name", "greeting"]
    assert label_words(intents, None) == ["change accent", "change ai name", "greeting"]


def test_names_sharing_first_tokens_get_distinct_rows_from_all_their_tokens(tiny_model_dir):
    from lsllm.models.backbones import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    names = ["change accent", "change ai name", "very negative", "negative"]
    ids = name_token_ids(tokenizer, names)
    assert ids[0][0] == ids[1][0] and len(ids[1]) > 1  # the old one-token head could not tell them apart
    embeddings = torch.randn(int(max(max(t) for t in ids)) + 1, 8)
    rows = name_rows(embeddings, ids)
    assert len({tuple(row.tolist()) for row in rows}) == len(names)
    torch.testing.assert_close(rows[3], embeddings[ids[3][0]])  # one token: its own row, unchanged
    for row, tokens in zip(rows, ids, strict=True):  # several: their mean (the mean of their zero-shot logits)
        torch.testing.assert_close(row, embeddings[tokens].mean(0))


def test_a_run_with_shared_first_tokens_trains_from_the_names(tmp_path, tiny_model_dir, capsys):
    rows = [("turn my accent to british", "change_accent"), ("call yourself max", "change_ai_name"),
            ("hello there friend", "greeting"), ("set the accent to australian", "change_accent"),
            ("your name is now bob", "change_ai_name"), ("hi how are you", "greeting")]
    folder = tmp_path / "intents"
    folder.mkdir()
    for split, repeat in (("train", 3), ("validation", 1), ("test", 1)):
        (folder / f"{split}.tsv").write_text("text\tlabel\n" + "".join(f"{t}\t{label}\n" for t, label in rows * repeat))
    out = tmp_path / "run"
    assert main(["train", "--data", str(folder), "--model", str(tiny_model_dir), "--output", str(out), "--max-steps", "2",
                 "--batch-size", "4", "--lora-r", "4", "--dtype", "float32", "--head-init", "labels",
                 "--prompt", "Query: {text}\nIntent:"]) == 0
    assert "step0" in json.loads((out / "metrics.json").read_text())


def test_label_words_fall_back_or_must_match_the_labels(caplog):
    assert label_words(["negative", "positive"], None) == ["negative", "positive"]
    with caplog.at_level(logging.WARNING):
        assert label_words(["0", "1"], None) is None
    assert "--label-words" in caplog.text
    assert label_words(["0", "1"], ["bad", "good"]) == ["bad", "good"]
    with pytest.raises(ConfigError, match="one per label"):
        label_words(["0", "1", "2"], ["bad", "good"])
    with pytest.raises(ConfigError, match="--head-init labels"):
        ModelConfig(label_words=["bad", "good"])
    with pytest.raises(ConfigError, match="exactly once"):
        ModelConfig(prompt="no slot here")
    assert ModelConfig(prompt="Review: {text}\\nSentiment:").prompt == PROMPT  # a typed \n is a newline


def test_a_long_text_is_cut_inside_the_prompt(tiny_model_dir):
    from lsllm.models.backbones import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    long = " ".join(["word"] * 100)
    encoded = encode_sequences([SeqExample(long)], tokenizer, {}, 24, prompt=PROMPT)
    ids = encoded.features[0]["input_ids"]
    suffix = tokenizer("\nSentiment:", add_special_tokens=False)["input_ids"]
    assert len(ids) <= 24 and ids[-len(suffix):] == suffix and encoded.n_truncated == 1


def test_a_run_with_label_word_head_reports_step0_and_keeps_its_prompt(tmp_path, tiny_model_dir, tiny_seq_data, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_seq_data), "--model", str(tiny_model_dir), "--output", str(out), "--max-steps", "2",
                 "--batch-size", "4", "--lora-r", "4", "--dtype", "float32", "--head-init", "labels", "--prompt", PROMPT,
                 "--head-lr", "1e-2"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["step0"]["accuracy"] <= 1 and metrics["step0"]["n_examples"] == 12
    assert json.loads((out / "model" / "lsllm.json").read_text())["prompt"] == PROMPT
    capsys.readouterr()
    assert main(["predict", str(out), "a great movie"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] in ("negative", "positive")


def test_head_lr_puts_the_head_in_its_own_optimizer_group(tmp_path, tiny_model_dir):
    from lsllm import lifecycle, runs
    from lsllm.inference.classifier import Classifier
    from lsllm.training import LSTrainer

    cfg = RunConfig(model=ModelConfig(name=str(tiny_model_dir), dtype="float32"), train=TrainConfig(lr=1e-4, head_lr=5e-3))
    model, tokenizer, _ = build_model(cfg, ["negative", "positive"], SingleLabel(), torch.float32)
    args = lifecycle.trainer_arguments(cfg, runs.RunDir(tmp_path), 8, lifecycle.training_precision(cfg, False),
                                       remove_unused_columns=False)
    trainer = LSTrainer(model=model, args=args, train_dataset=[], classifier=Classifier(model, tokenizer, ["a", "b"], SingleLabel(), 16),
                        head_lr=cfg.train.head_lr)
    optimizer = trainer.create_optimizer()
    head = {id(p) for n, p in model.named_parameters() if p.requires_grad and ".score." in f".{n}."}
    groups = {g["lr"]: {id(p) for p in g["params"]} for g in optimizer.param_groups}
    assert groups[5e-3] == head and groups[1e-4] and not (groups[1e-4] & head)


def test_the_lsllm_preset_needs_a_prompt_for_seq_and_unmasks_for_token():
    from lsllm.config import apply_preset

    with pytest.raises(ConfigError, match="--prompt"):
        apply_preset(RunConfig(train=TrainConfig(preset="lsllm")), "seq", set())
    cfg = apply_preset(RunConfig(model=ModelConfig(prompt=PROMPT), train=TrainConfig(preset="lsllm", lr=1e-4)), "seq", {"train.lr"})
    assert cfg.model.head_init == "labels" and cfg.train.epochs == 2.0 and cfg.train.lr == 1e-4  # explicit flags win
    token = apply_preset(RunConfig(train=TrainConfig(preset="lsllm")), "token", set())
    assert token.model.bidirectional and token.train.lr == 5e-4
