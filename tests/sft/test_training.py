"""TRL wiring: completion-only labels that keep EOS when pad == eos, padding-free batches that
match padded ones, and the end-to-end run on a tiny model: train, generate, score, write the run."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from lsllm.config import DataConfig, LoraSettings, ModelConfig, TrainConfig
from lsllm.data import SeqExample
from lsllm.errors import ConfigError
from lsllm.models.attention import LSLLM_SDPA
from lsllm.runs import RunDir
from lsllm.sft.config import SFTConfig, SFTRunConfig
from lsllm.sft.evaluation import evaluate_sft
from lsllm.sft.templates import PromptTemplate
from lsllm.sft.training import build_train_dataset, build_trainer, train_sft

from .conftest import FIXTURES, tiny_causal_lm

EXAMPLES = [SeqExample("a fine film", "positive"), SeqExample("a dull and very long mess of a film", "negative")]


def tiny_cfg(tmp_path, template="plain", **train) -> SFTRunConfig:
    return SFTRunConfig(
        model=ModelConfig(name=str(tmp_path / "tiny-llama"), dtype="float32"),
        lora=LoraSettings(r=4, alpha=8, dropout=0.0),
        data=DataConfig(data=str(FIXTURES / "tiny_train.tsv"), validation_file=str(FIXTURES / "tiny_validation.tsv"),
                        test_file=str(FIXTURES / "tiny_test.tsv")),
        train=TrainConfig(**{"max_steps": 3, "batch_size": 4, "lr": 1e-3, "output": str(tmp_path / "run"), **train}),
        sft=SFTConfig(template=template, max_new_tokens=3, eval_batch_size=4),
    )


@pytest.mark.parametrize("template", ["plain", "chat", "llama2-chat"])
def test_labels_cover_the_answer_and_keep_eos_although_pad_is_eos(tmp_path, smol_tokenizer, template):
    tok = smol_tokenizer
    assert tok.pad_token_id == tok.eos_token_id  # SmolLM2: the case where a collator could mask EOS away
    prompt_template = PromptTemplate(template, tok, "Answer negative or positive.")
    dataset, _ = build_train_dataset(prompt_template, EXAMPLES, 128)
    trainer = build_trainer(tiny_cfg(tmp_path, template, pack=False), tiny_causal_lm(tok), tok, dataset, RunDir(tmp_path))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    for row, example in enumerate(EXAMPLES):
        prompt_len = len(prompt_template.prompt_ids(example.text))
        real = int(batch["attention_mask"][row].sum())
        labels = batch["labels"][row]
        assert (labels[:prompt_len] == -100).all()  # no loss on the prompt
        trained = labels[prompt_len:real]
        assert trained.tolist() == batch["input_ids"][row, prompt_len:real].tolist()
        assert tok.eos_token_id in trained.tolist()  # the model learns to stop
        assert tok.decode(trained).lstrip().startswith(example.label)
        assert (labels[real:] == -100).all()  # padding (also token id eos) is not trained


def test_padding_free_batches_give_the_loss_of_padded_ones(tmp_path, smol_tokenizer):
    tok = smol_tokenizer
    dataset, _ = build_train_dataset(PromptTemplate("chat", tok, "Answer negative or positive."), EXAMPLES, 128)
    packed = build_trainer(tiny_cfg(tmp_path, "chat", pack=True), tiny_causal_lm(tok), tok, dataset, RunDir(tmp_path / "a"))
    padded = build_trainer(tiny_cfg(tmp_path, "chat", pack=False), tiny_causal_lm(tok), tok, dataset, RunDir(tmp_path / "b"))
    features = [packed.train_dataset[i] for i in range(2)]
    packed_batch = packed.data_collator(features)
    padded_batch = padded.data_collator(features)
    assert "attention_mask" not in packed_batch and packed_batch["input_ids"].shape[0] == 1  # one row, no pads
    assert "attention_mask" in padded_batch and padded_batch["input_ids"].shape[0] == 2
    model = padded.model.eval()  # the same weights read both batches
    with torch.no_grad():
        loss_packed = model(**packed_batch).loss.item()
        loss_padded = model(**padded_batch).loss.item()
    assert loss_packed == pytest.approx(loss_padded, rel=1e-5)  # examples never attend to each other


def test_packed_rows_attend_per_example_and_only_answers_meet_the_lm_head(tmp_path, smol_tokenizer, monkeypatch):
    import trl.trainer.utils as trl_utils
    from trl import SFTTrainer

    tok = smol_tokenizer
    dataset, _ = build_train_dataset(PromptTemplate("chat", tok, "Answer negative or positive."), EXAMPLES, 128)
    packed = build_trainer(tiny_cfg(tmp_path, "chat", pack=True), tiny_causal_lm(tok), tok, dataset, RunDir(tmp_path / "a"))
    padded = build_trainer(tiny_cfg(tmp_path, "chat", pack=False), tiny_causal_lm(tok), tok, dataset, RunDir(tmp_path / "b"))
    assert packed.model.config._attn_implementation == LSLLM_SDPA  # CPU: attention per example
    features = [packed.train_dataset[i] for i in range(2)]
    lengths = [len(f["input_ids"]) for f in features]
    packed_batch = packed.data_collator(features)
    assert packed_batch["lsllm_segments"] == (((lengths[0], 1), (lengths[1], 1)),)
    n_answer = int((packed_batch["labels"][:, 1:] != -100).sum())

    projected = []
    chunked = trl_utils._ChunkedLogProbFunction

    class Spy:
        @staticmethod
        def apply(hidden, *args):
            projected.append(hidden.shape[0])
            return chunked.apply(hidden, *args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Spy)
    # Identical base weights and LoRA B = 0: the two trainers' models compute the same function.
    loss_fast = packed.compute_loss(packed.model, dict(packed_batch))
    loss_fast.backward()
    grads_fast = {n: p.grad.clone() for n, p in packed.model.named_parameters() if p.requires_grad}
    packed.model.zero_grad()
    loss_trl = SFTTrainer.compute_loss(packed, packed.model, dict(packed_batch))  # TRL's own: every position on CPU
    loss_trl.backward()
    assert projected == [n_answer, sum(lengths) - 1]
    assert loss_fast.item() == pytest.approx(loss_trl.item(), rel=1e-5)
    for name, p in packed.model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(grads_fast[name], p.grad, rtol=1e-4, atol=1e-6)
    loss_padded = padded.compute_loss(padded.model, dict(padded.data_collator(features)))
    assert loss_fast.item() == pytest.approx(loss_padded.item(), rel=1e-5)  # examples never attend to each other


def test_end_to_end_tiny_run(tmp_path, tiny_model_dir):
    cfg = tiny_cfg(tmp_path, "chat", max_steps=8, lr=1e-2)
    cfg.lora = LoraSettings(r=8, alpha=16, dropout=0.0)  # enough for some answers to be label words
    run_dir = train_sft(cfg)
    run = RunDir(run_dir)
    for path in (run.config, run.metrics, run.predictions, run.card, run.model / "adapter_config.json",
                 run.model / "adapter_model.safetensors", run.model / "tokenizer.json"):
        assert path.is_file(), path
    assert any(run.logs.iterdir())

    metrics = json.loads(run.metrics.read_text())
    train = metrics["train"]
    assert train["n_examples"] == 24 and train["steps"] == 8
    assert train["train_loss_start"] > 0 and train["train_loss_end"] > 0
    assert "validation" not in metrics  # SFT selects nothing on validation: only test is scored by default
    m = metrics["test"]
    assert m["n_examples"] == 6 and m["scoring"] == "generate" and m["max_new_tokens"] == 3
    for key in ("accuracy", "f1_macro", "f1_weighted"):
        assert 0.0 <= m[key] <= 1.0
    assert isinstance(m["irregular"], int) and 0 <= m["irregular"] <= 6
    assert sum(n for _, n in m["irregular_top"]) == m["irregular"]

    rows = [json.loads(line) for line in run.predictions.read_text().splitlines()]
    assert len(rows) == 6
    assert all(set(r) == {"text", "label", "gold", "raw_output", "irregular"} for r in rows)
    assert all(r["irregular"] == (r["label"] is None) for r in rows)
    assert sum(r["irregular"] for r in rows) == metrics["test"]["irregular"]
    assert sum(r["label"] == r["gold"] for r in rows) / 6 == pytest.approx(metrics["test"]["accuracy"])
    assert metrics["test"]["irregular"] < 6  # some answers parsed as labels

    saved = SFTRunConfig.load(run.config)
    assert saved.data.labels == ["negative", "positive"] and saved.sft.template == "chat"
    adapter = load_file(run.model / "adapter_model.safetensors")
    assert any("lora_B" in name and tensor.abs().sum() > 0 for name, tensor in adapter.items())  # it trained

    # Reloaded from the run directory (base + merged adapter), it answers exactly as at the end of training.
    again = evaluate_sft(run_dir, split="test", predictions_path=tmp_path / "again.jsonl")
    assert again["accuracy"] == metrics["test"]["accuracy"] and again["irregular"] == metrics["test"]["irregular"]
    reread = [json.loads(line) for line in (tmp_path / "again.jsonl").read_text().splitlines()]
    assert [r["raw_output"] for r in reread] == [r["raw_output"] for r in rows]

    # The same run scored by label likelihood: every prediction a label, the adapter unchanged.
    by_likelihood = evaluate_sft(run_dir, split="test", sft_overrides={"scoring": "likelihood"})
    assert by_likelihood["scoring"] == "likelihood" and by_likelihood["irregular"] == 0
    assert sum(map(sum, by_likelihood["confusion_matrix"]["matrix"])) == 6  # every prediction is a label

    with pytest.raises(ConfigError, match="already holds a run"):
        train_sft(cfg)


def test_full_finetuning_saves_the_whole_model_and_reloads_it_exactly(tmp_path, tiny_model_dir):
    cfg = tiny_cfg(tmp_path, "chat", max_steps=4, lr=1e-3)
    cfg.lora = LoraSettings(enabled=False)  # --no-lora: TRL trains every weight
    run = RunDir(train_sft(cfg))
    assert not (run.model / "adapter_config.json").exists()
    assert json.loads((run.model / "lsllm-sft.json").read_text())["finetune"] == "full"
    trained, base = load_file(run.model / "model.safetensors"), load_file(tiny_model_dir / "model.safetensors")
    matrices = [name for name in base if base[name].dim() == 2]
    assert matrices and all(not torch.equal(trained[name], base[name]) for name in matrices)
    assert "full fine-tuning" in run.card.read_text()
    metrics = json.loads(run.metrics.read_text())
    rows = [json.loads(line) for line in run.predictions.read_text().splitlines()]
    again = evaluate_sft(run.root, split="test", predictions_path=tmp_path / "again.jsonl")
    assert again["accuracy"] == metrics["test"]["accuracy"]
    assert [json.loads(line)["raw_output"] for line in (tmp_path / "again.jsonl").read_text().splitlines()] == \
        [r["raw_output"] for r in rows]


def test_full_finetuning_of_a_4bit_backbone_is_refused(tmp_path):
    cfg = SFTRunConfig(model=ModelConfig(quantize="4bit"), lora=LoraSettings(enabled=False),
                       data=DataConfig(data=str(FIXTURES / "tiny_train.tsv")), train=TrainConfig(output=str(tmp_path / "run")))
    with pytest.raises(ConfigError, match="--no-lora"):
        train_sft(cfg)
    assert not (tmp_path / "run").exists()


def test_token_datasets_are_refused_before_any_model_is_loaded(tmp_path):
    conll = tmp_path / "ner.conll"
    conll.write_text("John B-PER\nlives O\nhere O\n\nMary B-PER\nsings O\n\n")
    cfg = SFTRunConfig(model=ModelConfig(name="no-such-model"), data=DataConfig(data=str(conll)),
                       train=TrainConfig(output=str(tmp_path / "run")))
    with pytest.raises(ConfigError, match="not offered for token tasks"):
        train_sft(cfg)


def test_qlora_without_cuda_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = SFTRunConfig(model=ModelConfig(quantize="4bit"), data=DataConfig(data=str(FIXTURES / "tiny_train.tsv")),
                       train=TrainConfig(output=str(tmp_path / "run")))
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        train_sft(cfg)


def test_resume_needs_a_run_to_continue(tmp_path):
    cfg = tiny_cfg(tmp_path, resume=True)
    with pytest.raises(ConfigError, match="holds no run"):
        train_sft(cfg)
