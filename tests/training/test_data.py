import numpy as np
import pytest
import tensorflow as tf
from sample_texts import VOCAB

from tunekit.preprocessing.wordpiece import WordPiecePreprocessor
from tunekit.inputs.text_batches import split_segments, text_dataset, trim_to_longest


@pytest.fixture(scope="module")
def preprocessor():
    return WordPiecePreprocessor(VOCAB, seq_length=64)


def mixed_length_texts(count):
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(["good", "bad", "film"], size=int(rng.integers(1, 60)))) for _ in range(count)]


def test_batches_are_cut_to_their_longest_text(preprocessor):
    batches = list(text_dataset(preprocessor, [["good", "good bad film the"]], np.array([1, 0]), batch_size=2))
    ids, labels = batches[0]
    assert ids["input_word_ids"].shape == (2, 8)  # 6 tokens with [CLS]/[SEP], rounded up to a multiple of 8
    assert labels.numpy().tolist() == [1, 0]


def test_trim_keeps_at_least_one_position():
    inputs = {"input_mask": tf.zeros([2, 16], tf.int32), "input_word_ids": tf.zeros([2, 16], tf.int32)}
    assert trim_to_longest(inputs)["input_word_ids"].shape == (2, 1)


def test_grouping_by_length_keeps_every_example_once_and_cuts_padding(preprocessor):
    texts = mixed_length_texts(640)
    labels = np.arange(640)
    padded, seen = {}, {}
    for grouped in (False, True):
        dataset = text_dataset(preprocessor, [texts], labels, batch_size=8, shuffle=True, seed=0, by_length=grouped)
        batches = list(dataset)
        assert len(batches) == int(dataset.cardinality()) == 80
        padded[grouped] = np.mean([ids["input_word_ids"].shape[1] for ids, _ in batches])
        seen[grouped] = sorted(np.concatenate([batch_labels.numpy() for _, batch_labels in batches]).tolist())
    assert seen[True] == seen[False] == list(range(640))
    assert padded[True] < 0.75 * padded[False]


def test_shuffled_order_is_seeded(preprocessor):
    texts = mixed_length_texts(64)
    first = [y.numpy().tolist() for _, y in text_dataset(preprocessor, [texts], np.arange(64), batch_size=8,
                                                        shuffle=True, seed=3, by_length=True)]
    again = [y.numpy().tolist() for _, y in text_dataset(preprocessor, [texts], np.arange(64), batch_size=8,
                                                        shuffle=True, seed=3, by_length=True)]
    assert first == again


@pytest.mark.parametrize("x, segments, error, match", [
    (["a", "b"], 2, ValueError, "text pairs"),
    ((["a"], ["b", "c"]), 2, ValueError, "texts_a has 1 texts but texts_b has 2"),
    (np.array([["a", "b", "c"]]), 2, ValueError, "2 column"),
    ("one text", 1, TypeError, "single str"),
])
def test_split_segments_errors(x, segments, error, match):
    with pytest.raises(error, match=match):
        split_segments(x, segments)


def test_split_segments_accepts_pair_forms():
    expected = [["a", "c"], ["b", "d"]]
    assert split_segments([("a", "b"), ("c", "d")], 2) == expected
    assert split_segments((["a", "c"], ["b", "d"]), 2) == expected
    assert split_segments(np.array([["a", "b"], ["c", "d"]], dtype=object), 2) == expected


def test_lone_surrogate_names_the_row_and_the_fix():
    from tunekit.texts import validate_texts

    with pytest.raises(ValueError, match=r"texts\[1\] holds a character that cannot be written as UTF-8.*surrogate.*"
                                         r"encode\('utf-8', 'replace'\)"):
        validate_texts(["fine", "scraped \ud83d text"])
    with pytest.raises(ValueError, match=r"texts_b\[0\] holds a character"):
        split_segments((["a"], ["\udc80"]), 2)
