"""File readers: formats, defaults, file:line errors, and write -> read round trips."""

from __future__ import annotations

import csv
import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsllm.data.examples import SeqExample, TokenExample
from lsllm.data.readers import (
    read_conll,
    read_file,
    read_jsonl_seq,
    read_jsonl_tokens,
    read_label_names,
    read_table,
    sniff_task,
)
from lsllm.errors import DataError


def test_tsv_reads_quotes_literally_and_strips(write):
    path = write("train.tsv", 'text\tlabel\n"quoted" start \tpos\nplain\tneg\n')
    rs = read_table(path)
    assert rs.examples == [SeqExample('"quoted" start', "pos"), SeqExample("plain", "neg")]
    assert rs.lines == [2, 3]
    assert rs.where(1) == f"{path}:3"


def test_csv_quoting_several_text_columns_and_custom_label(write):
    path = write("d.csv", 'title,body,y\n"a, b",c,1\nd,"e ""f""",0\n')
    rs = read_table(path, ["title", "body"], "y")
    assert rs.examples == [SeqExample("a, b c", "1"), SeqExample('d e "f"', "0")]


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
    with pytest.raises(DataError, match=r"e\.jsonl:1: no label column \(looked for label\); columns present: text, y"):
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
        read_file(write("a.tsv", "text\tlabel\n"), "token")


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


_cell = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=30).filter(str.strip)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(_cell, st.sampled_from(["pos", "neg", "0", "3"])), min_size=1, max_size=15),
       fmt=st.sampled_from(["csv", "tsv", "jsonl"]))  # fmt: skip
def test_table_round_trip(tmp_path, rows, fmt):
    if fmt == "tsv":
        rows = [(t.replace("\t", " "), label) for t, label in rows]
        rows = [(t, label) for t, label in rows if t.strip()]
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
    got = read_file(path, "seq").examples
    assert got == [SeqExample(t.strip(), label) for t, label in rows]
