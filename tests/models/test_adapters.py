"""LoRA: only adapters and the head train, the base stays frozen, the head is saved, merge is exact."""

from __future__ import annotations

import pytest
import torch
import transformers

from lsllm.config import LoraSettings
from lsllm.errors import ConfigError
from lsllm.models.adapters import apply_lora, attach_adapter, merged_for_inference
from lsllm.models.classifiers import LSForSequenceClassification
from tests.conftest import tiny_config

IDS = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
MASK = (IDS != 0).long()


def build():
    torch.manual_seed(0)
    return LSForSequenceClassification(tiny_config("llama", num_labels=2))


def test_only_adapters_and_head_train_and_base_is_unchanged_after_a_step(tmp_path):
    model = apply_lora(build(), LoraSettings(r=4, alpha=8, dropout=0.0))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or ".score." in n for n in trainable)
    assert any("score" in n for n in trainable)
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    head_before = model.base_model.model.score.modules_to_save["default"].weight.detach().clone()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(input_ids=IDS, attention_mask=MASK, labels=torch.tensor([0, 1])).loss.backward()
    optimizer.step()
    for name, param in model.named_parameters():
        if name in frozen_before:
            assert torch.equal(param, frozen_before[name]), name
    assert not torch.equal(model.base_model.model.score.modules_to_save["default"].weight, head_before)
    model.save_pretrained(tmp_path)
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "adapter_model.safetensors")
    assert any("score" in k for k in saved) and any("lora_A" in k for k in saved)
    model.eval()
    expected = model(input_ids=IDS, attention_mask=MASK).logits
    unmerged = attach_adapter(build(), tmp_path, merge=False)
    torch.testing.assert_close(unmerged(input_ids=IDS, attention_mask=MASK).logits, expected)
    merged = attach_adapter(build(), tmp_path, dtype=torch.float32)
    assert not any("lora_" in n for n, _ in merged.named_parameters())  # folded in: no adapter ops left
    torch.testing.assert_close(merged(input_ids=IDS, attention_mask=MASK).logits, expected, atol=1e-5, rtol=1e-4)


def test_merged_model_loads_in_plain_transformers_with_equal_logits(tmp_path):
    model = apply_lora(build(), LoraSettings(r=4, alpha=8, dropout=0.0))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_()  # make the adapter matter
    model.eval()
    expected = model(input_ids=IDS, attention_mask=MASK).logits
    merged = model.merge_and_unload()  # what `lsllm merge` saves (through attach_adapter)
    merged.save_pretrained(tmp_path)
    stock = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(stock).__name__ == "LlamaForSequenceClassification"
    torch.testing.assert_close(stock(input_ids=IDS, attention_mask=MASK).logits, expected, atol=1e-5, rtol=1e-4)


def test_unknown_target_module_is_refused_with_the_known_names():
    with pytest.raises(ConfigError, match="q_proj"):
        apply_lora(build(), LoraSettings(target_modules=["query"]))


def test_merged_inference_matches_adapter_ops_and_restores_the_base_exactly():
    model = apply_lora(build(), LoraSettings(r=4, alpha=8, dropout=0.1))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_()
    model.eval()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    expected = model(input_ids=IDS, attention_mask=MASK).logits
    with merged_for_inference(model):
        merged_logits = model(input_ids=IDS, attention_mask=MASK).logits
    torch.testing.assert_close(merged_logits, expected, atol=1e-5, rtol=1e-4)
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name]), name
    torch.testing.assert_close(model(input_ids=IDS, attention_mask=MASK).logits, expected)
