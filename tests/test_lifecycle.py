"""The run lifecycle: a kill at any moment resumes to the same result, and a finished run stays finished.

The tiny training set has 36 examples, 9 steps of 4 per epoch, so `--max-steps 6` ends inside
an epoch: the case where the Trainer, resumed at its last step, used to train a 7th step.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from lsllm import runs, training
from lsllm.cli import main
from tests.conftest import resume_trains_no_step

FLAGS = ["--max-steps", "6", "--eval-steps", "2", "--batch-size", "4", "--lr", "1e-3", "--lora-r", "4", "--dtype", "float32",
         "--seed", "5"]


def _flags(data, model):
    return ["--data", str(data), "--model", str(model), *FLAGS]


@pytest.fixture
def whole(tmp_path, tiny_model_dir, tiny_seq_data):
    out = tmp_path / "whole"
    assert main(["train", *_flags(tiny_seq_data, tiny_model_dir), "--output", str(out)]) == 0
    return out


def _same_run(a, b) -> None:
    assert json.loads((a / "metrics.json").read_text()) == json.loads((b / "metrics.json").read_text())
    wa, wb = load_file(a / "model" / "adapter_model.safetensors"), load_file(b / "model" / "adapter_model.safetensors")
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], atol=1e-6, rtol=1e-5)
    assert json.loads((b / "run.json").read_text())["steps"] == 6


def test_run_record_says_how_to_reproduce_and_how_long(whole):
    record = json.loads((whole / "run.json").read_text())
    assert record["steps"] == 6 and record["seconds"] > 0 and record["resumed"] is False
    assert record["reproduce"] == f"lsllm train --config {whole / 'config.yaml'} --output NEW_DIR"
    assert record["command"][:2] == ["lsllm", "train"] and str(whole) in record["command"]
    assert record["examples"] == {"train": 36, "validation": 12, "test": 12}


def test_killed_while_writing_the_final_model_resumes_without_an_extra_step(whole, tmp_path, tiny_model_dir, tiny_seq_data,
                                                                            monkeypatch):
    cut = tmp_path / "cut"
    original = training.save_classifier

    def dying_save(run, *args, **kwargs):
        (run.root / f".model.tmp-{999999}").mkdir()  # what a kill inside save_model leaves behind
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_classifier", dying_save)
    assert main(["train", *_flags(tiny_seq_data, tiny_model_dir), "--output", str(cut)]) == 130
    assert not (cut / "metrics.json").exists() and (cut / ".model.tmp-999999").is_dir()
    monkeypatch.setattr(training, "save_classifier", original)
    resume_trains_no_step(monkeypatch, cut)
    assert not (cut / ".model.tmp-999999").exists()
    _same_run(whole, cut)


def test_resume_of_a_finished_run_changes_nothing(whole, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in whole.iterdir() if p.is_file()}
    assert main(["train", "--output", str(whole), "--resume"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in whole.iterdir() if p.is_file()} == before


def test_killed_mid_training_resumes_exactly(whole, tmp_path, tiny_model_dir, tiny_seq_data, monkeypatch):
    cut = tmp_path / "cut"
    original_step = training.LSTrainer.training_step

    def dying_step(self, *args, **kwargs):
        if self.state.global_step == 5:
            raise KeyboardInterrupt  # between checkpoints 4 and 6
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(training.LSTrainer, "training_step", dying_step)
    assert main(["train", *_flags(tiny_seq_data, tiny_model_dir), "--output", str(cut)]) == 130
    monkeypatch.setattr(training.LSTrainer, "training_step", original_step)
    assert main(["train", "--output", str(cut), "--resume"]) == 0
    _same_run(whole, cut)


def test_a_run_that_died_before_its_first_checkpoint_can_be_started_again(tmp_path, tiny_model_dir, tiny_seq_data, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setattr(training.LSTrainer, "training_step", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["train", *_flags(tiny_seq_data, tiny_model_dir), "--output", str(out)]) == 130
    assert (out / "config.yaml").is_file() and not runs.RunDir(out).started_training()
    monkeypatch.undo()
    assert main(["train", *_flags(tiny_seq_data, tiny_model_dir), "--output", str(out)]) == 0
    assert runs.RunDir(out).finished()


def test_a_run_with_a_checkpoint_is_not_overwritten(whole, tiny_model_dir, tiny_seq_data, capsys):
    assert main(["train", *_flags(tiny_seq_data, tiny_model_dir), "--output", str(whole)]) == 2
    assert "--resume" in capsys.readouterr().err
