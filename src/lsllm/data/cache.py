"""On-disk cache of tokenized splits, keyed by everything that changes the features.

`$LSLLM_CACHE` (default ~/.cache/lsllm)/tokenized/<key>.json. The key hashes the tokenizer
(name and a hash of its full serialized state: vocab, merges, normalizer, specials), the
bundle's fingerprint (content hashes of the data files and the settings that shaped the
examples), the split, max_length, sub-token labelling, windowing and the cache format version.
A changed data file changes the fingerprint, so it is never served stale. Files are written to
a temporary name and moved into place (`lsllm.files`), so a killed run leaves no torn cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from lsllm.data.encoding import EncodedSplit
from lsllm.data.examples import DatasetBundle
from lsllm.files import atomic_write_text, cache_root
from lsllm.problems import family
from lsllm.version import __version__

logger = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when encoding changes what features a given input yields


def tokenizer_hash(tokenizer: Any) -> str:
    """Hash of the tokenizer's behaviour: the serialized fast tokenizer, else vocab + specials."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = backend.to_str()
    else:
        state = json.dumps(sorted(tokenizer.get_vocab().items())) + json.dumps(tokenizer.special_tokens_map, sort_keys=True)
    return hashlib.sha256(state.encode()).hexdigest()[:16]


def cache_key(bundle: DatasetBundle, split: str, tokenizer: Any, max_length: int, label_all_subtokens: bool, stride: int | None,
              prompt: str | None = None) -> str:
    parts = {
        "cache_version": CACHE_VERSION,
        "lsllm": __version__,
        "tokenizer": getattr(tokenizer, "name_or_path", type(tokenizer).__name__),
        "tokenizer_hash": tokenizer_hash(tokenizer),
        "fingerprint": bundle.fingerprint,
        "task": bundle.task,
        "labels": bundle.labels,
        "split": split,
        "max_length": max_length,
        **family(bundle.task, bundle.problem).encoding_settings(label_all_subtokens, stride),
    }
    if prompt is not None:
        parts["prompt"] = prompt
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def encode_split(
    bundle: DatasetBundle,
    split: str,
    tokenizer: Any,
    max_length: int,
    label_all_subtokens: bool = False,
    stride: int | None = None,
    cache: bool = True,
    prompt: str | None = None,
) -> EncodedSplit:
    """Encode one split of a bundle, through the on-disk cache (``prompt``: see `encode_sequences`).

    Bundles without a fingerprint (built by hand) are encoded without caching.
    """
    examples = bundle.splits[split]
    label2id = bundle.label2id

    def encode() -> EncodedSplit:
        return family(bundle.task, bundle.problem).encode(examples, tokenizer, label2id, max_length, prompt,
                                                          label_all_subtokens, stride=stride)

    if not cache or not bundle.fingerprint:
        return encode()
    path = cache_root() / "tokenized" / f"{cache_key(bundle, split, tokenizer, max_length, label_all_subtokens, stride, prompt)}.json"
    if path.is_file():
        try:
            raw = json.loads(path.read_text())
            logger.info("tokenized %s/%s from cache %s", bundle.name, split, path)
            return EncodedSplit(**raw)
        except (OSError, ValueError, TypeError) as err:  # unreadable or from an incompatible writer
            logger.warning("ignoring unreadable tokenization cache %s (%s)", path, err)
    encoded = encode()
    try:
        atomic_write_text(path, json.dumps(encoded.__dict__, separators=(",", ":")))
    except OSError as err:  # a read-only or full disk must not stop a run
        logger.warning("could not write tokenization cache %s (%s)", path, err)
    return encoded
