"""`lsllm export RUN OUT --format vllm` without the engine: the folder, the printed commands, the check, the refusals.

vLLM itself is checked in test_vllm_engine.py (its own venv); here the stock transformers class
that vLLM reimplements is the reference, and every mode vLLM cannot run is refused in one line
(exit 2) that names the ONNX export and `lsllm serve` instead.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest

from lsllm.cli import main
from tests.conftest import NEGATIVE, POSITIVE, _train_tiny


def _export(run: Path, out: Path, capsys, *flags: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["export", str(run), str(out), "--format", "vllm", *flags])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def seq_export(seq_run, tmp_path_factory) -> Path:
    from lsllm.cli import main

    out = tmp_path_factory.mktemp("vllm-export") / "out"
    assert main(["export", str(seq_run), str(out), "--format", "vllm"]) == 0
    return out


def test_the_folder_is_a_stock_checkpoint_with_its_metadata_and_the_commands_are_printed(seq_run, tmp_path, capsys):
    out = tmp_path / "for-vllm"
    code, stdout, _ = _export(seq_run, out, capsys)
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"]
    assert not [key for key in config if key.startswith("lsllm_")]
    assert config["id2label"] == {"0": "negative", "1": "positive"} and config["problem_type"] == "single_label_classification"
    assert {"model.safetensors", "tokenizer.json", "lsllm-vllm.json"} <= {p.name for p in out.iterdir()}
    assert not (out / "modules.json").exists()  # last-token pooling: vLLM's default, no file
    meta = json.loads((out / "lsllm-vllm.json").read_text())
    assert (meta["architecture"], meta["problem"], meta["pooling"], meta["vllm_pooling"]) == (
        "LlamaForSequenceClassification", "single-label", "last", "LAST")
    prompt = json.loads((seq_run / "model" / "lsllm.json").read_text())["prompt"]
    assert meta["labels"] == ["negative", "positive"] and meta["prompt"] == prompt and meta["pooler_config"] == {}
    assert meta["verification"]["max_abs_output_diff"] <= 1e-4
    lines = stdout.splitlines()
    serve = next(line for line in lines if line.startswith("serve:"))
    assert shlex.split(serve.partition(":")[2]) == ["vllm", "serve", str(out), "--runner", "pooling"]
    client = next(line for line in lines if line.startswith("client:"))
    body = json.loads(shlex.split(client.partition(":")[2])[-1])
    text = "a gripping, beautifully acted film"
    assert body == {"input": [prompt.replace("{text}", text) if prompt else text]}
    assert any("max |output difference|" in line for line in lines)


def test_a_stock_pipeline_on_the_export_gives_lsllm_predict(seq_run, seq_export, capsys):
    import transformers

    capsys.readouterr()
    texts = [*POSITIVE[:3], *NEGATIVE[:3]]
    assert main(["predict", str(seq_run), *texts, "--dtype", "float32"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    prompt = json.loads((seq_export / "lsllm-vllm.json").read_text())["prompt"] or "{text}"
    classify = transformers.pipeline("text-classification", model=str(seq_export), top_k=None, device="cpu")
    for record, scores in zip(records, classify([prompt.replace("{text}", t) for t in texts]), strict=True):
        assert {s["label"]: s["score"] for s in scores} == pytest.approx(record["probabilities"], abs=1e-4)


def test_the_check_tells_last_from_mean_pooling_and_stops_a_bad_export(seq_run, seq_export, tmp_path, capsys, monkeypatch):
    import lsllm.vllm_export
    from lsllm.data import SeqExample
    from lsllm.pipeline import load_run
    from lsllm.vllm_export import stock_outputs

    classifier, _ = load_run(seq_run, dtype="float32", device="cpu")
    features = classifier.encode([SeqExample(t) for t in POSITIVE + NEGATIVE]).features
    last = stock_outputs(seq_export, features, "last", lambda x: x.softmax(-1))
    mean = stock_outputs(seq_export, features, "mean", lambda x: x.softmax(-1))
    assert max(float((a - b).abs().max()) for a, b in zip(last, mean, strict=True)) > 1e-3
    (tmp_path / "empty").mkdir()
    monkeypatch.setattr(lsllm.vllm_export, "TOLERANCE", -1.0)  # every check fails
    _one_line_error(*_export(seq_run, tmp_path / "empty", capsys)[::2], "does not reproduce")
    assert not any((tmp_path / "empty").iterdir()) and not list(tmp_path.glob(".empty.*"))


def _seq_data(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
    for split, repeat in (("train", 2), ("validation", 1), ("test", 1)):
        lines = ["text\tlabel"] + [f"{t}\t{label}" for _ in range(repeat) for t, label in rows]
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize("flags, words", [
    (["--bidirectional"], ["unmasked (bidirectional) attention"]),
    (["--bidirectional", "--unmask-layers", "1"], ["top-1 unmasked"]),
    (["--attention", "repeat"], ["repetition"]),
    (["--pooling", "max"], ["max pooling", "last or mean"]),
])
def test_what_vllm_cannot_run_is_refused_in_one_line(flags, words, tmp_path, tiny_model_dir, capsys):
    run = _train_tiny(_seq_data(tmp_path / "toy"), tiny_model_dir, tmp_path / "run", "--max-steps", "2", *flags)
    _one_line_error(*_export(run, tmp_path / "out", capsys)[::2], *words, "--format onnx", "lsllm serve")
    assert not (tmp_path / "out").exists()


def test_a_token_run_is_refused_in_one_line(token_run, tmp_path, capsys):
    _one_line_error(*_export(token_run, tmp_path / "out", capsys)[::2], "token classification", "--format onnx", "lsllm serve")


def test_a_family_without_a_stock_class_and_int8_are_refused(seq_run, tmp_path, capsys):
    from lsllm.errors import ConfigError
    from lsllm.vllm_export import stock_architecture

    assert stock_architecture(SimpleNamespace(model_type="qwen2")) == "Qwen2ForSequenceClassification"
    with pytest.raises(ConfigError, match="no stock sequence-classification class.*--format onnx"):
        stock_architecture(SimpleNamespace(model_type="no-such-family"))
    _one_line_error(*_export(seq_run, tmp_path / "out", capsys, "--int8")[::2], "--int8 applies to --format onnx")


def test_the_client_input_of_a_run_on_several_fields_fills_the_prompt():
    from lsllm.vllm_export import example_input, render_prompt, template

    prompt = "Premise: {premise}\nHypothesis: {hypothesis}\nAnswer:"
    values = {"premise": "a {hypothesis} b", "hypothesis": "c"}
    assert render_prompt(prompt, ["premise", "hypothesis"], values) == "Premise: a {hypothesis} b\nHypothesis: c\nAnswer:"
    assert render_prompt(None, None, example_input(None)) == "a gripping, beautifully acted film"
    assert template(None, ["premise", "hypothesis"]) == "premise: {premise}\nhypothesis: {hypothesis}"
    assert render_prompt(None, ["premise", "hypothesis"], values) == "premise: a {hypothesis} b\nhypothesis: c"
    assert template(None, None) is None and template(prompt, None) == prompt
