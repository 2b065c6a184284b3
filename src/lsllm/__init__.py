"""lsllm: label-supervised finetuning of decoder LLMs for classification.

The four class names of the original LS-LLaMA code work as written::

    from lsllm import LlamaForSequenceClassification, UnmaskingLlamaForTokenClassification
    model = UnmaskingLlamaForTokenClassification.from_pretrained(path, num_labels=9)

Any other decoder family goes through `LSForSequenceClassification` /
`LSForTokenClassification`, which wrap whatever `AutoModel` loads.
"""

from lsllm.errors import ConfigError, DataError, LsllmError, ModelError
from lsllm.version import __version__

_MODEL_CLASSES = {
    "LlamaForSequenceClassification",
    "LlamaForTokenClassification",
    "LSForSequenceClassification",
    "LSForTokenClassification",
    "UnmaskingLlamaForSequenceClassification",
    "UnmaskingLlamaForTokenClassification",
}


def __getattr__(name: str):
    # the model classes pull in torch and transformers: import them on first use, so the CLI starts fast
    if name in _MODEL_CLASSES:
        from lsllm.models import classifiers

        return getattr(classifiers, name)
    raise AttributeError(f"module 'lsllm' has no attribute {name!r}")

__all__ = [
    "ConfigError",
    "DataError",
    "LlamaForSequenceClassification",
    "LlamaForTokenClassification",
    "LSForSequenceClassification",
    "LSForTokenClassification",
    "LsllmError",
    "ModelError",
    "UnmaskingLlamaForSequenceClassification",
    "UnmaskingLlamaForTokenClassification",
    "__version__",
]
