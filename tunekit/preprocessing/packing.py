"""Packing of tokenized segments into BERT model inputs, as TF Hub's `bert_pack_inputs` does.

`[CLS] a [SEP]` for one segment, `[CLS] a [SEP] b [SEP]` for two; segments longer than the budget are
trimmed round-robin (one token at a time from each segment that is still too long, longest first),
then padded to `seq_length`. Type ids are 0 for `[CLS]`, the first segment and its `[SEP]`, 1 for the
second segment and its `[SEP]`.

Example:

>>> import tensorflow as tf
>>> from tunekit.preprocessing.packing import pack_inputs
>>> ids = tf.ragged.constant([[[7, 8], [9]]], dtype=tf.int32)      # [batch, words, wordpieces]
>>> pack_inputs([ids], seq_length=6, start_id=101, end_id=102)["input_word_ids"].numpy().tolist()
[[101, 7, 8, 9, 102, 0]]
"""

import tensorflow as tf
import tensorflow_text as text

MIN_SEQ_LENGTH = 3
MAX_SEQ_LENGTH = 512
MODEL_INPUT_KEYS = ("input_word_ids", "input_mask", "input_type_ids")
TRUNCATION_MODES = ("head", "head_tail")
LONG_TEXT_MODES = ("truncate", "windows")


def validate_seq_length(seq_length):
    """Raises a clear error unless `seq_length` is an int in 3..512.

    3 is the least that holds `[CLS]`, one token of text and `[SEP]` (with 1 or 2 every text packs to the same
    ids); 512 is the size of BERT's position table (`load_backbone` also checks the encoder's own table).
    """
    if isinstance(seq_length, bool) or not isinstance(seq_length, int):
        raise TypeError(f"seq_length must be an int between {MIN_SEQ_LENGTH} and {MAX_SEQ_LENGTH}, got {seq_length!r}.")
    if not MIN_SEQ_LENGTH <= seq_length <= MAX_SEQ_LENGTH:
        raise ValueError(
            f"seq_length must be between {MIN_SEQ_LENGTH} ([CLS], one token of text, [SEP]) and {MAX_SEQ_LENGTH} "
            f"(BERT's position embeddings hold {MAX_SEQ_LENGTH} tokens), got {seq_length}."
        )
    return seq_length


def validate_truncation(truncation):
    if truncation not in TRUNCATION_MODES:
        raise ValueError(
            f"truncation must be one of {TRUNCATION_MODES}, got {truncation!r}: 'head' keeps the start of long "
            "texts, 'head_tail' keeps their first quarter and last three quarters of the token budget."
        )
    return truncation


def validate_long_texts(long_texts):
    if long_texts not in LONG_TEXT_MODES:
        raise ValueError(
            f"long_texts must be one of {LONG_TEXT_MODES}, got {long_texts!r}: 'truncate' reads the first "
            "seq_length tokens of a text (as `truncation` cuts it), 'windows' reads all of it at prediction, in "
            "windows of seq_length tokens whose outputs are averaged.")
    return long_texts


def keep_head_and_tail(tokens, budget):
    """Cuts rows of `[batch, tokens]` longer than `budget` to their first `budget // 4` and last
    `budget - budget // 4` tokens (Sun et al., 2019: for long reviews the end carries the verdict).

    >>> keep_head_and_tail(tf.ragged.constant([list(range(10)), [1, 2]]), 4).to_list()
    [[0, 7, 8, 9], [1, 2]]
    """
    lengths = tokens.row_lengths()
    positions = tf.ragged.range(lengths)
    head = budget // 4
    tail_start = tf.expand_dims(lengths - (budget - head), axis=1)
    return tf.ragged.boolean_mask(tokens, (positions < head) | (positions >= tail_start))


def flatten_words(segment):
    """`[batch, words, wordpieces]` -> `[batch, tokens]`; a `[batch, tokens]` segment is returned as is."""
    if segment.shape.rank == 3:
        return segment.merge_dims(-2, -1)
    return segment


def pack_inputs(segments, seq_length, *, start_id, end_id, pad_id=0):
    """Packs 1 or 2 ragged token-id segments into the three dense `[batch, seq_length]` model inputs.

    Args:
        segments: a list of 1 or 2 int32 RaggedTensors, `[batch, words, wordpieces]` or `[batch, tokens]`.
        seq_length: int or scalar int32 tensor: the padded length, special tokens included.
        start_id, end_id, pad_id: ids of `[CLS]`, `[SEP]` and `[PAD]`.
    """
    if not 1 <= len(segments) <= 2:
        raise ValueError(f"BERT packs one or two text segments, got {len(segments)}.")
    segments = [tf.cast(flatten_words(segment), tf.int32) for segment in segments]
    seq_length = tf.cast(seq_length, tf.int32)
    budget = tf.maximum(seq_length - (len(segments) + 1), 0)
    trimmed = text.RoundRobinTrimmer(max_seq_length=budget).trim(segments)
    ids, type_ids = text.combine_segments(trimmed, start_of_sequence_id=start_id, end_of_segment_id=end_id)
    word_ids, mask = text.pad_model_inputs(ids, max_seq_length=seq_length, pad_value=pad_id)
    type_ids, _ = text.pad_model_inputs(type_ids, max_seq_length=seq_length, pad_value=0)
    return {"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": type_ids}
