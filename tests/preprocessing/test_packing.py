import numpy as np
import pytest
import tensorflow as tf

from tunekit.preprocessing.packing import keep_head_and_tail, pack_inputs, validate_seq_length, validate_truncation


def test_single_segment_packing_and_padding():
    ids = tf.ragged.constant([[[7, 8], [9]], [[5]]], dtype=tf.int32)
    packed = pack_inputs([ids], seq_length=6, start_id=101, end_id=102)
    assert packed["input_word_ids"].numpy().tolist() == [[101, 7, 8, 9, 102, 0], [101, 5, 102, 0, 0, 0]]
    assert packed["input_mask"].numpy().tolist() == [[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]]
    assert packed["input_type_ids"].numpy().sum() == 0


def test_pairs_are_trimmed_round_robin_with_type_ids():
    a = tf.ragged.constant([[1, 2, 3, 4, 5, 6]], dtype=tf.int32)
    b = tf.ragged.constant([[7, 8]], dtype=tf.int32)
    packed = pack_inputs([a, b], seq_length=8, start_id=101, end_id=102)
    assert packed["input_word_ids"].numpy().tolist() == [[101, 1, 2, 3, 102, 7, 8, 102]]
    assert packed["input_type_ids"].numpy().tolist() == [[0, 0, 0, 0, 0, 1, 1, 1]]


def test_tiny_seq_length_keeps_only_special_tokens():
    packed = pack_inputs([tf.ragged.constant([[1, 2, 3]], dtype=tf.int32)], seq_length=2, start_id=101, end_id=102)
    assert packed["input_word_ids"].numpy().tolist() == [[101, 102]]


def test_head_and_tail_truncation():
    tokens = tf.ragged.constant([list(range(20)), [1, 2, 3]], dtype=tf.int32)
    kept = keep_head_and_tail(tokens, 8).to_list()
    assert kept == [[0, 1, 14, 15, 16, 17, 18, 19], [1, 2, 3]]


@pytest.mark.parametrize("value, error", [(0, ValueError), (513, ValueError), (True, TypeError), (64.0, TypeError)])
def test_seq_length_validation(value, error):
    with pytest.raises(error, match="seq_length"):
        validate_seq_length(value)


def test_truncation_validation():
    with pytest.raises(ValueError, match="truncation must be one of"):
        validate_truncation("tail")
    assert validate_truncation("head_tail") == "head_tail"


def test_pack_rejects_three_segments():
    segment = tf.ragged.constant([[1]], dtype=tf.int32)
    with pytest.raises(ValueError, match="one or two"):
        pack_inputs([segment] * 3, seq_length=8, start_id=1, end_id=2)
    assert np.array_equal(pack_inputs([segment], 4, start_id=1, end_id=2)["input_word_ids"], [[1, 1, 2, 0]])
