"""lsllm.inference: InferenceSettings generates eval/predict/serve's flags, refuses bad values in one line, and
open_classifier applies them (threads included) for a Python caller as for the CLI."""

from __future__ import annotations

import argparse

import pytest
import torch

from lsllm.errors import ConfigError
from lsllm.inference.settings import COMMON_FLAGS, SERVE_FLAGS, InferenceSettings, add_inference_flags


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: action for action in parser._actions for flag in action.option_strings}


def subcommand(name: str) -> argparse.ArgumentParser:
    from lsllm.cli import build_parser

    [commands] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return commands.choices[name]


def test_eval_predict_and_serve_take_the_same_generated_flags():
    expected = {"--" + name.replace("_", "-") for name in COMMON_FLAGS}
    shown = {}
    for name in ("eval", "predict", "serve"):
        flags = options(subcommand(name))
        assert expected <= set(flags), name
        shown[name] = {flag: (flags[flag].help, flags[flag].choices) for flag in expected}
    assert shown["eval"] == shown["predict"] == shown["serve"]
    assert {"--device", "--max-batch-tokens"} <= set(options(subcommand("serve")))
    assert "--device" not in options(subcommand("predict"))


def test_parsed_flags_become_settings():
    parser = argparse.ArgumentParser()
    add_inference_flags(parser, SERVE_FLAGS)
    args = parser.parse_args(["--threads", "2", "--dtype", "bfloat16", "--backend", "onnx", "--int8",
                              "--matmul", "torch", "--device", "cpu", "--max-batch-tokens", "512"])
    assert InferenceSettings.from_args(args) == InferenceSettings(threads=2, dtype="bfloat16", backend="onnx", int8=True,
                                                                  matmul="torch", device="cpu", max_batch_tokens=512)
    assert InferenceSettings.from_args(argparse.Namespace(threads=None)) == InferenceSettings()


@pytest.mark.parametrize(("fields", "message"), [
    ({"threads": 0}, "--threads must be >= 1, got 0"),
    ({"dtype": "float16"}, "--dtype must be one of auto, float32, bfloat16, got 'float16'"),
    ({"backend": "vllm"}, "--backend must be one of torch, onnx, got 'vllm'"),
    ({"matmul": "mkl"}, "--matmul must be one of auto, onednn, torch, got 'mkl'"),
    ({"max_batch_tokens": 4}, "--max-batch-tokens must be >= 8, got 4"),
])
def test_bad_settings_are_one_line(fields, message):
    with pytest.raises(ConfigError) as err:
        InferenceSettings(**fields)
    assert str(err.value) == message


def test_the_backend_flag_lists_the_registered_backends():
    from lsllm.inference.backends import BACKENDS
    from lsllm.inference.settings import BACKEND_NAMES

    assert tuple(BACKENDS) == BACKEND_NAMES


def test_open_classifier_applies_threads_from_python(seq_run):
    from lsllm.inference import open_classifier

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        opened = open_classifier(seq_run, threads=1, dtype="float32", device="cpu", matmul="torch", max_batch_tokens=64)
        assert torch.get_num_threads() == 1
        assert opened.classifier.max_batch_tokens == 64 and opened.classifier.backend == "torch"
        assert opened.classifier.predict_texts(["a fine film"])[0]["label"] in opened.classifier.labels
    finally:
        torch.set_num_threads(before)


def test_a_setting_the_backend_cannot_take_is_refused_before_loading(seq_run):
    from lsllm.inference import open_classifier

    with pytest.raises(ConfigError, match="--int8 applies to --backend onnx"):
        open_classifier(seq_run, int8=True)
    with pytest.raises(ConfigError, match="give settings or threads, not both"):
        open_classifier(seq_run, InferenceSettings(), threads=1)


def test_threads_are_applied_once_by_predict_and_serve(seq_run, monkeypatch, capsys):
    """The library applies --threads when it opens the classifier; neither the CLI nor the server sets them again."""
    from lsllm import hardware
    from lsllm.cli import main
    from lsllm.serve.app import app_from_run

    calls = []
    monkeypatch.setattr(hardware, "configure_threads", calls.append)
    assert main(["predict", str(seq_run), "a fine film", "--threads", "1", "--dtype", "float32", "--matmul", "torch"]) == 0
    assert calls == [1]
    capsys.readouterr()
    app_from_run(seq_run, threads=1, dtype="float32", device="cpu", matmul="torch")
    assert calls == [1, 1]

    import socket

    import uvicorn

    from lsllm.serve import cli as serve_cli

    class Server:  # `lsllm serve` up to the point it would serve
        def __init__(self, config):
            pass

        def run(self, sockets):
            pass

    monkeypatch.setattr(uvicorn, "Server", Server)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert serve_cli.main([str(seq_run), "--port", str(port), "--threads", "1", "--dtype", "float32", "--matmul", "torch"]) == 0
    assert calls == [1, 1, 1]
