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
