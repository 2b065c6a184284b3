"""Encoding: truncation counting, BOS handling, word alignment, sliding windows, mapping back."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsllm.data import SeqExample, TokenExample, encode_sequences, encode_tokens
from lsllm.data.encoding import IGNORE_INDEX, special_tokens, word_alignment
from lsllm.errors import DataError
from lsllm.inference.prediction import word_predictions

TEXTS = ["a great movie", "EU rejects German call to boycott British lamb .", "x " * 40, "zebra-like quokkas!"]
LABEL2ID = {"neg": 0, "pos": 1}


@pytest.mark.parametrize("fixture", ["bpe_tokenizer", "metaspace_tokenizer", "smol_tokenizer"])
def test_seq_matches_tokenizer_truncation_and_counts_cuts(request, fixture):
    tok = request.getfixturevalue(fixture)
    examples = [SeqExample(t, "pos") for t in TEXTS]
    encoded = encode_sequences(examples, tok, LABEL2ID, max_length=8)
    expected = [tok(t, truncation=True, max_length=8)["input_ids"] for t in TEXTS]
    assert [f["input_ids"] for f in encoded.features] == expected
    full = [len(tok(t)["input_ids"]) for t in TEXTS]
    assert encoded.n_truncated == sum(n > 8 for n in full) >= 1
    assert all(f["labels"] == 1 for f in encoded.features)


def test_bos_kept_no_eos_added(bpe_tokenizer, smol_tokenizer):
    bos = bpe_tokenizer.bos_token_id
    ids = encode_sequences([SeqExample("a great movie")], bpe_tokenizer, LABEL2ID, 32).features[0]["input_ids"]
    assert ids[0] == bos and ids.count(bos) == 1 and bpe_tokenizer.eos_token_id not in ids
    assert special_tokens(smol_tokenizer) == []  # SmolLM2 adds no BOS by itself
    smol = encode_sequences([SeqExample("a great movie")], smol_tokenizer, LABEL2ID, 32).features[0]["input_ids"]
    assert smol == smol_tokenizer("a great movie")["input_ids"] and smol_tokenizer.eos_token_id not in smol


def test_unlabelled_and_unknown_label(bpe_tokenizer):
    assert "labels" not in encode_sequences([SeqExample("hi")], bpe_tokenizer, LABEL2ID, 16).features[0]
    with pytest.raises(DataError, match=r"label 'meh' is not in the model's labels \(neg, pos\)"):
        encode_sequences([SeqExample("hi", "meh")], bpe_tokenizer, LABEL2ID, 16)


TAGS = {"O": 0, "B-ORG": 1, "I-ORG": 2, "B-MISC": 3, "I-MISC": 4, "B-PER": 5, "I-PER": 6}


def test_smollm2_words_are_tokenized_as_in_a_sentence(smol_tokenizer):
    """Mid-sentence words must get their leading-space token (Ġrejects), not 're ject s'."""
    words = ["EU", "rejects", "German", "call", "."]
    ex = TokenExample(words, ["B-ORG", "O", "B-MISC", "O", "O"])
    feature = encode_tokens([ex], smol_tokenizer, TAGS, 64).features[0]
    assert smol_tokenizer.convert_ids_to_tokens(feature["input_ids"]) == ["EU", "Ġrejects", "ĠGerman", "Ġcall", "Ġ."]
    assert feature["input_ids"] == smol_tokenizer(" ".join(words))["input_ids"]
    assert feature["labels"] == [1, 0, 3, 0, 0]
    assert feature["word_ids"] == [0, 1, 2, 3, 4]


def test_first_subtoken_labelled_rest_ignored_or_continued(smol_tokenizer):
    ex = TokenExample(["Peter", "Blackburnshireton", "left"], ["B-PER", "I-PER", "O"])
    plain = encode_tokens([ex], smol_tokenizer, TAGS, 64).features[0]
    pieces = Counter(plain["word_ids"])
    assert pieces[1] > 1, "the test needs a multi-token word"
    for pos, (w, label) in enumerate(zip(plain["word_ids"], plain["labels"], strict=True)):
        first = pos == 0 or plain["word_ids"][pos - 1] != w
        assert label == (TAGS[ex.tags[w]] if first else IGNORE_INDEX)
    every = encode_tokens([TokenExample(["Blackburnshireton", "x"], ["B-PER", "O"])], smol_tokenizer, TAGS, 64, label_all_subtokens=True)
    labels = every.features[0]["labels"]
    assert labels[0] == TAGS["B-PER"] and set(labels[1:-1]) == {TAGS["I-PER"]} and labels[-1] == TAGS["O"]


@pytest.mark.parametrize("fixture", ["bpe_tokenizer", "metaspace_tokenizer", "smol_tokenizer"])
def test_alignment_reconstructs_every_word(request, fixture):
    tok = request.getfixturevalue(fixture)
    words = ["Peter", "Blackburn", "(", "EU", ")", "said", "zebra-like", "quokkas", "1996-08-22", "é"]
    text = " ".join(words)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    word_of = word_alignment(text, words, enc["offset_mapping"])
    assert sorted(set(word_of) - {-1}) == list(range(len(words)))
    real = [w for w in word_of if w >= 0]
    assert real == sorted(real)  # sub-tokens of one word are contiguous, words in order
    for w, word in enumerate(words):
        ids = [i for i, wi in zip(enc["input_ids"], word_of, strict=True) if wi == w]
        assert tok.decode(ids).strip() == word


def test_real_conll_sentences_align_with_smollm2(smol_tokenizer, shared_data):
    from lsllm.data.readers import read_conll

    sentences = read_conll(shared_data / "conll03" / "validation.txt").examples[:300]
    encoded = encode_tokens(sentences, smol_tokenizer, {t: i for i, t in enumerate(
        ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"])}, 512)
    assert encoded.n_unaligned == 0 and encoded.n_windowed == 0
    for ex, feature in zip(sentences, encoded.features, strict=True):
        for w, word in enumerate(ex.tokens):
            decoded = smol_tokenizer.decode([i for i, wi in zip(feature["input_ids"], feature["word_ids"], strict=True) if wi == w])
            assert decoded.strip() == word
            if w > 0 and word[0].isalpha():  # digits follow a separate space token in SmolLM2's pre-tokenizer
                assert decoded == " " + word


def _owned_first_positions(encoded):
    """(example, word) -> list of (feature index, position) where the word's prediction is read."""
    seen: dict[tuple[int, int], list] = {}
    for fi, f in enumerate(encoded.features):
        prev = -1
        for pos, w in enumerate(f["word_ids"]):
            if w >= 0 and w != prev:
                seen.setdefault((f["example_id"], w), []).append((fi, pos))
            prev = w
    return seen


def words_from_features(encoded, preds):
    """Word-level tag ids through `word_predictions`, from one predicted id per feature position."""
    n_tags = max(len(TAGS), 1 + max((max(p, default=0) for p in preds), default=0))
    probs = [torch.nn.functional.one_hot(torch.tensor(p, dtype=torch.long), n_tags).float() for p in preds]
    return [[tag for tag, _ in words] for words in word_predictions(encoded.features, probs, encoded.n_words)]


def test_long_sentence_windows_cover_every_word_once(bpe_tokenizer):
    words = [f"w{i}" for i in range(60)] + ["Blackburn", "lamb"]
    tags = ["B-PER" if i % 7 == 0 else "O" for i in range(len(words))]
    encoded = encode_tokens([TokenExample(words, tags), TokenExample(["short"], ["O"])], bpe_tokenizer, TAGS, 16, stride=4)
    assert encoded.n_windowed == 1 and encoded.n_truncated == 0 and len(encoded.features) > 3
    assert all(len(f["input_ids"]) <= 16 for f in encoded.features)
    assert all(f["input_ids"][0] == bpe_tokenizer.bos_token_id for f in encoded.features)
    owned = _owned_first_positions(encoded)
    assert sorted(owned) == [(0, w) for w in range(len(words))] + [(1, 0)]
    assert all(len(places) == 1 for places in owned.values())
    # gold labels as predictions come back exactly, word by word
    preds = [[max(label, 0) for label in f["labels"]] for f in encoded.features]
    assert words_from_features(encoded, preds) == [[TAGS[t] for t in tags], [0]]


def test_owner_is_the_window_where_the_word_is_most_central(bpe_tokenizer):
    words = [f"w{i}" for i in range(30)]
    encoded = encode_tokens([TokenExample(words, ["O"] * 30)], bpe_tokenizer, TAGS, 12, stride=4)
    content = [f["input_ids"][1:] for f in encoded.features]  # drop BOS
    # rebuild each window's span in the sentence's token sequence
    full = bpe_tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]
    spans, start = [], 0
    for ids in content:
        start = next(s for s in range(start, len(full)) if full[s : s + len(ids)] == ids)
        spans.append((start, start + len(ids)))
    for (fi, pos) in [places[0] for places in _owned_first_positions(encoded).values()]:
        k = spans[fi][0] + pos - 1
        centrality = [min(k - s, e - 1 - k) if s <= k < e else -1 for s, e in spans]
        assert fi == centrality.index(max(centrality))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_words=st.integers(1, 50), max_length=st.integers(8, 24), stride_frac=st.floats(0, 0.5),
       words=st.lists(st.sampled_from(["the", "fox", "Blackburn", "quokkas", ",", "EU", "1996-08-22", "zz"]), min_size=50, max_size=50))  # fmt: skip
def test_windowing_invariants(bpe_tokenizer, n_words, max_length, stride_frac, words):
    words = words[:n_words]
    tags = ["B-ORG" if w == "EU" else "O" for w in words]
    stride = int((max_length - 1) // 2 * stride_frac)
    encoded = encode_tokens([TokenExample(words, tags)], bpe_tokenizer, TAGS, max_length, stride=stride)
    assert all(len(f["input_ids"]) <= max_length for f in encoded.features)
    owned = _owned_first_positions(encoded)
    assert sorted(owned) == [(0, w) for w in range(n_words)] and all(len(p) == 1 for p in owned.values())
    for f in encoded.features:
        for w, label in zip(f["word_ids"], f["labels"], strict=True):
            assert (label != IGNORE_INDEX) <= (w >= 0)
    preds = [[max(label, 0) for label in f["labels"]] for f in encoded.features]
    assert words_from_features(encoded, preds) == [[TAGS[t] for t in tags]]


def test_word_predictions_fill_unpredicted_words_and_check_rows(bpe_tokenizer):
    encoded = encode_tokens([TokenExample(["a", "b"], ["O", "O"])], bpe_tokenizer, TAGS, 16)
    encoded.features[0]["word_ids"] = [-1, 0, -1]  # pretend word 1 had no token of its own
    assert words_from_features(encoded, [[9, 5, 6]]) == [[5, 0]]  # an unpredicted word is "O"
    with pytest.raises(ValueError):
        words_from_features(encoded, [])


def test_token_encoding_needs_a_fast_tokenizer():
    class Slow:
        is_fast = False

    with pytest.raises(DataError, match="not a fast tokenizer"):
        encode_tokens([TokenExample(["a"], ["O"])], Slow(), TAGS, 16)
