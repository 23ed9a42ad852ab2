"""The preprocessor interface shared by TF Hub preprocessing models and tunekit's WordPiece preprocessor.

A preprocessor turns raw strings into the three int32 inputs of a BERT encoder. It is a Keras layer so
that it can sit in front of the encoder in a model that takes raw strings (for `predict` and export),
while training tokenizes in the `tf.data` pipeline with the same `tokenize` and `pack` methods.
"""

import keras
import tensorflow as tf

from tunekit.preprocessing.packing import (
    MODEL_INPUT_KEYS,
    flatten_words,
    keep_head_and_tail,
    validate_seq_length,
    validate_truncation,
)


class Preprocessor(keras.layers.Layer):
    """Base class: raw strings (or pairs of strings) -> `input_word_ids`, `input_mask`, `input_type_ids`.

    Subclasses implement `tokenize(strings)` (-> int32 RaggedTensor `[batch, words, wordpieces]`),
    `pack(segments, seq_length)` and `special_tokens`.

    Calling the layer on a string tensor `[batch]` packs single texts; on a list of two string tensors it
    packs pairs `[CLS] a [SEP] b [SEP]`. The result is padded to `seq_length`.

    Args:
        seq_length: packed length, 3..512, special tokens included.
        truncation: how single texts longer than `seq_length` are cut: `"head"` keeps their start,
            `"head_tail"` their first quarter and last three quarters of the budget. Pairs are always
            trimmed round-robin from the end of the longer segment.
    """

    def __init__(self, seq_length=128, truncation="head", **kwargs):
        kwargs.setdefault("trainable", False)
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.seq_length = validate_seq_length(seq_length)
        self.truncation = validate_truncation(truncation)
        # String ops cannot be compiled by XLA; Keras' jit_compile="auto" must leave models holding this layer alone.
        self.supports_jit = False

    def tokenize(self, strings):
        raise NotImplementedError

    def pack(self, segments, seq_length=None):
        raise NotImplementedError

    @property
    def special_tokens(self):
        """Dict with `vocab_size`, `padding_id`, `start_of_sequence_id`, `end_of_segment_id`, `mask_id` (ints)."""
        raise NotImplementedError

    def encode(self, segments, seq_length=None):
        """1 or 2 string tensors `[batch]` -> packed model inputs: tokenize, truncate, pack."""
        seq_length = self.seq_length if seq_length is None else seq_length
        tokens = [self.tokenize(tf.reshape(segment, [-1])) for segment in segments]
        if self.truncation == "head_tail" and len(tokens) == 1:
            tokens = [keep_head_and_tail(flatten_words(tokens[0]), max(seq_length - 2, 0))]
        return self.pack(tokens, seq_length)

    def call(self, inputs):
        return self.encode(list(inputs) if isinstance(inputs, (list, tuple)) else [inputs])

    def compute_output_spec(self, inputs):
        first = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        shape = (first.shape[0], self.seq_length)
        return {key: keras.KerasTensor(shape, dtype="int32", name=key) for key in MODEL_INPUT_KEYS}

    def get_config(self):
        config = super().get_config()
        config.update(seq_length=self.seq_length, truncation=self.truncation)
        return config
