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
    validate_long_texts,
    validate_seq_length,
    validate_truncation,
)


class Preprocessor(keras.layers.Layer):
    """Base class: raw strings (or pairs of strings) -> `input_word_ids`, `input_mask`, `input_type_ids`.

    Subclasses implement `tokenize(strings)` (-> int32 RaggedTensor `[batch, words, wordpieces]`),
    `pack(segments, seq_length)` and `special_tokens`.

    Calling the layer on a string tensor `[batch]` packs single texts; on a list of two string tensors it
    packs pairs `[CLS] a [SEP] b [SEP]`. The result is padded to `seq_length`. With `long_texts="windows"`, a call
    on single texts packs every text's windows instead (`windows`), and adds `text_of_window` to the result.

    Args:
        seq_length: packed length, 3..512, special tokens included.
        truncation: how single texts longer than `seq_length` are cut: `"head"` keeps their start,
            `"head_tail"` their first quarter and last three quarters of the budget. Pairs are always
            trimmed round-robin from the end of the longer segment.
        long_texts: how a model reads single texts longer than `seq_length` at prediction: `"truncate"` (as
            `truncation` cuts them, as in training) or `"windows"`: all of the text, in consecutive windows of
            `seq_length` tokens whose outputs are averaged (`tunekit.inputs.text_windows`). Training rows are
            truncated either way.
    """

    def __init__(self, seq_length=128, truncation="head", long_texts="truncate", **kwargs):
        kwargs.setdefault("trainable", False)
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.seq_length = validate_seq_length(seq_length)
        self.truncation = validate_truncation(truncation)
        self.long_texts = validate_long_texts(long_texts)
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

    def windows(self, texts):
        """Single texts, string tensor `[batch]` -> (packed model inputs of their windows `[windows, seq_length]`,
        the text of each window `[windows]` int32): see `tunekit.inputs.text_windows`."""
        from tunekit.inputs.text_windows import window_inputs

        return window_inputs(self, texts)

    def reads_windows(self, num_segments):
        """True when texts of a `num_segments`-text model are read in windows (`long_texts="windows"`, single
        texts)."""
        return self.long_texts == "windows" and num_segments == 1

    def call(self, inputs):
        segments = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if self.reads_windows(len(segments)):
            rows, text_of_window = self.windows(segments[0])
            return {**rows, "text_of_window": text_of_window}
        return self.encode(segments)

    def compute_output_spec(self, inputs):
        segments = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        batch = None if self.reads_windows(len(segments)) else segments[0].shape[0]
        spec = {key: keras.KerasTensor((batch, self.seq_length), dtype="int32", name=key) for key in MODEL_INPUT_KEYS}
        if self.reads_windows(len(segments)):
            spec["text_of_window"] = keras.KerasTensor((None,), dtype="int32", name="text_of_window")
        return spec

    def get_config(self):
        config = super().get_config()
        config.update(seq_length=self.seq_length, truncation=self.truncation, long_texts=self.long_texts)
        return config
