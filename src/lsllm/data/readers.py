"""Readers for user and benchmark files: CSV / TSV / JSONL (sequence tasks), CoNLL columns and
JSONL tokens/tags (token tasks).

Every reader returns a `ReadSplit` that remembers where each example came from, so later checks
(unknown label, bad tag) can name `file:line`. Bad input raises a one-line `DataError` with the
file, the line and the fix. Parsing is plain line-by-line Python (`csv`, `json`, `str.split`):
OntoNotes' 1.1M-line train file reads in about a second.

A line ends at "\r\n", "\n" or a lone "\r" (old Mac files), in every reader and in every line
number reported; U+2028, U+2029 and U+0085 are characters of the text, not line breaks (they
are legal inside JSON strings, and `str.splitlines` would cut a valid JSON line there).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gc
import hashlib
import io
import json
import logging
import math
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsllm.data.examples import SeqExample, TokenExample, fields_text
from lsllm.data.text import escaped, has_visible_text, lone_surrogate
from lsllm.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

TEXT_COLUMNS = ("text", "sentence")
LABEL_COLUMNS = ("label", "labels")
SCORE_COLUMNS = ("label", "score")  # --problem regression: a "score" column (STS-B) is the label too
TOKEN_KEYS = ("tokens", "words")
TAG_KEYS = ("tags", "ner_tags", "labels")
TABLE_SUFFIXES = (".tsv", ".csv")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
CONLL_SUFFIXES = (".txt", ".conll", ".conll03", ".iob", ".iob2", ".bio", ".bioes")
DOCSTART = "-DOCSTART-"
BOM = b"\xef\xbb\xbf"
# The csv module refuses fields over 128 KiB by default; a long document is still text.
CSV_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building millions of small lists.

    Parsing creates no reference cycles, but every allocation of a container counts towards a
    collection, and CPython then rescans all live objects again and again: reading OntoNotes'
    1.1M lines takes ~3x longer with the collector running.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class ReadSplit:
    """Examples of one split plus where each came from.

    Attributes:
        examples: SeqExample or TokenExample; labels are raw strings (ints not yet mapped).
        origin: the file path (or hub reference) named in error messages.
        lines: 1-based line (or row) of each example.
        digest: sha256 of the source content, for the bundle fingerprint.
        token_lines: CoNLL: token j of example i sits on line `lines[i] + j`.
        line_prefix: how `where` joins origin and line (":" for files, " row " for hub rows).
        label_column: seq: the column (key) the labels were read from, None for
            `--label-columns`; a regression's label list is this name.
    """

    examples: list
    origin: str
    lines: list[int]
    digest: str
    token_lines: bool = False
    line_prefix: str = ":"
    label_column: str | None = None

    def where(self, index: int, token: int | None = None) -> str:
        """`file:line` of example `index` (of its token `token` where lines are per token)."""
        line = self.lines[index] + (token if token is not None and self.token_lines else 0)
        return f"{self.origin}{self.line_prefix}{line}"

    def subset(self, indices: list[int]) -> ReadSplit:
        """The examples at `indices` (e.g. a carved validation slice), keeping their lines."""
        return dataclasses.replace(self, examples=[self.examples[i] for i in indices], lines=[self.lines[i] for i in indices])


def line_of(data: bytes, pos: int) -> int:
    """1-based line of byte `pos`, counting "\r\n", "\n" and a lone "\r" as one break each."""
    head = data[:pos]
    return head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1


def split_lines(text: str) -> list[str]:
    """Lines of `text` split at "\r\n", "\n" and lone "\r" only (see the module docstring)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


def read_text(path: Path) -> tuple[str, str]:
    """Decode a UTF-8 file (a BOM is dropped) and return (text, sha256 of its bytes).

    Raises:
        DataError: missing or unreadable file, or bytes that are not UTF-8 (names the line and
            the byte, counted in the file as it is on disk, BOM included).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected a file") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read it ({err.strerror}); check the path and its permissions") from None
    skip = len(BOM) if data.startswith(BOM) else 0
    try:
        text = data[skip:].decode("utf-8")
    except UnicodeDecodeError as err:
        pos = skip + err.start
        raise DataError(_not_utf8(path, line_of(data, pos), data, pos)) from None
    return text, hashlib.sha256(data).hexdigest()


def _not_utf8(path: Path, line: int, data: bytes, pos: int) -> str:
    """The one-line error for the byte at `pos` of `data` (on `line`), which does not decode as UTF-8."""
    what = f"byte 0x{data[pos]:02x}"
    if data[pos] == 0xED and pos + 2 < len(data) and 0xA0 <= data[pos + 1] <= 0xBF and 0x80 <= data[pos + 2] <= 0xBF:
        char = data[pos : pos + 3].decode("utf-8", errors="surrogatepass")
        what += f": text holds an unpaired surrogate ({escaped(char)}), as CESU-8/WTF-8 write it"
    return f"{path}:{line}: not UTF-8 text ({what}); save the file as UTF-8"


_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")  # one line, its end kept


def iter_lines(path: Path, keep_ends: bool = False) -> Iterator[str]:
    """The lines of a UTF-8 file one at a time, as they are read: memory stays flat with its size.

    Lines end where `split_lines` ends them ("\r\n", "\n", a lone "\r"), so line numbers
    agree with `read_text`'s readers; a BOM is dropped. `keep_ends=True` keeps each line's end,
    as `io.StringIO(text, newline="")` does (what the csv module reads).

    Raises:
        DataError: as `read_text` (missing, a folder, unreadable, not UTF-8 at its line), when
            iteration reaches the problem.
    """
    try:
        handle = open(path, "rb")  # closed by the with below, inside the generator
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected a file") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read it ({err.strerror}); check the path and its permissions") from None
    line = 0
    with handle:
        first = True
        for chunk in handle:  # split at b"\n" only; a lone "\r" is split below
            if first:
                chunk, first = (chunk[len(BOM):] if chunk.startswith(BOM) else chunk), False
            pieces = _LINE.findall(chunk) if b"\r" in chunk else (chunk,)
            for piece in pieces:
                line += 1
                try:
                    decoded = piece.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise DataError(_not_utf8(path, line, piece, err.start)) from None
                yield decoded if keep_ends else decoded.rstrip("\r\n")


def check_unicode(value: str, where: str, what: str) -> None:
    """Refuse a string holding an unpaired surrogate (JSON's "\\ud800" escape decodes to one).

    Raises:
        DataError: `where: what holds an unpaired surrogate (\\ud800); ...` with the fix.
    """
    char = lone_surrogate(value)
    if char is not None:
        raise DataError(f"{where}: {what} holds an unpaired surrogate ({escaped(char)}); "
                        "the file is not valid Unicode text, re-encode it (or fix that \\u escape)")


def check_visible(value: str, where: str, what: str, fix: str) -> None:
    """Refuse a text with no visible character (empty, spaces, U+200B, NUL, lone marks) as empty."""
    if not has_visible_text(value):
        shown = "".join(dict.fromkeys(escaped(c) for c in value.strip()))[:60]
        detail = f" (only invisible characters: {shown})" if shown else ""
        raise DataError(f"{where}: empty {what}{detail}; {fix}")


def _name(name: str) -> str:
    """A column or key name for a one-line message (quoted when it holds a line break or the like)."""
    return name if name.isprintable() else repr(name)


def pick_column(columns: Sequence[str], wanted: str | None, defaults: Sequence[str], what: str, flag: str, where: str) -> str:
    """The requested column, or the first default present; a one-line error listing what is."""
    present = ", ".join(map(_name, columns)) or "(none)"
    if wanted is not None:
        if wanted not in columns:
            raise DataError(f"{where}: no {what} column {wanted!r}; columns present: {present}; pass {flag} NAME")
        return wanted
    for name in defaults:
        if name in columns:
            return name
    raise DataError(
        f"{where}: no {what} column (looked for {', '.join(defaults)}); columns present: {present}; pass {flag} NAME"
    )


def label_name(value: object, where: str, what: str = "label") -> str:
    """A JSON label as its name: strings as they are (stripped), integers as digits.

    Floats (1.0, NaN), booleans, null, lists and objects are refused: `1.0` and `1` would be two
    classes, and `true` is almost always a column that is not the label.
    """
    if isinstance(value, str):
        check_unicode(value, where, what)
    if isinstance(value, str) and has_visible_text(value):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    hint = " (a score? pass --problem regression)" if isinstance(value, float) and what == "label" else ""
    raise DataError(f"{where}: {what} must be a non-empty string or an integer, got {json.dumps(value)[:40]}; "
                    f"write labels as names (\"positive\") or class ids (1){hint}")


@dataclass(frozen=True)
class LabelFormat:
    """How a sequence file holds its labels (`--label-column` / `--label-columns` /
    `--label-separator` / `--problem`).

    Attributes:
        column: the one label column (None: the first present of `label_keys`).
        columns: multi-label: one 0/1 column per label, named after the label.
        separator: multi-label: the label column holds names joined by this ("a,b"; empty: none).
        problem: the task family member whose labels these are (a `lsllm.problems.Problem`,
            which parses each one: a name, a list of names, a finite number), or None: detect,
            where a JSON list makes that example's label a list and anything else stays one name.
    """

    column: str | None = None
    columns: tuple[str, ...] | None = None
    separator: str | None = None
    problem: Any = None

    def __post_init__(self) -> None:
        if self.columns and self.separator:
            raise ConfigError("--label-columns (one 0/1 column per label) and --label-separator (one column of joined "
                              "names) exclude each other; keep one")
        if self.problem is not None:
            self.problem.refuse_label_settings(None, self.columns, self.separator)

    @property
    def label_keys(self) -> tuple[str, ...]:
        """The label column names looked for when --label-column is not given (the problem type's)."""
        return LABEL_COLUMNS if self.problem is None else self.problem.label_columns


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")  # what a regression label looks like


def shown(value: object) -> str:
    """A value for a one-line message: a string quoted, anything else as JSON writes it."""
    return repr(value)[:40] if isinstance(value, str) else json.dumps(value, default=str)[:40]


def number_label(value: object, where: str) -> float:
    """A regression label: a finite number (JSON number, or a decimal such as "3.5" / "-1e-3").

    Raises:
        DataError: anything else (text, NaN, inf, a boolean, empty), naming the value.
    """
    if isinstance(value, str):
        check_visible(value, where, "label", "every training/evaluation row needs a number")
        number = float(value.strip()) if _NUMBER.fullmatch(value.strip()) else None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        number = None
    if number is None or not math.isfinite(number):
        raise DataError(f"{where}: label {shown(value)} is not a finite number; --problem regression needs a number "
                        "such as 3.5 in the label column (fix the row, or pick the problem type with --problem)")
    return number


def flag_value(value: object, column: str, where: str) -> bool:
    """One `--label-columns` cell: 1 (the example has this label) or 0; "1"/"0" and JSON true/false too.

    Raises:
        DataError: any other value (2, "yes", empty), naming the column.
    """
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return value.strip() == "1"
    if isinstance(value, (bool, int)) and value in (0, 1):
        return bool(value)
    held = "is empty" if isinstance(value, str) and not value.strip() else f"holds {shown(value)}"
    raise DataError(f"{where}: label column {_name(column)!r} {held}; --label-columns reads 0 or 1 in each label "
                    "column (1: the example has that label)")


def split_label(value: str, separator: str, where: str) -> list[str]:
    """A `--label-separator` cell as label names: "joy, love" -> ["joy", "love"]; empty -> [].

    Raises:
        DataError: an empty name between separators ("joy,,love"), naming the cell.
    """
    check_unicode(value, where, "label")
    if not has_visible_text(value):
        return []
    names = [part.strip() for part in value.split(separator)]
    if not all(has_visible_text(name) for name in names):
        raise DataError(f"{where}: empty label name in {shown(value.strip())} (--label-separator {separator!r}); "
                        "remove the extra separator, or leave the cell empty for no labels")
    return list(dict.fromkeys(names))


def list_label(value: list, where: str) -> list[str]:
    """A JSON list of label names (strings or class ids) as names; [] is no label, repeats count once."""
    return list(dict.fromkeys(label_name(v, where, f"label[{j}]") for j, v in enumerate(value)))


def seq_label(value: object, fmt: LabelFormat, where: str, table: bool = False) -> str | list[str] | float:
    """One example's label from its label column, as `fmt` says: a name, a list of names or a number.

    `value` is a table cell (a string, `table=True`) or a JSON / hub value. The problem type
    parses it (`Problem.parse_label`); without one (detect) it is read by `name_label`.
    `--label-columns` labels are read by `flag_value`, not here.
    """
    if fmt.problem is None:
        return name_label(value, fmt, where, table)
    return fmt.problem.parse_label(value, fmt, where, table)


def name_label(value: object, fmt: LabelFormat, where: str, table: bool = False, listed: bool = False) -> str | list[str]:
    """A label of names: a JSON list or a `--label-separator` cell as a list of names, else one name.

    One name is a list of one when `listed` (multi-label) or when the file holds several labels
    per example (label columns, a separator).
    """
    if isinstance(value, list):
        return list_label(value, where)
    if fmt.separator is not None and isinstance(value, str):
        return split_label(value, fmt.separator, where)
    if table:
        name = str(value).strip()
        check_visible(name, where, "label", "every training/evaluation row needs one")
    else:
        name = label_name(value, where)
    return [name] if listed or fmt.columns or fmt.separator else name


def field_names(names: Sequence[str]) -> None:
    """Check the names of several text columns, which become prompt fields (`{premise}`).

    Raises:
        ConfigError: a name given twice, or one a prompt cannot name (not letters, digits, _).
    """
    if len(names) < 2:
        return
    if len(set(names)) != len(names):
        raise ConfigError(f"--text-column names a column twice ({' '.join(names)}); give each text column once")
    bad = next((n for n in names if not _FIELD_NAME.fullmatch(n)), None)
    if bad is not None:
        raise ConfigError(f"--text-column {_name(bad)!r}: several text columns become prompt fields ({{name}}), so each "
                          "name must be letters, digits and _ (not starting with a digit); rename the column")


_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # what a --prompt can name (data/encoding.FIELD)


def seq_text(values: Sequence[str], names: Sequence[str], where: str, fix: str) -> tuple[str, dict[str, str] | None]:
    """(text, fields) of one input from its text column value(s).

    One column: the stripped text, no fields. Several (sentence pairs): the fields kept apart
    in column order, each stripped and checked, and a display text "name: value" per line.

    Raises:
        DataError: an empty text, or an empty field (naming it), at `where`.
    """
    if len(names) == 1:
        text = values[0].strip()
        check_unicode(text, where, "text")
        check_visible(text, where, "text", fix)
        return text, None
    fields = {}
    for name, value in zip(names, values, strict=True):
        value = value.strip()
        check_unicode(value, where, f"field {_name(name)!r}")
        check_visible(value, where, f"field {_name(name)!r}", f"every input needs all of {', '.join(names)}: fill it in or remove the row")
        fields[name] = value
    return fields_text(fields), fields


def read_table(
    path: Path, text_columns: Sequence[str] | None = None, label_column: str | None = None, labelled: bool = True,
    label_format: LabelFormat | None = None,
) -> ReadSplit:
    """Read a CSV or TSV file with a header row into SeqExamples.

    CSV uses standard quoting. TSV is read as-is, without quote handling (GLUE-style: a field
    may start with a quote), unless the file is CSV-quoted TSV as pandas' `to_csv(sep="\\t")`
    writes it (see `_tsv_quoted`). Several text columns are kept apart as the examples'
    `fields` (sentence pairs); text is stripped. Labels are read as `label_format` says (one
    name, names joined by a separator, one 0/1 column per label, or a number); without it, one
    name from `label_column`. Errors name the line where the record starts, also when a quoted
    field runs on over several lines.

    Raises:
        DataError: missing or duplicate column (lists the columns present), ragged row, empty
            text, field or label, a bad 0/1 or number label, or a quoted field that swallows
            what reads as a row of its own.
    """
    fmt = label_format or LabelFormat(column=label_column)
    text, digest = read_text(path)
    with _field_limit(), paused_gc():
        records, quoted = _table_records(path, lambda: io.StringIO(text, newline=""))
        table = _Table(path, records, text_columns, fmt, labelled, quoted)
        examples, lines = [], []
        for line, example in table.rows():
            examples.append(example)
            lines.append(line)
    return ReadSplit(examples, str(path), lines, digest, label_column=table.label_column)


def iter_table(path: Path, text_columns: Sequence[str] | None = None, labelled: bool = True,
               label_format: LabelFormat | None = None) -> Iterator[tuple[int, SeqExample]]:
    """`read_table` one row at a time as the file is read: (line, example), the same checks and errors.

    Memory stays flat with the file's size (prediction inputs of any size). A TSV is read once
    more first (twice if it holds a quote) to decide how its quotes read (`_tsv_quoted`); an
    error found only at the end (a quote that swallowed a row) comes after the rows before it.
    """
    fmt = label_format or LabelFormat()
    with _field_limit():
        records, quoted = _table_records(path, lambda: iter_lines(path, keep_ends=True))
        yield from _Table(path, records, text_columns, fmt, labelled, quoted).rows()


@contextlib.contextmanager
def _field_limit() -> Iterator[None]:
    """Lift the csv module's 128 KiB field limit while reading."""
    limit = csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        yield
    finally:
        csv.field_size_limit(limit)


Record = tuple[int, int, list[str]]  # (first line, last line, fields) of one CSV record


def _table_records(path: Path, lines: Callable[[], Iterable[str]]) -> tuple[Iterator[Record], bool]:
    """The records of a CSV or TSV (`lines()` gives its lines, ends kept, afresh at each call) and
    whether they are read CSV-quoted (a CSV always; a TSV as `_tsv_quoted` decides)."""
    if path.suffix.lower() != ".tsv":
        return _records(path, lines(), ",", csv.QUOTE_MINIMAL), True
    if _tsv_quoted(path, lines):
        return _records(path, lines(), "\t", csv.QUOTE_MINIMAL, strict=True), True
    return _records(path, lines(), "\t", csv.QUOTE_NONE), False


def _records(path: Path, lines: Iterable[str], delimiter: str, quoting: int, strict: bool = False) -> Iterator[Record]:
    """The records of a CSV/TSV with the lines each spans (a quoted field may hold breaks), as read.

    Raises:
        DataError: the csv module's error, naming the line where the record starts.
    """
    failure: list[tuple[int, str]] = []
    yield from _parse(lines, delimiter, quoting, strict, failure)
    if failure:
        raise DataError(f"{path}:{failure[0][0]}: unreadable {path.suffix.lstrip('.').upper()} ({failure[0][1]}); "
                        "check the quoting of the row that starts here")


def _parse(lines: Iterable[str], delimiter: str, quoting: int, strict: bool, failure: list[tuple[int, str]]) -> Iterator[Record]:
    """The records read before the csv module gave up; (first line, error) is appended to `failure` where it did."""
    reader = csv.reader(lines, delimiter=delimiter, quoting=quoting, strict=strict)
    end = 0
    try:
        for row in reader:
            yield end + 1, reader.line_num, row
            end = reader.line_num
    except csv.Error as err:
        failure.append((end + 1, str(err)))


def _blank(row: list[str]) -> bool:
    return not row or (len(row) == 1 and not row[0].strip())


_CSV_QUOTED = re.compile(r'"(?:[^"]|"")*""(?:[^"]|"")*"', re.DOTALL)  # "..." holding a "" escape


@dataclass
class _Reading:
    """What one parse of a TSV found, record by record (so that no record is kept).

    Attributes:
        consistent: records were read and every non-blank one has as many fields as the first (the header).
        evidence: the first line whose fields only a CSV writer produces (see `_tsv_quoted`).
        quote: some field holds a quote.
        digest: of every record read, to tell two readings apart without keeping either.
    """

    consistent: bool
    evidence: int | None
    quote: bool
    digest: str

    @classmethod
    def of(cls, records: Iterable[Record], quoted: bool) -> _Reading:
        width, consistent, evidence, quote = None, True, None, False
        digest = hashlib.sha256()
        for record in records:
            start, _, row = record
            digest.update(repr(record).encode())
            if width is None:
                width = len(row)
            elif consistent and len(row) != width and not _blank(row):
                consistent = False
            if evidence is None and (any("\t" in f or "\n" in f or "\r" in f for f in row) if quoted else
                                     any(f.startswith('"') and _CSV_QUOTED.fullmatch(f) for f in row)):
                evidence = start
            quote = quote or any('"' in f for f in row)
        return cls(consistent and width is not None, evidence, quote, digest.hexdigest())


def _tsv_quoted(path: Path, lines: Callable[[], Iterable[str]]) -> bool:
    """Whether a TSV reads CSV-quoted (pandas) rather than as-is (GLUE); `lines()` gives its lines afresh.

    As-is is the default: GLUE files start fields with a quote they never close ('"quoted"
    start'). The file is read CSV-quoted (tab delimiter, "" for a quote) only when a strict
    quoted parse succeeds (every field that starts with a quote is closed right before a tab or
    line end) with the header's field count on every row, and either the as-is reading has the
    wrong field count somewhere, or a quoted field holds what only a CSV writer produces (a ""
    escape, a tab or a line break). A field merely wrapped in quotes ('"a b"') stays as it is.
    A quote opened in one GLUE row and closed in a later one reads as one quoted field; the
    rows it swallowed are then an error (`_Merges`), not a silent merge. Each reading is a pass
    over the lines that keeps no record.

    Raises:
        DataError: a file that is CSV-quoted (a quoted tab, line break or "") and has the
            wrong field count as-is, but holds a quote that CSV quoting cannot read: named at
            the row where that quote's record starts.
    """
    raw = _Reading.of(_records(path, lines(), "\t", csv.QUOTE_NONE), quoted=False)
    if not raw.quote:
        return False
    failure: list[tuple[int, str]] = []
    quoted = _Reading.of(_parse(lines(), "\t", csv.QUOTE_MINIMAL, True, failure), quoted=True)
    evidence = quoted.evidence if quoted.evidence is not None else raw.evidence
    if failure:
        if raw.consistent or evidence is None:
            logger.info("%s: read as-is, a quote is text (GLUE style; CSV quoting does not read line %d)", path, failure[0][0])
            return False
        raise DataError(
            f"{path}:{failure[0][0]}: a quote in the row that starts here is not closed as CSV quoting needs ({failure[0][1]}), "
            f"while line {evidence} is CSV-quoted; close the quote right before the tab or line end, and double a quote "
            'inside a quoted field ("")'
        )
    if not quoted.consistent or quoted.digest == raw.digest or (raw.consistent and evidence is None):
        logger.info("%s: read as-is, a quote is text (GLUE style)", path)
        return False
    logger.info('%s: read as CSV-quoted TSV (fields in "..." with "" for a quote, as pandas writes them)', path)
    return True


class _Table:
    """A table's header, read from its first record, and then its rows as examples (`rows`)."""

    def __init__(self, path: Path, records: Iterator[Record], text_columns, fmt: LabelFormat, labelled: bool,
                 quoted: bool) -> None:
        first = next(records, None)
        if first is None:
            raise DataError(f"{path}: empty file; expected a header row naming the columns, e.g. text and label")
        header_line, _, header = first
        header = [h.strip() for h in header]
        seen: set[str] = set()
        for name in header:
            if name and name in seen:
                raise DataError(f"{path}:{header_line}: column {_name(name)!r} appears twice in the header; "
                                "rename or remove one, so that it is clear which one to read")
            seen.add(name)
        self.names = [pick_column(header, c, TEXT_COLUMNS, "text", "--text-column", str(path)) for c in (text_columns or [None])]
        field_names(self.names)
        self.text_idx = [header.index(name) for name in self.names]
        self.label_idx: list[int] = []
        self.label_column = None
        if labelled and fmt.columns:
            missing = [c for c in fmt.columns if c not in header]
            if missing:
                raise DataError(f"{path}: no label column {_name(missing[0])!r} (--label-columns); columns present: "
                                f"{', '.join(map(_name, header))}; name the file's 0/1 label columns")
            self.label_idx = [header.index(c) for c in fmt.columns]
        elif labelled:
            self.label_column = pick_column(header, fmt.column, fmt.label_keys, "label", "--label-column", str(path))
            self.label_idx = [header.index(self.label_column)]
        self.path, self.records, self.header, self.fmt, self.labelled, self.quoted = path, records, header, fmt, labelled, quoted
        self.delimiter = "\t" if path.suffix.lower() == ".tsv" else ","

    def rows(self) -> Iterator[tuple[int, SeqExample]]:
        """(line, example) of each non-blank row after the header, as the records are read."""
        path, header, fmt, labelled, label_idx = self.path, self.header, self.fmt, self.labelled, self.label_idx
        # The label column, also when unlabelled (prediction inputs), to recognise rows swallowed by a quote.
        check_idx = label_idx[0] if label_idx else next((header.index(c) for c in LABEL_COLUMNS if c in header), None)
        merges = _Merges(path, header, self.delimiter, check_idx, self.text_idx) if self.quoted and check_idx is not None else None
        for start, end, row in self.records:
            if _blank(row):
                continue
            where = f"{path}:{start}"
            if merges is not None and end > start:
                merges.suspects.append((start, end, row))
            if len(row) != len(header):
                if merges is not None:
                    merges.check()  # an earlier row swallowed by a quote explains more than this count
                raise DataError(_ragged(path, start, end, len(row), len(header), self.delimiter, self.quoted))
            text, fields = seq_text([row[i] for i in self.text_idx], self.names, where, "remove the row or fill it in")
            label = None
            if fmt.columns and labelled:
                label = [c for c, i in zip(fmt.columns, label_idx, strict=True) if flag_value(row[i], c, where)]
            elif labelled:
                label = seq_label(row[label_idx[0]], fmt, where, table=True)
            if merges is not None:
                merges.labels.add(row[check_idx].strip())
            yield start, SeqExample(text, label, fields)
        if merges is not None:
            merges.check()


def _ragged(path: Path, start: int, end: int, n: int, width: int, delimiter: str, quoted: bool) -> str:
    """The one-line error for a record with the wrong field count, naming the line it starts on."""
    message = f"{path}:{start}: {n} fields, the header has {width}"
    if end > start:
        return (message + f": a quote opens a field on this line that runs on to line {end}; close the quote "
                'where the field ends, and double a quote inside a quoted field ("")')
    if delimiter == "\t" and not quoted:
        return (message + "; check the delimiter and quoting: a TSV is read as-is, or CSV-quoted when every field "
                'that starts with a quote is closed ("..." with "" for a quote, as pandas writes it)')
    return message + "; check the delimiter and quoting"


@dataclass
class _Merges:
    """Multi-line records of a quoted table, checked for rows that an unclosed quote swallowed.

    A quoted field may hold a line break. It is a broken row, not text, when a line inside the
    field (or the part of its first line after the opening quote) reads on its own as a complete
    row, with visible text and a label of this file in the label column:
    `"a comedy,positive<break>next,negative`.
    """

    path: Path
    header: list[str]
    delimiter: str
    label_idx: int
    text_idx: list[int]
    suspects: list[Record] = field(default_factory=list)
    labels: set[str] = field(default_factory=set)

    def check(self) -> None:
        """Raise for the first suspect record that swallowed a row (labels seen so far)."""
        for start, end, row in self.suspects:
            for line, fields in self._rows_inside(start, row):
                if (len(fields) == len(self.header) and fields[self.label_idx].strip().strip('"').strip() in self.labels
                        and has_visible_text("".join(fields[i] for i in self.text_idx))):
                    shown = self.delimiter.join(fields)
                    inside = "the rest of this line" if line == start else f"line {line}"
                    raise DataError(
                        f"{self.path}:{start}: a quote opens a field on this line that runs on to line {end}, but "
                        f"{inside} reads as a row of its own ({shown[:60]!r}); close or remove that quote, and "
                        'double a quote inside a quoted field ("")'
                    )

    def _rows_inside(self, start: int, row: list[str]) -> Iterator[tuple[int, list[str]]]:
        """(line, fields) of what sits inside multi-line fields and could be a whole row."""
        first = next((k for k, f in enumerate(row) if "\n" in f or "\r" in f), None)
        if first is None:
            return
        line = start
        for k in range(first, len(row)):
            pieces = split_lines(row[k])
            for i, piece in enumerate(pieces):
                if k == first and i == 0:
                    yield line, row[:first] + self._parse(piece)
                elif 0 < i < len(pieces) - 1 or (i == len(pieces) - 1 and k == len(row) - 1 and piece):
                    yield line + i, self._parse(piece)
            line += len(pieces) - 1

    def _parse(self, piece: str) -> list[str]:
        try:
            return next(csv.reader([piece], delimiter=self.delimiter), [])
        except csv.Error:
            return []


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


class _DuplicateKey(Exception):
    """A JSON object names the same key twice (json.loads would silently keep the last)."""


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def jsonl_records(path: Path) -> tuple[list[tuple[int, dict]], str]:
    """(line, object) for each non-blank line of a JSON Lines file, and the file's digest.

    Lines are split at line breaks only (not at U+2028 inside a string). NaN/Infinity,
    integers over Python's 4300-digit limit and nesting deeper than the parser's recursion
    limit are one-line DataErrors like any other invalid JSON; so is an object that names a
    key twice (which value would be meant?).
    """
    text, digest = read_text(path)
    with paused_gc():
        return list(_json_lines(path, split_lines(text))), digest


def iter_jsonl_records(path: Path) -> Iterator[tuple[int, dict]]:
    """`jsonl_records` one line at a time, as the file is read (prediction inputs of any size)."""
    return _json_lines(path, iter_lines(path))


def _json_lines(path: Path, lines: Iterable[str]) -> Iterator[tuple[int, dict]]:
    first = True
    for line_no, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        if first and raw.lstrip().startswith("["):
            raise DataError(f"{path}: a JSON array; write one JSON object per line (JSON Lines)")
        first = False
        try:
            obj = json.loads(raw, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
        except _DuplicateKey as err:
            raise DataError(f"{path}:{line_no}: key {_name(err.args[0])!r} appears twice in one object; "
                            "keep one of them (JSON readers silently take the last)") from None
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{line_no}: not valid JSON ({err.msg}); write one JSON object per line") from None
        except RecursionError:
            raise DataError(f"{path}:{line_no}: JSON nested too deeply; write one flat object per line") from None
        except ValueError as err:  # NaN/Infinity, or an integer too long to convert
            raise DataError(f"{path}:{line_no}: not valid JSON ({str(err)[:80]}); write one JSON object per line") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(obj).__name__}")
        yield line_no, obj


def read_jsonl_seq(
    path: Path, text_columns: Sequence[str] | None = None, label_column: str | None = None, labelled: bool = True,
    label_format: LabelFormat | None = None,
) -> ReadSplit:
    """Read JSON Lines objects with text field(s) and a label into SeqExamples.

    A label is a name (string or class id), a list of names (multi-label, `[]` for none), a
    number (`--problem regression`), or one 0/1 key per label (`--label-columns`). Several
    text fields are kept apart as `fields`; a record lacking one is an error naming it.
    """
    fmt = label_format or LabelFormat(column=label_column)
    records, digest = jsonl_records(path)
    examples, lines = [], []
    label_col = None
    names: list[str] | None = list(text_columns) if text_columns and len(text_columns) > 1 else None
    if names:
        field_names(names)
    for line, obj in records:
        keys = list(obj)
        where = f"{path}:{line}"
        if names:
            missing = next((k for k in names if k not in obj), None)
            if missing is not None:
                raise DataError(f"{where}: no field {_name(missing)!r} (--text-column {' '.join(names)}); fields present: "
                                f"{', '.join(map(_name, keys)) or '(none)'}; every record needs all of them")
            text_keys = names
        else:
            text_keys = [pick_column(keys, c, TEXT_COLUMNS, "text", "--text-column", where) for c in (text_columns or [None])]
        bad = next((k for k in text_keys if not isinstance(obj[k], str)), None)
        if bad is not None:
            raise DataError(f"{where}: text field {_name(bad)!r} must be a string; for token lists use a token task (tokens/tags)")
        text, fields = seq_text([obj[k] for k in text_keys], text_keys, where, "remove the line or fill it in")
        label = None
        if labelled and fmt.columns:
            missing = next((c for c in fmt.columns if c not in obj), None)
            if missing is not None:
                raise DataError(f"{where}: no label column {_name(missing)!r} (--label-columns); fields present: "
                                f"{', '.join(map(_name, keys))}; give every record each label's 0/1 key")
            label = [c for c in fmt.columns if flag_value(obj[c], c, where)]
        elif labelled:
            key = pick_column(keys, fmt.column, fmt.label_keys, "label", "--label-column", where)
            label_col = label_col or key
            label = seq_label(obj[key], fmt, where)
        examples.append(SeqExample(text, label, fields))
        lines.append(line)
    return ReadSplit(examples, str(path), lines, digest, label_column=label_col)


_BLOCK = re.compile(r"[^\n]*\S[^\n]*(?:\n[^\n]*\S[^\n]*)*")  # a run of non-blank lines


def read_conll(path: Path, tag_column: int = -1, labelled: bool = True) -> ReadSplit:
    """Read CoNLL column format: token in the first column, tag in `tag_column` (default last).

    Sentences are separated by blank lines; `-DOCSTART-` lines are skipped. Tags are checked
    and converted later (see `schemes`), where the dataset's scheme is known. Works a sentence
    block at a time with list comprehensions: OntoNotes train (1.4M lines) reads in < 1 s.

    Every token line of a file must have as many columns as its first one: a line with one
    more ("New York B-LOC") or one fewer (a lost tag column, where the chunk tag would be read
    as the entity tag) is an error, not a silently wrong token or tag.

    Raises:
        DataError: a line without a tag column, or with another column count (names file:line).
    """
    text, digest = read_text(path)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    examples: list[TokenExample] = []
    lines: list[int] = []
    line_no, pos = 1, 0
    width = _Columns()
    for match in _BLOCK.finditer(text):
        line_no += text.count("\n", pos, match.start())
        pos = match.start()
        for start, example in _conll_block(path, line_no, match.group().split("\n"), tag_column, labelled, width):
            examples.append(example)
            lines.append(start)
    return ReadSplit(examples, str(path), lines, digest, token_lines=True)


def iter_conll(path: Path, tag_column: int = -1, labelled: bool = True) -> Iterator[tuple[int, TokenExample]]:
    """`read_conll` a sentence at a time as the file is read: (line of its first token, example), the same errors."""
    width = _Columns()
    block: list[str] = []
    first = 0
    for line_no, line in enumerate(iter_lines(path), 1):
        if line.strip():
            first = first if block else line_no
            block.append(line)
        elif block:
            yield from _conll_block(path, first, block, tag_column, labelled, width)
            block = []
    if block:
        yield from _conll_block(path, first, block, tag_column, labelled, width)


@dataclass
class _Columns:
    """The column count of a CoNLL file's first token line, that line's number and text (0: none seen yet)."""

    width: int = 0
    line: int = 0
    row: str = ""


def _conll_block(path: Path, line_no: int, block: list[str], tag_column: int, labelled: bool,
                 seen: _Columns) -> Iterator[tuple[int, TokenExample]]:
    """The sentences of one run of non-blank lines starting at `line_no` (split at -DOCSTART- lines), checked."""
    sentences = _sentences(block) if any(DOCSTART in row for row in block) else [(0, block)]
    for offset, rows in sentences:
        start = line_no + offset
        cols = [row.split() for row in rows]
        lens = set(map(len, cols))
        if labelled and (min(lens) < 2 or not -min(lens) <= tag_column < min(lens)):
            bad = next(j for j, c in enumerate(cols) if len(c) < 2 or not -len(c) <= tag_column < len(c))
            raise DataError(
                f"{path}:{start + bad}: malformed CoNLL line {rows[bad].strip()[:60]!r}: expected 'token ... tag' "
                f"(tag column {tag_column}), blank lines between sentences"
            )
        if not seen.width:
            seen.width, seen.line, seen.row = len(cols[0]), start, rows[0]
        width, first, first_row = seen.width, seen.line, seen.row
        if lens != {width}:
            bad = next(j for j, c in enumerate(cols) if len(c) != width)
            if _spaced(first_row):  # the line that set the column count is the odd one
                raise DataError(
                    f"{path}:{first}: {width} columns in {first_row.strip()[:60]!r}, a tab-separated line with a space "
                    f"inside a column, while line {start + bad} has {len(cols[bad])}; write one word per line "
                    "(a token with a space?) with the same columns on every line"
                )
            raise DataError(
                f"{path}:{start + bad}: {len(cols[bad])} columns in {rows[bad].strip()[:60]!r}, but line {first} has {width}; "
                "write one word per line with the same columns on every line (a token with a space? a lost tag?)"
            )
        tags = [c[tag_column] for c in cols] if labelled else None
        yield start, TokenExample([c[0] for c in cols], tags)


def _spaced(row: str) -> bool:
    """A tab-separated line with a space inside a column ("New York\tB-LOC")."""
    return "\t" in row and len(row.split()) > sum(1 for f in row.split("\t") if f.strip())


def _sentences(block: list[str]) -> list[tuple[int, list[str]]]:
    """Split a block of non-blank lines at -DOCSTART- lines: (offset of first line, lines)."""
    out, current, first = [], [], 0
    for offset, row in enumerate(block):
        if row.lstrip().startswith(DOCSTART):
            if current:
                out.append((first, current))
            current, first = [], offset + 1
        else:
            current.append(row)
    if current:
        out.append((first, current))
    return out


def read_jsonl_tokens(
    path: Path, tokens_key: str | None = None, tags_key: str | None = None, labelled: bool = True
) -> ReadSplit:
    """Read JSON Lines objects with a token list and a tag list (strings or ints) of equal length.

    Raises:
        DataError: missing key, non-list value, empty token, or token/tag count mismatch (file:line).
    """
    records, digest = jsonl_records(path)
    examples, lines = [], []
    for line, obj in records:
        keys = list(obj)
        where = f"{path}:{line}"
        tok_key = pick_column(keys, tokens_key, TOKEN_KEYS, "tokens", "--text-column", where)
        tokens = obj[tok_key]
        if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) and t.strip() for t in tokens):
            raise DataError(f"{path}:{line}: {tok_key!r} must be a non-empty list of non-empty strings")
        check_unicode("".join(tokens), where, f"{tok_key!r}")
        tags = None
        if labelled:
            tag_key = pick_column(keys, tags_key, TAG_KEYS, "tags", "--label-column", where)
            tags = obj[tag_key]
            if not isinstance(tags, list):
                raise DataError(f"{path}:{line}: {tag_key!r} must be a list of tags")
            if len(tags) != len(tokens):
                raise DataError(
                    f"{path}:{line}: {len(tokens)} tokens but {len(tags)} tags; give exactly one tag per token"
                )
            tags = [label_name(t, f"{path}:{line}", f"{tag_key}[{j}]") for j, t in enumerate(tags)]
        examples.append(TokenExample([t.strip() for t in tokens], tags))
        lines.append(line)
    return ReadSplit(examples, str(path), lines, digest)


def sniff_task(path: Path, tokens_key: str | None = None) -> str:
    """Infer the task from a file's format: tables are seq, CoNLL is token, JSONL by its fields."""
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return "seq"
    if suffix in CONLL_SUFFIXES:
        return "token"
    if suffix in JSONL_SUFFIXES:
        records, _ = jsonl_records(path)
        if not records:
            raise DataError(f"{path}: no records")
        obj = records[0][1]
        keys = [tokens_key] if tokens_key else TOKEN_KEYS
        return "token" if any(isinstance(obj.get(k), list) for k in keys) else "seq"
    raise DataError(f"{path}: unknown file type {suffix!r}; use .tsv/.csv/.jsonl (text) or .txt/.conll/.jsonl (tokens)")


def read_seq_file(path: Path, text_columns: Sequence[str] | None = None, labelled: bool = True,
                  label_format: LabelFormat | None = None) -> ReadSplit:
    """Read one split file of a sequence task (.tsv, .csv, .jsonl); labels as `label_format` says.

    Several `text_columns` become the examples' `fields`. `Problem.read_file` calls this for
    sequence problem types (`lsllm.problems.family(...).read_file(path)`).
    """
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return read_table(path, text_columns, labelled=labelled, label_format=label_format)
    if suffix in JSONL_SUFFIXES:
        return read_jsonl_seq(path, text_columns, labelled=labelled, label_format=label_format)
    raise DataError(f"{path}: sequence tasks read .tsv, .csv or .jsonl files, not {suffix or 'no extension'}")


def read_token_file(path: Path, text_columns: Sequence[str] | None = None, label_column: str | None = None,
                    tag_column: int = -1, labelled: bool = True) -> ReadSplit:
    """Read one split file of a token task: CoNLL columns, or JSONL with tokens/tags (`text_columns[0]`
    and `label_column` name the keys)."""
    suffix = path.suffix.lower()
    if suffix in CONLL_SUFFIXES:
        return read_conll(path, tag_column, labelled)
    if suffix in JSONL_SUFFIXES:
        tokens_key = text_columns[0] if text_columns else None
        return read_jsonl_tokens(path, tokens_key, label_column, labelled)
    raise DataError(f"{path}: token tasks read CoNLL (.txt/.conll) or JSONL with tokens/tags, not {suffix or 'no extension'}")


def read_label_names(path: Path) -> list[str]:
    """labels.txt: one label name per line, line 1 = id 0; blank lines are ignored."""
    text, _ = read_text(path)
    names = [line.strip() for line in split_lines(text) if line.strip()]
    if len(set(names)) != len(names):
        raise DataError(f"{path}: duplicate label names; list each label once, in id order")
    if not names:
        raise DataError(f"{path}: no label names; write one label per line in id order")
    return names
