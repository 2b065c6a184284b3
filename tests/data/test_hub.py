"""Hub datasets, tested on local copies (the hub itself is unreachable here)."""

from __future__ import annotations

import datasets
import pytest

from lsllm.config import DataConfig
from lsllm.data import SeqExample, TokenExample, load_data
from lsllm.data import loading as loading_module
from lsllm.errors import DataError


def glue_like(n_train: int = 30) -> datasets.DatasetDict:
    """The schema of GLUE SST-2 on the hub: sentence, ClassLabel label, hidden test labels (-1)."""
    features = datasets.Features({
        "sentence": datasets.Value("string"),
        "label": datasets.ClassLabel(names=["negative", "positive"]),
        "idx": datasets.Value("int32"),
    })  # fmt: skip
    def split(n, offset, hidden=False):
        return datasets.Dataset.from_dict(
            {"sentence": [f"s{offset + i} " for i in range(n)], "label": [-1 if hidden else i % 2 for i in range(n)],
             "idx": list(range(n))},
            features=features,
        )  # fmt: skip
    return datasets.DatasetDict({"train": split(n_train, 0), "validation": split(4, 100), "test": split(5, 200, hidden=True)})


def test_save_to_disk_folder_with_classlabel(tmp_path):
    glue_like().save_to_disk(tmp_path / "glue")
    bundle = load_data(DataConfig(data=f"hf:{tmp_path / 'glue'}"))
    assert (bundle.name, bundle.task, bundle.labels) == ("glue", "seq", ["negative", "positive"])
    # hidden test labels -> no test; the official validation is reported as test, validation carved
    assert bundle.sizes() == {"train": 26, "validation": 4, "test": 4}
    assert bundle.splits["test"][1] == SeqExample("s101", "positive")
    assert any("has no labels (all -1): not used" in note for note in bundle.notes)
    assert any("reported as test" in note for note in bundle.notes)


def test_column_mapping_and_missing_column_message(tmp_path):
    ds = datasets.Dataset.from_dict({"title": ["a", "b"] * 10, "body": ["x", "y"] * 10, "topic": ["p", "q"] * 10})
    datasets.DatasetDict({"train": ds, "validation": ds, "test": ds}).save_to_disk(tmp_path / "t")
    cfg = DataConfig(data=f"hf:{tmp_path / 't'}", text_column=["title", "body"], label_column="topic")
    bundle = load_data(cfg)
    assert bundle.splits["train"][0] == SeqExample("title: a\nbody: x", "p", {"title": "a", "body": "x"})
    assert bundle.labels == ["p", "q"]
    with pytest.raises(DataError, match=r"no text column \(looked for text, sentence\); columns present: title, body, topic; pass --text-column"):
        load_data(DataConfig(data=f"hf:{tmp_path / 't'}"))


def test_parquet_folder_token_task_inferred(tmp_path):
    features = datasets.Features({
        "tokens": datasets.Sequence(datasets.Value("string")),
        "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER", "I-PER"])),
    })  # fmt: skip
    folder = tmp_path / "pq"
    folder.mkdir()
    for split, n in (("train", 12), ("test", 3)):
        ds = datasets.Dataset.from_dict({"tokens": [["Ann", "Lee", "sings"]] * n, "ner_tags": [[1, 2, 0]] * n}, features=features)
        ds.to_parquet(str(folder / f"{split}.parquet"))
    bundle = load_data(DataConfig(data=f"hf:{folder}"))
    assert (bundle.task, bundle.labels, bundle.scheme) == ("token", ["O", "B-PER", "I-PER"], "BIO")
    assert bundle.sizes() == {"train": 11, "validation": 1, "test": 3}
    assert bundle.splits["test"][0] == TokenExample(["Ann", "Lee", "sings"], ["B-PER", "I-PER", "O"])


def test_unreachable_hub_id_is_one_line():
    with pytest.raises(DataError, match=r"^hf:someone/nothing: could not load \(ConnectionError: "):
        load_data(DataConfig(data="hf:someone/nothing"))


def test_builtin_from_hub_copy(monkeypatch):
    """A built-in resolved through the hub: the spec's columns, names and split rules apply."""
    calls = []

    def fake_load_hub(name, config=None):
        calls.append((name, config))
        return glue_like(40)

    monkeypatch.setattr(loading_module, "load_hub", fake_load_hub)
    bundle = load_data(DataConfig(data="sst2"))
    assert calls == [("glue", "sst2")]
    assert (bundle.name, bundle.labels) == ("sst2", ["negative", "positive"])
    assert bundle.sizes() == {"train": 36, "validation": 4, "test": 4}


def test_builtin_token_hub_copy_with_plain_int_tags(monkeypatch):
    """tner/ontonotes5 stores tags as ints with its own label2id; the spec maps them."""
    tner = datasets.Dataset.from_dict({"tokens": [["Phil", "Rosen", "said"]] * 10, "tags": [[4, 5, 0]] * 10})
    monkeypatch.setattr(loading_module, "load_hub", lambda name, config=None: datasets.DatasetDict(
        {"train": tner, "validation": tner, "test": tner}))
    bundle = load_data(DataConfig(data="ontonotesv5"))
    assert bundle.splits["test"][0].tags == ["B-PERSON", "I-PERSON", "O"]
    assert bundle.labels[:3] == ["O", "B-PERSON", "I-PERSON"] and len(bundle.labels) == 37
