"""Start the ``score`` head from what the language model already knows: its label words.

A chat model that reads "Review: a gripping film\\nSentiment:" already puts more probability on
" positive" than on " negative". The LM's next-token logits are ``h @ W_out.T`` with ``h`` the
backbone's final (post-norm) hidden state at the last token, which is exactly what last-token
pooling feeds ``score``. Copying the output-embedding rows of each label's first word token
into ``score`` therefore makes the untrained classifier equal to the zero-shot choice among the
labels, and training starts from there instead of from a random projection (which is why SFT
used to win at small data sizes: it keeps this knowledge, a random head throws it away).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from lsllm.errors import ConfigError

log = logging.getLogger(__name__)

WORD = re.compile(r"[^\W\d_][\w\-' ]*")  # starts with a letter: "positive", "Sci/Tech" no, "very negative" yes


def label_words(labels: list[str], words: list[str] | None) -> list[str] | None:
    """The word each label is read as: ``words`` in label order, or the labels themselves when they are words.

    Returns None (random init, with a warning) when a label is not a word (``0``, ``LABEL_3``)
    and no ``--label-words`` were given.

    Raises:
        ConfigError: ``words`` does not give exactly one word per label.
    """
    if words is not None:
        if len(words) != len(labels):
            raise ConfigError(f"--label-words gives {len(words)} word(s) for {len(labels)} labels ({', '.join(labels)}): "
                              "give one per label, in label order")
        return list(words)
    if all(WORD.fullmatch(label) and not label.upper().startswith("LABEL_") for label in labels):
        return list(labels)
    log.warning("labels %s are not words: --head-init labels falls back to a random head; "
                "pass --label-words (one word per label, in label order) to use the LM's knowledge", labels)
    return None


def first_token_ids(tokenizer: Any, words: list[str]) -> list[int]:
    """The first token of each word as it follows the prompt (after a space), e.g. " positive"."""
    ids = [tokenizer(" " + word.strip(), add_special_tokens=False)["input_ids"][0] for word in words]
    if len(set(ids)) < len(ids):
        raise ConfigError(f"label words {words} share a first token; pass --label-words that start differently")
    return ids


def output_embeddings(backbone: torch.nn.Module, model_dir: str | Path) -> torch.Tensor:
    """The LM's output projection (V, H): the tied input embeddings, or ``lm_head.weight`` from the files.

    ``AutoModel`` drops the LM head, so an untied one (Llama-2) is read from the safetensors.
    """
    config = backbone.config.get_text_config()
    if getattr(config, "tie_word_embeddings", False):
        return backbone.get_input_embeddings().weight
    folder = Path(model_dir)
    index = folder / "model.safetensors.index.json"
    files = [folder / json.loads(index.read_text())["weight_map"]["lm_head.weight"]] if index.is_file() else sorted(folder.glob("*.safetensors"))
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            if "lm_head.weight" in handle.keys():
                return handle.get_tensor("lm_head.weight")
    raise ConfigError(f"{folder}: no lm_head.weight to initialise the head from; drop --head-init labels")


@torch.no_grad()
def init_from_label_words(classifier: torch.nn.Module, tokenizer: Any, words: list[str], model_dir: str | Path) -> list[int]:
    """Copy each label word's output-embedding row into ``classifier.score`` (rows in label order).

    Returns:
        The token ids used, one per label.
    """
    ids = first_token_ids(tokenizer, words)
    rows = output_embeddings(classifier.model, model_dir)[ids]  # (C, H)
    classifier.score.weight.copy_(rows.to(classifier.score.weight.dtype))
    if getattr(classifier.score, "bias", None) is not None:
        classifier.score.bias.zero_()
    log.info("score initialised from the label words %s (tokens %s)", words, ids)
    return ids
