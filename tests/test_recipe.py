"""The recipe a run gets without recipe flags (lsllm.recipe): chosen from the data, every choice overridable."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from lsllm import recipe
from lsllm.cli import main
from lsllm.config import PRESETS, LoraSettings, ModelConfig, RunConfig, TrainConfig
from lsllm.flags import config_from_flags
from lsllm.problems import family

INTENTS = ["change_accent", "change_ai_name", "greeting"]


def chosen(argv=(), task="seq", problem="single-label", labels=INTENTS, n_train=3000, fields=None):
    cfg, explicit = config_from_flags(["--data", "x", *argv])
    line = recipe.choose(cfg, family(task, problem), labels, n_train, fields, explicit)
    return cfg, line


def test_without_recipe_flags_every_choice_is_made_and_said_with_its_flag():
    cfg, line = chosen(n_train=3000)  # 188 steps an epoch at batch 16
    assert cfg.train.preset == "auto" and cfg.model.prompt == "Text: {text}\nLabel:" and cfg.model.head_init == "labels"
    assert (cfg.train.head_lr, cfg.train.lr, cfg.lora.target_modules) == (recipe.HEAD_LR, recipe.LR, ["q_proj", "v_proj"])
    assert cfg.train.epochs == 3.0  # 2 epochs are 376 steps, under the floor of 500: 3 epochs
    assert "\n" not in line  # one line
    for flag in ("--prompt", "--head-init", "--head-lr", "--lr", "--target-modules", "--epochs"):
        assert f"({flag})" in line, flag
    assert "head from the 3 label names (2 of several words" in line and "3 epochs = 564 steps, the floor of 500" in line
    big, line = chosen(n_train=100_000)
    assert big.train.epochs == recipe.EPOCHS and "floor" not in line  # big data: the measured recipes' 2 epochs
    tiny, _ = chosen(n_train=40)
    assert tiny.train.epochs == recipe.MAX_EPOCHS


def test_a_flag_or_config_key_wins_over_each_choice():
    cfg, line = chosen(["--prompt", "Query: {text}\\nIntent:", "--lr", "1e-4", "--target-modules", "q_proj", "k_proj",
                        "--head-lr", "5e-3", "--epochs", "1"])
    assert (cfg.model.prompt, cfg.train.lr, cfg.lora.target_modules, cfg.train.head_lr, cfg.train.epochs) == \
        ("Query: {text}\nIntent:", 1e-4, ["q_proj", "k_proj"], 5e-3, 1.0)
    assert cfg.model.head_init == "labels" and "--prompt" not in line and "(--lr)" not in line and "epochs" not in line
    steps, _ = chosen(["--max-steps", "7"])
    assert steps.train.max_steps == 7 and steps.train.epochs == TrainConfig().epochs  # epochs mean nothing then
    random_head, line = chosen(["--head-init", "random"])
    assert random_head.model.head_init == "random" and random_head.train.head_lr is None  # 10x was measured on a named head
    full, _ = chosen(["--no-lora"])
    assert full.train.lr == TrainConfig().lr and full.lora.target_modules == LoraSettings().target_modules


def test_labels_that_are_not_names_and_other_problems_keep_a_random_head():
    cfg, line = chosen(labels=["0", "1"])
    assert cfg.model.head_init == "random" and cfg.train.head_lr is None and "head random (the labels are not names, e.g. 0, 1" in line
    multi, line = chosen(problem="multi-label", labels=["anger", "joy"])
    assert multi.model.head_init == "random" and multi.model.prompt.endswith("\nLabels:") and multi.train.head_lr == recipe.HEAD_LR
    assert multi.lora.target_modules == LoraSettings().target_modules  # measured (E-c) with every projection
    pairs, _ = chosen(problem="regression", labels=["score"], fields=["sentence1", "sentence2"])
    assert pairs.model.prompt == "Sentence1: {sentence1}\nSentence2: {sentence2}\nScore:" and pairs.model.head_init == "random"
    token, line = chosen(task="token", labels=["O", "B-PER", "I-PER"])
    assert token.model.prompt is None and token.train.lr == TrainConfig().lr and "token task" in line


def test_a_preset_is_the_recipe_and_nothing_is_chosen():
    for preset in ("ls-llama", "ls-unllama", "lsllm"):
        cfg, line = chosen(["--preset", preset, *(["--prompt", "Q: {text}\\nA:"] if preset == "lsllm" else [])])
        assert line is None and cfg.train.preset == preset


def test_the_plain_command_says_and_records_its_recipe_and_its_config_reloads_it(tmp_path, tiny_model_dir, tiny_seq_data,
                                                                                capsys):
    out = tmp_path / "run"
    base = ["--data", str(tiny_seq_data), "--model", str(tiny_model_dir), "--batch-size", "4", "--lora-r", "4",
            "--dtype", "float32", "--max-steps", "2"]
    assert main(["train", *base, "--output", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("recipe chosen from the data") == 1 and "prompt 'Text: {text}\\nLabel:'" in err
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["train"]["preset"] == "auto" and saved["model"]["prompt"] == "Text: {text}\nLabel:"
    assert saved["model"]["head_init"] == "labels" and saved["lora"]["target_modules"] == ["q_proj", "v_proj"]
    again = tmp_path / "again"
    assert main(["train", "--config", str(out / "config.yaml"), "--output", str(again)]) == 0
    assert "recipe chosen" not in capsys.readouterr().err  # every value is given: nothing chosen again
    reloaded = yaml.safe_load((again / "config.yaml").read_text())
    assert {k: v for k, v in reloaded.items() if k != "train"} == {k: v for k, v in saved.items() if k != "train"}
    assert {k: v for k, v in reloaded["train"].items() if k != "output"} == {k: v for k, v in saved["train"].items() if k != "output"}
    assert main(["-q", "train", *base, "--output", str(tmp_path / "quiet")]) == 0
    assert "recipe chosen" not in capsys.readouterr().err


def test_preset_ls_llama_is_still_the_papers_recipe_exactly(tmp_path, tiny_model_dir, tiny_seq_data, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_seq_data), "--model", str(tiny_model_dir), "--dtype", "float32", "--max-steps", "2",
                 "--preset", "ls-llama", "--output", str(out)]) == 0
    assert "recipe chosen" not in capsys.readouterr().err
    saved = RunConfig.load(out / "config.yaml")
    expected = RunConfig()
    for dotted, value in PRESETS[("ls-llama", "seq")].items():
        section, name = dotted.split(".")
        setattr(getattr(expected, section), name, value)
    expected.train.preset, expected.train.max_steps = "ls-llama", 2
    for section in ("model", "lora", "train"):
        got, want = dataclasses.asdict(getattr(saved, section)), dataclasses.asdict(getattr(expected, section))
        skip = {"name", "dtype", "output"}  # the flags this test gave, not the recipe
        assert {k: v for k, v in got.items() if k not in skip} == {k: v for k, v in want.items() if k not in skip}, section
    assert saved.model.prompt is None and saved.model.head_init == "random" and saved.train.head_lr is None
    assert saved.data.max_length == 64 and saved.train.batch_size == 8 and saved.lora.r == 12


@pytest.mark.parametrize(("labels", "problem", "expected"), [
    (["negative", "positive"], "single-label", "Text: {text}\nLabel:"),
    (["score"], "regression", "Text: {text}\nScore:"),
    (["anger", "joy"], "multi-label", "Text: {text}\nLabels:"),
])  # fmt: skip
def test_prompt_names_the_fields_and_asks_for_the_label(labels, problem, expected):
    assert recipe.prompt_for(family("seq", problem), None, labels) == expected
    assert ModelConfig(prompt=expected).prompt == expected  # a prompt ModelConfig accepts
