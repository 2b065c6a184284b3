"""Data layer: datasets -> DatasetBundle (string labels) -> encoded features -> batches.

Knows nothing of models beyond a tokenizer. See docs/datasets.md for the built-in datasets,
the resolution order of `--data` and the split rules.
"""

from lsllm.data.batching import Collator
from lsllm.data.cache import encode_split
from lsllm.data.encoding import EncodedSplit, encode_sequences, encode_tokens
from lsllm.data.examples import DatasetBundle, SeqExample, TokenExample
from lsllm.data.inputs import read_predict_inputs
from lsllm.data.loading import load_data
from lsllm.data.registry import REGISTRY, DatasetSpec
from lsllm.data.weights import class_weights

__all__ = [
    "REGISTRY",
    "Collator",
    "DatasetBundle",
    "DatasetSpec",
    "EncodedSplit",
    "SeqExample",
    "TokenExample",
    "class_weights",
    "encode_sequences",
    "encode_split",
    "encode_tokens",
    "load_data",
    "read_predict_inputs",
]
