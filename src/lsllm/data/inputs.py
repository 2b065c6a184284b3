"""Inputs to predict on: plain text (one per line), JSONL, CSV/TSV, Parquet or CoNLL, labels optional.

`iter_predict_inputs` reads them one at a time as the file is read, so `lsllm predict` on a
file of millions of lines holds one chunk in memory; `read_predict_inputs` is the same as a list.
"""

from __future__ import annotations

from collections.abc import Iterator
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
    iter_conll,
    iter_jsonl_records,
    iter_lines,
    iter_table,
    label_name,
    list_label,
    number_label,
    pick_column,
    seq_text,
)
from lsllm.data.text import has_visible_text
from lsllm.errors import DataError
from lsllm.problems import family

PARQUET_SUFFIXES = (".parquet",)
PARQUET_BATCH = 4096  # rows converted to Python at a time


def read_predict_inputs(
    path: str | Path, task: str | None = None, text_column: list[str] | None = None, *, fields: list[str] | None = None
) -> list[SeqExample | TokenExample]:
    """Read inputs for prediction; labels are kept when present (to score), else None.

    `iter_predict_inputs` as a list of examples; the formats, arguments and errors are its own.
    """
    return [example for _, example in iter_predict_inputs(path, task, text_column, fields=fields)]


def iter_predict_inputs(
    path: str | Path, task: str | None = None, text_column: list[str] | None = None, *, fields: list[str] | None = None,
    skip: int = 0,
) -> Iterator[tuple[str, SeqExample | TokenExample]]:
    """(where, example) for each input, in file order, read as the file is read (every format).

    `where` is `file:line` (`file row N` for Parquet, rows counted from 1): what an error about
    that input names. Labels are kept when present (to score), else None.

    Formats:
        .txt   one input per line (lines without a visible character skipped, like blank ones);
               token tasks split each line on whitespace.
        .jsonl objects with "text" (seq) or "tokens" (token); "label" / "labels" / "tags"
               optional (a name, a list of names, or a number).
        .tsv/.csv  a header row with a text column (seq).
        .parquet   a text column (string), or a "tokens" column (list of strings); read a
               record batch at a time (pyarrow); other columns are left alone.
        .conll one token per line (first column), blank line between sentences (token).

    Args:
        path: the input file.
        task: "seq" / "token" / None (JSONL, Parquet: a token list makes a token input).
        text_column: the text column(s) of a table or JSONL (default text / sentence).
        fields: the run's input fields (several text columns: a sentence pair such as premise
            and hypothesis): each JSONL record, or the table's header, must hold them all, and
            every input becomes a SeqExample with these `fields`. One name reads that column as
            the text; None reads one text as above.
        skip: leave out the first `skip` inputs (resuming, or another shard's); Parquet skips
            whole row groups without reading them, other formats read and drop them.

    Raises:
        DataError: unknown extension, unreadable file, missing or malformed field (file:line),
            a .txt or .conll file where the run reads several fields, or a file without a
            single input (an empty file is a mistake, not zero predictions), when iteration
            reaches the problem.
    """
    path = Path(path)
    if fields is not None and len(fields) == 1:
        text_column, fields = list(fields), None
    if fields:
        field_names(fields)
    suffix = path.suffix.lower()
    parquet = suffix in PARQUET_SUFFIXES
    words = None if task is None else family(task).per_word  # the task reads word lists; None: not said
    inputs = _parquet(path, words, text_column, fields, skip) if parquet else _read(path, suffix, words, text_column, fields)
    n = 0
    for n, item in enumerate(inputs, 1):  # noqa: B007 (n is the count after the loop)
        if parquet or n > skip:
            yield item
    if n == 0 and not skip:
        raise DataError(f"{path}: no inputs (the file is empty or blank); write one input per line, or pass texts as arguments")


def _read(path: Path, suffix: str, words: bool | None, text_column: list[str] | None,
          fields: list[str] | None) -> Iterator[tuple[str, SeqExample | TokenExample]]:
    if fields and (suffix == ".txt" or suffix in CONLL_SUFFIXES):
        raise DataError(f"{path}: this model reads {len(fields)} fields per input ({', '.join(fields)}), a {suffix} file "
                        f"holds one text per line; write a .jsonl with the keys {', '.join(fields)}, or a .tsv/.csv with "
                        "those columns")
    if suffix == ".txt":
        for line_no, line in enumerate(iter_lines(path), 1):
            line = line.strip()
            if has_visible_text(line):  # not blank, nor only U+200B, NUL, ...
                yield f"{path}:{line_no}", (TokenExample(line.split()) if words else SeqExample(line))
    elif suffix in JSONL_SUFFIXES:
        for line, obj in iter_jsonl_records(path):
            where = f"{path}:{line}"
            yield where, _record(obj, where, words, text_column, fields)
    elif suffix in TABLE_SUFFIXES:
        for line, example in iter_table(path, fields or text_column, labelled=False):
            yield f"{path}:{line}", example
    elif suffix in CONLL_SUFFIXES:
        for line, example in iter_conll(path, labelled=False):
            yield f"{path}:{line}", example
    else:
        raise DataError(f"{path}: unknown input type {suffix!r}; use .txt (one input per line), .jsonl, .tsv/.csv, "
                        ".parquet or .conll")


def _parquet(path: Path, words: bool | None, text_column: list[str] | None, fields: list[str] | None,
             skip: int) -> Iterator[tuple[str, SeqExample | TokenExample]]:
    """Inputs of a Parquet file, a record batch at a time; `skip` whole row groups are not read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected a file (a Parquet dataset folder: give one of its files)") from None
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path}: not a readable Parquet file ({str(err).splitlines()[0][:100]}); write it with "
                        "pyarrow / pandas.to_parquet") from None
    schema = parquet.schema_arrow
    names = schema.names
    token_key = next((k for k in TOKEN_KEYS if k in names and _strings(schema.field(k).type, listed=True)), None)
    if token_key is not None and words is not False and not fields:
        columns = [token_key]
    else:
        columns = list(fields) if fields else [pick_column(names, c, TEXT_COLUMNS, "text", "--text-column", str(path))
                                               for c in (text_column or [None])]
        missing = next((c for c in columns if c not in names), None)
        if missing is not None:
            raise DataError(f"{path}: no column {missing!r}; this model reads {', '.join(columns)}; columns present: "
                            f"{', '.join(names)}")
        bad = next((c for c in columns if not _strings(schema.field(c).type)), None)
        if bad is not None:
            raise DataError(f"{path}: column {bad!r} holds {schema.field(bad).type}, not text; write the texts as strings")
    groups, row = list(range(parquet.num_row_groups)), 0
    while groups and skip - row >= parquet.metadata.row_group(groups[0]).num_rows:  # whole groups skipped unread
        row += parquet.metadata.row_group(groups.pop(0)).num_rows
    if not groups:
        return
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH, row_groups=groups, columns=columns):
        values = [batch.column(c).to_pylist() for c in columns]
        for parts in zip(*values, strict=True):
            row += 1
            if row <= skip:
                continue
            where = f"{path} row {row}"
            if columns == [token_key] and token_key is not None and not fields and words is not False:
                tokens = parts[0]
                if not tokens or not all(isinstance(t, str) and t.strip() for t in tokens):
                    raise DataError(f"{where}: {token_key!r} must be a non-empty list of non-empty strings")
                check_unicode("".join(tokens), where, repr(token_key))
                yield where, TokenExample([t.strip() for t in tokens])
                continue
            if any(v is None for v in parts):
                name = columns[next(i for i, v in enumerate(parts) if v is None)]
                raise DataError(f"{where}: no text in column {name!r} (null); fill it in or filter the row out")
            text, given = seq_text(list(parts), columns, where, "fill it in or filter the row out")
            yield where, SeqExample(text, None, given)


def _strings(kind, listed: bool = False) -> bool:
    """Whether an Arrow type holds text (`listed`: a list of texts)."""
    import pyarrow as pa

    if listed:
        return (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and _strings(kind.value_type)
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


def _record(obj: dict, where: str, words: bool | None, text_column: list[str] | None,
            fields: list[str] | None) -> SeqExample | TokenExample:
    """One JSONL object as an input: a token list (token tasks) or text field(s), label optional."""
    key = next((k for k in TOKEN_KEYS if isinstance(obj.get(k), list)), None)
    if key is not None and words is not False and not fields:
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
