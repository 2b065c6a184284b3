"""oneDNN packed linears (lsllm.models.kernels): the same outputs as nn.Linear, chosen by a cached probe, opt-out."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from torch import nn

from lsllm.errors import ConfigError
from lsllm.models import kernels
from lsllm.models.kernels import OneDnnLinear, choose_matmul, onednn_supported, use_matmul

needs_onednn = pytest.mark.skipif(not onednn_supported(torch.float32), reason="this torch build has no oneDNN linear")
DEMO_PROMPT = "Review: {text}\nSentiment:"


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty $LSLLM_CACHE, and the module's read of it forgotten."""
    monkeypatch.setenv("LSLLM_CACHE", str(tmp_path / "cache"))
    kernels._read_cache.cache_clear()
    yield tmp_path / "cache" / kernels.CACHE_FILE
    kernels._read_cache.cache_clear()


@needs_onednn
@pytest.mark.parametrize("bias", [False, True])
def test_a_packed_linear_computes_nn_linear(bias):
    torch.manual_seed(0)
    linear = nn.Linear(48, 80, bias=bias)
    x = torch.randn(3, 17, 48)[:, 2:]  # 3D and not contiguous, as the attention's outputs come
    packed = OneDnnLinear(linear)
    with torch.inference_mode():
        torch.testing.assert_close(packed(x), linear(x), atol=1e-6, rtol=1e-5)
    assert torch.equal(packed.weight, linear.weight.detach())  # unpacked on demand, bit for bit


def _classifier(model_dir, task: str, dtype: torch.dtype, matmul: str):
    from lsllm.inference.classifier import Classifier
    from lsllm.models.backbones import load_tokenizer
    from lsllm.models.classifiers import LSForSequenceClassification, LSForTokenClassification
    from lsllm.problems import family

    cls = LSForSequenceClassification if task == "seq" else LSForTokenClassification
    labels = ["negative", "positive"] if task == "seq" else ["O", "B-PER", "I-PER", "B-ORG"]
    torch.manual_seed(0)
    model = cls.from_pretrained(str(model_dir), num_labels=len(labels), dtype=torch.float32).to(dtype).eval()
    swapped = use_matmul(model, matmul)
    if matmul == "onednn":
        assert swapped == 7 * model.config.num_hidden_layers  # q k v o gate up down; the head stays nn.Linear
        assert isinstance(model.score, nn.Linear)
    return Classifier(model, load_tokenizer(model_dir), labels, family(task), 64, prompt=DEMO_PROMPT if task == "seq" else None)


TEXTS = ["a great movie", "boring and flat , a tedious mess from start to end", "ok", "EU rejects German call to boycott "
         "British lamb .", "Peter Blackburn", "i loved it", "a moving , lovely film with superb acting and a fine script"]


def _outputs(classifier, max_batch_tokens: int, texts=TEXTS) -> list[torch.Tensor]:
    """Unrounded probabilities per input (records round to 6 decimals): seq (C,), token (n, C)."""
    from lsllm.data import SeqExample, TokenExample

    classifier.max_batch_tokens = max_batch_tokens  # several packed rows: seq_index with many examples per row
    examples = [SeqExample(t) if classifier.task == "seq" else TokenExample(t.split()) for t in texts]
    return classifier.probabilities(classifier.encode(examples))


@needs_onednn
@pytest.mark.parametrize("task", ["seq", "token"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_fp32_packed_batches_give_todays_probabilities(tiny_model_dir, task, bidirectional):
    """Packed rows (seq_index), per-example attention, causal and unmasked: oneDNN = nn.Linear within 1e-6."""
    got = {}
    for matmul in ("torch", "onednn"):
        classifier = _classifier(tiny_model_dir, task, torch.float32, matmul)
        classifier.model.set_attention(bidirectional)
        got[matmul] = _outputs(classifier, 48)
    for a, b in zip(got["torch"], got["onednn"], strict=True):
        assert float((a - b).abs().max()) <= 1e-6
        assert torch.equal(a.argmax(-1), b.argmax(-1))


@pytest.mark.skipif(not onednn_supported(torch.bfloat16), reason="no oneDNN bf16 linear on this CPU")
def test_bf16_packed_batches_agree_to_bf16_rounding(tiny_model_dir):
    a, b = (_outputs(_classifier(tiny_model_dir, "token", torch.bfloat16, m), 48) for m in ("torch", "onednn"))
    for x, y in zip(a, b, strict=True):
        assert float((x - y).abs().max()) <= 2e-2


def test_torch_keeps_nn_linear_and_bad_settings_are_one_line(tiny_model_dir):
    classifier = _classifier(tiny_model_dir, "seq", torch.float32, "torch")
    assert choose_matmul(classifier.model, "torch") == "torch"
    assert not any(isinstance(m, OneDnnLinear) for m in classifier.model.modules())
    with pytest.raises(ConfigError, match="--matmul must be one of auto, onednn, torch"):
        choose_matmul(classifier.model, "mkl")


def test_auto_probes_once_per_machine_and_shape_and_caches_the_verdict(tiny_model_dir, fresh_cache, monkeypatch):
    model = _classifier(tiny_model_dir, "seq", torch.float32, "torch").model
    calls = []
    real_probe = kernels.probe

    def counted(dtype, shapes, rounds=4):
        calls.append(dict(shapes))
        return real_probe(dtype, shapes, rounds=1)

    monkeypatch.setattr(kernels, "probe", counted)
    first = choose_matmul(model, "auto")
    expected = "onednn" if onednn_supported(torch.float32) else "torch"
    if expected == "torch":  # no oneDNN here: nothing to measure
        assert first == "torch" and calls == []
        return
    assert calls == [{(32, 32): 4, (32, 16): 4, (32, 64): 4, (64, 32): 2}]  # the tiny model's weights, by layer count
    cached = json.loads(fresh_cache.read_text())
    (key, verdict), = cached.items()
    assert verdict["choice"] == first and "float32" in key and "threads" in key
    assert verdict["agree"] is True
    kernels._read_cache.cache_clear()  # a new process: read from the file, not measured again
    assert choose_matmul(model, None) == first
    assert len(calls) == 1


def test_auto_takes_what_the_cached_verdict_says(tiny_model_dir, fresh_cache, monkeypatch):
    model = _classifier(tiny_model_dir, "seq", torch.float32, "torch").model
    if not onednn_supported(torch.float32):
        pytest.skip("no oneDNN here: auto is torch without a probe")
    monkeypatch.setattr(kernels, "probe", lambda *a, **k: pytest.fail("measured although a verdict is cached"))
    for choice in ("torch", "onednn"):
        key = kernels._cache_key(torch.float32, kernels.weight_shapes(model))
        fresh_cache.parent.mkdir(parents=True, exist_ok=True)
        fresh_cache.write_text(json.dumps({key: {"choice": choice}}))
        kernels._read_cache.cache_clear()
        assert choose_matmul(model, "auto") == choice


def test_the_probe_refuses_a_kernel_that_disagrees(monkeypatch):
    if not onednn_supported(torch.float32):
        pytest.skip("no oneDNN linear in this build")
    monkeypatch.setattr(OneDnnLinear, "forward", lambda self, x: torch.zeros(*x.shape[:-1], self.out_features))
    verdict = kernels.probe(torch.float32, Counter({(64, 64): 1}), rounds=1)
    assert verdict["agree"] is False and verdict["choice"] == "torch"


@needs_onednn
def test_predict_matmul_flag_changes_nothing_but_the_kernel(seq_run, capsys):
    from lsllm.cli import main

    records = {}
    for matmul in ("torch", "onednn"):
        assert main(["predict", str(seq_run), "a great movie", "boring and flat", "--matmul", matmul]) == 0
        records[matmul] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for a, b in zip(records["torch"], records["onednn"], strict=True):
        assert a["label"] == b["label"]
        # records round to 6 decimals: two roundings apart at most 1e-6 more than the probabilities themselves
        assert max(abs(a["probabilities"][k] - b["probabilities"][k]) for k in a["probabilities"]) <= 2e-6


def test_matmul_is_refused_for_the_onnx_backend(seq_run):
    from lsllm.inference.backends import open_classifier

    with pytest.raises(ConfigError, match="--matmul onednn applies to the PyTorch backend"):
        open_classifier(seq_run, backend="onnx", matmul="onednn")


def test_the_opened_classifier_says_which_kernel_runs(seq_run, fresh_cache):
    from lsllm.inference.backends import open_classifier

    opened = open_classifier(seq_run, matmul="torch")
    assert opened.classifier.matmul == "torch"
    assert not any(isinstance(m, OneDnnLinear) for m in opened.classifier.model.modules())
    if onednn_supported(torch.float32):
        opened = open_classifier(seq_run, dtype="float32", matmul="onednn")
        assert opened.classifier.matmul == "onednn"
        assert sum(isinstance(m, OneDnnLinear) for m in opened.classifier.model.modules()) > 0


@pytest.mark.slow
@needs_onednn
def test_real_smollm2_fp32_probabilities_are_todays(real_model_dir, shared_data):
    """The issue's case: SmolLM2-135M in fp32 behind the demo prompt, 96 SST-2 sentences, packed as predict packs them."""
    lines = (shared_data / "sst2" / "validation.tsv").read_text().splitlines()[1:]
    texts = [line.rpartition("\t")[0] for line in lines if line.strip()][::9][:96]
    got = {}
    for matmul in ("torch", "onednn"):
        got[matmul] = torch.stack(_outputs(_classifier(real_model_dir, "seq", torch.float32, matmul), 2048, texts))
    assert float((got["torch"] - got["onednn"]).abs().max()) <= 5e-6
    assert torch.equal(got["torch"].argmax(-1), got["onednn"].argmax(-1))


@needs_onednn
def test_a_block_of_packed_inference_leaves_a_lora_model_as_it_was(tiny_model_dir):
    """The benchmark's lsllm path infers, then trains on: weights and modules come back bit for bit."""
    from lsllm.config import LoraSettings
    from lsllm.models.adapters import apply_lora, merged_for_inference
    from lsllm.models.classifiers import LSForSequenceClassification

    torch.manual_seed(0)
    base = LSForSequenceClassification.from_pretrained(str(tiny_model_dir), num_labels=2, dtype=torch.float32)
    model = apply_lora(base, LoraSettings(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"])).eval()
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter)  # a trained adapter: merging changes q and v
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    modules = dict(model.named_modules())
    ids = torch.tensor([[5, 9, 14, 3, 7, 11]])
    with torch.inference_mode():
        expected = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        with merged_for_inference(model), kernels.matmul_for_inference(model, "onednn"):
            assert sum(isinstance(m, OneDnnLinear) for m in model.modules()) == 14  # 7 per layer, 2 layers
            got = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    assert dict(model.named_modules()).keys() == modules.keys()
    assert all(model.get_submodule(name) is module for name, module in modules.items())
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, before[name]), name


def test_the_server_says_which_kernel_multiplies(seq_run, fresh_cache):
    from fastapi.testclient import TestClient

    from lsllm.serve.app import app_from_run

    with TestClient(app_from_run(seq_run, matmul="torch")) as client:
        info = client.get("/info").json()
    assert info["backend"] == "torch" and info["matmul"] == "torch"
