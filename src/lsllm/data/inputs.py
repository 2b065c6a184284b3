"""Inputs to predict on: plain text (one per line), JSONL, CSV/TSV or CoNLL, labels optional."""

from __future__ import annotations

from pathlib import Path

from lsllm.data.examples import SeqExample, TokenExample
from lsllm.data.readers import (
    CONLL_SUFFIXES,
    JSONL_SUFFIXES,
    LABEL_COLUMNS,
    TABLE_SUFFIXES,
    TAG_KEYS,
    TEXT_COLUMNS,
    TOKEN_KEYS,
    check_unicode,
    field_names,
    jsonl_records,
    label_name,
    list_label,
    number_label,
    read_conll,
    read_table,
    read_text,
    seq_text,
    split_lines,
)
from lsllm.data.text import has_visible_text
from lsllm.errors import DataError


def read_predict_inputs(
    path: str | Path, task: str | None = None, text_column: list[str] | None = None, *, fields: list[str] | None = None
) -> list[SeqExample | TokenExample]:
    """Read inputs for prediction; labels are kept when present (to score), else None.

    Formats:
        .txt   one input per line (lines without a visible character skipped, like blank ones);
               token tasks split each line on whitespace.
        .jsonl objects with "text" (seq) or "tokens" (token); "label" / "labels" / "tags"
               optional (a name, a list of names, or a number).
        .tsv/.csv  a header row with a text column (seq).
        .conll one token per line (first column), blank line between sentences (token).

    Args:
        path: the input file.
        task: "seq" / "token" / None (JSONL: a token list makes a token input).
        text_column: the text column(s) of a table or JSONL (default text / sentence).
        fields: the run's input fields (several text columns: a sentence pair such as premise
            and hypothesis): each JSONL record, or the table's header, must hold them all, and
            every input becomes a SeqExample with these `fields`. One name reads that column as
            the text; None reads one text as above.

    Raises:
        DataError: unknown extension, unreadable file, missing or malformed field (file:line),
            a .txt or .conll file where the run reads several fields, or a file without a
            single input (an empty file is a mistake, not zero predictions).
    """
    path = Path(path)
    if fields is not None and len(fields) == 1:
        text_column, fields = list(fields), None
    if fields:
        field_names(fields)
    inputs = _read(path, path.suffix.lower(), task, text_column, fields)
    if not inputs:
        raise DataError(f"{path}: no inputs (the file is empty or blank); write one input per line, or pass texts as arguments")
    return inputs


def _read(path: Path, suffix: str, task: str | None, text_column: list[str] | None,
          fields: list[str] | None) -> list[SeqExample | TokenExample]:
    if fields and (suffix == ".txt" or suffix in CONLL_SUFFIXES):
        raise DataError(f"{path}: this model reads {len(fields)} fields per input ({', '.join(fields)}), a {suffix} file "
                        f"holds one text per line; write a .jsonl with the keys {', '.join(fields)}, or a .tsv/.csv with "
                        "those columns")
    if suffix == ".txt":
        text, _ = read_text(path)
        lines = [line.strip() for line in split_lines(text)]
        lines = [line for line in lines if has_visible_text(line)]  # blank, or only U+200B, NUL, ...
        if task == "token":
            return [TokenExample(line.split()) for line in lines]
        return [SeqExample(line) for line in lines]
    if suffix in JSONL_SUFFIXES:
        records, _ = jsonl_records(path)
        return [_record(obj, f"{path}:{line}", task, text_column, fields) for line, obj in records]
    if suffix in TABLE_SUFFIXES:
        return list(read_table(path, fields or text_column, labelled=False).examples)
    if suffix in CONLL_SUFFIXES:
        return list(read_conll(path, labelled=False).examples)
    raise DataError(f"{path}: unknown input type {suffix!r}; use .txt (one input per line), .jsonl, .tsv/.csv or .conll")


def _record(obj: dict, where: str, task: str | None, text_column: list[str] | None,
            fields: list[str] | None) -> SeqExample | TokenExample:
    """One JSONL object as an input: a token list (token tasks) or text field(s), label optional."""
    key = next((k for k in TOKEN_KEYS if isinstance(obj.get(k), list)), None)
    if key is not None and task != "seq" and not fields:
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
    present = ", ".join(k if k.isprintable() else repr(k) for k in obj) or "(none)"  # a key may hold a line break
    if fields:
        missing = next((k for k in fields if k not in obj), None)
        if missing is not None:
            raise DataError(f"{where}: no field {missing!r}; this model reads {', '.join(fields)}; fields present: {present}")
        keys = list(fields)
    else:
        keys = text_column or [next((k for k in TEXT_COLUMNS if k in obj), TEXT_COLUMNS[0])]
    bad = next((k for k in keys if not isinstance(obj.get(k), str)), None)
    if bad is not None:
        if bad in obj:
            raise DataError(f"{where}: text field {bad!r} must be a string, got {type(obj[bad]).__name__}")
        raise DataError(f"{where}: no text field {bad!r}; fields present: {present}")
    text, parts = seq_text([obj[k] for k in keys], keys, where, "remove the line or fill it in")
    label_key = next((k for k in LABEL_COLUMNS if obj.get(k) is not None), None)
    label = None if label_key is None else _gold(obj[label_key], where)
    return SeqExample(text, label, parts)


def _gold(value: object, where: str) -> str | list[str] | float:
    """A gold label kept to score predictions: a name, a list of names (multi-label) or a number (regression)."""
    if isinstance(value, list):
        return list_label(value, where)
    if isinstance(value, float):
        return number_label(value, where)
    return label_name(value, where)
