"""Inputs to predict on: plain text (one per line), JSONL, CSV/TSV or CoNLL, labels optional."""

from __future__ import annotations

from pathlib import Path

from lsllm.data.examples import SeqExample, TokenExample
from lsllm.data.readers import (
    CONLL_SUFFIXES,
    TABLE_SUFFIXES,
    TEXT_COLUMNS,
    TOKEN_KEYS,
    jsonl_records,
    read_conll,
    read_table,
    read_text,
)
from lsllm.errors import DataError


def read_predict_inputs(
    path: str | Path, task: str | None = None, text_column: list[str] | None = None
) -> list[SeqExample | TokenExample]:
    """Read inputs for prediction; labels are kept when present (to score), else None.

    Formats:
        .txt   one input per line (blank lines skipped); token tasks split each line on whitespace.
        .jsonl objects with "text" (seq) or "tokens" (token); "label" / "tags" optional.
        .tsv/.csv  a header row with a text column (seq).
        .conll one token per line (first column), blank line between sentences (token).

    Raises:
        DataError: unknown extension, unreadable file, missing text field (file:line).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".txt":
        text, _ = read_text(path)
        lines = [line.strip() for line in text.splitlines()]
        if task == "token":
            return [TokenExample(line.split()) for line in lines if line]
        return [SeqExample(line) for line in lines if line]
    if suffix in (".jsonl", ".ndjson", ".json"):
        records, _ = jsonl_records(path)
        out: list[SeqExample | TokenExample] = []
        for line, obj in records:
            tokens = next((obj[k] for k in TOKEN_KEYS if isinstance(obj.get(k), list)), None)
            if tokens is not None and task != "seq":
                tags = obj.get("tags") or obj.get("ner_tags")
                out.append(TokenExample([str(t) for t in tokens], [str(t) for t in tags] if tags else None))
                continue
            keys = text_column or [next((k for k in TEXT_COLUMNS if k in obj), TEXT_COLUMNS[0])]
            if any(not isinstance(obj.get(k), str) for k in keys):
                raise DataError(f"{path}:{line}: no text field {keys[0]!r}; fields present: {', '.join(obj)}")
            text = " ".join(obj[k].strip() for k in keys).strip()
            if not text:
                raise DataError(f"{path}:{line}: empty text")
            label = obj.get("label")
            out.append(SeqExample(text, None if label is None else str(label)))
        return out
    if suffix in TABLE_SUFFIXES:
        return list(read_table(path, text_column, labelled=False).examples)
    if suffix in CONLL_SUFFIXES:
        return list(read_conll(path, labelled=False).examples)
    raise DataError(f"{path}: unknown input type {suffix!r}; use .txt (one input per line), .jsonl, .tsv/.csv or .conll")
