"""The preprocessor interface shared by TF Hub preprocessing models and tunekit's WordPiece preprocessor.

A preprocessor turns raw strings into the three int32 inputs of a BERT encoder. It is a Keras layer so
that it can sit in front of the encoder in a model that takes raw strings (for `predict` and export),
while training tokenizes in the `tf.data` pipeline with the same `tokenize` and `pack` methods.
"""

import keras
import tensorflow as tf

from tunekit.preprocessing.packing import MODEL_INPUT_KEYS, validate_seq_length


class Preprocessor(keras.layers.Layer):
    """Base class: raw strings (or pairs of strings) -> `input_word_ids`, `input_mask`, `input_type_ids`.

    Subclasses implement `tokenize(strings)` (-> int32 RaggedTensor `[batch, words, wordpieces]`),
    `pack(segments, seq_length)` and `special_tokens`.

    Calling the layer on a string tensor `[batch]` packs single texts; on a list of two string tensors it
    packs pairs `[CLS] a [SEP] b [SEP]`. The result is padded to `seq_length`.
    """

    def __init__(self, seq_length=128, **kwargs):
        kwargs.setdefault("trainable", False)
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.seq_length = validate_seq_length(seq_length)
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

    def call(self, inputs):
        segments = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        return self.pack([self.tokenize(tf.reshape(segment, [-1])) for segment in segments], self.seq_length)

    def compute_output_spec(self, inputs):
        first = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        shape = (first.shape[0], self.seq_length)
        return {key: keras.KerasTensor(shape, dtype="int32", name=key) for key in MODEL_INPUT_KEYS}

    def get_config(self):
        config = super().get_config()
        config["seq_length"] = self.seq_length
        return config
