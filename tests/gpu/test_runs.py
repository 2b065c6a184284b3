"""Runs trained on CUDA, used as a user would there: predict, eval, merge, QLoRA and `lsllm serve`.

The runs are trained with a bf16 backbone (`--dtype bfloat16`), so predict and serve run bf16 on the
GPU; the merged model is fp32 (`lsllm merge` writes fp32 on the CPU) and is checked on the GPU in fp32.
Probabilities are compared to 3e-2 across those dtypes (bf16 logits of a 2-layer model).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from tests.conftest import free_port, wait_until_healthy
from tests.gpu.conftest import DEVICE, GPU, ON_CUDA, train_run

from lsllm.cli import main
from lsllm.data.encoding import apply_prompt

pytestmark = GPU

TEXTS = ["a great movie", "boring and flat", "i loved it"]
BF16_PROB_TOL = 3e-2


def predict_records(run: Path, texts: list[str], capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["predict", str(run), *texts]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_predict_on_cuda_matches_the_merged_model_in_stock_transformers(seq_run, tmp_path, capsys):
    records = predict_records(seq_run, TEXTS, capsys)
    assert [r["text"] for r in records] == TEXTS
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in records)
    merged = tmp_path / "merged"
    assert main(["merge", str(seq_run), str(merged)]) == 0
    model = transformers.AutoModelForSequenceClassification.from_pretrained(merged, dtype=torch.float32).to(DEVICE).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(merged)
    prompt = json.loads((seq_run / "model" / "lsllm.json").read_text())["prompt"]  # the input goes inside the run's prompt
    for text, record in zip(TEXTS, records, strict=True):
        with torch.no_grad():  # one text per call: no padding for the stock head to look past
            inputs = tokenizer([apply_prompt(prompt, text)], return_tensors="pt").to(DEVICE)
            probs = model(**inputs).logits.float().softmax(-1)[0].cpu()
        expected = [record["probabilities"][model.config.id2label[i]] for i in range(len(probs))]
        assert probs.tolist() == pytest.approx(expected, abs=BF16_PROB_TOL), text


def test_eval_on_cuda_reproduces_the_runs_test_metrics(seq_run):
    assert main(["eval", str(seq_run), "--split", "test"]) == 0
    again = json.loads((seq_run / "eval-test.json").read_text())["test"]
    metrics = json.loads((seq_run / "metrics.json").read_text())["test"]
    assert again["n_examples"] == metrics["n_examples"] == 12
    # training scored the selected adapter unmerged over bf16 weights, eval merges it first: at most one
    # near-tie example may flip between the two bf16 roundings
    assert abs(again["accuracy"] - metrics["accuracy"]) <= 1 / 12 + 1e-9


def test_token_run_on_cuda_predicts_entities_with_offsets(token_run, capsys):
    text = "EU rejects German call to boycott British lamb."
    [record] = predict_records(token_run, [text], capsys)
    assert record["tokens"][-2:] == ["lamb", "."] and len(record["tags"]) == len(record["tokens"])
    for entity in record["entities"]:
        assert text[entity["char_start"]:entity["char_end"]] == entity["text"]


def bitsandbytes_import_error() -> str | None:
    """None when bitsandbytes imports here, else why not: what decides whether QLoRA must train or be refused."""
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as err:
        return f"{type(err).__name__}: {err}"
    return None


@pytest.mark.skipif(not ON_CUDA, reason="QLoRA is CUDA-only")
def test_qlora_trains_on_cuda_with_bitsandbytes_or_is_refused_in_one_line(tiny_model_dir, seq_data, tmp_path, capsys, monkeypatch):
    """Where bitsandbytes imports, --quantize 4bit must train through its 4-bit layers; where it does not, it must be
    refused in one line. Which of the two is decided here, before lsllm runs, so neither outcome can stand in for the other."""
    out = tmp_path / "qlora"
    why_not = bitsandbytes_import_error()
    if why_not is not None:
        code = main(["train", "--data", str(seq_data), "--model", str(tiny_model_dir), "--output", str(out),
                     "--quantize", "4bit", "--max-steps", "2"])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, f"bitsandbytes does not import ({why_not}): --quantize 4bit must be refused"
        [line] = [line for line in err.splitlines() if line.startswith("error:")]
        assert line.startswith("error: --quantize 4bit needs bitsandbytes")
        assert not (out / "metrics.json").exists()
        return
    import bitsandbytes as bnb

    calls = []
    forward = bnb.nn.Linear4bit.forward

    def counted(self, x, *args, **kwargs):
        calls.append(type(self).__name__)
        return forward(self, x, *args, **kwargs)

    monkeypatch.setattr(bnb.nn.Linear4bit, "forward", counted)
    train_run(seq_data, tiny_model_dir, out, "--quantize", "4bit")
    assert calls, "bitsandbytes imports, yet no 4-bit layer ran in training: --quantize 4bit was not applied"
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    records = predict_records(out, TEXTS, capsys)
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in records)
    from safetensors.torch import load_file

    tensors = load_file(out / "model" / "adapter_model.safetensors")
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for n, t in tensors.items() if "score" in n)


def test_lsllm_serve_answers_on_cuda_with_the_predictions_of_predict(seq_run, capsys):
    import httpx

    expected = predict_records(seq_run, TEXTS, capsys)
    port = free_port()
    device = DEVICE if ON_CUDA else "cpu"
    server = subprocess.Popen([sys.executable, "-m", "lsllm", "serve", str(seq_run), "--port", str(port), "--device", device],
                              env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        health = wait_until_healthy(server, url, 120)
        assert health.status_code == 200
        response = httpx.post(f"{url}/predict", json={"texts": TEXTS}, timeout=60)
        assert response.status_code == 200, response.text
        got = response.json()["predictions"]
        assert [r["text"] for r in got] == TEXTS
        for served, predicted in zip(got, expected, strict=True):
            for label, p in predicted["probabilities"].items():
                assert served["probabilities"][label] == pytest.approx(p, abs=1e-3)
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
