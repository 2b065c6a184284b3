"""Trained tiny runs (seq and token) shared by the server tests, trained once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsllm.cli import main
from tests.conftest import CONLL, NEGATIVE, POSITIVE

TRAIN_FLAGS = ["--max-steps", "4", "--eval-steps", "2", "--batch-size", "4", "--lora-r", "4", "--dtype", "float32"]


def _train(data: Path, model: Path, out: Path) -> Path:
    code = main(["train", "--data", str(data), "--model", str(model), "--output", str(out), *TRAIN_FLAGS])
    assert code == 0, "lsllm train failed on the tiny model"
    return out


@pytest.fixture(scope="session")
def seq_run(tmp_path_factory, tiny_model_dir) -> Path:
    folder = tmp_path_factory.mktemp("serve-seq-data")
    rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
    for split, repeat in (("train", 2), ("validation", 1), ("test", 1)):
        lines = ["text\tlabel"] + [f"{t}\t{label}" for _ in range(repeat) for t, label in rows]
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return _train(folder, tiny_model_dir, tmp_path_factory.mktemp("serve-seq") / "run")


@pytest.fixture(scope="session")
def token_run(tmp_path_factory, tiny_model_dir) -> Path:
    folder = tmp_path_factory.mktemp("serve-token-data")
    for split, repeat in (("train", 2), ("validation", 1), ("test", 1)):
        (folder / f"{split}.txt").write_text("\n".join([CONLL] * repeat))
    return _train(folder, tiny_model_dir, tmp_path_factory.mktemp("serve-token") / "run")


@pytest.fixture(scope="session")
def seq_classifier(seq_run):
    from lsllm.pipeline import load_run

    return load_run(seq_run, dtype="float32", device="cpu")[0]


@pytest.fixture(scope="session")
def token_classifier(token_run):
    from lsllm.pipeline import load_run

    return load_run(token_run, dtype="float32", device="cpu")[0]
