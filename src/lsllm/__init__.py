"""lsllm: label-supervised finetuning of decoder LLMs for classification.

The four class names of the original LS-LLaMA code work as written::

    from lsllm import LlamaForSequenceClassification, UnmaskingLlamaForTokenClassification
    model = UnmaskingLlamaForTokenClassification.from_pretrained(path, num_labels=9)

Any other decoder family goes through `LSForSequenceClassification` /
`LSForTokenClassification`, which wrap whatever `AutoModel` loads.
"""

__version__ = "0.1.0"

from lsllm.errors import ConfigError, DataError, LsllmError, ModelError  # noqa: E402
from lsllm.models.classifiers import (  # noqa: E402
    LlamaForSequenceClassification,
    LlamaForTokenClassification,
    LSForSequenceClassification,
    LSForTokenClassification,
    UnmaskingLlamaForSequenceClassification,
    UnmaskingLlamaForTokenClassification,
)

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
