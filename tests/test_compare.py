"""compare: LS / unLS / SFT runs in one table, seeds folded into mean ± std."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lsllm.compare import compare_rows, compare_runs
from lsllm.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from lsllm.errors import ConfigError
from lsllm.sft.config import SFTRunConfig


def make_run(root: Path, name: str, cfg, test: dict, train: dict | None = None) -> Path:
    run = root / name
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    metrics = {"validation": dict(test), "test": dict(test)}
    if train is not None:
        metrics["train"] = train
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def sft_cfg(seed: int) -> SFTRunConfig:
    return SFTRunConfig(data=DataConfig(data="sst2", train_limit=1000), train=TrainConfig(seed=seed, output=f"runs/s{seed}"))


def test_seeds_are_folded_into_mean_and_std(tmp_path):
    runs = [
        make_run(tmp_path, "ls", RunConfig(data=DataConfig(data="sst2", train_limit=1000)), {"accuracy": 0.9, "f1_macro": 0.89}),
        make_run(tmp_path, "unls", RunConfig(model=ModelConfig(bidirectional=True), data=DataConfig(data="sst2")),
                 {"accuracy": 0.92, "f1_macro": 0.91}),
        make_run(tmp_path, "sft1", sft_cfg(1), {"accuracy": 0.80, "f1_macro": 0.70, "irregular": 2}, {"n_examples": 1000}),
        make_run(tmp_path, "sft2", sft_cfg(2), {"accuracy": 0.84, "f1_macro": 0.74, "irregular": 4}, {"n_examples": 1000}),
    ]
    rows = compare_rows(runs)
    assert [r["method"] for r in rows] == ["LS-LLM", "LS-unLLM", "SFT (chat)"]
    sft = rows[2]
    assert sft["seeds"] == "1,2"
    assert sft["accuracy"] == "82.00 ± 2.83"  # mean 0.82, sample std 0.0283
    assert sft["f1_macro"] == "72.00 ± 2.83"
    assert sft["irregular"] == "3.0 ± 1.4"
    assert sft["train examples"] == 1000
    assert rows[0]["accuracy"] == "90.00" and rows[0]["irregular"] == "—"  # LS runs have no irregular outputs
    assert rows[1]["train examples"] == "all"

    table = compare_runs(runs).splitlines()
    assert table[0].startswith("| method | model | data | train examples |")
    assert len(table) == 2 + 3
    assert "| SFT (chat) | smollm2-135m | sst2 | 1000 | 1,2 | test | 82.00 ± 2.83 |" in table[4]


def test_runs_that_differ_in_more_than_the_seed_stay_apart(tmp_path):
    other = sft_cfg(2)
    other.train.lr = 1e-4
    runs = [make_run(tmp_path, "a", sft_cfg(1), {"accuracy": 0.8, "f1_macro": 0.8, "irregular": 0}),
            make_run(tmp_path, "b", other, {"accuracy": 0.9, "f1_macro": 0.9, "irregular": 0})]
    rows = compare_rows(runs)
    assert [r["accuracy"] for r in rows] == ["80.00", "90.00"]
    assert [r["irregular"] for r in rows] == ["0", "0"]  # a single run's count stays an integer


def test_a_folder_without_a_run_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not a run directory"):
        compare_runs([tmp_path])
