"""SFTRunConfig: shared sections plus `sft`, YAML round trip, settings SFT cannot honour refused."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from lsllm.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from lsllm.errors import ConfigError
from lsllm.sft.config import SFTConfig, SFTRunConfig


def test_every_sft_field_is_documented():
    for f in dataclasses.fields(SFTConfig):
        assert f.metadata.get("help"), f.name


def test_dict_round_trip_keeps_every_section():
    cfg = SFTRunConfig(
        model=ModelConfig(name="tiny", dtype="float32"),
        data=DataConfig(data="sst2", train_limit=1000, labels=["negative", "positive"]),
        train=TrainConfig(max_steps=5, seed=7),
        sft=SFTConfig(template="llama2-chat", max_new_tokens=4),
    )
    raw = yaml.safe_load(yaml.safe_dump(cfg.to_dict()))
    assert set(raw) >= {"model", "lora", "data", "train", "sft", "format_version"}
    assert SFTRunConfig.from_dict(raw) == cfg
    # An LS reader of the same file sees the shared sections unchanged.
    assert RunConfig.from_dict(raw).data == cfg.data


def test_load_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        SFTRunConfig.load(tmp_path / "missing.yaml")


def test_unknown_sft_key_is_named():
    with pytest.raises(ConfigError, match="temperature"):
        SFTRunConfig.from_dict({"sft": {"temperature": 0.7}})


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [({"model": ModelConfig(bidirectional=True)}, "model.bidirectional"),
     ({"model": ModelConfig(pooling="mean")}, "model.pooling"),
     ({"train": TrainConfig(class_weights="balanced")}, "train.class_weights"),
     ({"train": TrainConfig(preset="ls-llama")}, "train.preset")],
)
def test_ls_only_settings_are_refused(kwargs, setting):
    with pytest.raises(ConfigError, match=setting):
        SFTRunConfig(**kwargs)


def test_token_tasks_are_refused():
    with pytest.raises(ConfigError, match="not offered for token tasks"):
        SFTRunConfig(data=DataConfig(data="conll03", task="token"))


def test_evaluation_defaults_generate_with_a_derived_budget_on_test_only():
    sft = SFTConfig()
    assert sft.scoring == "generate" and sft.max_new_tokens is None and sft.eval_splits == ["test"]


@pytest.mark.parametrize("kwargs", [{"template": "alpaca"}, {"max_new_tokens": 0}, {"system_prompt": " "},
                                    {"scoring": "logprob"}, {"eval_batch_tokens": 0}, {"eval_splits": ["train"]}])
def test_invalid_sft_settings(kwargs):
    with pytest.raises(ConfigError):
        SFTConfig(**kwargs)


def test_sft_eval_takes_the_answer_settings_but_not_the_prompt():
    from lsllm.cli import build_parser

    args = build_parser().parse_args(["sft", "eval", "RUN", "--scoring", "likelihood", "--max-new-tokens", "5"])
    assert vars(args)["sft.scoring"] == "likelihood" and vars(args)["sft.max_new_tokens"] == 5
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sft", "eval", "RUN", "--template", "plain"])  # the prompt is the run's own


def test_one_mark_decides_the_ls_only_settings_for_the_cli_and_the_config():
    """`lsllm sft train` has exactly the flags of the settings SFT takes, and its config refuses exactly the others."""
    import dataclasses

    from lsllm.cli import build_parser
    from lsllm.config import ModelConfig, TrainConfig, ls_only_settings
    from lsllm.flags import method_parser

    refused = {**{f"model.{k}": v for k, v in ls_only_settings(ModelConfig).items()},
               **{f"train.{k}": v for k, v in ls_only_settings(TrainConfig).items()}}
    assert {"model.prompt", "model.label_words", "model.unmask_layers", "train.head_lr", "train.preset"} <= set(refused)
    assert "train.pack" not in refused  # SFT packs its rows too (padding-free)
    sft_flags = {action.dest for action in method_parser("sft")._actions}
    ls_flags = {action.dest for action in method_parser("ls")._actions}
    assert ls_flags - sft_flags == set(refused) and "train.pack" in sft_flags
    args = build_parser().parse_args(["sft", "train", "--data", "x", "--no-pack"])
    assert vars(args)["train.pack"] is False
    for dotted in refused.keys() - {"model.unmask_layers", "model.label_words"}:  # refused alone by ModelConfig already
        section, name = dotted.split(".")
        field = next(f for f in dataclasses.fields(ModelConfig if section == "model" else TrainConfig) if f.name == name)
        value = {"bool": True, "str": "x", "int": 2, "float": 0.5}.get(str(field.type).split(" ")[0], ["x"])
        value = {"model.attention": "repeat", "model.pooling": "mean", "model.head_init": "labels",
                 "train.class_weights": "balanced", "train.preset": "lsllm", "model.label_words": ["a", "b"],
                 "model.prompt": "Review: {text}", "train.thresholds": "per-label"}.get(dotted, value)
        cfg = SFTRunConfig()
        with pytest.raises(ConfigError, match=rf"^{dotted} is not used by SFT"):
            SFTRunConfig.from_dict({**cfg.to_dict(), section: {**getattr(cfg, section).__dict__, name: value}, "sft": {}})


def test_a_study_cell_config_takes_each_methods_own_flags(tmp_path):
    from lsllm import study

    spec = {"flags": ["--data", "x.tsv", "--prompt", "Review: {text}", "--no-pack", "--epochs", "2"]}
    ls_cfg, explicit = study.cell_config(spec, study.Cell(64, "unls", 1), tmp_path / "a", resume=False)
    assert ls_cfg.model.bidirectional and ls_cfg.model.prompt == "Review: {text}" and ls_cfg.data.train_limit == 64
    assert ls_cfg.train.seed == ls_cfg.data.subset_seed == 1 and "train.epochs" in explicit
    sft_cfg, _ = study.cell_config(spec, study.Cell(64, "sft", 1), tmp_path / "b", resume=False)
    assert sft_cfg.model.prompt is None and sft_cfg.train.pack is False and sft_cfg.train.epochs == 2
