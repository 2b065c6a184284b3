"""Label-supervised classifiers composed from any decoder: backbone + attention mode + pooling + ``score``.

The head is named ``score`` with the same parameter names as transformers' stock heads, so PEFT
trains and saves it by default, stock checkpoints load into these classes and merged models load
into stock classes. The switch (bidirectional, unmask_layers), pooling and label names live in the
model config (``lsllm_*`` keys) and are restored on load. So does sequence repetition
(``lsllm_repeat``, :mod:`lsllm.models.repetition`): the classifier feeds each example twice to the
unchanged causal backbone and reads the second copy; only these classes know it, stock classes
loading a merged model do not.

The head and pooling always run in fp32 whatever the backbone dtype: a bf16/4-bit backbone feeds
an fp32 head (the original QLoRA code filled its head with NaNs).

Example:
    >>> model = UnmaskingLlamaForSequenceClassification.from_pretrained(
    ...     "smollm2-135m", num_labels=2, id2label={0: "negative", 1: "positive"},
    ...     label2id={"negative": 0, "positive": 1}).bfloat16()
    >>> model.set_pooling("max")
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput, TokenClassifierOutput

from lsllm.config import POOLINGS
from lsllm.errors import ConfigError
from lsllm.models.attention import (
    LSLLM_SDPA,
    attn_implementation,
    packed_attention_mask,
    packed_segments,
    set_attention_mode,
)
from lsllm.models.backbones import quantization_config, resolve_model
from lsllm.models.pooling import pool, seq_index_from_mask
from lsllm.models.repetition import repeat_layout, repeat_tokens, second_copy

_LSLLM_KEYS = ("lsllm_bidirectional", "lsllm_unmask_layers", "lsllm_pooling", "lsllm_repeat")


class _LabelSupervised(PreTrainedModel):
    """Shared body: builds the backbone from any config, sets the attention mode, keeps the head fp32."""

    base_model_prefix = "model"
    config_class = PretrainedConfig
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    default_bidirectional = False
    default_pooling = "last"

    def __init__(self, config: PretrainedConfig):
        config = copy.deepcopy(config)  # the lsllm_* defaults below must not leak into the caller's config
        super().__init__(config)
        for key, default in zip(_LSLLM_KEYS, (self.default_bidirectional, None, self.default_pooling, False), strict=True):
            if getattr(config, key, None) is None:
                setattr(config, key, default)
        self.model = AutoModel.from_config(config)
        self.apply_attention_mode()
        self._lsllm_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def apply_attention_mode(self) -> None:
        if self.config.lsllm_repeat and self.config.lsllm_bidirectional:
            raise ConfigError("sequence repetition (lsllm_repeat) needs causal attention: a bidirectional model already sees the whole input")
        set_attention_mode(self.model, bool(self.config.lsllm_bidirectional), self.config.lsllm_unmask_layers)
        self.config.is_causal = self.model.config.is_causal

    @property
    def repeat(self) -> bool:
        """Whether each input is fed twice and read on its second copy."""
        return bool(self.config.lsllm_repeat)

    def set_attention(self, bidirectional: bool, unmask_layers: int | None = None, repeat: bool = False) -> None:
        """Switch between causal, bidirectional, top-k bidirectional and repeated causal (saved in the config)."""
        self.config.lsllm_bidirectional = bidirectional
        self.config.lsllm_unmask_layers = unmask_layers if bidirectional else None
        self.config.lsllm_repeat = repeat
        self.apply_attention_mode()

    def set_loss(self, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None) -> None:
        """The loss `forward` computes when given labels: ``loss_fn(logits, labels)``, the run's problem type
        (`lsllm.problems`, passed in by the caller); None: transformers' own loss for the head, by
        ``config.problem_type``, as a stock head computes it."""
        self._lsllm_loss = loss_fn

    def label_loss(self, logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
        """The loss of ``labels`` (None without labels): `set_loss`'s function, else transformers' for the head."""
        if labels is None:
            return None
        if self._lsllm_loss is not None:
            return self._lsllm_loss(logits, labels)
        return self.loss_function(logits=logits, labels=labels, pooled_logits=logits, config=self.config)

    def _init_weights(self, module: nn.Module) -> None:
        if module is getattr(self, "score", None):
            nn.init.normal_(module.weight, std=getattr(self.config, "initializer_range", 0.02))
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def _apply(self, fn, recurse: bool = True):
        # .bfloat16()/.half()/.to(dtype) cast the backbone; the head stays fp32 (QLoRA NaN guard)
        super()._apply(fn, recurse)
        head = getattr(self, "score", None)
        if head is not None:
            head.float()
        return self

    def _backbone_hidden(self, input_ids, attention_mask, position_ids, seq_index, inputs_embeds, **kwargs):
        """(B, T, H) final hidden states of a padded batch, or of packed rows (``seq_index``)."""
        layout = None
        if self.repeat:  # (B, T) -> (B, 2T): every example followed by its copy, positions 0..2n-1
            tokens = input_ids if input_ids is not None else inputs_embeds
            shape = tuple(tokens.shape[:2])
            layout = repeat_layout(seq_index if seq_index is not None else seq_index_from_mask(attention_mask, shape, tokens.device))
            input_ids = repeat_tokens(input_ids, layout) if input_ids is not None else None
            inputs_embeds = repeat_tokens(inputs_embeds, layout) if inputs_embeds is not None else None
            position_ids = layout.position_ids
            if seq_index is not None:
                seq_index = layout.seq_index
            elif attention_mask is not None:
                attention_mask = (layout.seq_index >= 0).to(attention_mask.dtype)
        if seq_index is not None:
            dtype = self.model.get_input_embeddings().weight.dtype
            implementation = attn_implementation(self.model)
            attention_mask = packed_attention_mask(seq_index, bool(self.model.config.is_causal), dtype, implementation)
            if position_ids is None:
                raise ConfigError("packed batches need position_ids (restart at 0 for every example)")
            if implementation == LSLLM_SDPA and seq_index.device.type == "cpu":
                kwargs["lsllm_segments"] = packed_segments(seq_index)  # GPUs keep the mask: many tiny calls are launch-bound there
        for key in ("output_attentions", "output_hidden_states", "return_dict", "use_cache", "num_items_in_batch"):
            kwargs.pop(key, None)
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=False,
            **kwargs,
        )
        hidden = out.last_hidden_state  # (B, T, H), or (B, 2T, H) repeated
        return second_copy(hidden, layout) if layout is not None else hidden

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path,
        *model_args,
        bidirectional: bool | None = None,
        unmask_layers: int | None = None,
        pooling: str | None = None,
        repeat: bool | None = None,
        quantize: str | None = None,
        **kwargs,
    ):
        """Load a backbone (alias, hub id, directory or .gguf) or a saved lsllm model.

        Keyword args ``num_labels``, ``id2label``, ``label2id`` set the label space as in
        transformers; ``bidirectional``, ``unmask_layers``, ``pooling`` and ``repeat`` (feed each
        input twice, read the second copy) override the class defaults and what a saved model recorded; ``quantize="4bit"`` loads the backbone for QLoRA.
        """
        if isinstance(kwargs.get("config"), PretrainedConfig):
            model = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
            model.score.float()
            return model
        resolved = resolve_model(str(pretrained_model_name_or_path))
        config_keys = ("num_labels", "id2label", "label2id", "attn_implementation", "classifier_dropout", "problem_type")
        config_kwargs = {k: kwargs.pop(k) for k in config_keys if k in kwargs}
        config = AutoConfig.from_pretrained(resolved.path, **config_kwargs)
        if bidirectional is not None:
            config.lsllm_bidirectional = bidirectional
            if not bidirectional:
                config.lsllm_unmask_layers = None
        if unmask_layers is not None:
            config.lsllm_unmask_layers = unmask_layers
        if pooling is not None:
            _check_pooling(pooling)
            config.lsllm_pooling = pooling
        if repeat is not None:
            config.lsllm_repeat = repeat
        if getattr(config, "lsllm_source", None) is None:
            config.lsllm_source = resolved.source
        if quantize is not None:
            kwargs["quantization_config"] = quantization_config(quantize)
        model = super().from_pretrained(resolved.path, *model_args, config=config, **kwargs)
        if quantize is None:
            model.score.float()  # a dtype= load creates the head in that dtype; it must stay fp32
        return model


def _check_pooling(name: str) -> None:
    if name not in POOLINGS:
        raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, got {name!r}")


class LSForSequenceClassification(_LabelSupervised):
    """Any decoder → pooled final hidden state → linear ``score`` (LS-LLM); the loss is the problem type's (`set_loss`)."""

    def __init__(self, config: PretrainedConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.score = nn.Linear(config.get_text_config().hidden_size, config.num_labels, bias=False)
        self.post_init()

    @property
    def pooling(self) -> str:
        return self.config.lsllm_pooling

    def set_pooling(self, name: str) -> None:
        """Choose ``last``, ``mean`` or ``max`` pooling (saved in the config)."""
        _check_pooling(name)
        self.config.lsllm_pooling = name

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        seq_index: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        """Classify each example.

        Args:
            input_ids: (B, T) token ids (padded rows, or packed rows with ``seq_index``).
            attention_mask: (B, T) 1 for real tokens (padded batches).
            seq_index: (B, T) example id per token, -1 for padding: marks packed rows, where
                several examples share one row and attend only within themselves.
            labels: (N,) the problem type's targets (class ids, multi-hot rows or values), for `set_loss`'s loss.
        """
        hidden = self._backbone_hidden(input_ids, attention_mask, position_ids, seq_index, inputs_embeds, **kwargs)
        if seq_index is None:
            seq_index = seq_index_from_mask(attention_mask, hidden.shape[:2], hidden.device)
        n_examples = labels.shape[0] if labels is not None else None
        pooled = pool(hidden.float(), seq_index, self.pooling, n_examples)  # (N, H) fp32
        logits = self.score(pooled)  # (N, C)
        return SequenceClassifierOutput(loss=self.label_loss(logits, labels), logits=logits)


class LSForTokenClassification(_LabelSupervised):
    """Any decoder → every final hidden state → linear ``score`` (the loss, `set_loss`, ignores -100)."""

    def __init__(self, config: PretrainedConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        dropout = getattr(config, "classifier_dropout", None)
        if dropout is None:
            dropout = getattr(config, "hidden_dropout", None)
        self.dropout = nn.Dropout(0.1 if dropout is None else dropout)
        self.score = nn.Linear(config.get_text_config().hidden_size, config.num_labels, bias=True)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        seq_index: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        **kwargs,
    ) -> TokenClassifierOutput:
        """Tag every position: logits (B, T, C); ``labels`` (B, T) with -100 where no loss applies."""
        hidden = self._backbone_hidden(input_ids, attention_mask, position_ids, seq_index, inputs_embeds, **kwargs)
        logits = self.score(self.dropout(hidden.float()))  # (B, T, C) fp32
        return TokenClassifierOutput(loss=self.label_loss(logits, labels), logits=logits)


class LlamaForSequenceClassification(LSForSequenceClassification):
    """LS-LLaMA sequence classifier: causal, ``last`` pooling (original class name)."""


class LlamaForTokenClassification(LSForTokenClassification):
    """LS-LLaMA token classifier: causal (original class name)."""


class UnmaskingLlamaForSequenceClassification(LSForSequenceClassification):
    """LS-unLLaMA sequence classifier: bidirectional, ``mean`` pooling (original class name)."""

    default_bidirectional = True
    default_pooling = "mean"


class UnmaskingLlamaForTokenClassification(LSForTokenClassification):
    """LS-unLLaMA token classifier: bidirectional (original class name)."""

    default_bidirectional = True
