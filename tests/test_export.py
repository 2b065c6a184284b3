"""`lsllm export RUN OUT --format onnx [--int8]`: ONNX Runtime gives what `lsllm predict` gives, per attention mode.

Tiny runs of the tiny Llama (conftest): causal (`seq_run`), bidirectional NER (`token_run`), and
runs trained here: bidirectional (trained longer, so its decisions are clear enough to check int8
argmax on), top-k unmasking, repeat (sequence and token), multi-label; a tiny Mistral with a
sliding window shorter than max_length is the refused case.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from lsllm.cli import main
from tests.conftest import CONLL, NEGATIVE, POSITIVE, _train_tiny, free_port

needs_onnx = pytest.mark.skipif(
    importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None,
    reason="onnx / onnxruntime not installed (pip install 'lsllm[onnx]')")

TEXTS = ["a great movie", "i hated it", "a moving , lovely film with superb acting", "ok", *POSITIVE[3:], *NEGATIVE[3:]]
NER_TEXTS = ["EU rejects German call to boycott British lamb .", "Peter Blackburn", "The European Commission said on Thursday"]
EMOTIONS = {"a great movie": ["joy"], "wonderful and warm": ["joy", "love"], "i loved it": ["love"], "great fun": ["joy"],
            "a moving , lovely film": ["love", "sadness"], "superb acting": [], "a dull mess": ["anger"],
            "boring and flat": [], "i hated it": ["anger"], "awful pacing": ["anger", "sadness"],
            "a tedious , lifeless film": ["sadness"], "terrible script": ["anger"]}
SEQ_MODES = {  # mode -> extra `lsllm train` flags (None: the session's causal seq_run)
    "causal": None,
    "bidirectional": ["--bidirectional", "--max-steps", "30", "--lr", "3e-3"],
    "top-k": ["--bidirectional", "--unmask-layers", "1"],
    "repeat": ["--attention", "repeat"],
}


def _seq_data(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
    for split, repeat in (("train", 3), ("validation", 1), ("test", 1)):
        lines = ["text\tlabel"] + [f"{t}\t{label}" for _ in range(repeat) for t, label in rows]
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def _export(run: Path, out: Path, capsys, *flags: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["export", str(run), str(out), "--format", "onnx", *flags])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _predict(run: Path, texts: list[str], capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["predict", str(run), *texts]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def _assert_same_records(got: list[dict], expected: list[dict], tolerance: float = 1e-4) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert set(a) == set(b) and a["text"] == b["text"]
        if "probabilities" in b:  # seq: single- or multi-label
            assert a["probabilities"] == pytest.approx(b["probabilities"], abs=tolerance)
            assert a.get("label") == b.get("label") and a.get("labels") == b.get("labels")
        else:  # token
            assert a["tokens"] == b["tokens"] and a["tags"] == b["tags"]
            assert [(e["type"], e["start"], e["end"]) for e in a["entities"]] == [(e["type"], e["start"], e["end"]) for e in b["entities"]]
            assert [e["score"] for e in a["entities"]] == pytest.approx([e["score"] for e in b["entities"]], abs=tolerance)


def _one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def causal_out(seq_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exported-causal") / "onnx"
    assert main(["export", str(seq_run), str(out)]) == 0
    return out


def _trained_and_exported(mode: str, tmp_path_factory, tiny_model_dir, *flags: str) -> tuple[Path, Path]:
    data = _seq_data(tmp_path_factory.mktemp("export-data") / "toy")
    run = _train_tiny(data, tiny_model_dir, tmp_path_factory.mktemp(f"export-{mode}") / "run", *SEQ_MODES[mode])
    out = tmp_path_factory.mktemp(f"exported-{mode}") / "onnx"
    assert main(["export", str(run), str(out), *flags]) == 0
    return run, out


@pytest.fixture(scope="module")
def bidirectional_int8(tmp_path_factory, tiny_model_dir) -> tuple[Path, Path]:
    """The bidirectional run (trained long enough for clear decisions), exported with --int8."""
    return _trained_and_exported("bidirectional", tmp_path_factory, tiny_model_dir, "--int8")


@pytest.fixture(scope="module", params=sorted(SEQ_MODES))
def seq_export(request, tmp_path_factory, tiny_model_dir) -> tuple[str, Path, Path]:
    """(mode, run, OUT) for each sequence attention mode."""
    mode = request.param
    if mode == "causal":
        return mode, request.getfixturevalue("seq_run"), request.getfixturevalue("causal_out")
    if mode == "bidirectional":
        return mode, *request.getfixturevalue("bidirectional_int8")
    return mode, *_trained_and_exported(mode, tmp_path_factory, tiny_model_dir)


@needs_onnx
def test_onnx_runtime_gives_the_records_of_lsllm_predict_in_each_attention_mode(seq_export, capsys):
    from lsllm.export import OnnxClassifier

    mode, run, out = seq_export
    assert {"model.onnx", "lsllm-export.json", "tokenizer_config.json"} <= {p.name for p in out.iterdir()}
    info = json.loads((out / "lsllm-export.json").read_text())
    assert info["attention"] == mode and info["task"] == "seq" and info["labels"] == ["negative", "positive"]
    assert info["run"] == str(run.resolve()) and info["verification"]["max_abs_logit_diff"] <= 1e-3
    assert {"lsllm", "torch", "transformers", "onnx", "onnxruntime"} <= set(info["versions"])
    assert info["problem"] == "single-label" and info["max_length"] > 0 and "prompt" in info and "fields" in info
    expected = _predict(run, TEXTS, capsys)
    _assert_same_records(OnnxClassifier(out, int8=False).predict_texts(TEXTS), expected)


@needs_onnx
def test_the_graph_takes_left_and_right_padding_alike(seq_export):
    from lsllm.export import OnnxClassifier, padded_batch

    _, _, out = seq_export
    clf = OnnxClassifier(out, int8=False)
    features = clf.encode([clf.example(i, t) for i, t in enumerate(TEXTS)]).features
    right = clf.logits(*padded_batch(features, clf.tokenizer.pad_token_id))
    left = clf.logits(*padded_batch(features, clf.tokenizer.pad_token_id, left=True))
    one = torch.cat([clf.logits(*padded_batch([f], clf.tokenizer.pad_token_id)) for f in features])  # no padding at all
    assert torch.allclose(right, left, atol=1e-4) and torch.allclose(right, one, atol=1e-4)


@needs_onnx
def test_int8_exports_agree_on_argmax_and_report_the_difference(bidirectional_int8, capsys):
    from lsllm.export import OnnxClassifier

    run, out = bidirectional_int8
    info = json.loads((out / "lsllm-export.json").read_text())
    assert info["int8_model"] == "model.int8.onnx" and (out / "model.int8.onnx").is_file()
    agree, total = info["verification"]["int8_argmax_agreement"]
    assert agree == total > 0 and info["verification"]["int8_max_abs_logit_diff"] < 0.25
    assert (out / "model.int8.onnx").stat().st_size < (out / "model.onnx").stat().st_size
    expected = _predict(run, TEXTS, capsys)
    int8 = OnnxClassifier(out).predict_texts(TEXTS)  # the int8 graph by default when the export made one
    assert [r["label"] for r in int8] == [r["label"] for r in expected]
    _assert_same_records(int8, expected, tolerance=0.05)


@needs_onnx
def test_the_wrapper_check_notices_a_wrong_attention_mode(seq_export):
    """The check before exporting has teeth: the same weights attending in another mode give other logits."""
    from lsllm.export import OnnxGraph, padded_batch, reference_logits, sample_examples
    from lsllm.pipeline import load_run

    mode, run, _ = seq_export
    classifier, _ = load_run(run, dtype="float32", device="cpu")
    features = classifier.encode(sample_examples(classifier)).features
    expected = torch.stack(reference_logits(classifier, features))
    ids, mask = padded_batch(features, classifier.tokenizer.pad_token_id)
    with torch.inference_mode():
        assert torch.allclose(OnnxGraph(classifier.model)(ids, mask), expected, atol=1e-5)
        other = {"causal": (True, None), "bidirectional": (True, 1), "top-k": (True, None), "repeat": (False, None)}[mode]
        classifier.model.set_attention(*other)
        assert (OnnxGraph(classifier.model)(ids, mask) - expected).abs().max() > 1e-3


@needs_onnx
def test_onnx_runtime_alone_runs_the_export_as_the_docs_show(seq_run, causal_out, capsys):
    """docs/serving.md's lines: the tokenizer + onnxruntime, no lsllm (the texts put into the run's prompt by hand)."""
    import numpy as np
    import onnxruntime as ort
    from transformers import AutoTokenizer

    out = causal_out
    tok = AutoTokenizer.from_pretrained(out)
    info = json.loads((out / "lsllm-export.json").read_text())
    texts = [info["prompt"].replace("{text}", t) if info["prompt"] else t for t in TEXTS]
    batch = tok(texts, padding=True, truncation=True, max_length=info["max_length"], return_tensors="np")
    logits = ort.InferenceSession(out / "model.onnx").run(["logits"], {k: batch[k].astype(np.int64) for k in ("input_ids", "attention_mask")})[0]
    probabilities = torch.from_numpy(logits).softmax(-1)
    for row, record in zip(probabilities, _predict(seq_run, TEXTS, capsys), strict=True):
        assert dict(zip(info["labels"], row.tolist(), strict=True)) == pytest.approx(record["probabilities"], abs=1e-4)


@pytest.fixture(scope="module", params=["bidirectional", "repeat"])
def token_export(request, tmp_path_factory, tiny_model_dir) -> tuple[str, Path, Path]:
    if request.param == "bidirectional":
        run = request.getfixturevalue("token_run")
    else:
        data = tmp_path_factory.mktemp("export-ner-data")
        for split, repeat in (("train", 4), ("validation", 1), ("test", 1)):
            (data / f"{split}.txt").write_text("\n".join([CONLL] * repeat))
        run = _train_tiny(data, tiny_model_dir, tmp_path_factory.mktemp("export-ner-repeat") / "run", "--attention", "repeat")
    out = tmp_path_factory.mktemp(f"exported-ner-{request.param}") / "onnx"
    assert main(["export", str(run), str(out)]) == 0
    return request.param, run, out


@needs_onnx
def test_token_runs_export_and_tag_as_lsllm_predict_does(token_export, capsys):
    from lsllm.export import OnnxClassifier

    mode, run, out = token_export
    info = json.loads((out / "lsllm-export.json").read_text())
    assert info["task"] == "token" and info["attention"] == mode and info["labels"][0] == "O"
    clf = OnnxClassifier(out)
    _assert_same_records(clf.predict_texts(NER_TEXTS), _predict(run, NER_TEXTS, capsys))
    from lsllm.pipeline import load_run

    reference, _ = load_run(run, dtype="float32", device="cpu")
    words = [text.split() for text in NER_TEXTS]
    _assert_same_records(clf.predict_tokens(words), reference.predict_tokens(words))


@needs_onnx
def test_a_multi_label_export_keeps_the_tuned_thresholds(tmp_path_factory, tiny_model_dir, capsys):
    from lsllm.export import OnnxClassifier

    data = tmp_path_factory.mktemp("export-multi-data")
    for split, repeat in (("train", 3), ("validation", 1), ("test", 1)):
        lines = [json.dumps({"text": t, "labels": labels}) for _ in range(repeat) for t, labels in EMOTIONS.items()]
        (data / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    run = _train_tiny(data, tiny_model_dir, tmp_path_factory.mktemp("export-multi") / "run", "--pooling", "max")
    out = tmp_path_factory.mktemp("exported-multi") / "onnx"
    assert _export(run, out, capsys)[0] == 0
    info = json.loads((out / "lsllm-export.json").read_text())
    saved = json.loads((run / "model" / "lsllm.json").read_text())
    assert info["problem"] == "multi-label" and info["problem_state"]["thresholds"] == saved["problem_state"]["thresholds"]
    assert info["pooling"] == "max"
    texts = list(EMOTIONS)
    _assert_same_records(OnnxClassifier(out).predict_texts(texts), _predict(run, texts, capsys))


@needs_onnx
def test_the_torchscript_exporter_is_the_fallback_and_the_export_prints_its_checks(seq_run, tmp_path, capsys, monkeypatch):
    import lsllm.export
    from lsllm.export import OnnxClassifier

    monkeypatch.setattr(lsllm.export, "EXPORTERS", ("torchscript",))  # as without onnxscript
    out = tmp_path / "exported"
    code, stdout, _ = _export(seq_run, out, capsys, "--int8")
    assert code == 0
    lines = stdout.splitlines()
    assert any("fp32 vs PyTorch" in line and "max |logit difference|" in line and "torchscript exporter" in line for line in lines)
    assert any("int8 vs PyTorch" in line and "argmax agrees on" in line for line in lines), stdout
    assert f"exported to {out}" in stdout
    assert json.loads((out / "lsllm-export.json").read_text())["exporter"] == "torchscript"
    _assert_same_records(OnnxClassifier(out, int8=False).predict_texts(TEXTS), _predict(seq_run, TEXTS, capsys))


# ----------------------------------------------------------------------------- refused, one line each


@needs_onnx
def test_a_sliding_window_shorter_than_max_length_is_refused_in_one_line(tmp_path, tiny_model_dir, capsys):
    from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM

    from tests.conftest import _COMMON

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model_dir = tmp_path / "tiny-mistral"
    config = MistralConfig(**{**_COMMON, "vocab_size": len(tokenizer), "num_hidden_layers": 2, "sliding_window": 8,
                              "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
                              "bos_token_id": tokenizer.bos_token_id, "tie_word_embeddings": True})
    torch.manual_seed(0)
    MistralForCausalLM(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    run = _train_tiny(_seq_data(tmp_path / "toy"), model_dir, tmp_path / "run", "--max-steps", "2")
    code, _, err = _export(run, tmp_path / "exported", capsys)
    _one_line_error(code, err, "sliding-window", "not supported")
    assert not (tmp_path / "exported").exists()


def test_a_non_empty_out_or_a_file_is_refused_in_one_line(seq_run, tmp_path, capsys):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    _one_line_error(*_export(seq_run, tmp_path / "busy", capsys)[::2], "exists and is not empty")
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["keep.txt"]
    (tmp_path / "file").write_text("x")
    _one_line_error(*_export(seq_run, tmp_path / "file", capsys)[::2], "is a file")


@needs_onnx
def test_an_empty_out_folder_is_used(seq_run, tmp_path, capsys, monkeypatch):
    """An existing empty OUT is filled (the export is checked before anything is written: a failed one leaves OUT as it was)."""
    import lsllm.export

    (tmp_path / "empty").mkdir()
    monkeypatch.setattr(lsllm.export, "FP32_TOLERANCE", -1.0)  # every check fails
    _one_line_error(*_export(seq_run, tmp_path / "empty", capsys)[::2], "does not reproduce")
    assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())
    assert not list(tmp_path.glob(".empty.*"))  # no staging folder left behind


def test_not_a_run_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "nothing").mkdir()
    _one_line_error(*_export(tmp_path / "nothing", tmp_path / "exported", capsys)[::2], "not a finished lsllm run")
    _one_line_error(*_export(tmp_path / "missing", tmp_path / "exported", capsys)[::2], "no such run directory")


def test_missing_onnx_runtime_names_the_pip_command(seq_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    _one_line_error(*_export(seq_run, tmp_path / "exported", capsys)[::2], "onnx", "not installed", "pip install")
    assert not (tmp_path / "exported").exists()


def test_export_is_in_the_cli_help(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "--int8" in capsys.readouterr().out


# ----------------------------------------------------------------------------- lsllm serve --backend onnx


def _served(app, texts: list[str]) -> tuple[dict, list[dict]]:
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        info = client.get("/info").json()
        response = client.post("/predict", json={"texts": texts})
        assert response.status_code == 200, response.text
        page = client.get("/")
        assert page.status_code == 200
    return info, response.json()["predictions"]


@needs_onnx
def test_the_server_answers_from_an_export_folder_as_lsllm_predict_does(seq_run, causal_out, capsys):
    from lsllm.serve.app import app_from_run

    info, records = _served(app_from_run(causal_out, threads=1), TEXTS)
    assert info["backend"] == "onnxruntime fp32"
    assert info["labels"] == ["negative", "positive"] and info["task"] == "seq"
    _assert_same_records(records, _predict(seq_run, TEXTS, capsys))


@needs_onnx
def test_serving_a_run_with_the_onnx_backend_exports_it_and_says_so_in_info(seq_run, capsys):
    from lsllm.serve.app import app_from_run

    app = app_from_run(seq_run, backend="onnx", threads=1)
    folder = Path(app.state.export_dir.name)
    assert (folder / "export" / "model.onnx").is_file()
    info, records = _served(app, TEXTS)
    assert info["backend"] == "onnxruntime fp32" and info["attention"].startswith("causal")
    _assert_same_records(records, _predict(seq_run, TEXTS, capsys))


@needs_onnx
def test_the_int8_graph_is_served_only_when_asked(bidirectional_int8):
    from lsllm.serve.app import app_from_run

    _, out = bidirectional_int8
    assert _served(app_from_run(out), TEXTS[:2])[0]["backend"] == "onnxruntime fp32"
    assert _served(app_from_run(out, int8=True), TEXTS[:2])[0]["backend"] == "onnxruntime int8"


@needs_onnx
@pytest.mark.parametrize("flags, words", [
    (["--backend", "torch"], ["`lsllm export` folder", "--backend onnx"]),
    (["--dtype", "bfloat16"], ["--dtype bfloat16", "PyTorch backend"]),
    (["--device", "cuda"], ["--device cuda", "CPU"]),
])
def test_serve_flags_that_do_not_apply_to_an_export_are_one_line(causal_out, flags, words, capsys, monkeypatch):
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda *a, **k: pytest.fail("the server must not start"))
    code = main(["serve", str(causal_out), "--port", str(free_port()), *flags])
    _one_line_error(code, capsys.readouterr().err, *words)


def test_int8_with_the_torch_backend_is_refused_in_one_line(seq_run, capsys, monkeypatch):
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda *a, **k: pytest.fail("the server must not start"))
    code = main(["serve", str(seq_run), "--port", str(free_port()), "--int8"])
    _one_line_error(code, capsys.readouterr().err, "--int8", "--backend onnx")


@needs_onnx
def test_int8_keeps_the_mlp_output_projections_and_the_head_fp32_and_quantizes_the_other_linears(bidirectional_int8):
    """quantize_int8's recipe: per-channel int8 for every backbone linear but down_proj; the head fp32."""
    import onnx

    run, out = bidirectional_int8
    config = json.loads((run / "model" / "config.json").read_text())
    graph = onnx.load(str(out / "model.int8.onnx")).graph
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    down = (config["intermediate_size"], config["hidden_size"])
    fp32_down = [n for n in graph.node if n.op_type == "MatMul" and shapes.get(n.input[1]) == down]
    head = [n for n in graph.node if n.op_type in ("MatMul", "Gemm") and len(shapes.get(n.input[1], ())) == 2
            and len(config["id2label"]) in shapes[n.input[1]]]
    assert len(head) == 1  # the head (hidden x labels), left fp32
    quantized = [n for n in graph.node if n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul")]
    assert len(fp32_down) == config["num_hidden_layers"]
    assert len(quantized) == 6 * config["num_hidden_layers"]  # q k v o gate up
    zero_points = [shapes[n.input[3]] for n in quantized if n.op_type == "MatMulInteger"]
    assert zero_points and all(z and z[0] > 1 for z in zero_points)  # one scale per output channel


@needs_onnx
def test_predict_runs_an_export_folder_and_a_run_with_the_onnx_backend_as_lsllm_predict_does(seq_run, causal_out, capsys,
                                                                                              caplog):
    texts = ["a great movie", "boring and flat"]
    expected = _predict(seq_run, texts, capsys)
    _assert_same_records(_predict(causal_out, texts, capsys), expected)
    capsys.readouterr()
    assert main(["predict", str(seq_run), *texts, "--backend", "onnx"]) == 0
    captured = capsys.readouterr()
    _assert_same_records([json.loads(line) for line in captured.out.splitlines() if line.strip()], expected)
    assert "lsllm export" in caplog.text  # the run is exported first, and the user is told how to keep it


@needs_onnx
def test_eval_with_the_int8_graph_scores_the_run_data_and_writes_its_own_file(bidirectional_int8, capsys):
    """The accuracy guard a user runs before deploying int8: the same split, the same metrics, a separate file."""
    run, _ = bidirectional_int8
    assert main(["eval", str(run), "--split", "test"]) == 0
    assert main(["eval", str(run), "--split", "test", "--backend", "onnx", "--int8"]) == 0
    torch_eval = json.loads((run / "eval-test.json").read_text())
    int8_eval = json.loads((run / "eval-test-onnx-int8.json").read_text())
    assert torch_eval["backend"] == "torch" and int8_eval["backend"] == "onnxruntime int8"
    assert int8_eval["test"]["accuracy"] == pytest.approx(torch_eval["test"]["accuracy"], abs=0.1)
    assert set(int8_eval["test"]) == set(torch_eval["test"])


@pytest.mark.parametrize("flags, words", [
    (["predict", "RUN", "ok", "--int8"], ["--int8", "--backend onnx"]),
    (["eval", "RUN", "--int8"], ["--int8", "--backend onnx"]),
    (["eval", "EXPORT"], ["export", "--backend onnx"]),
    (["predict", "EXPORT", "ok", "--backend", "torch"], ["export", "--backend onnx"]),
])
def test_backend_flags_that_do_not_apply_are_one_line(seq_run, causal_out, flags, words, capsys):
    argv = [str(seq_run) if f == "RUN" else str(causal_out) if f == "EXPORT" else f for f in flags]
    _one_line_error(main(argv), capsys.readouterr().err, *words)
