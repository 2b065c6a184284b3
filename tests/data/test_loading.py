"""load_data: resolution, split rules, label sets, limits and one-line errors."""

from __future__ import annotations

import json

import pytest

from lsllm.config import DataConfig
from lsllm.data import REGISTRY, SeqExample, TokenExample, load_data, read_predict_inputs
from lsllm.errors import ConfigError, DataError


def tsv(rows) -> str:
    return "text\tlabel\n" + "".join(f"{t}\t{label}\n" for t, label in rows)


ROWS = [(f"text number {i}", "pos" if i % 3 else "neg") for i in range(40)]


def test_folder_with_all_splits_and_labels_txt_maps_int_labels(write, tmp_path):
    write("d/train.tsv", tsv([("good", 1), ("bad", 0)] * 3))
    write("d/dev.tsv", tsv([("fine", 1)]))
    write("d/test.tsv", tsv([("awful", 0)]))
    write("d/labels.txt", "negative\npositive\n")
    bundle = load_data(DataConfig(data=str(tmp_path / "d")))
    assert (bundle.name, bundle.task, bundle.labels) == ("d", "seq", ["negative", "positive"])
    assert bundle.sizes() == {"train": 6, "validation": 1, "test": 1}
    assert bundle.splits["train"][:2] == [SeqExample("good", "positive"), SeqExample("bad", "negative")]
    assert bundle.notes == []


def test_no_test_split_reports_validation_as_test_and_carves_validation(write, tmp_path):
    write("d/train.tsv", tsv(ROWS))
    write("d/validation.tsv", tsv(ROWS[:7]))
    bundle = load_data(DataConfig(data=str(tmp_path / "d"), split_seed=3))
    assert bundle.sizes() == {"train": 33, "validation": 7, "test": 7}
    assert bundle.splits["test"] == [SeqExample(t, label) for t, label in ROWS[:7]]
    carved = {ex.text for ex in bundle.splits["validation"]}
    assert carved.isdisjoint(ex.text for ex in bundle.splits["train"])
    assert carved | {ex.text for ex in bundle.splits["train"]} == {t for t, _ in ROWS}
    assert "reported as test; validation carved from train (seed 3, 7 examples)" in bundle.notes[0]
    again = load_data(DataConfig(data=str(tmp_path / "d"), split_seed=3))
    other = load_data(DataConfig(data=str(tmp_path / "d"), split_seed=4))
    assert again.splits == bundle.splits
    assert {ex.text for ex in other.splits["validation"]} != carved


TREEBANK = [  # sentences and the phrases cut from them, as SST-2's train is
    ("a fine film", "pos"), ("fine film", "pos"), ("fine", "pos"), ("a dull plot", "neg"), ("dull plot", "neg"),
    ("dull", "neg"), ("the cast is warm and the music soars", "pos"), ("the music soars", "pos"), ("warm", "pos"),
    ("the story drags and the jokes fall flat", "neg"), ("the jokes fall flat", "neg"), ("drags", "neg"),
]


def test_carve_whole_takes_whole_rows_and_leaves_their_phrases_out_of_train(write, tmp_path):
    write("d/train.tsv", tsv(TREEBANK))
    write("d/validation.tsv", tsv(TREEBANK[:2]))
    sentences = {"a fine film", "a dull plot", "the cast is warm and the music soars", "the story drags and the jokes fall flat"}
    for seed in range(5):
        bundle = load_data(DataConfig(data=str(tmp_path / "d"), split_seed=seed, carve="whole"))
        carved = {ex.text for ex in bundle.splits["validation"]}
        train = {ex.text for ex in bundle.splits["train"]}
        assert len(carved) == 2 and carved <= sentences
        assert train == {t for t, _ in TREEBANK if not any(f" {t} " in f" {c} " for c in carved)}
        assert "validation carved from whole rows (4 of 12 rows no other row contains)" in bundle.notes[1]
    random_carve = load_data(DataConfig(data=str(tmp_path / "d"), split_seed=0))
    assert random_carve.fingerprint != bundle.fingerprint
    write("e/train.tsv", tsv(TREEBANK[:6]))
    write("e/validation.tsv", tsv(TREEBANK[:3]))
    with pytest.raises(DataError, match=r"--carve whole needs 3 whole rows .* the data has 2; use --carve random"):
        load_data(DataConfig(data=str(tmp_path / "e"), carve="whole"))
    with pytest.raises(ConfigError, match="--carve must be random or whole"):
        DataConfig(carve="sentences")


def test_single_file_carves_ten_percent_and_has_no_test(write):
    path = write("mine.csv", "text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(50)))
    bundle = load_data(DataConfig(data=str(path)))
    assert (bundle.name, bundle.labels) == ("mine", ["0", "1"])
    assert bundle.sizes() == {"train": 45, "validation": 5}
    assert bundle.notes == ["no validation split: validation carved from train (seed 42, 5 of 50 examples)"]


def test_file_with_validation_and_test_files(write):
    train = write("a/train.jsonl", "".join(json.dumps({"q": f"t{i}", "c": "x" if i % 2 else "y"}) + "\n" for i in range(6)))
    dev = write("a/dev.jsonl", json.dumps({"q": "d", "c": "x"}) + "\n")
    test = write("a/test.jsonl", json.dumps({"q": "e", "c": "y"}) + "\n")
    cfg = DataConfig(data=str(train), validation_file=str(dev), test_file=str(test), text_column=["q"], label_column="c")
    bundle = load_data(cfg)
    assert bundle.sizes() == {"train": 6, "validation": 1, "test": 1}
    assert bundle.splits["test"] == [SeqExample("e", "y")]


def test_label_set_sorted_numerically_or_given_explicitly(write, tmp_path):
    write("d/train.tsv", tsv([("a", 10), ("b", 9), ("c", 2)] * 4))
    write("d/validation.tsv", tsv([("a", 10)]))
    write("d/test.tsv", tsv([("a", 2)]))
    assert load_data(DataConfig(data=str(tmp_path / "d"))).labels == ["2", "9", "10"]
    assert load_data(DataConfig(data=str(tmp_path / "d"), labels=["10", "9", "2"])).labels == ["10", "9", "2"]


def test_unknown_label_in_test_names_file_line_label_and_known(write, tmp_path):
    write("d/train.tsv", tsv([("a", "pos"), ("b", "neg")] * 3))
    write("d/validation.tsv", tsv([("a", "pos")]))
    test = write("d/test.tsv", tsv([("a", "pos"), ("b", "neutral")]))
    with pytest.raises(DataError, match=rf"^{test}:3: label 'neutral' is not in the label set \(neg, pos\); fix the file"):
        load_data(DataConfig(data=str(tmp_path / "d")))


def test_explicit_labels_check_train_too(write):
    path = write("t.tsv", tsv([("a", "pos"), ("b", "meh")] * 10))
    with pytest.raises(DataError, match=r"t\.tsv:3: label 'meh' is not in the label set \(neg, pos\)"):
        load_data(DataConfig(data=str(path), labels=["neg", "pos"]))


def test_unknown_dataset_lists_known_names(tmp_path):
    (tmp_path / "extra").mkdir()
    with pytest.raises(DataError, match=r"unknown dataset 'nosuch'; built-ins: sst2, sst2-sample, sst5, agnews, twitterfin, clinc150, conll03, ontonotesv5, wnut17, stsb, semeval2018-ec; folders in .*: extra"):
        load_data(DataConfig(data="nosuch", data_dir=str(tmp_path)))
    with pytest.raises(DataError, match=r"^nope/train\.tsv: no such file or folder$"):
        load_data(DataConfig(data="nope/train.tsv"))


def test_new_folder_in_data_dir_loads_by_name_with_task_inferred(write, tmp_path, monkeypatch):
    write("root/mynewset/train.txt", "EU B-ORG\nsays O\n\nPeter B-PER\n\n" * 10)
    monkeypatch.setenv("LSLLM_DATA_DIR", str(tmp_path / "root"))
    bundle = load_data(DataConfig(data="mynewset"))
    assert (bundle.name, bundle.task, bundle.labels) == ("mynewset", "token", ["O", "B-ORG", "I-ORG", "B-PER", "I-PER"])
    assert bundle.sizes() == {"train": 18, "validation": 2}


def test_token_folder_iob1_converted_and_reported(write, tmp_path):
    iob1 = "Peter I-PER\nBlackburn I-PER\nin O\nBrussels I-LOC\n\nA I-ORG\nB I-ORG\nC B-ORG\n\n"
    write("n/train.conll", iob1 * 5)
    write("n/validation.conll", iob1)
    write("n/test.conll", iob1)
    bundle = load_data(DataConfig(data=str(tmp_path / "n")))
    assert bundle.scheme == "IOB1" and "tags converted from IOB1 to BIO" in bundle.notes
    assert bundle.splits["test"] == [
        TokenExample(["Peter", "Blackburn", "in", "Brussels"], ["B-PER", "I-PER", "O", "B-LOC"]),
        TokenExample(["A", "B", "C"], ["B-ORG", "I-ORG", "B-ORG"]),
    ]
    assert bundle.labels == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def test_token_iobes_and_unknown_type_in_test(write, tmp_path):
    write("n/train.txt", "a S-PER\nb O\nc B-LOC\nd E-LOC\n\n" * 5)
    write("n/validation.txt", "a S-PER\n")
    test = write("n/test.txt", "a S-PER\n\nx O\ny B-ORG\n")
    with pytest.raises(DataError, match=rf"^{test}:4: label 'B-ORG' is not in the label set \(O, B-LOC, I-LOC, B-PER, I-PER\)"):
        load_data(DataConfig(data=str(tmp_path / "n")))
    test.write_text("a S-PER\n\nx O\ny B-LOC\nz E-LOC\n")
    bundle = load_data(DataConfig(data=str(tmp_path / "n")))
    assert bundle.scheme == "IOBES"
    assert bundle.splits["test"][1].tags == ["O", "B-LOC", "I-LOC"]


def test_bad_tag_names_file_line_and_tag_column(write, tmp_path):
    path = write("n/train.txt", "EU NNP B-ORG\nsays VBZ O\n")
    with pytest.raises(DataError, match=rf"^{path}:1: bad tag 'NNP'.*--tag-column$"):
        load_data(DataConfig(data=str(path), tag_column=1))


def test_token_jsonl_int_tags_mapped_by_labels_txt(write, tmp_path):
    write("j/train.jsonl", '{"tokens": ["EU", "says"], "ner_tags": [1, 0]}\n' * 10)
    write("j/labels.txt", "O\nB-ORG\nI-ORG\n")
    bundle = load_data(DataConfig(data=str(tmp_path / "j")))
    assert bundle.labels == ["O", "B-ORG", "I-ORG"]
    assert bundle.splits["train"][0] == TokenExample(["EU", "says"], ["B-ORG", "O"])


def test_limits_keep_the_first_examples(write, tmp_path):
    write("d/train.tsv", tsv(ROWS))
    write("d/validation.tsv", tsv(ROWS[:10]))
    write("d/test.tsv", tsv(ROWS[10:30]))
    bundle = load_data(DataConfig(data=str(tmp_path / "d"), train_limit=5, eval_limit=3))
    assert bundle.sizes() == {"train": 5, "validation": 3, "test": 3}
    assert [ex.text for ex in bundle.splits["train"]] == [t for t, _ in ROWS[:5]]
    assert [ex.text for ex in bundle.splits["test"]] == [t for t, _ in ROWS[10:13]]
    assert "train limited to the first 5 of 40 examples" in bundle.notes


def test_train_per_class_keeps_n_of_each_label_seeded_in_file_order(write, tmp_path):
    rows = ROWS + [("rare one", "odd")]  # 13 neg, 27 pos, 1 odd
    write("d/train.tsv", tsv(rows))
    write("d/validation.tsv", tsv(ROWS[:4]))
    write("d/test.tsv", tsv(ROWS[4:8]))

    def train(**kwargs):
        return load_data(DataConfig(data=str(tmp_path / "d"), train_per_class=5, **kwargs)).splits["train"]

    first = train()
    assert sorted(ex.label for ex in first) == ["neg"] * 5 + ["odd"] + ["pos"] * 5
    order = [t for t, _ in rows]
    assert [order.index(ex.text) for ex in first] == sorted(order.index(ex.text) for ex in first)  # file order kept
    assert train() == first and train(subset_seed=1) != first  # the seed decides the draw, and only it
    bundle = load_data(DataConfig(data=str(tmp_path / "d"), train_per_class=5))
    assert "train sampled to 5 examples per label (seed 42): 11 of 41 examples, 3 labels; fewer than 5 in train, all kept: odd (1)" \
        in bundle.notes
    assert bundle.fingerprint != load_data(DataConfig(data=str(tmp_path / "d"), train_per_class=6)).fingerprint
    assert len(load_data(DataConfig(data=str(tmp_path / "d"), train_per_class=5, train_limit=4)).splits["train"]) == 4


def test_train_per_class_refuses_data_without_one_label_per_example(write, tmp_path):
    write("m/train.jsonl", "".join(json.dumps({"text": f"t{i}", "labels": ["a", "b"][: i % 3]}) + "\n" for i in range(12)))
    with pytest.raises(DataError, match="needs single-label data; this is multi-label: use --train-limit"):
        load_data(DataConfig(data=str(tmp_path / "m" / "train.jsonl"), train_per_class=2))
    write("j/train.jsonl", '{"tokens": ["EU", "says"], "tags": ["B-ORG", "O"]}\n' * 10)
    with pytest.raises(DataError, match="token task"):
        load_data(DataConfig(data=str(tmp_path / "j"), train_per_class=2))
    with pytest.raises(ConfigError, match="train_per_class must be >= 1"):
        DataConfig(data="x", train_per_class=0)


def test_fingerprint_follows_content_and_settings(write, tmp_path):
    path = write("d/train.tsv", tsv(ROWS))
    first = load_data(DataConfig(data=str(tmp_path / "d"))).fingerprint
    assert load_data(DataConfig(data=str(tmp_path / "d"))).fingerprint == first
    assert load_data(DataConfig(data=str(tmp_path / "d"), train_limit=3)).fingerprint != first
    path.write_text(tsv(ROWS[:-1] + [("changed", "pos")]))
    assert load_data(DataConfig(data=str(tmp_path / "d"))).fingerprint != first


def test_sst2_sample_is_shipped_and_offline():
    bundle = load_data(DataConfig(data="sst2-sample"))
    assert bundle.sizes() == {"train": 5500, "validation": 500, "test": 872}
    assert bundle.labels == ["negative", "positive"]
    assert "reported as test" in bundle.notes[0]
    assert bundle.splits["test"][0] == SeqExample("it 's a charming and often affecting journey .", "positive")
    assert set(REGISTRY) >= {"sst2", "sst5", "agnews", "twitterfin", "conll03", "ontonotesv5", "wnut17"}


def test_builtin_offline_without_data_dir_says_both_ways():
    with pytest.raises(DataError, match=r"^sst5: no --data-dir / LSLLM_DATA_DIR given, and the hub failed .*pass --data-dir DIR with sst5/train\.tsv .*or go online$"):
        load_data(DataConfig(data="sst5"))


def test_builtin_with_missing_split_offline(write, tmp_path):
    write("root/agnews/test.tsv", tsv([("stocks up", 2), ("goal!", 1)]))
    write("root/agnews/labels.txt", "World\nSports\nBusiness\nSci/Tech\n")
    cfg = DataConfig(data="agnews", data_dir=str(tmp_path / "root"))
    with pytest.raises(DataError, match=r"^agnews: .*agnews has no train split \(has: test\), and the hub failed .*agnews/train\.tsv.*or go online$"):
        load_data(cfg)
    bundle = load_data(cfg, splits=("test",))  # evaluation needs no train: the label set is known
    assert bundle.splits == {"test": [SeqExample("stocks up", "Business"), SeqExample("goal!", "Sports")]}


def test_builtin_task_mismatch(write, tmp_path):
    write("root/conll03/train.txt", "a O\n")
    with pytest.raises(DataError, match="conll03 is a token task, not seq"):
        load_data(DataConfig(data="conll03", data_dir=str(tmp_path / "root"), task="seq"))


def test_validation_file_needs_a_train_file():
    with pytest.raises(DataError, match="--validation-file/--test-file go with --data FILE"):
        load_data(DataConfig(data="sst2-sample", validation_file="x.tsv"))


def test_carving_from_too_little_data(write):
    path = write("one.tsv", tsv([("a", "x")]))
    with pytest.raises(DataError, match=r"1 training examples are too few to carve a validation split of 1"):
        load_data(DataConfig(data=str(path)))


def test_predict_inputs(write):
    assert read_predict_inputs(write("in.txt", "first text\n\n second \n")) == [SeqExample("first text"), SeqExample("second")]
    assert read_predict_inputs(write("in2.txt", "EU rejects it\n"), task="token") == [TokenExample(["EU", "rejects", "it"])]
    got = read_predict_inputs(write("in.jsonl", '{"text": "a", "label": "pos"}\n{"tokens": ["b", "c"]}\n'))
    assert got == [SeqExample("a", "pos"), TokenExample(["b", "c"])]
    with pytest.raises(DataError, match=r"in3\.jsonl:1: no text field 'text'; fields present: body"):
        read_predict_inputs(write("in3.jsonl", '{"body": "a"}\n'))
    with pytest.raises(DataError) as err:  # a field name with a line separator is shown escaped: still one line
        read_predict_inputs(write("in4.jsonl", '{"\\u2028x": "a", "y\\u0085": 1}\n'))
    assert len(str(err.value).splitlines()) == 1 and "'\\u2028x'" in str(err.value)
