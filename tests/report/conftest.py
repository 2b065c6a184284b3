"""Tiny real runs for the report tests (and the browser tests): one sequence, one NER run.

Trained once per session through `lsllm train` on the tiny random Llama of tests/conftest.py
(a few seconds each); the reports are written from their real run directories.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lsllm.cli import main
from tests.conftest import CONLL, NEGATIVE, POSITIVE

TRAIN_FLAGS = ["--max-steps", "6", "--eval-steps", "3", "--batch-size", "4", "--lr", "1e-3", "--lora-r", "4",
               "--dtype", "float32"]


def _train(data: Path, model: Path, out: Path, *extra: str) -> Path:
    code = main(["train", "--data", str(data), "--model", str(model), "--output", str(out), *TRAIN_FLAGS, *extra])
    assert code == 0, "lsllm train failed on the tiny model"
    return out


@pytest.fixture(scope="session")
def report_seq_run(tmp_path_factory, tiny_model_dir) -> Path:
    folder = tmp_path_factory.mktemp("report-seq-data")
    rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
    for split, repeat in (("train", 3), ("validation", 1), ("test", 1)):
        lines = ["text\tlabel"] + [f"{t}\t{label}" for _ in range(repeat) for t, label in rows]
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return _train(folder, tiny_model_dir, tmp_path_factory.mktemp("report-seq") / "run")


@pytest.fixture(scope="session")
def report_token_run(tmp_path_factory, tiny_model_dir) -> Path:
    folder = tmp_path_factory.mktemp("report-token-data")
    for split, repeat in (("train", 4), ("validation", 1), ("test", 1)):
        (folder / f"{split}.txt").write_text("\n".join([CONLL] * repeat))
    return _train(folder, tiny_model_dir, tmp_path_factory.mktemp("report-token") / "run", "--bidirectional")
