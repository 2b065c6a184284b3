"""Problem types in the data layer: multi-label label formats, regression numbers, sentence pairs
kept apart as fields, problem detection, the stsb / semeval2018-ec built-ins and predict inputs
with fields. Every bad input is one line naming file:line (or the flag) and the fix."""

from __future__ import annotations

import json

import datasets
import pytest

from lsllm.cli import main
from lsllm.config import DataConfig
from lsllm.data import REGISTRY, SeqExample, load_data, read_predict_inputs
from lsllm.errors import ConfigError, DataError
from lsllm.problems import family


def _error(fn, *args, kind=DataError, **kwargs) -> str:
    """The message of the one-line error `fn` raises."""
    with pytest.raises(kind) as err:
        fn(*args, **kwargs)
    message = str(err.value)
    assert "\n" not in message, message
    return message


def jsonl(rows) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


EMOTIONS = ["anger", "joy", "fear"]


def flags_tsv(rows, columns=EMOTIONS) -> str:
    """A SemEval-style TSV: ID, text, one 0/1 column per label."""
    return "ID\ttext\t" + "\t".join(columns) + "\n" + "".join(f"{i}\t{t}\t" + "\t".join(v) + "\n" for i, (t, v) in enumerate(rows))


# ----------------------------------------------------------------------------- multi-label formats


def test_jsonl_label_lists_make_the_data_multi_label(write, tmp_path):
    rows = [{"text": f"t{i}", "labels": [["joy"], ["anger", "joy"], []][i % 3]} for i in range(30)]
    write("d/train.jsonl", jsonl(rows))
    write("d/test.jsonl", jsonl([{"text": "x", "label": ["joy", "anger", "joy"]}, {"text": "y", "label": []}, {"text": "z", "label": "joy"}]))
    bundle = load_data(DataConfig(data=str(tmp_path / "d")))
    assert (bundle.task, bundle.problem, bundle.labels) == ("seq", "multi-label", ["anger", "joy"])
    # a repeated name counts once; a plain name beside lists is a list of one
    assert bundle.splits["test"] == [SeqExample("x", ["joy", "anger"]), SeqExample("y", []), SeqExample("z", ["joy"])]


def test_multi_label_jsonl_unknown_label_names_file_line(write, tmp_path):
    rows = [{"text": f"t{i}", "labels": [["joy"], ["anger", "joy"], []][i % 3]} for i in range(30)]
    write("d/train.jsonl", jsonl(rows))
    test = write("d/test.jsonl", jsonl([{"text": "x", "labels": ["joy"]}, {"text": "y", "labels": ["anger", "fear"]}]))
    message = _error(load_data, DataConfig(data=str(tmp_path / "d")))
    assert message.startswith(f"{test}:2: label 'fear' is not in the label set (anger, joy); fix the file (train, ")
    bundle = load_data(DataConfig(data=str(tmp_path / "d"), labels=["joy", "anger", "fear"]))
    assert bundle.labels == ["joy", "anger", "fear"]  # --labels gives the id order
    assert bundle.splits["test"] == [SeqExample("x", ["joy"]), SeqExample("y", ["anger", "fear"])]
    # every label outside an explicit --labels is an error at its line, multi-label too
    message = _error(load_data, DataConfig(data=str(tmp_path / "d"), labels=["joy", "anger"]))
    assert message.startswith(f"{test}:2: label 'fear' is not in the label set (joy, anger); fix the file, or pass --labels")


def test_multi_label_notes_state_the_problem_and_examples_without_labels(write, tmp_path):
    rows = [{"text": f"t{i}", "labels": [["joy"], ["anger", "joy"], [], []][i % 4]} for i in range(40)]
    write("d/train.jsonl", jsonl(rows))
    bundle = load_data(DataConfig(data=str(tmp_path / "d")))
    assert bundle.labels == ["anger", "joy"]
    assert bundle.notes[0] == "multi-label: 2 labels from the train labels; 20 of 40 train examples have none"
    train = bundle.splits["train"] + bundle.splits["validation"]
    assert sum(ex.label == [] for ex in train) == 20


def test_label_separator_splits_strips_and_reads_empty_as_none(write):
    path = write("d.tsv", "text\tlabel\na\tjoy, anger\nb\t\nc\t joy \nd\tfear,fear\n" + "e\tjoy\n" * 20)
    bundle = load_data(DataConfig(data=str(path), label_separator=","))
    assert bundle.problem == "multi-label" and bundle.labels == ["anger", "fear", "joy"]
    train = {ex.text: ex.label for ex in bundle.splits["train"] + bundle.splits["validation"]}
    assert (train["a"], train["b"], train["c"], train["d"]) == (["joy", "anger"], [], ["joy"], ["fear"])
    assert "multi-label: 3 labels from the train labels; 1 of 24 train examples have none" in bundle.notes


def test_label_separator_empty_name_is_an_error_at_its_line(write):
    path = write("d.csv", 'text,label\na,joy\nb,"joy,,anger"\n')
    message = _error(family("seq").read_file, path, label_separator=",", detect=True)
    assert message.startswith(f"{path}:3: empty label name in 'joy,,anger' (--label-separator ',')")


def test_label_columns_read_zero_one_columns_in_their_order(write):
    path = write("e.tsv", flags_tsv([("a", "100"), ("b", "011"), ("c", "000")] * 10))
    bundle = load_data(DataConfig(data=str(path), label_columns=["joy", "anger", "fear"]))
    assert bundle.problem == "multi-label"
    assert bundle.labels == ["joy", "anger", "fear"]  # the --label-columns order
    read = family("seq").read_file(path, label_columns=["joy", "anger", "fear"]).examples[:3]
    assert read == [SeqExample("a", ["anger"]), SeqExample("b", ["joy", "fear"]), SeqExample("c", [])]
    assert {ex.text: ex.label for ex in bundle.splits["train"]}["b"] == ["joy", "fear"]
    assert bundle.notes[0].startswith("multi-label: 3 labels from --label-columns; 10 of 30 train examples have none")
    # "0"/"1" in JSONL (and 0/1 numbers) read the same
    rows = [{"text": "a", "anger": "1", "joy": 0, "fear": 1}]
    assert family("seq").read_file(write("e.jsonl", jsonl(rows)), label_columns=EMOTIONS).examples == [SeqExample("a", ["anger", "fear"])]


@pytest.mark.parametrize("value", ["2", "yes", "", "0.5", "-1"])
def test_label_columns_value_other_than_zero_or_one_names_line_and_column(write, value):
    path = write("e.tsv", flags_tsv([("a", "100"), ("b", ["0", value, "1"])]))
    message = _error(family("seq").read_file, path, label_columns=EMOTIONS)
    assert message.startswith(f"{path}:3: label column 'joy' ")
    assert ("is empty" if not value else repr(value)) in message and "0 or 1" in message


def test_label_columns_jsonl_bad_value_and_missing_key(write):
    path = write("e.jsonl", jsonl([{"text": "a", "anger": 1, "joy": 0, "fear": 0}, {"text": "b", "anger": 2, "joy": 0, "fear": 0}]))
    assert _error(family("seq").read_file, path, label_columns=EMOTIONS).startswith(f"{path}:2: label column 'anger' holds 2;")
    path = write("f.jsonl", jsonl([{"text": "a", "anger": 1, "joy": 0, "fear": 0}, {"text": "b", "anger": 1, "joy": 0}]))
    message = _error(family("seq").read_file, path, label_columns=EMOTIONS)
    assert message.startswith(f"{path}:2: no label column 'fear' (--label-columns); fields present: text, anger, joy")


def test_label_columns_missing_from_the_header_names_file_column_and_columns_present(write):
    path = write("e.tsv", flags_tsv([("a", "100")] * 5))
    message = _error(load_data, DataConfig(data=str(path), label_columns=["anger", "joy", "sadness"]))
    assert message.startswith(f"{path}: no label column 'sadness' (--label-columns); columns present: ID, text, anger, joy, fear")


def test_label_columns_and_separator_exclude_each_other(write):
    path = write("e.tsv", flags_tsv([("a", "100")] * 5))
    message = _error(load_data, DataConfig(data=str(path), label_columns=EMOTIONS, label_separator=","), kind=ConfigError)
    assert "--label-columns" in message and "--label-separator" in message


# ----------------------------------------------------------------------------- detection


def test_single_label_file_is_single_label_and_may_be_read_as_multi_label(write):
    path = write("s.tsv", "text\tlabel\n" + "".join(f"t{i}\t{'pos' if i % 2 else 'neg'}\n" for i in range(20)))
    plain = load_data(DataConfig(data=str(path)))
    assert plain.problem == "single-label" and plain.splits["train"][0].label in ("pos", "neg") and plain.notes[0].startswith("no validation")
    multi = load_data(DataConfig(data=str(path), problem="multi-label"))
    assert multi.problem == "multi-label" and multi.labels == ["neg", "pos"]
    assert all(isinstance(ex.label, list) and len(ex.label) == 1 for ex in multi.splits["train"])
    assert multi.notes[0] == ("multi-label: 2 labels from the train labels; 0 of 20 train examples have none, every one "
                              "has exactly one (single-label data read as multi-label)")


def test_a_json_list_under_explicit_single_label_is_an_error_at_its_line(write):
    path = write("d.jsonl", jsonl([{"text": "a", "label": "joy"}, {"text": "b", "label": ["joy", "fear"]}] * 5))
    message = _error(load_data, DataConfig(data=str(path), problem="single-label"))
    assert message.startswith(f"{path}:2: label is a list ") and "--problem multi-label" in message
    assert load_data(DataConfig(data=str(path))).problem == "multi-label"  # detected; "joy" alone is a list of one
    assert load_data(DataConfig(data=str(path))).splits["train"][0].label == ["joy"]


@pytest.mark.parametrize("stray", [[1], [], ["pos"], ["pos", "neg"]])
def test_a_stray_json_list_in_a_file_of_names_is_an_error_at_its_line(write, stray):
    rows = [{"text": f"t{i}", "label": "pos" if i % 2 else "neg"} for i in range(6)]
    rows.insert(3, {"text": "x", "label": stray})
    path = write("stray.jsonl", jsonl(rows))
    message = _error(load_data, DataConfig(data=str(path)))
    assert message.startswith(f"{path}:4: label is a list ") and "--problem multi-label" in message
    assert load_data(DataConfig(data=str(path), problem="multi-label")).problem == "multi-label"  # the way out works


def test_regression_is_never_guessed_from_numbers(write):
    path = write("r.tsv", "text\tlabel\n" + "".join(f"t{i}\t{i % 3}\n" for i in range(20)))
    assert load_data(DataConfig(data=str(path))).problem == "single-label"
    bundle = load_data(DataConfig(data=str(path), problem="regression"))
    assert bundle.problem == "regression" and bundle.labels == ["label"]
    assert {ex.label for ex in bundle.splits["train"]} == {0.0, 1.0, 2.0}


def test_problem_settings_are_in_the_fingerprint(write):
    path = write("d.tsv", "text\tlabel\n" + "".join(f"t{i}\t{i % 3}\n" for i in range(20)))
    prints = {load_data(DataConfig(data=str(path), problem=p)).fingerprint for p in (None, "multi-label", "regression")}
    prints.add(load_data(DataConfig(data=str(path), label_separator=";")).fingerprint)
    assert len(prints) == 4


def test_token_task_refuses_problem_settings(write):
    path = write("n.conll", "EU B-ORG\nrejects O\n\nPeter B-PER\n")
    message = _error(load_data, DataConfig(data=str(path), label_separator=","))
    assert "token task" in message and "--label-separator" in message


# ----------------------------------------------------------------------------- regression


def test_regression_reads_numbers_and_names_the_label_after_its_column(write):
    path = write("r.csv", "a,b,sim\n" + "".join(f"x{i},y{i},{i / 4}\n" for i in range(20)))
    bundle = load_data(DataConfig(data=str(path), text_column=["a", "b"], label_column="sim", problem="regression"))
    assert bundle.labels == ["sim"] and bundle.problem == "regression"
    assert bundle.notes[0] == "regression: predicting 'sim', a number (train: 20 values from 0 to 4.75, mean 2.38)"
    rows = [{"text": "a", "label": 3}, {"text": "b", "label": "-1.5e-1"}, {"text": "c", "label": 0.25}]
    assert [ex.label for ex in family("seq", "regression").read_file(write("r.jsonl", jsonl(rows))).examples] == [3.0, -0.15, 0.25]


@pytest.mark.parametrize("value", ["high", "nan", "inf", "-Infinity", "1e999", "3,5", "1_0"])
def test_regression_label_that_is_not_a_finite_number_names_line_and_value(write, value):
    path = write("r.tsv", f"text\tlabel\na\t1.5\nb\t{value}\n")
    message = _error(load_data, DataConfig(data=str(path), problem="regression"))
    assert message.startswith(f"{path}:3: label {value!r} is not a finite number")


@pytest.mark.parametrize("value", ["true", '"x"', "[1]", "null", "1e999"])
def test_regression_json_label_that_is_not_a_finite_number(write, value):
    path = write("r.jsonl", '{"text": "a", "label": 2}\n{"text": "b", "label": ' + value + "}\n")
    assert _error(family("seq", "regression").read_file, path).startswith(f"{path}:2: label ")


def test_regression_refuses_labels(write):
    path = write("r.tsv", "text\tlabel\n" + "".join(f"t{i}\t{i}\n" for i in range(20)))
    message = _error(load_data, DataConfig(data=str(path), problem="regression", labels=["a", "b"]), kind=ConfigError)
    assert "--labels" in message and "regression" in message


# ----------------------------------------------------------------------------- sentence pairs


def test_several_text_columns_are_kept_apart_as_fields(write):
    path = write("p.tsv", "premise\thypothesis\tlabel\n" + "".join(f"p {i}\th {i}\t{'yes' if i % 2 else 'no'}\n" for i in range(20)))
    bundle = load_data(DataConfig(data=str(path), text_column=["premise", "hypothesis"]))
    first = next(ex for ex in bundle.splits["train"] + bundle.splits["validation"] if ex.fields["premise"] == "p 0")
    assert first.fields == {"premise": "p 0", "hypothesis": "h 0"} and first.label == "no"
    assert list(first.fields) == ["premise", "hypothesis"]  # column order
    assert first.text == "premise: p 0\nhypothesis: h 0"  # display form, not a join
    swapped = load_data(DataConfig(data=str(path), text_column=["hypothesis", "premise"])).splits["train"][0]
    assert list(swapped.fields) == ["hypothesis", "premise"]
    assert bundle.fingerprint != load_data(DataConfig(data=str(path), text_column=["hypothesis", "premise"])).fingerprint


def test_pair_row_with_an_empty_field_names_line_and_field(write):
    path = write("p.tsv", "premise\thypothesis\tlabel\na\tb\tyes\nc\t \tno\n")
    message = _error(family("seq").read_file, path, ["premise", "hypothesis"])
    assert message.startswith(f"{path}:3: empty field 'hypothesis'")


def test_pair_jsonl_record_without_a_field_names_line_and_field(write):
    path = write("p.jsonl", jsonl([{"premise": "a", "hypothesis": "b", "label": "yes"}, {"premise": "c", "label": "no"}]))
    message = _error(family("seq").read_file, path, ["premise", "hypothesis"])
    assert message.startswith(f"{path}:2: no field 'hypothesis' (--text-column premise hypothesis); fields present: premise, label")
    rs = family("seq").read_file(write("q.jsonl", jsonl([{"premise": " a ", "hypothesis": "b", "label": "yes"}])), ["premise", "hypothesis"])
    assert rs.examples == [SeqExample("premise: a\nhypothesis: b", "yes", {"premise": "a", "hypothesis": "b"})]


def test_pair_column_names_must_be_prompt_fields(write):
    path = write("p.tsv", "sentence 1\ts2\tlabel\na\tb\tyes\n")
    message = _error(family("seq").read_file, path, ["sentence 1", "s2"], kind=ConfigError)
    assert message.startswith("--text-column 'sentence 1'") and "rename the column" in message


def test_hub_pairs_list_labels_and_regression(tmp_path):
    label = datasets.Sequence(datasets.ClassLabel(names=["anger", "joy"]))
    features = datasets.Features({"s1": datasets.Value("string"), "s2": datasets.Value("string"), "labels": label})
    ds = datasets.Dataset.from_dict({"s1": ["a", "b"] * 10, "s2": ["x", "y"] * 10, "labels": [[0, 1], []] * 10}, features=features)
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(tmp_path / "m")
    bundle = load_data(DataConfig(data=f"hf:{tmp_path / 'm'}", text_column=["s1", "s2"]))
    assert bundle.problem == "multi-label" and bundle.labels == ["anger", "joy"]
    assert bundle.splits["test"][:2] == [SeqExample("s1: a\ns2: x", ["anger", "joy"], {"s1": "a", "s2": "x"}),
                                         SeqExample("s1: b\ns2: y", [], {"s1": "b", "s2": "y"})]
    scores = datasets.Dataset.from_dict({"sentence1": ["a"] * 40, "sentence2": ["b"] * 40, "label": [i / 5 for i in range(40)]})
    hidden = datasets.Dataset.from_dict({"sentence1": ["a"] * 3, "sentence2": ["b"] * 3, "label": [-1.0] * 3})  # GLUE STS-B test
    datasets.DatasetDict({"train": scores, "validation": scores.select(range(5)), "test": hidden}).save_to_disk(tmp_path / "r")
    bundle = load_data(DataConfig(data=f"hf:{tmp_path / 'r'}", text_column=["sentence1", "sentence2"], problem="regression"))
    assert bundle.problem == "regression" and bundle.labels == ["label"]
    assert [ex.label for ex in bundle.splits["test"]] == [0.0, 0.2, 0.4, 0.6, 0.8]  # the official validation, as test
    assert any("has no labels (all -1): not used" in note for note in bundle.notes)


# ----------------------------------------------------------------------------- built-ins


def test_stsb_builtin_loads_pairs_and_scores(shared_data):
    if not (shared_data / "stsb").is_dir():
        pytest.skip("../shared/data/stsb is absent")
    bundle = load_data(DataConfig(data="stsb", data_dir=str(shared_data)))
    assert bundle.sizes() == {"train": 5_749, "validation": 1_500, "test": 1_379}
    assert (bundle.task, bundle.problem, bundle.labels) == ("seq", "regression", ["score"])
    first = bundle.splits["train"][0]
    assert first.fields == {"sentence1": "A plane is taking off.", "sentence2": "An air plane is taking off."}
    assert first.label == 5.0
    values = [ex.label for split in bundle.splits.values() for ex in split]
    assert all(isinstance(v, float) and 0 <= v <= 5 for v in values)
    assert sum(ex.fields["sentence1"] == 'A dog in a "superman" shirt sleeps on a blanket.' for ex in bundle.splits["train"]) == 1
    assert bundle.notes[0].startswith("regression: predicting 'score', a number (train: 5,749 values from 0 to 5")
    assert load_data(DataConfig(data="stsb", data_dir=str(shared_data)), splits=("test",)).sizes() == {"test": 1_379}
    message = _error(load_data, DataConfig(data="stsb", data_dir=str(shared_data), problem="single-label"))
    assert message == "stsb is a regression dataset, not single-label; drop --problem"


def test_semeval2018_ec_builtin_loads_label_columns(shared_data):
    if not (shared_data / "semeval2018-ec").is_dir():
        pytest.skip("../shared/data/semeval2018-ec is absent")
    bundle = load_data(DataConfig(data="semeval2018-ec", data_dir=str(shared_data)))
    sizes = bundle.sizes()
    assert sizes["train"] + sizes["validation"] == 6_838 and sizes["validation"] == 684 and sizes["test"] == 886
    assert bundle.problem == "multi-label" and bundle.labels == list(REGISTRY["semeval2018-ec"].labels)
    assert bundle.labels[:3] == ["anger", "anticipation", "disgust"] and len(bundle.labels) == 11
    train = bundle.splits["train"] + bundle.splits["validation"]
    assert sum(ex.label == [] for ex in train) == 204
    assert max(len(ex.label) for ex in train) == 6 and all(ex.fields is None for ex in train)
    assert "multi-label: 11 labels from the label columns of semeval2018-ec; 204 of 6,838 train examples have none" in bundle.notes
    assert bundle.splits["train"][0].label == ["anticipation", "optimism", "trust"]
    # a subset of the emotions, in the order given
    subset = load_data(DataConfig(data="semeval2018-ec", data_dir=str(shared_data), label_columns=["joy", "anger"]))
    assert subset.labels == ["joy", "anger"]


def test_builtins_without_their_folder_say_there_is_no_hub_copy(tmp_path):
    message = _error(load_data, DataConfig(data="stsb", data_dir=str(tmp_path)))
    assert message.startswith(f"stsb: {tmp_path / 'stsb'} does not exist; stsb has no hub copy")
    assert "--data-dir DIR with stsb/train.tsv" in message and "labels.txt" not in message


def test_datasets_command_lists_the_new_builtins(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert any(line.startswith("stsb") and line.rstrip().endswith("score") for line in out.splitlines())
    assert any(line.startswith("semeval2018-ec") and "anger, anticipation" in line for line in out.splitlines())


# ----------------------------------------------------------------------------- predict inputs


def test_predict_jsonl_and_table_with_fields(write):
    path = write("in.jsonl", jsonl([{"premise": "a", "hypothesis": "b"}, {"premise": "c", "hypothesis": "d", "label": ["x"]}]))
    inputs = read_predict_inputs(path, fields=["premise", "hypothesis"])
    assert inputs == [SeqExample("premise: a\nhypothesis: b", None, {"premise": "a", "hypothesis": "b"}),
                      SeqExample("premise: c\nhypothesis: d", ["x"], {"premise": "c", "hypothesis": "d"})]
    table = write("in.tsv", "id\thypothesis\tpremise\n1\tb\ta\n")
    assert read_predict_inputs(table, fields=["premise", "hypothesis"]) == [inputs[0]]  # the run's field order


def test_predict_missing_field_names_line_and_field(write):
    path = write("in.jsonl", jsonl([{"premise": "a", "hypothesis": "b"}, {"premise": "c"}]))
    message = _error(read_predict_inputs, path, fields=["premise", "hypothesis"])
    assert message.startswith(f"{path}:2: no field 'hypothesis'; this model reads premise, hypothesis; fields present: premise")
    table = write("in.csv", "premise,hypothesis\na,b\nc,\n")
    assert _error(read_predict_inputs, table, fields=["premise", "hypothesis"]).startswith(f"{table}:3: empty field 'hypothesis'")
    missing = write("in2.csv", "premise,other\na,b\n")
    assert "no text column 'hypothesis'" in _error(read_predict_inputs, missing, fields=["premise", "hypothesis"])
    txt = write("in.txt", "one text\n")
    assert "premise, hypothesis" in _error(read_predict_inputs, txt, fields=["premise", "hypothesis"])


def test_predict_without_fields_is_unchanged(write):
    path = write("in.jsonl", jsonl([{"text": "a", "label": "pos"}, {"text": "b", "labels": ["p", "q"]}, {"text": "c", "label": 2.5}]))
    assert read_predict_inputs(path) == [SeqExample("a", "pos"), SeqExample("b", ["p", "q"]), SeqExample("c", 2.5)]
    assert read_predict_inputs(path, fields=["text"]) == read_predict_inputs(path)  # one field: the text
    assert read_predict_inputs(write("in.txt", "x\n\ny\n")) == [SeqExample("x"), SeqExample("y")]
