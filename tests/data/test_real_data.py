"""The ../shared/data copies load with the official split sizes and label sets (skipped when absent)."""

from __future__ import annotations

import time
from itertools import chain

import pytest

from lsllm.config import DataConfig
from lsllm.data import load_data


def load(shared_data, name, **kwargs):
    return load_data(DataConfig(data=name, data_dir=str(shared_data)), **kwargs)


@pytest.mark.parametrize(
    ("name", "sizes", "labels"),
    [
        # no labelled test split: official validation reported as test, validation carved (same size)
        ("sst2", {"train": 67_349 - 872, "validation": 872, "test": 872}, ["negative", "positive"]),
        ("twitterfin", {"train": 9_543 - 2_388, "validation": 2_388, "test": 2_388}, ["Bearish", "Bullish", "Neutral"]),
        ("sst5", {"train": 8_544, "validation": 1_101, "test": 2_210},
         ["very negative", "negative", "neutral", "positive", "very positive"]),
    ],
)  # fmt: skip
def test_sequence_datasets(shared_data, name, sizes, labels):
    bundle = load(shared_data, name)
    assert bundle.sizes() == sizes
    assert bundle.labels == labels
    assert {ex.label for ex in bundle.splits["train"]} == set(labels)


def test_sst2_official_counts_before_carving(shared_data):
    bundle = load(shared_data, "sst2")
    assert len(bundle.splits["train"]) + len(bundle.splits["validation"]) == 67_349
    test_texts = {ex.text for ex in bundle.splits["test"]}
    assert len(test_texts & {ex.text for ex in bundle.splits["validation"]}) < 5  # distinct sentences, not the same split


def test_sst2_whole_carve_is_sentences_like_test(shared_data):
    bundle = load_data(DataConfig(data="sst2", data_dir=str(shared_data), carve="whole"))
    val, train = bundle.splits["validation"], bundle.splits["train"]
    assert len(val) == 872 and len(train) < 67_349 - 872 - 5_000  # the carved sentences' phrases left train

    def words(split):
        return sum(len(ex.text.split()) for ex in split) / len(split)

    assert abs(words(val) - words(bundle.splits["test"])) < 1.5 and words(train) < 10  # sentences vs phrases
    carved = [" " + ex.text + " " for ex in val]
    inside = [ex.text for ex in train[:2000] if any(" " + ex.text + " " in c for c in carved)]
    assert not inside


def test_clinc150_intents_and_per_intent_samples(shared_data):
    if not (shared_data / "clinc150" / "train.tsv").is_file():
        pytest.skip("../shared/data/clinc150 is not present")
    bundle = load(shared_data, "clinc150")
    assert bundle.sizes() == {"train": 18_000, "validation": 2_250, "test": 2_250}
    assert len(bundle.labels) == 150 and bundle.labels == sorted(bundle.labels) and "change_ai_name" in bundle.labels
    assert bundle.labels == (shared_data / "clinc150" / "labels.txt").read_text().split()
    few = load_data(DataConfig(data="clinc150", data_dir=str(shared_data), train_per_class=20))
    counts = {}
    for example in few.splits["train"]:
        counts[example.label] = counts.get(example.label, 0) + 1
    assert len(few.splits["train"]) == 3_000 and set(counts.values()) == {20} and len(counts) == 150


def test_agnews_test_only_offline(shared_data):
    bundle = load(shared_data, "agnews", splits=("test",))
    assert bundle.sizes() == {"test": 7_600}
    assert bundle.labels == ["World", "Sports", "Business", "Sci/Tech"]
    assert {ex.label for ex in bundle.splits["test"]} == set(bundle.labels)


def test_conll03(shared_data):
    bundle = load(shared_data, "conll03")
    assert bundle.sizes() == {"train": 14_041, "validation": 3_250, "test": 3_453}
    assert bundle.labels == ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    assert bundle.scheme == "BIO"
    assert bundle.splits["train"][0].tokens[:3] == ["EU", "rejects", "German"]


def test_ontonotes_sizes_types_and_speed(shared_data):
    start = time.perf_counter()
    bundle = load(shared_data, "ontonotesv5")
    elapsed = time.perf_counter() - start
    assert bundle.sizes() == {"train": 59_924, "validation": 8_528, "test": 8_262}
    types = {tag[2:] for tag in bundle.labels if tag != "O"}
    assert len(types) == 18 and len(bundle.labels) == 37
    seen = set(chain.from_iterable(ex.tags for ex in bundle.splits["train"]))
    assert seen == set(bundle.labels)
    assert elapsed < 10, f"loading OntoNotes took {elapsed:.1f}s"  # ~1.2 s here; pandas-per-line would be minutes
