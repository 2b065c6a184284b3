"""Prompt templates: one labelled example → a TRL prompt-completion row, and the prompt alone.

Training and evaluation must show the model the same tokens. TRL tokenizes a string prompt with
`tokenizer(text=prompt)` (special tokens added the tokenizer's way) and a conversational one
with `apply_chat_template(..., add_generation_prompt=True)`; `PromptTemplate.prompt_ids` does
exactly the same, so the prompt at evaluation is the prompt trained on.

Special tokens are the tokenizer's own (`tokenizer.bos_token` / `eos_token`), never the literal
strings `<s>` / `</s>`: in a vocabulary where those are plain text (SmolLM2's) the model would
learn to write them and never stop. BOS is written into the text only when the tokenizer does
not add it itself, so there is exactly one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedTokenizerBase

from lsllm.errors import ConfigError

Messages = list[dict[str, str]]


def format_system_prompt(system_prompt: str, labels: list[str], fields: dict[str, str] | None = None) -> str:
    """Fill `{labels}` with the label names, in id order, and any other `fields` ({min}, {max}) (plain replace: other braces stay)."""
    text = system_prompt.replace("{labels}", ", ".join(labels))
    for name, value in (fields or {}).items():
        if name != "labels":
            text = text.replace("{" + name + "}", value)
    return text


def tokenizer_adds_bos(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True when `tokenizer(text)` already starts with BOS (Llama's sentencepiece tokenizers)."""
    if tokenizer.bos_token_id is None:
        return False
    ids = tokenizer(text="a")["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id


@dataclass
class PromptTemplate:
    """Renders examples in one of the formats `chat`, `llama2-chat` or `plain`.

    Args:
        name: template name (see `lsllm.sft.config.TEMPLATES`).
        tokenizer: the model's tokenizer; supplies BOS/EOS and, for `chat`, the chat template.
        system: the system prompt, already filled with the label names.

    Raises:
        ConfigError: `chat` with a tokenizer that has no chat template, or a tokenizer with no
            EOS token (the model could never learn to stop).

    Example:
        >>> template = PromptTemplate("llama2-chat", tokenizer, "Answer positive or negative.")
        >>> template.render("a fine film", "positive")
        '<s>[INST] <<SYS>>\\nAnswer positive or negative.\\n<</SYS>>\\n\\na fine film [/INST] positive </s>'
    """

    name: str
    tokenizer: PreTrainedTokenizerBase
    system: str

    def __post_init__(self) -> None:
        if self.tokenizer.eos_token is None:
            raise ConfigError("the tokenizer has no EOS token, so answers cannot end: pick a model whose tokenizer defines one")
        if self.name not in ("chat", "llama2-chat", "plain"):
            raise ConfigError(f"unknown template {self.name!r}: use chat, llama2-chat or plain")
        if self.name == "chat" and not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError("--template chat: this tokenizer has no chat template; use --template llama2-chat or plain")
        self._adds_bos = tokenizer_adds_bos(self.tokenizer)
        bos = self.tokenizer.bos_token
        self._bos_text = "" if bos is None or self._adds_bos else bos

    def messages(self, text: str) -> Messages:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": text}]

    def prompt(self, text: str) -> str | Messages:
        """The prompt as TRL receives it: a string, or chat messages for `chat`."""
        if self.name == "chat":
            return self.messages(text)
        return self._text_prompt(text)

    def _text_prompt(self, text: str) -> str:
        if self.name == "llama2-chat":
            return f"{self._bos_text}[INST] <<SYS>>\n{self.system}\n<</SYS>>\n\n{text} [/INST]"
        return f"{self._bos_text}{self.system}\n\nInput: {text}\nAnswer:"

    def completion(self, answer: str) -> str | Messages:
        """The answer as TRL receives it, ending in EOS (chat: the template's end of turn)."""
        eos = self.tokenizer.eos_token
        if self.name == "chat":
            return [{"role": "assistant", "content": answer}]
        if self.name == "llama2-chat":
            return f" {answer} {eos}"
        return f" {answer}{eos}"

    def row(self, text: str, answer: str) -> dict[str, Any]:
        """One training row in TRL's prompt-completion format (loss on the completion only)."""
        return {"prompt": self.prompt(text), "completion": self.completion(answer)}

    def render(self, text: str, answer: str | None = None) -> str:
        """The whole text as the model sees it (for reading and for tests); prompt only without answer."""
        if self.name == "chat":
            if answer is None:
                return self.tokenizer.apply_chat_template(self.messages(text), tokenize=False, add_generation_prompt=True)
            convo = self.messages(text) + self.completion(answer)  # type: ignore[operator]
            return self.tokenizer.apply_chat_template(convo, tokenize=False)
        prompt = self._text_prompt(text)
        if self._adds_bos:
            prompt = self.tokenizer.bos_token + prompt  # the token the tokenizer will add
        return prompt if answer is None else prompt + str(self.completion(answer))

    def prompt_ids(self, text: str) -> list[int]:
        """Token ids of the prompt, tokenized exactly as TRL tokenizes it for training."""
        if self.name == "chat":
            out = self.tokenizer.apply_chat_template(
                self.messages(text), tokenize=True, add_generation_prompt=True, return_dict=True
            )
            return list(out["input_ids"])
        return list(self.tokenizer(text=self._text_prompt(text))["input_ids"])

    def answer_ids(self, text: str, answer: str, stop_ids: list[int]) -> list[int]:
        """The completion's tokens as trained on, up to and including the first stop token.

        Tokenized as TRL does: the whole prompt + completion, the completion starting where it
        leaves the tokenized prompt (`prompt_ids`). What follows the stop token (the chat
        template's newline after <|im_end|>) is never generated, so it is not part of the answer.
        """
        prompt = self.prompt_ids(text)
        if self.name == "chat":
            convo = self.messages(text) + self.completion(answer)  # type: ignore[operator]
            full = list(self.tokenizer.apply_chat_template(convo, tokenize=True, return_dict=True)["input_ids"])
        else:
            full = list(self.tokenizer(text=self._text_prompt(text) + str(self.completion(answer)))["input_ids"])
        start = 0
        while start < min(len(prompt), len(full)) and prompt[start] == full[start]:
            start += 1
        ids = full[start:]
        stops = [j for j, token in enumerate(ids) if token in stop_ids]
        return ids[: stops[0] + 1] if stops else ids


def truncate_input(tokenizer: PreTrainedTokenizerBase, text: str, max_tokens: int) -> tuple[str, bool]:
    """Cut `text` to its first `max_tokens` tokens, so that a long input never pushes the answer out.

    The cut is made in the string (at the end offset of the last kept token), which keeps the
    original characters. Returns the text and whether it was cut.
    """
    if tokenizer.is_fast:
        enc = tokenizer(text=text, add_special_tokens=False, return_offsets_mapping=True)
        if len(enc["input_ids"]) <= max_tokens:
            return text, False
        return text[: enc["offset_mapping"][max_tokens - 1][1]], True
    ids = tokenizer(text=text, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return text, False
    return tokenizer.decode(ids[:max_tokens]), True
