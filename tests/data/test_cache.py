"""Tokenization cache: hits, keys that follow every input, no stale data, atomic files."""

from __future__ import annotations

import pytest

from lsllm.config import DataConfig
from lsllm.data import encode_split, load_data
from lsllm.data import encoding as encoding_module


@pytest.fixture
def counted(monkeypatch):
    calls = []
    real = encoding_module.encode_sequences  # what the problem type's encode calls (Problem.encode)

    def encode(examples, *args, **kwargs):
        calls.append(len(examples))
        return real(examples, *args, **kwargs)

    monkeypatch.setattr(encoding_module, "encode_sequences", encode)
    return calls


def test_second_encode_is_served_from_cache(write, tmp_path, isolated_cache, bpe_tokenizer, counted):
    write("d/train.tsv", "text\tlabel\n" + "".join(f"row {i}\t{i % 2}\n" for i in range(20)))
    bundle = load_data(DataConfig(data=str(tmp_path / "d")))
    first = {split: encode_split(bundle, split, bpe_tokenizer, 16) for split in bundle.splits}
    assert counted == [18, 2]
    files = sorted((isolated_cache / "tokenized").iterdir())
    assert len(files) == 2 and all(f.suffix == ".json" for f in files)  # no temporary files left
    reloaded = load_data(DataConfig(data=str(tmp_path / "d")))
    again = {split: encode_split(reloaded, split, bpe_tokenizer, 16) for split in reloaded.splits}
    assert counted == [18, 2]
    assert {k: v.features for k, v in again.items()} == {k: v.features for k, v in first.items()}
    encode_split(bundle, "train", bpe_tokenizer, 12)  # another max_length is another entry
    assert counted == [18, 2, 18]


def test_changed_file_is_never_served_stale(write, tmp_path, bpe_tokenizer, counted):
    path = write("d/train.tsv", "text\tlabel\n" + "".join(f"row {i}\t{i % 2}\n" for i in range(20)))
    before = encode_split(load_data(DataConfig(data=str(tmp_path / "d"))), "train", bpe_tokenizer, 16)
    path.write_text(path.read_text().replace("row ", "line "))  # new content
    bundle = load_data(DataConfig(data=str(tmp_path / "d")))
    after = encode_split(bundle, "train", bpe_tokenizer, 16)
    assert counted == [18, 18]
    expected = bpe_tokenizer([ex.text for ex in bundle.splits["train"]])["input_ids"]
    assert [f["input_ids"] for f in after.features] == expected != [f["input_ids"] for f in before.features]


def test_other_tokenizer_is_another_entry(write, tmp_path, bpe_tokenizer, metaspace_tokenizer, counted):
    write("d/train.tsv", "text\tlabel\n" + "".join(f"row {i}\t{i % 2}\n" for i in range(20)))
    bundle = load_data(DataConfig(data=str(tmp_path / "d")))
    encode_split(bundle, "train", bpe_tokenizer, 16)
    encode_split(bundle, "train", metaspace_tokenizer, 16)
    assert counted == [18, 18]


def test_token_cache_round_trips_and_keys_windowing(write, tmp_path, bpe_tokenizer):
    write("n/train.txt", "EU B-ORG\nrejects O\nGerman B-MISC\ncall O\nto O\nboycott O\nBritish B-MISC\nlamb O\n. O\n\n" * 12)
    bundle = load_data(DataConfig(data=str(tmp_path / "n")))
    fresh = encode_split(bundle, "train", bpe_tokenizer, 8, stride=2)
    cached = encode_split(bundle, "train", bpe_tokenizer, 8, stride=2)
    assert cached == fresh and cached.n_words[:2] == [9, 9] and fresh.n_windowed == 11
    other = encode_split(bundle, "train", bpe_tokenizer, 8, stride=0)
    assert other.features != fresh.features


def test_corrupt_cache_file_is_rebuilt(write, tmp_path, isolated_cache, bpe_tokenizer, counted):
    write("d/train.tsv", "text\tlabel\n" + "".join(f"row {i}\t{i % 2}\n" for i in range(20)))
    bundle = load_data(DataConfig(data=str(tmp_path / "d")))
    encode_split(bundle, "train", bpe_tokenizer, 16)
    (path,) = (isolated_cache / "tokenized").iterdir()
    path.write_text("{not json")
    assert len(encode_split(bundle, "train", bpe_tokenizer, 16).features) == 18
    assert counted == [18, 18]
