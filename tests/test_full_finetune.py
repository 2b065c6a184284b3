"""--no-lora: full fine-tuning trains and saves every weight, reloads exactly, resumes exactly.

Full fine-tuning keeps fp32 master weights even where the run's dtype is bf16 (AdamW steps
would round away in bf16) and gets bf16 through autocast.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from lsllm import training
from lsllm.cli import main
from lsllm.config import LoraSettings, RunConfig
from lsllm.hardware import training_dtype
from tests.conftest import resume_trains_no_step

FLAGS = ["--max-steps", "6", "--eval-steps", "3", "--batch-size", "4", "--lr", "1e-3", "--dtype", "float32", "--seed", "3",
         "--no-lora"]


def _train(data, model, out, *extra) -> int:
    return main(["train", "--data", str(data), "--model", str(model), "--output", str(out), *FLAGS, *extra])


@pytest.fixture
def full_run(tmp_path, tiny_model_dir, tiny_seq_data):
    out = tmp_path / "full"
    assert _train(tiny_seq_data, tiny_model_dir, out) == 0
    return out


def test_every_weight_is_trained_and_saved_without_an_adapter(full_run, tiny_model_dir):
    model = full_run / "model"
    assert not (model / "adapter_config.json").exists() and (model / "model.safetensors").is_file()
    assert json.loads((model / "lsllm.json").read_text())["finetune"] == "full"
    assert RunConfig.load(full_run / "config.yaml").lora.enabled is False
    trained, base = load_file(model / "model.safetensors"), load_file(tiny_model_dir / "model.safetensors")
    backbone = {name.removeprefix("model."): tensor for name, tensor in trained.items() if name != "score.weight"}
    assert "score.weight" in trained
    assert set(backbone) == {name.removeprefix("model.") for name in base if name != "lm_head.weight"}
    changed = [name for name, tensor in backbone.items() if not torch.equal(tensor, base["model." + name])]
    norms = [name for name in backbone if "norm" in name]
    assert set(changed) >= set(backbone) - set(norms)  # every matrix moved (norm weights may not at 6 steps)
    assert "full fine-tuning" in (full_run / "README.md").read_text()
    report = (full_run / "report.html").read_text()
    assert "full fine-tuning" in report and "LoRA r=" not in report


def test_eval_and_predict_reload_the_saved_weights_exactly(full_run, capsys):
    metrics = json.loads((full_run / "metrics.json").read_text())
    assert main(["eval", str(full_run), "--split", "test"]) == 0
    again = json.loads((full_run / "eval-test.json").read_text())["test"]
    assert again["accuracy"] == metrics["test"]["accuracy"]
    assert again["confusion_matrix"] == metrics["test"]["confusion_matrix"]
    saved = [json.loads(line) for line in (full_run / "predictions.jsonl").read_text().splitlines()]
    capsys.readouterr()
    assert main(["predict", str(full_run), saved[0]["text"]]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[0])
    for label, p in saved[0]["probabilities"].items():
        assert record["probabilities"][label] == pytest.approx(p, abs=1e-5)


def test_killed_mid_training_resumes_to_the_same_weights(full_run, tmp_path, tiny_model_dir, tiny_seq_data, monkeypatch):
    cut = tmp_path / "cut"
    original_step = training.LSTrainer.training_step

    def dying_step(self, *args, **kwargs):
        if self.state.global_step == 4:
            raise KeyboardInterrupt  # after the checkpoint at step 3
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(training.LSTrainer, "training_step", dying_step)
    assert _train(tiny_seq_data, tiny_model_dir, cut) == 130
    monkeypatch.setattr(training.LSTrainer, "training_step", original_step)
    assert main(["train", "--output", str(cut), "--resume"]) == 0
    assert json.loads((cut / "metrics.json").read_text()) == json.loads((full_run / "metrics.json").read_text())
    a, b = load_file(full_run / "model" / "model.safetensors"), load_file(cut / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)


def test_killed_after_the_last_step_restores_the_selected_weights_without_training(full_run, tmp_path, tiny_model_dir,
                                                                                   tiny_seq_data, monkeypatch):
    """Resume of a --no-lora run whose training was over: the selected checkpoint's full weights are loaded (no adapter)."""
    cut = tmp_path / "cut"
    original = training.save_classifier

    def dying_save(*args, **kwargs):
        raise KeyboardInterrupt  # killed while writing model/, after the last checkpoint

    monkeypatch.setattr(training, "save_classifier", dying_save)
    assert _train(tiny_seq_data, tiny_model_dir, cut) == 130
    monkeypatch.setattr(training, "save_classifier", original)
    resume_trains_no_step(monkeypatch, cut)
    assert json.loads((cut / "metrics.json").read_text()) == json.loads((full_run / "metrics.json").read_text())
    a, b = load_file(full_run / "model" / "model.safetensors"), load_file(cut / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)


def test_bf16_runs_keep_fp32_master_weights_under_autocast(tmp_path, tiny_model_dir, tiny_seq_data, monkeypatch):
    assert training_dtype("bfloat16", full_finetune=True) == (torch.float32, True)
    assert training_dtype("bfloat16", full_finetune=False) == (torch.bfloat16, False)
    assert training_dtype("float32", full_finetune=True) == (torch.float32, False)
    seen = {}
    original = training.LSTrainer.training_step

    def spy(self, model, *args, **kwargs):
        seen["bf16"], seen["dtype"] = self.args.bf16, next(model.parameters()).dtype
        return original(self, model, *args, **kwargs)

    monkeypatch.setattr(training.LSTrainer, "training_step", spy)
    out = tmp_path / "bf16"
    assert _train(tiny_seq_data, tiny_model_dir, out, "--dtype", "bfloat16", "--max-steps", "2") == 0
    assert seen == {"bf16": True, "dtype": torch.float32}
    with safe_open(str(out / "model" / "model.safetensors"), framework="pt") as weights:
        assert {weights.get_slice(k).get_dtype() for k in weights.keys()} == {"F32"}


def test_no_lora_with_a_4bit_backbone_is_one_line_before_any_work(tmp_path, tiny_seq_data, capsys):
    code = main(["train", "--data", str(tiny_seq_data), "--model", "no-such-model", "--output", str(tmp_path / "r"),
                 "--no-lora", "--quantize", "4bit"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--no-lora" in err and "--quantize" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_a_damaged_full_model_is_named_in_one_line(full_run, capsys):
    (full_run / "model" / "model.safetensors").write_bytes(b"\x00" * 16)
    assert main(["eval", str(full_run)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(full_run / "model" / "model.safetensors") in err and len(err.splitlines()) == 1


def test_lora_is_the_default_and_old_configs_without_the_field_load_as_lora():
    assert LoraSettings().enabled is True
    assert RunConfig.from_dict({"lora": {"r": 4}}).lora.enabled is True
