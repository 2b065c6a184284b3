"""Start the ``score`` head from what the language model already knows: the names of the labels.

A chat model that reads "Review: a gripping film\\nSentiment:" already puts more probability on
" positive" than on " negative". The LM's next-token logits are ``h @ W_out.T`` with ``h`` the
backbone's final (post-norm) hidden state at the last token, which is exactly what last-token
pooling feeds ``score``. Copying the output-embedding row of each label's word into ``score``
therefore makes the untrained classifier equal to the zero-shot choice among the labels, and
training starts from there instead of from a random projection (which is why SFT used to win at
small data sizes: it keeps this knowledge, a random head throws it away).

Label names are read as words: ``change_ai_name``, ``changeAiName`` and ``change-ai-name`` are
"change ai name" (`phrase`). A name of one token gets that token's row, exactly the zero-shot
logit. A name of several tokens gets the mean of its tokens' rows, so its logit is the mean of
its tokens' zero-shot logits, and 150 intents that share first tokens (``change_accent``,
``change_ai_name``, ...) still get distinct rows. (Measured on CLINC150's validation before
training, 2026-12-07: the plain mean picks the right intent for 7.0 % of 600 queries, the mean
rescaled to its tokens' norm 1.5 %, chance 0.7 %.) Labels that are not names
(``0``, ``1``, ``LABEL_3``, ``class_2``) leave the head random unless `--label-words` names them.
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

SEPARATORS = re.compile(r"[\s_\-/.:|]+")  # snake_case, kebab-case, Sci/Tech, dotted.names
CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")  # bookFlight, HTTPError
OPAQUE = re.compile(r"(?:label|class|cat|category|id|tag|type)?\s*\d+", re.IGNORECASE)  # 0, LABEL_3, class 2


def phrase(label: str) -> str | None:
    """The words a label name reads as ("change_ai_name" -> "change ai name"), or None for an opaque label.

    Opaque: no letter at all (``0``, ``3.5``), or a generic word and a number (``LABEL_3``,
    ``class_2``): the LM knows nothing about such a class that its name could tell.
    """
    words = []
    for part in SEPARATORS.split(label.strip()):
        pieces = [p for p in CAMEL.split(part) if p]
        # a piece split off camelCase is a word of its own: "bookFlight" reads "book flight" (acronyms stay)
        words += pieces[:1] + [p.lower() if p[1:].islower() else p for p in pieces[1:]]
    words = [w for w in words if w]
    joined = " ".join(words)
    if not words or not any(c.isalpha() for c in joined) or OPAQUE.fullmatch(joined):
        return None
    return joined


def label_words(labels: list[str], words: list[str] | None) -> list[str] | None:
    """What each label is read as: ``words`` in label order, or the labels' names as words (`phrase`).

    Returns None (random init, with a warning) when a label is not a name and no
    ``--label-words`` were given.

    Raises:
        ConfigError: ``words`` does not give exactly one entry per label.
    """
    if words is not None:
        if len(words) != len(labels):
            raise ConfigError(f"--label-words gives {len(words)} word(s) for {len(labels)} labels ({', '.join(labels)}): "
                              "give one per label, in label order")
        return [w.strip() for w in words]
    names = label_phrases(labels)
    if names is None:
        opaque = [label for label in labels if phrase(label) is None]
        log.warning("labels %s are not names: --head-init labels falls back to a random head; pass --label-words "
                    "(one word or phrase per label, in label order) to use the LM's knowledge", opaque[:5])
    return names


def label_phrases(labels: list[str]) -> list[str] | None:
    """Every label's `phrase`, or None when one of them is opaque (no warning: for deciding a recipe)."""
    names = [phrase(label) for label in labels]
    return None if any(name is None for name in names) else names  # type: ignore[return-value]


def name_token_ids(tokenizer: Any, words: list[str]) -> list[list[int]]:
    """The tokens of each label's words as they follow the prompt (after a space), e.g. [" change", " ai", " name"]."""
    ids = [tokenizer(" " + word.strip(), add_special_tokens=False)["input_ids"] for word in words]
    empty = [word for word, tokens in zip(words, ids, strict=True) if not tokens]
    if empty:
        raise ConfigError(f"label words {empty} give no tokens; pass --label-words with visible words")
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


def name_rows(embeddings: torch.Tensor, ids: list[list[int]]) -> torch.Tensor:
    """One row per label (C, H): the mean of its tokens' output-embedding rows (one token: its row)."""
    return torch.stack([embeddings[tokens].float().mean(0) for tokens in ids])


@torch.no_grad()
def init_from_label_words(classifier: torch.nn.Module, tokenizer: Any, words: list[str], model_dir: str | Path) -> list[list[int]]:
    """Set each row of ``classifier.score`` from its label's words (rows in label order; see the module docstring).

    Returns:
        The token ids used, one list per label.
    """
    ids = name_token_ids(tokenizer, words)
    rows = name_rows(output_embeddings(classifier.model, model_dir), ids)
    classifier.score.weight.copy_(rows.to(classifier.score.weight.dtype))
    if getattr(classifier.score, "bias", None) is not None:
        classifier.score.bias.zero_()
    same = len({tuple(t) for t in ids}) < len(ids)
    if same:
        log.warning("some label words read as the same tokens, so their head rows start equal (training separates them)")
    several = sum(len(t) > 1 for t in ids)
    log.info("score initialised from the label words (%d of %d of several tokens: the mean of their rows)", several, len(ids))
    return ids
