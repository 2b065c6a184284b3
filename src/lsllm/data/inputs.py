"""Inputs to predict on: plain text (one per line), JSONL, CSV/TSV or CoNLL, labels optional."""

from __future__ import annotations

from pathlib import Path

from lsllm.data.examples import SeqExample, TokenExample
from lsllm.data.readers import (
    CONLL_SUFFIXES,
    JSONL_SUFFIXES,
    TABLE_SUFFIXES,
    TAG_KEYS,
    TEXT_COLUMNS,
    TOKEN_KEYS,
    check_unicode,
    check_visible,
    jsonl_records,
    label_name,
    read_conll,
    read_table,
    read_text,
    split_lines,
)
from lsllm.data.text import has_visible_text
from lsllm.errors import DataError


def read_predict_inputs(
    path: str | Path, task: str | None = None, text_column: list[str] | None = None
) -> list[SeqExample | TokenExample]:
    """Read inputs for prediction; labels are kept when present (to score), else None.

    Formats:
        .txt   one input per line (lines without a visible character skipped, like blank ones);
               token tasks split each line on whitespace.
        .jsonl objects with "text" (seq) or "tokens" (token); "label" / "tags" optional.
        .tsv/.csv  a header row with a text column (seq).
        .conll one token per line (first column), blank line between sentences (token).

    Raises:
        DataError: unknown extension, unreadable file, missing or malformed field (file:line),
            or a file without a single input (an empty file is a mistake, not zero predictions).
    """
    path = Path(path)
    inputs = _read(path, path.suffix.lower(), task, text_column)
    if not inputs:
        raise DataError(f"{path}: no inputs (the file is empty or blank); write one input per line, or pass texts as arguments")
    return inputs


def _read(path: Path, suffix: str, task: str | None, text_column: list[str] | None) -> list[SeqExample | TokenExample]:
    if suffix == ".txt":
        text, _ = read_text(path)
        lines = [line.strip() for line in split_lines(text)]
        lines = [line for line in lines if has_visible_text(line)]  # blank, or only U+200B, NUL, ...
        if task == "token":
            return [TokenExample(line.split()) for line in lines]
        return [SeqExample(line) for line in lines]
    if suffix in JSONL_SUFFIXES:
        records, _ = jsonl_records(path)
        return [_record(obj, f"{path}:{line}", task, text_column) for line, obj in records]
    if suffix in TABLE_SUFFIXES:
        return list(read_table(path, text_column, labelled=False).examples)
    if suffix in CONLL_SUFFIXES:
        return list(read_conll(path, labelled=False).examples)
    raise DataError(f"{path}: unknown input type {suffix!r}; use .txt (one input per line), .jsonl, .tsv/.csv or .conll")


def _record(obj: dict, where: str, task: str | None, text_column: list[str] | None) -> SeqExample | TokenExample:
    """One JSONL object as an input: a token list (token tasks) or text field(s), label optional."""
    key = next((k for k in TOKEN_KEYS if isinstance(obj.get(k), list)), None)
    if key is not None and task != "seq":
        tokens = obj[key]
        if not tokens or not all(isinstance(t, str) and t.strip() for t in tokens):
            raise DataError(f"{where}: {key!r} must be a non-empty list of non-empty strings")
        check_unicode("".join(tokens), where, repr(key))
        tag_key = next((k for k in TAG_KEYS if obj.get(k) is not None), None)
        tags = None
        if tag_key is not None:
            if not isinstance(obj[tag_key], list) or len(obj[tag_key]) != len(tokens):
                raise DataError(f"{where}: {tag_key!r} must be a list with one tag per token ({len(tokens)})")
            tags = [label_name(t, where, f"{tag_key}[{j}]") for j, t in enumerate(obj[tag_key])]
        return TokenExample([t.strip() for t in tokens], tags)
    keys = text_column or [next((k for k in TEXT_COLUMNS if k in obj), TEXT_COLUMNS[0])]
    if any(not isinstance(obj.get(k), str) for k in keys):
        present = ", ".join(k if k.isprintable() else repr(k) for k in obj) or "(none)"  # a key may hold a line break
        raise DataError(f"{where}: no text field {keys[0]!r}; fields present: {present}")
    text = " ".join(obj[k].strip() for k in keys).strip()
    check_unicode(text, where, "text")
    check_visible(text, where, "text", "remove the line or fill it in")
    label = obj.get("label")
    return SeqExample(text, None if label is None else label_name(label, where))
