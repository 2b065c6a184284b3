"""File readers: formats, defaults, file:line errors, and write -> read round trips."""

from __future__ import annotations

import csv
import json
import logging
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsllm.config import DataConfig
from lsllm.data import load_data, read_predict_inputs
from lsllm.data.examples import SeqExample, TokenExample
from lsllm.data.readers import (
    read_conll,
    read_jsonl_seq,
    read_jsonl_tokens,
    read_label_names,
    read_table,
    sniff_task,
)
from lsllm.data.text import has_visible_text
from lsllm.errors import DataError
from lsllm.problems import family


def test_tsv_reads_quotes_literally_and_strips(write):
    path = write("train.tsv", 'text\tlabel\n"quoted" start \tpos\nplain\tneg\n')
    rs = read_table(path)
    assert rs.examples == [SeqExample('"quoted" start', "pos"), SeqExample("plain", "neg")]
    assert rs.lines == [2, 3]
    assert rs.where(1) == f"{path}:3"


def test_csv_quoting_several_text_columns_and_custom_label(write):
    path = write("d.csv", 'title,body,y\n"a, b",c,1\nd,"e ""f""",0\n')
    rs = read_table(path, ["title", "body"], "y")  # several text columns are kept apart, never joined
    assert rs.examples == [SeqExample("title: a, b\nbody: c", "1", {"title": "a, b", "body": "c"}),
                           SeqExample('title: d\nbody: e "f"', "0", {"title": "d", "body": 'e "f"'})]


def test_sentence_column_is_a_default(write):
    rs = read_table(write("d.tsv", "idx\tsentence\tlabel\n0\thi\t1\n"))
    assert rs.examples == [SeqExample("hi", "1")]


def test_missing_column_lists_present_columns(write):
    path = write("d.tsv", "review\tstars\nnice\t5\n")
    with pytest.raises(DataError, match=r"d\.tsv: no text column \(looked for text, sentence\); columns present: review, stars; pass --text-column"):
        read_table(path)
    with pytest.raises(DataError, match=r"no label column 'y'; columns present: review, stars; pass --label-column"):
        read_table(path, ["review"], "y")


def test_empty_text_names_file_and_line(write):
    path = write("d.tsv", "text\tlabel\nok\t1\n  \t0\n")
    with pytest.raises(DataError, match=rf"^{path}:3: empty text"):
        read_table(path)


def test_ragged_row_names_line(write):
    path = write("d.tsv", "text\tlabel\nok\t1\nbad\t1\textra\n")
    with pytest.raises(DataError, match=rf"{path}:3: 3 fields, the header has 2"):
        read_table(path)


def test_wrong_encoding_says_save_as_utf8(write):
    path = write("d.tsv", "text\tlabel\nok\t1\ncaf\xe9\t0\n".encode("latin-1"))
    with pytest.raises(DataError, match=rf"^{path}:3: not UTF-8 text \(byte 0xe9\); save the file as UTF-8$"):
        read_table(path)


def test_utf8_bom_is_dropped(write):
    path = write("d.tsv", "\ufefftext\tlabel\nhi\t1\n".encode())
    assert read_table(path).examples == [SeqExample("hi", "1")]


def test_jsonl_seq_int_and_string_labels(write):
    path = write("d.jsonl", '{"text": "a", "label": 1}\n\n{"text": "b", "label": "neg"}\n')
    rs = read_jsonl_seq(path)
    assert rs.examples == [SeqExample("a", "1"), SeqExample("b", "neg")]
    assert rs.lines == [1, 3]


def test_jsonl_errors_name_the_line(write):
    with pytest.raises(DataError, match=r"d\.jsonl:2: not valid JSON"):
        read_jsonl_seq(write("d.jsonl", '{"text": "a", "label": 1}\n{"text": \n'))
    with pytest.raises(DataError, match=r"e\.jsonl:1: no label column \(looked for label, labels\); columns present: text, y"):
        read_jsonl_seq(write("e.jsonl", '{"text": "a", "y": 1}\n'))
    with pytest.raises(DataError, match=r"f\.jsonl: a JSON array"):
        read_jsonl_seq(write("f.jsonl", '[{"text": "a"}]\n'))


def test_conll_docstart_blank_lines_and_tag_column(write):
    text = "-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\n-DOCSTART- -X- O O\nPeter NNP B-NP B-PER\n"
    path = write("d.txt", text)
    rs = read_conll(path)
    assert rs.examples == [TokenExample(["EU", "rejects"], ["B-ORG", "O"]), TokenExample(["Peter"], ["B-PER"])]
    assert rs.lines == [3, 8]
    assert rs.where(0, 1) == f"{path}:4"
    assert read_conll(path, tag_column=2).examples[0].tags == ["B-NP", "B-VP"]


def test_conll_crlf_line_endings(write):
    rs = read_conll(write("d.txt", "EU B-ORG\r\nrejects O\r\n\r\nPeter B-PER\r\n"))
    assert [ex.tokens for ex in rs.examples] == [["EU", "rejects"], ["Peter"]]


def test_malformed_conll_line_names_file_and_line(write):
    path = write("d.txt", "EU B-ORG\nrejects O\n\nPeter\nBlackburn I-PER\n")
    with pytest.raises(DataError, match=rf"^{path}:4: malformed CoNLL line 'Peter'"):
        read_conll(path)


def test_jsonl_tokens_mismatch_names_line(write):
    path = write("d.jsonl", '{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["a", "b"], "tags": ["O"]}\n')
    with pytest.raises(DataError, match=rf"^{path}:2: 2 tokens but 1 tags; give exactly one tag per token$"):
        read_jsonl_tokens(path)


def test_jsonl_tokens_int_tags_and_custom_keys(write):
    path = write("d.jsonl", '{"words": ["a", "b"], "ner": [1, 0]}\n')
    rs = read_jsonl_tokens(path, "words", "ner")
    assert rs.examples == [TokenExample(["a", "b"], ["1", "0"])]


@pytest.mark.parametrize(
    ("name", "text", "task"),
    [("a.tsv", "text\tlabel\n", "seq"), ("a.conll", "a O\n", "token"), ("a.jsonl", '{"tokens": ["a"]}\n', "token"),
     ("b.jsonl", '{"text": "a"}\n', "seq")],
)  # fmt: skip
def test_sniff_task(write, name, text, task):
    assert sniff_task(write(name, text)) == task


def test_read_file_rejects_wrong_format_for_task(write):
    with pytest.raises(DataError, match="token tasks read CoNLL"):
        family("token").read_file(write("a.tsv", "text\tlabel\n"))


def test_labels_txt(write):
    assert read_label_names(write("labels.txt", "neg\n\npos\n")) == ["neg", "pos"]
    with pytest.raises(DataError, match="duplicate label names"):
        read_label_names(write("l2.txt", "a\na\n"))


# ----- round trips ------------------------------------------------------------------------

_word = st.text(alphabet=string.ascii_letters + string.digits + "-.,'$&é中", min_size=1, max_size=8)
_tag = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC"])
_sentence = st.lists(st.tuples(_word, _tag), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sentences=st.lists(_sentence, min_size=1, max_size=8), sep=st.sampled_from([" ", "\t"]), blank=st.sampled_from(["\n", "\n\n"]))
def test_conll_round_trip(tmp_path, sentences, sep, blank):
    text = blank.join("".join(f"{w}{sep}{t}\n" for w, t in s) for s in sentences)
    path = tmp_path / "rt.conll"
    path.write_text("-DOCSTART- O\n\n" + text, encoding="utf-8")
    rs = read_conll(path)
    assert [ex.tokens for ex in rs.examples] == [[w for w, _ in s] for s in sentences]
    assert [ex.tags for ex in rs.examples] == [[t for _, t in s] for s in sentences]
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, ex in enumerate(rs.examples):  # where() points at the token's own line
        for j, token in enumerate(ex.tokens):
            assert lines[int(rs.where(i, j).rsplit(":", 1)[1]) - 1].split()[0] == token


_cell = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=30).filter(has_visible_text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(_cell, st.sampled_from(["pos", "neg", "0", "3"])), min_size=1, max_size=15),
       fmt=st.sampled_from(["csv", "tsv", "jsonl"]))  # fmt: skip
def test_table_round_trip(tmp_path, rows, fmt):
    if fmt == "tsv":
        rows = [(t.replace("\t", " "), label) for t, label in rows]
        rows = [(t, label) for t, label in rows if has_visible_text(t)]
        if not rows:
            return
    path = tmp_path / f"rt.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in rows), encoding="utf-8")
    elif fmt == "tsv":  # GLUE-style: no quoting at all
        path.write_text("text\tlabel\n" + "".join(f"{t}\t{label}\n" for t, label in rows), encoding="utf-8")
    else:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
    got = family("seq").read_file(path).examples
    assert got == [SeqExample(t.strip(), label) for t, label in rows]


def _error(call, *args, **kwargs) -> str:
    with pytest.raises(DataError) as err:
        call(*args, **kwargs)
    return str(err.value)


# ----- unpaired surrogates -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "task", "line", "what"), [
    ("d.jsonl", "seq", '{"text": "\\ud800", "label": "pos"}', "text"),
    ("d.jsonl", "seq", '{"text": "fine", "label": "po\\udc00s"}', "label"),
    ("d.jsonl", "token", '{"tokens": ["a", "\\ud83d"], "tags": ["O", "O"]}', "'tokens'"),
    ("d.jsonl", "token", '{"tokens": ["a"], "tags": ["B-\\udfff"]}', "tags[0]"),
])  # fmt: skip
def test_a_json_escaped_lone_surrogate_is_refused_at_its_line(write, name, task, line, what):
    good = '{"text": "fine", "label": "pos", "tokens": ["a"], "tags": ["O"]}\n'
    path = write(name, good * 2 + line + "\n")
    message = _error(family(task).read_file, path)
    assert message.startswith(f"{path}:3: {what} holds an unpaired surrogate (\\u")
    assert "not valid Unicode text" in message
    if what in ("text", "'tokens'"):  # the same line as prediction input
        assert _error(read_predict_inputs, path, task=task).startswith(f"{path}:3: {what} holds an unpaired surrogate")


def test_a_json_escaped_surrogate_pair_is_one_character(write):
    path = write("d.jsonl", '{"text": "ok \\ud83d\\ude00", "label": "pos"}\n')
    assert family("seq").read_file(path).examples == [SeqExample("ok \U0001f600", "pos")]
    assert read_predict_inputs(path) == [SeqExample("ok \U0001f600", "pos")]


@pytest.mark.parametrize(("name", "good", "task"), [
    ("d.tsv", "text\tlabel\nfine\tpos\n", "seq"), ("d.csv", "text,label\nfine,pos\n", "seq"),
    ("d.conll", "EU B-ORG\nsays O\n", "token"), ("d.txt", "EU B-ORG\nsays O\n", "token"),
])  # fmt: skip
def test_an_encoded_surrogate_in_a_text_file_is_refused_at_its_line(write, name, good, task):
    bad = "x\ud800y\tpos\n" if name == "d.tsv" else "x\ud800y,pos\n" if name == "d.csv" else "x\ud800y O\n"
    path = write(name, (good + bad).encode("utf-8", errors="surrogatepass"))
    message = _error(family(task).read_file, path)
    assert message.startswith(f"{path}:3: not UTF-8 text (byte 0xed: text holds an unpaired surrogate (\\ud800)")
    assert _error(read_predict_inputs, path, task=task).startswith(f"{path}:3: ")


# ----- CSV: a quote that is never closed -----------------------------------------------------


def test_a_quote_swallowing_the_next_row_is_an_error_at_its_start_not_a_merge(write):
    # Read as one example "a gorgeous comedy,positive\rinexpressible and drab wannabe\"" with
    # label negative, and a row lost, before.
    path = write("d.csv", 'text,label\nfine,positive\n"a gorgeous comedy,positive\rinexpressible "and drab wannabe",negative\n'
                          "ok,negative\n")
    message = _error(read_table, path)
    assert message.startswith(f"{path}:3: a quote opens a field on this line that runs on to line 4")
    assert "'a gorgeous comedy,positive'" in message and "close or remove that quote" in message


@pytest.mark.parametrize("after", range(1, 10))
def test_an_unclosed_quote_is_reported_on_the_line_it_opens(write, after):
    rows = "".join(f"row {i},negative\n" for i in range(after))
    path = write("d.csv", 'text,label\nfine,positive\n"broken, with a comma,positive\n' + rows)
    assert _error(read_table, path).startswith(f"{path}:3: ")
    assert _error(read_predict_inputs, path).startswith(f"{path}:3: ")


def test_a_quoted_line_break_that_holds_no_row_is_text(write):
    path = write("d.csv", 'text,label\nfine,positive\n"line one, positively\nline two, no",negative\nok,negative\n')
    rs = read_table(path)
    assert rs.examples[1] == SeqExample("line one, positively\nline two, no", "negative")
    assert rs.lines == [2, 3, 5]


# ----- ambiguous files -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "content"), [("d.csv", "text,label,label\na,pos,neg\n"), ("d.tsv", "text\tlabel\ttext\na\tpos\tb\n")])
def test_a_duplicate_column_is_an_error_naming_it(write, name, content):
    path = write(name, content)
    column = "label" if name == "d.csv" else "text"
    assert _error(read_table, path) == (f"{path}:1: column {column!r} appears twice in the header; "
                                        "rename or remove one, so that it is clear which one to read")


def test_a_duplicate_json_key_is_an_error_naming_it(write):
    path = write("d.jsonl", '{"text": "a", "label": "pos"}\n{"text": "b", "label": "pos", "label": "neg"}\n')
    message = _error(family("seq").read_file, path)
    assert message.startswith(f"{path}:2: key 'label' appears twice in one object")
    assert _error(read_predict_inputs, path).startswith(f"{path}:2: key 'label' appears twice")


def _folder(write, tmp_path, train: str, test: str, suffix: str) -> DataConfig:
    write(f"d/train{suffix}", train)
    write(f"d/validation{suffix}", test)
    write(f"d/test{suffix}", test)
    return DataConfig(data=str(tmp_path / "d"))


def test_a_tag_with_an_invisible_character_is_warned_about_with_both_forms(write, tmp_path, caplog):
    cfg = _folder(write, tmp_path, "Peter B-PER\nsaid O\n\nAnna B-PER\u200b\n", "Peter B-PER\n", ".txt")
    with caplog.at_level(logging.WARNING, logger="lsllm.data.labels"):
        load_data(cfg)
    [message] = [r.getMessage() for r in caplog.records]
    train = tmp_path / "d" / "train.txt"
    assert message.startswith(f"{train}:4: entity type 'PER\\u200b' differs from 'PER' ({train}:1) only by case or invisible")
    caplog.clear()
    cfg = _folder(write, tmp_path, "Anna B-PER\u200b\nsaid O\n", "Anna B-PER\u200b\n", ".txt")
    with caplog.at_level(logging.WARNING, logger="lsllm.data.labels"):
        load_data(cfg)
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"{train}:1: entity type 'PER\\u200b' holds invisible character(s) (\\u200b), so it is not 'PER'")


def test_labels_differing_only_by_case_are_warned_about(write, tmp_path, caplog):
    rows = "text\tlabel\n" + "good\tpositive\nbad\tnegative\n" * 3 + "great\tPositive\n"
    cfg = _folder(write, tmp_path, rows, "text\tlabel\nfine\tpositive\n", ".tsv")
    with caplog.at_level(logging.WARNING, logger="lsllm.data.labels"):
        assert load_data(cfg).labels == ["Positive", "negative", "positive"]
    [message] = [r.getMessage() for r in caplog.records]
    train = tmp_path / "d" / "train.tsv"
    assert message.startswith(f"{train}:2: label 'positive' differs from 'Positive' ({train}:8) only by case")


# ----- texts without a visible character ---------------------------------------------------------


@pytest.mark.parametrize(("text", "visible"), [
    ("a", True), (" x ", True), ("é", True), ("e\u0301", True), ("😀", True), ("\U0001fae8", True), ("\ue000", True),
    ("中", True), ("", False), (" \t\n", False), ("\u200b", False), ("\ufeff", False), ("\x00", False),
    ("\u0301", False), ("\u200b\u0301 \u00a0\u2028", False), ("\u3164", False), ("\u2800", False), ("\u200e\u2060", False),
])  # fmt: skip
def test_has_visible_text(text, visible):
    assert has_visible_text(text) is visible


@pytest.mark.parametrize("text", ["\u200b", "\ufeff", "\x00", " \u0301 ", "\u2060\u200b"])
def test_a_text_without_a_visible_character_is_empty_everywhere(write, text):
    escaped = json.dumps(text)
    files = [
        write("d.jsonl", '{"text": "fine", "label": "pos"}\n{"text": "ok", "label": "pos"}\n{"text": ' + escaped + ', "label": "pos"}\n'),
        write("d.tsv", f"text\tlabel\nfine\tpos\n{text}\tpos\n"),
        write("d.csv", f"text,label\nfine,pos\n{text},pos\n"),
    ]
    for path in files:
        assert _error(family("seq").read_file, path).startswith(f"{path}:3: empty text"), path
        assert _error(read_predict_inputs, path, task="seq").startswith(f"{path}:3: empty text"), path
    path = write("l.tsv", f"text\tlabel\nfine\tpos\nfine\t{text}\n")
    assert _error(family("seq").read_file, path).startswith(f"{path}:3: empty label")
    path = write("l.jsonl", '{"text": "a", "label": ' + escaped + "}\n")
    assert _error(family("seq").read_file, path).startswith(f"{path}:1: label must be a non-empty string")


def test_predict_txt_skips_lines_without_a_visible_character_like_blank_ones(write):
    path = write("p.txt", "first\n\u200b\n\n\ufeff \x00\nsecond\n")
    assert read_predict_inputs(path) == [SeqExample("first"), SeqExample("second")]
    path = write("q.txt", "\u200b\n\u0301\n")
    assert _error(read_predict_inputs, path).startswith(f"{path}: no inputs")


# ----- TSV written by pandas ----------------------------------------------------------------------

PANDAS_ROWS = [
    ("\nHow do I unblock my PIN?", "pin_blocked"),
    ('She said "hi"\tand left', "greeting"),
    ('"quoted" start', "quote"),
    ("plain text", "plain"),
]


def _pandas_tsv(path) -> None:
    pandas = pytest.importorskip("pandas")
    pandas.DataFrame(PANDAS_ROWS, columns=["text", "label"]).to_csv(path, sep="\t", index=False)


def test_a_tsv_written_by_pandas_reads_back(tmp_path):
    path = tmp_path / "d.tsv"
    _pandas_tsv(path)
    assert path.read_text().startswith('text\tlabel\n"\nHow do I unblock my PIN?"\tpin_blocked\n')
    rs = read_table(path)
    assert rs.examples == [SeqExample(t.strip(), label) for t, label in PANDAS_ROWS]
    assert rs.lines == [2, 4, 5, 6]
    assert read_predict_inputs(path) == [SeqExample(t.strip()) for t, _ in PANDAS_ROWS]


def test_a_tsv_with_csv_escapes_and_no_breaks_reads_quoted(write):
    path = write("d.tsv", 'text\tlabel\n"A dog in a ""superman"" shirt"\tpos\nplain\tneg\n')
    assert read_table(path).examples == [SeqExample('A dog in a "superman" shirt', "pos"), SeqExample("plain", "neg")]


@pytest.mark.parametrize("line", ['"quoted" start\tpos', '"wrapped text"\tpos', '"never closed\tpos', 'he said "no"\tpos'])
def test_glue_style_tsv_quotes_stay_text(write, line):
    path = write("d.tsv", f"text\tlabel\nplain\tneg\n{line}\nlast\tneg\n")
    assert read_table(path).examples[1] == SeqExample(line.split("\t")[0], "pos")


def test_a_tsv_field_count_error_names_the_quoting_fix(write):
    path = write("d.tsv", 'text\tlabel\nfine\tpos\n"a\ttab\tpos\nok\tneg\n')
    message = _error(read_table, path)
    assert message.startswith(f"{path}:3: 3 fields, the header has 2; check the delimiter and quoting")
    assert 'CSV-quoted when every field that starts with a quote is closed ("..." with "" for a quote' in message


def test_shared_glue_files_read_as_before(shared_data):
    stsb = read_table(shared_data / "stsb" / "train.tsv", ["sentence1", "sentence2"], "score")
    assert len(stsb.examples) == 5749 and not any('""' in ex.text for ex in stsb.examples)
    assert sum(ex.fields["sentence1"] == 'A dog in a "superman" shirt sleeps on a blanket.' for ex in stsb.examples) == 1
    fin = read_table(shared_data / "twitterfin" / "train.tsv")  # fields start with a quote they never close
    assert len(fin.examples) == 9543 and sum(ex.text.startswith('"') for ex in fin.examples) == 51
    assert len(read_table(shared_data / "sst2" / "validation.tsv").examples) == 872
