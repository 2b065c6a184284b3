"""Fuzzing the readers: every file either loads correctly or fails with one line naming file:line.

Three kinds of generated input:
- round trips: random texts / tokens written the way a tool writes them (json.dumps,
  csv.writer, "token tag" lines) must read back exactly, with U+2028 and friends inside;
- malformed files: valid files cut, spliced and sprinkled with the pieces that broke readers
  before (long fields, deep nesting, 5000-digit numbers, NaN, BOMs, CR-only line ends, tabs in
  tokens) must load or raise a DataError naming the file and a line that exists;
- planted errors: one bad line at a known position, under any line-ending style and with or
  without a BOM, must be reported at exactly that line.
"""

from __future__ import annotations

import csv
import io
import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsllm.config import DataConfig
from lsllm.data import load_data, read_predict_inputs
from lsllm.data.examples import SeqExample, TokenExample
from lsllm.data.readers import read_label_names
from lsllm.data.text import has_visible_text
from lsllm.errors import DataError, LsllmError
from lsllm.problems import family
from tests.fuzz.conftest import FUZZ, assert_clean

# Characters that once split or broke lines, plus ordinary text.
TRICKY = "\u2028\u2029\u0085\x0b\x0c\x1c\x1d\x1e\u00a0\ufeff\x00é中😀\"',\\"
TEXT = st.text(alphabet=st.one_of(st.sampled_from(TRICKY), st.characters(codec="utf-8")), min_size=1, max_size=30)
NEWLINES = st.sampled_from(["\n", "\r\n", "\r"])

SUFFIX_TASK = [(".tsv", "seq"), (".csv", "seq"), (".jsonl", "seq"), (".jsonl", "token"), (".txt", "token")]
VALID = {
    ".tsv": "text\tlabel\na great movie\tpos\nboring\tneg\n",
    ".csv": 'text,label\n"a great, movie",pos\nboring,neg\n',
    ".jsonl": '{"text": "a great movie", "label": "pos", "tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}\n'
              '{"text": "boring", "label": 1, "tokens": ["Peter"], "tags": ["B-PER"]}\n',
    ".txt": "EU B-ORG\nrejects O\n\nPeter B-PER\nBlackburn I-PER\n",
}
PIECES = [
    "\n", "\r", "\r\n", "\t", ",", '"', "'", "{", "}", "[", "]", ":", "\\", "\ufeff", "\x00", "\u2028", "\u0085",
    "x" * 140_000,  # over the csv module's 128 KiB default field limit
    "[" * 3000 + "]" * 3000,  # nesting deeper than the JSON parser's recursion limit
    "9" * 5000,  # over Python's 4300-digit int conversion limit
    "NaN", "Infinity", "1.0", "true", "null", "-DOCSTART- -X- O O", "B-PER", "I-", "O", "New York",
    '{"text": "a", "label": 1.0}', '{"text": "a", "label": true}', '{"tokens": [], "tags": []}',
    '{"tokens": ["a"], "tags": [NaN]}', '{"text": ["a"]}', '{"label": "x"}', "text\tlabel", "text,label",
]


@st.composite
def mangled(draw, suffix: str) -> str:
    """A valid file of this kind with a few random cuts, splices and inserted pieces."""
    text = VALID[suffix]
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "duplicate"]))
        if action == "insert":
            text = text[:pos] + draw(st.sampled_from(PIECES) | TEXT) + text[pos:]
        elif action == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 12)):]
        else:
            text = text[:pos] + text[pos:pos + 40] + text[pos:]
    return text


def _read_or_clean_error(path, task, content):
    """The file read as the task family member of `task`, or None after checking its error is a clean one-line DataError."""
    try:
        return family(task).read_file(path)
    except DataError as err:
        assert_clean(err, path, content)
        return None


@pytest.mark.parametrize(("suffix", "task"), SUFFIX_TASK)
@given(data=st.data())
@FUZZ
def test_mangled_files_load_or_fail_cleanly(new_path, suffix, task, data):
    text = data.draw(mangled(suffix))
    raw = text.encode("utf-8", errors="surrogatepass")
    if data.draw(st.booleans()):
        raw = data.draw(st.sampled_from([b"\xef\xbb\xbf", b"", b"\xff"])) + raw  # BOM, nothing, or a bad byte
    path = new_path(suffix)
    path.write_bytes(raw)
    read = _read_or_clean_error(path, task, raw)
    if read is not None:
        assert len(read.examples) == len(read.lines)
        for example in read.examples:
            if task == "seq":
                assert isinstance(example, SeqExample) and has_visible_text(example.text) and has_visible_text(example.label)
            else:
                assert isinstance(example, TokenExample) and len(example.tokens) == len(example.tags)
                assert all(tok and not any(c.isspace() for c in tok) or suffix == ".jsonl" for tok in example.tokens)
    try:  # the same bytes as prediction inputs
        inputs = read_predict_inputs(path, task=task)
        assert inputs
    except DataError as err:
        assert_clean(err, path, raw)


@given(texts=st.lists(TEXT.filter(has_visible_text), min_size=1, max_size=6), labels=st.lists(st.sampled_from(["pos", "neg", 7]), min_size=6, max_size=6))
@FUZZ
def test_jsonl_round_trip_keeps_line_separators_inside_strings(new_path, texts, labels):
    path = new_path(".jsonl")
    path.write_text("".join(json.dumps({"text": t, "label": lab}, ensure_ascii=False) + "\n" for t, lab in zip(texts, labels, strict=False)),
                    encoding="utf-8")
    read = family("seq").read_file(path)
    assert [e.text for e in read.examples] == [t.strip() for t in texts]
    assert [e.label for e in read.examples] == [str(lab) for lab in labels[: len(texts)]]
    assert read.lines == list(range(1, len(texts) + 1))


@given(rows=st.lists(st.tuples(TEXT, st.sampled_from(["pos", "neg", "9" * 5000])), min_size=1, max_size=6),
       newline=NEWLINES, long=st.booleans())
@FUZZ
def test_csv_round_trip_with_quotes_newlines_and_long_fields(new_path, rows, newline, long):
    rows = [(("y" * 140_000 if long and i == 0 else "") + t, lab) for i, (t, lab) in enumerate(rows)]
    rows = [(t, lab) for t, lab in rows if has_visible_text(t) and "\x00" not in t and not any("\ud800" <= c <= "\udfff" for c in t)]
    if not rows:
        return
    buffer = io.StringIO(newline="")
    # QUOTE_ALL: with lineterminator "\n", csv.writer leaves a lone "\r" unquoted, a real line break
    csv.writer(buffer, lineterminator=newline, quoting=csv.QUOTE_ALL).writerows([("text", "label"), *rows])
    path = new_path(".csv")
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    read = family("seq").read_file(path)
    assert [(e.text, e.label) for e in read.examples] == [(" ".join([t.strip()]), lab) for t, lab in rows]


TOKEN = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=8).filter(
    lambda t: not any(c.isspace() for c in t) and not t.startswith("-DOCSTART-"))
TAG = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC"])


@given(sentences=st.lists(st.lists(st.tuples(TOKEN, TAG), min_size=1, max_size=5), min_size=1, max_size=4),
       newline=NEWLINES, sep=st.sampled_from([" ", "\t"]), bom=st.booleans())
@FUZZ
def test_conll_round_trip_and_line_numbers(new_path, sentences, newline, sep, bom):
    lines, starts = [], []
    for sentence in sentences:
        starts.append(len(lines) + 1)
        lines += [f"{tok}{sep}{tag}" for tok, tag in sentence] + [""]
    path = new_path(".conll")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + newline.join(lines).encode("utf-8"))
    read = family("token").read_file(path)
    assert [e.tokens for e in read.examples] == [[tok for tok, _ in s] for s in sentences]
    assert [e.tags for e in read.examples] == [[tag for _, tag in s] for s in sentences]
    assert read.lines == starts


# ------------------------------------------------------------------------- planted errors

GOOD_LINE = {".tsv": "fine\tpos", ".jsonl": '{"text": "fine", "label": "pos"}', ".conll": "fine O"}
HEADER = {".tsv": ["text\tlabel"], ".jsonl": [], ".conll": []}
BAD_LINE = {
    ".tsv": ["one\ttwo\tthree", "x" * 140_000 + "\tpos\textra", "\u200b\tpos", "\x00 \u0301\tpos", "fine\t\ufeff",
             '"a\ttab\tpos'],
    ".jsonl": ['{"text": "a", "label": 1.0}', '{"text": "a", "label": true}', '{"text": "a", "label": NaN}',
               '{"text": "a", "label": null}', "[" * 5000 + "]" * 5000, '{"text": "a", "label": ' + "9" * 5000 + "}",
               '{"text": "a", "label": "pos"', '{"text": "a\u2028b", "label": ["pos"]}',
               '{"text": "\\ud800", "label": "pos"}', '{"text": "a", "label": "\\udfff"}', '{"text": "a", "label": "pos", "label": "neg"}',
               '{"text": "\\u200b\\u0000", "label": "pos"}', '{"text": " \\u0301", "label": "pos"}', '{"text": "a", "label": "\\u2060"}'],
    ".conll": ["New York\tB-LOC", "lost", "New York B-LOC O"],
}


@pytest.mark.parametrize("suffix", [".tsv", ".jsonl", ".conll"])
@given(data=st.data(), newline=NEWLINES, bom=st.booleans())
@FUZZ
def test_a_bad_line_is_reported_at_its_line(new_path, suffix, data, newline, bom):
    before = data.draw(st.lists(st.sampled_from([GOOD_LINE[suffix], ""]), max_size=6))
    # A good first line: it fixes CoNLL's column count, and a JSONL file opening with "[" is a JSON array
    before = [GOOD_LINE[suffix], *before]
    bad = data.draw(st.sampled_from(BAD_LINE[suffix]))
    lines = HEADER[suffix] + before + [bad, GOOD_LINE[suffix]]
    path = new_path(suffix)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + newline.join(lines).encode("utf-8"))
    with pytest.raises(DataError) as err:
        family("seq" if suffix != ".conll" else "token").read_file(path)
    assert assert_clean(err.value, path) == len(lines) - 1, str(err.value)


@given(data=st.data(), newline=NEWLINES, bom=st.booleans())
@FUZZ
def test_undecodable_byte_names_its_line_and_value(new_path, data, newline, bom):
    lines = ["text\tlabel"] + data.draw(st.lists(st.sampled_from(["fine\tpos", ""]), max_size=6))
    bad = data.draw(st.sampled_from([b"\xff", b"\xe9", b"\xc3(", b"\x80"]))
    raw = (b"\xef\xbb\xbf" if bom else b"") + newline.join(lines).encode() + newline.encode() + b"caf" + bad + b"\tpos\n"
    path = new_path(".tsv")
    path.write_bytes(raw)
    with pytest.raises(DataError) as err:
        family("seq").read_file(path)
    assert assert_clean(err.value, path) == len(lines) + 1
    assert f"byte 0x{bad[0]:02x}" in str(err.value)


def test_label_names_keep_unicode_separators_and_read_cr_only(write):
    assert read_label_names(write("l1.txt", "a\u2028b\nc\n")) == ["a\u2028b", "c"]
    assert read_label_names(write("l2.txt", "neg\rpos\r")) == ["neg", "pos"]


# ------------------------------------------------------------------------- labels: typos and rare classes


def _tsv(rows) -> str:
    return "text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in rows)


@given(typo=st.sampled_from(["positve", "Positive", "pos itive", "0"]), where=st.sampled_from(["validation", "test"]),
       line=st.integers(0, 3))
@FUZZ
def test_a_label_missing_from_train_is_an_error_naming_file_line_and_labels(new_path, typo, where, line):
    folder = new_path("", "d")
    folder.mkdir()
    (folder / "train.tsv").write_text(_tsv([("good", "positive"), ("bad", "negative")] * 3))
    rows = [("fine", "positive")] * 4
    rows[line] = ("fine", typo)
    other = "test" if where == "validation" else "validation"
    (folder / f"{where}.tsv").write_text(_tsv(rows))
    (folder / f"{other}.tsv").write_text(_tsv([("fine", "negative")]))
    with pytest.raises(DataError) as err:
        load_data(DataConfig(data=str(folder)))
    assert assert_clean(err.value, folder / f"{where}.tsv") == line + 2
    assert repr(typo) in str(err.value) and "--labels" in str(err.value) and "train" in str(err.value)


@given(common=st.integers(20, 60), position=st.integers(0, 39), typo=st.sampled_from(["positve", "neg"]))
@FUZZ
def test_a_label_seen_once_in_train_is_a_loud_warning_unless_labels_are_given(new_path, caplog, common, position, typo):
    folder = new_path("", "d")
    folder.mkdir()
    rows = [("good", "positive"), ("bad", "negative")] * common
    rows.insert(position, ("meh", typo))
    (folder / "train.tsv").write_text(_tsv(rows))
    (folder / "test.tsv").write_text(_tsv([("fine", "positive"), ("bad", "negative")]))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lsllm.data.labels"):
        bundle = load_data(DataConfig(data=str(folder)))
    assert typo in bundle.labels
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"{folder / 'train.tsv'}:{position + 2}: label {typo!r} occurs 1 time")
    assert "--labels" in warnings[0]
    # With the label set given, the typo is an error at its line, and nothing is merely warned.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lsllm.data.labels"), pytest.raises(DataError) as err:
        load_data(DataConfig(data=str(folder), labels=["negative", "positive"]))
    assert assert_clean(err.value, folder / "train.tsv") == position + 2
    assert not caplog.records


def test_rare_labels_are_not_warned_about_when_every_label_is_rare(write, tmp_path, caplog):
    write("d/train.tsv", _tsv([(f"t{i}", f"class{i}") for i in range(30)]))
    with caplog.at_level(logging.WARNING, logger="lsllm.data.labels"):
        assert len(load_data(DataConfig(data=str(tmp_path / "d"))).labels) == 30
    assert not caplog.records


def test_a_rare_entity_type_is_warned_about_at_its_line(write, tmp_path, caplog):
    write("n/train.txt", "Peter B-PER\nsaid O\n\n" * 45 + "Blackburn B-PRE\n")  # median of (45, 1) entities: 23
    write("n/test.txt", "Peter B-PER\n")
    with caplog.at_level(logging.WARNING, logger="lsllm.data.labels"):
        load_data(DataConfig(data=str(tmp_path / "n")))
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"{tmp_path / 'n' / 'train.txt'}:136: entity type 'PRE' occurs 1 time") and "--labels" in message


@pytest.mark.parametrize("value", ["1.0", "true", "false", "NaN", "-Infinity", "null", "[1]", '{"a": 1}', '""', "1e3"])
def test_json_labels_must_be_names_or_integers(write, value):
    path = write("l.jsonl", '{"text": "a", "label": "pos"}\n{"text": "b", "label": ' + value + "}\n")
    with pytest.raises(DataError) as err:
        family("seq").read_file(path)
    assert assert_clean(err.value, path) == 2
    tags = write("t.jsonl", '{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["a"], "tags": [' + value + "]}\n")
    with pytest.raises(DataError) as err:
        family("token").read_file(tags)
    assert assert_clean(err.value, tags) == 2


def test_long_digit_labels_are_names_not_a_traceback(write, tmp_path):
    write("d/train.tsv", _tsv([("a", "9" * 5000), ("b", "1")] * 3))
    bundle = load_data(DataConfig(data=str(tmp_path / "d")))
    assert bundle.labels == ["1", "9" * 5000]


@pytest.mark.parametrize(("content", "line"), [
    ("EU B-ORG\nNew York\tB-LOC\n", 2),  # a token with a space in a tab-separated file
    ("EU NNP B-NP B-ORG\nrejects VBZ B-VP O\ncall NN I-NP\n", 3),  # the NER column is lost: I-NP must not be read as a tag
    ("EU B-ORG\n\nrejects\n", 3),
    ("New York\tB-LOC\nis\tO\n", 1),  # the same on the file's first token line, which fixes the column count
    ("New York\tB-LOC\n\nis\tO\n", 1),
    ("-DOCSTART-\tO\n\nNew York\tB-LOC\nis\tO\n", 3),
])
def test_conll_lines_with_the_wrong_columns_are_errors(write, content, line):
    path = write("c.conll", content)
    with pytest.raises(DataError) as err:
        family("token").read_file(path)
    assert assert_clean(err.value, path) == line
    with pytest.raises(DataError) as err:  # also as prediction input, where "New York" would become "New"
        read_predict_inputs(path)
    assert assert_clean(err.value, path) == line


@pytest.mark.parametrize("content", ["", "\n\n  \n", "\ufeff"])
@pytest.mark.parametrize("suffix", [".txt", ".jsonl", ".tsv", ".conll"])
def test_predict_inputs_without_any_input_are_an_error(write, content, suffix):
    path = write(f"empty{suffix}", content)
    with pytest.raises(LsllmError) as err:
        read_predict_inputs(path)
    assert_clean(err.value, path)


def test_predict_jsonl_checks_tokens_and_tags(write):
    for bad in ('{"tokens": []}', '{"tokens": ["a", 1]}', '{"tokens": ["a", " "]}', '{"tokens": ["a"], "tags": ["O", "O"]}',
                '{"tokens": ["a"], "tags": [1.5]}', '{"text": "a", "label": true}'):
        path = write("p.jsonl", '{"text": "fine"}\n' + bad + "\n")
        with pytest.raises(DataError) as err:
            read_predict_inputs(path)
        assert assert_clean(err.value, path) == 2, bad


# ------------------------------------------------------------------------- planted: errors that used to name another line

@given(data=st.data(), newline=NEWLINES, bom=st.booleans())
@FUZZ
def test_a_token_with_a_space_is_reported_at_its_line_wherever_it_is(new_path, data, newline, bom):
    """"New York<TAB>B-LOC" in a tab-separated file, also on the first token line (which sets the column count)."""
    sentences = data.draw(st.lists(st.lists(st.sampled_from(["EU\tB-ORG", "rejects\tO", "call\tO"]), min_size=1, max_size=4),
                                   min_size=2, max_size=4))
    i = data.draw(st.integers(0, len(sentences) - 1))
    j = data.draw(st.integers(0, len(sentences[i])))
    sentences[i].insert(j, data.draw(st.sampled_from(["New York\tB-LOC", "New York\tI-LOC", "a b c\tO"])))
    lines = ["-DOCSTART-\tO", ""] if data.draw(st.booleans()) else []
    for sentence in sentences:
        lines += [*sentence, ""]
    bad = next(n for n, line in enumerate(lines, 1) if " " in line)
    path = new_path(".conll")
    raw = (b"\xef\xbb\xbf" if bom else b"") + newline.join(lines).encode("utf-8")
    path.write_bytes(raw)
    for read in (lambda: family("token").read_file(path), lambda: read_predict_inputs(path)):
        with pytest.raises(DataError) as err:
            read()
        assert assert_clean(err.value, path, raw) == bad, str(err.value)


@given(data=st.data(), newline=NEWLINES, bom=st.booleans(), suffix=st.sampled_from([".csv", ".tsv"]))
@FUZZ
def test_an_unclosed_quote_is_reported_where_its_record_starts(new_path, data, newline, bom, suffix):
    """A row opening a quote it never closes swallows the rows after it: never a merge, and the
    error names the row with the quote, not the end of the swallowed lines."""
    sep = "," if suffix == ".csv" else "\t"
    good = [f"text{sep}label"] + data.draw(st.lists(st.sampled_from([f"fine{sep}positive", f"bad{sep}negative", ""]), max_size=4))
    good.append(f"ok{sep}negative")  # a label of the file: what the swallowed rows are recognised by
    label = data.draw(st.sampled_from(["positive", "negative"]))
    if suffix == ".csv":
        broken = data.draw(st.sampled_from([f'"a gorgeous comedy{sep}{label}', f'"a, b{sep}{label}', f'x "y{sep}{label}'.replace('x "', '"x ')]))
    else:  # CSV-quoted TSV (a pandas file: a quoted tab) with one quote left open
        good.append(f'"a\ttab"{sep}positive')
        broken = data.draw(st.sampled_from([f'"a gorgeous comedy{sep}{label}', f'"a ""b{sep}{label}']))
    after = data.draw(st.lists(st.sampled_from([f"row{sep}positive", f"row two{sep}negative", ""]), min_size=0, max_size=9))
    lines = good + [broken] + after
    path = new_path(suffix)
    raw = (b"\xef\xbb\xbf" if bom else b"") + newline.join(lines).encode("utf-8")
    path.write_bytes(raw)
    for read in (lambda: family("seq").read_file(path), lambda: read_predict_inputs(path)):
        try:
            got = read()
        except DataError as err:
            assert assert_clean(err, path, raw) == len(good) + 1, str(err)
        else:  # only a TSV read as-is, where the quote is text and nothing merges
            assert suffix == ".tsv" and len(got if isinstance(got, list) else got.examples) == sum(1 for x in lines[1:] if x), got


@given(rows=st.lists(st.tuples(TEXT, st.sampled_from(["positive", "negative"])), min_size=1, max_size=6),
       newline=st.sampled_from(["\n", "\r\n"]), index=st.booleans())
@FUZZ
def test_a_tsv_written_by_a_csv_writer_reads_back(new_path, rows, newline, index):
    """pandas' to_csv(sep="\\t") quoting (QUOTE_MINIMAL, "" escapes): tabs, line breaks and quotes in texts."""
    if newline == "\n":  # csv.writer quotes only its line terminator's characters: a lone "\r" would end the row
        rows = [(t.replace("\r", " "), lab) for t, lab in rows]
    rows = [(t, lab) for t, lab in rows if has_visible_text(t) and "\x00" not in t]
    if not rows:
        return
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter="\t", lineterminator=newline)
    writer.writerows([([""] if index else []) + ["text", "label"]] + [([str(i)] if index else []) + [t, lab] for i, (t, lab) in enumerate(rows)])
    path = new_path(".tsv")
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    read = family("seq").read_file(path)
    assert [(e.text, e.label) for e in read.examples] == [(t.strip(), lab) for t, lab in rows]
