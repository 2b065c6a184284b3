"""`lsllm serve` as a user runs it: flags, one-line errors, the bind warning, and a real uvicorn on loopback."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from lsllm.serve.cli import (
    API_KEY_ENV,
    bind_warning,
    cmd_serve,
    is_loopback,
    main,
    register,
    settings_from_args,
)
from tests.conftest import free_port, wait_until_healthy


def test_register_adds_serve_with_safe_defaults():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "runs/x"])
    assert args.handler is cmd_serve and args.run_dir == "runs/x"
    assert (args.host, args.port, args.oversize, args.api_key) == ("127.0.0.1", 8000, "truncate", None)
    assert (args.max_texts, args.max_body_bytes, args.max_batch_size) == (256, 1_000_000, 32)
    assert (args.threads, args.max_batch_tokens, args.max_length, args.dtype) == (None, None, None, None)
    args = parser.parse_args(["serve", "r", "--max-batch-size", "8", "--max-wait-ms", "2.5", "--oversize", "reject",
                              "--max-length", "64", "--port", "9000"])
    assert (args.max_batch_size, args.max_wait_ms, args.oversize, args.max_length, args.port) == (8, 2.5, "reject", 64, 9000)


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.0.0.5", True), ("localhost", True),
                                                 ("::1", True), ("[::1]", True), ("0.0.0.0", False),
                                                 ("192.168.1.4", False), ("example.org", False)])
def test_only_loopback_is_quiet_without_a_key(host, loopback):
    assert is_loopback(host) is loopback
    warning = bind_warning(host, None)
    assert (warning is None) is loopback
    if warning:
        assert host in warning and API_KEY_ENV in warning
    assert bind_warning(host, "key") is None


def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    # Public address without a key: warned on stderr (the bad port then stops it before binding anything).
    assert main([str(tmp_path), "--host", "0.0.0.0", "--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert "without an API key" in err and "error: --port must be between 1 and 65535" in err
    assert main([str(tmp_path), "--port", str(free_port())]) == 2
    assert "not a finished lsllm run" in capsys.readouterr().err
    assert main([str(tmp_path), "--max-texts", "0"]) == 2
    assert "--max-texts must be >= 1" in capsys.readouterr().err
    assert main([str(tmp_path), "--threads", "0"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err
    assert main([str(tmp_path), "--header-timeout", "0"]) == 2
    assert "--header-timeout must be a positive number of seconds" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main([str(tmp_path), "--port", str(taken.getsockname()[1])]) == 2
    assert "cannot bind 127.0.0.1" in capsys.readouterr().err


@pytest.mark.parametrize(("flags", "env", "message"), [
    (["--api-key", ""], None, "--api-key is empty"),
    (["--api-key", " \t"], None, "--api-key is empty"),
    (["--api-key", ""], "k3y", "--api-key is empty"),  # an explicit empty flag is not "use the variable"
    ([], "", f"{API_KEY_ENV} is set but empty"),
    ([], "   ", f"{API_KEY_ENV} is set but empty"),
])
def test_an_empty_api_key_is_refused_before_any_work(tmp_path, capsys, monkeypatch, flags, env, message):
    from lsllm.cli import main as lsllm_main

    if env is None:
        monkeypatch.delenv(API_KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(API_KEY_ENV, env)
    # tmp_path is no run: a check after loading would say "not a finished lsllm run" instead.
    assert lsllm_main(["serve", str(tmp_path), "--host", "0.0.0.0", "--port", str(free_port()), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert "Traceback" not in err and "not a finished" not in err


def test_api_key_sources(monkeypatch):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    assert settings_from_args(parser.parse_args(["serve", "r"])).api_key is None  # neither: no auth, as before
    assert settings_from_args(parser.parse_args(["serve", "r", "--api-key", "a"])).api_key == "a"
    monkeypatch.setenv(API_KEY_ENV, "b")
    assert settings_from_args(parser.parse_args(["serve", "r"])).api_key == "b"
    assert settings_from_args(parser.parse_args(["serve", "r", "--api-key", "a"])).api_key == "a"  # the flag wins
    args = parser.parse_args(["serve", "r", "--header-timeout", "2.5", "--body-timeout", "4"])
    assert (settings_from_args(args).header_timeout_s, settings_from_args(args).body_timeout_s) == (2.5, 4.0)


def test_model_limits_beyond_the_model_are_refused(seq_run, capsys):
    assert main([str(seq_run), "--port", str(free_port()), "--max-length", "100000"]) == 2
    assert "--max-length must be between 8 and the model's 128 positions" in capsys.readouterr().err
    assert main([str(seq_run), "--port", str(free_port()), "--max-batch-tokens", "4"]) == 2
    assert "--max-batch-tokens must be >= 8" in capsys.readouterr().err


def test_uvicorn_serves_on_loopback_with_an_api_key_from_the_environment(seq_run):
    port = free_port()
    env = {**os.environ, API_KEY_ENV: "k3y", "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-m", "lsllm.serve", str(seq_run), "--port", str(port), "--dtype", "float32"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        health = wait_until_healthy(server, url, 90)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert httpx.post(f"{url}/predict", json={"texts": ["a great movie"]}, timeout=30).status_code == 401
        response = httpx.post(f"{url}/predict", json={"texts": ["a great movie", "boring"]},
                              headers={"Authorization": "Bearer k3y"}, timeout=30)
        assert response.status_code == 200
        assert [r["text"] for r in response.json()["predictions"]] == ["a great movie", "boring"]
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert f"http://127.0.0.1:{port}" in err and "without an API key" not in err
