"""--dtype int8 at inference: the backbone's linear layers as dynamic int8, the head fp32, predictions close to fp32."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from lsllm.cli import main
from lsllm.pipeline import load_run


@pytest.mark.parametrize("fixture", ["seq_run", "token_run"])
def test_int8_quantizes_the_backbone_keeps_the_head_and_predicts_like_fp32(fixture, request):
    run = request.getfixturevalue(fixture)
    fp32, _ = load_run(run, dtype="float32", device="cpu")
    int8, _ = load_run(run, dtype="int8", device="cpu")
    quantized = [name for name, m in int8.model.named_modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert quantized and all("score" not in name for name in quantized)
    assert isinstance(int8.model.score, nn.Linear) and int8.model.score.weight.dtype == torch.float32
    texts = ["a great movie", "boring and flat", "EU rejects German call to boycott British lamb ."]
    a, b = fp32.predict_texts(texts), int8.predict_texts(texts)
    if fixture == "seq_run":
        for x, y in zip(a, b, strict=True):
            assert y["probabilities"] == pytest.approx(x["probabilities"], abs=0.02)
    else:
        assert [len(x["tags"]) for x in a] == [len(y["tags"]) for y in b]


def test_predict_and_eval_take_dtype_int8(seq_run, capsys):
    assert main(["predict", str(seq_run), "a great movie", "--dtype", "int8"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert set(record["probabilities"]) == {"negative", "positive"}
    assert main(["eval", str(seq_run), "--split", "test", "--dtype", "int8"]) == 0
    assert "accuracy" in capsys.readouterr().out


def test_int8_needs_an_fp32_model():
    from lsllm.models.int8 import quantize_int8

    with pytest.raises(ValueError, match="fp32"):
        quantize_int8(nn.Sequential(nn.Linear(4, 4)).to(torch.bfloat16))
