"""Long texts read whole: split into consecutive windows of `seq_length` tokens, one model row per window, and the
windows' outputs averaged back into one output per text.

What `load_backbone(..., long_texts="windows")` makes a model do at prediction. Truncation
(`load_backbone(truncation=...)`) reads at most `seq_length - 2` word-pieces of a text; windows read all of it: a text
of `L` word-pieces with a budget of `b = seq_length - 2` per window and a stride `s` (default `b`: windows that
follow each other) gives `1 + ceil((L - b) / s)` windows, the last one moved back to end on the text's last
word-piece so that every window is full; a text that fits is one window, packed as truncation would pack it.
On IMDB, windows that follow each other were as accurate as half-overlapping ones (stride `b // 2`) and read 0.68x
the tokens (`benchmarks/long_texts.py`).

Example, with word-pieces as small ints (a budget of 4, a stride of 2):

>>> import tensorflow as tf
>>> windows, text_of_window = window_tokens(tf.ragged.constant([[1, 2, 3, 4, 5, 6, 7], [8, 9]]), budget=4, stride=2)
>>> windows.to_list(), text_of_window.numpy().tolist()
([[1, 2, 3, 4], [3, 4, 5, 6], [4, 5, 6, 7], [8, 9]], [0, 0, 0, 1])
>>> pool_windows(tf.constant([[0.25], [0.5], [0.75], [1.0]]), text_of_window, 2).numpy().tolist()
[[0.5], [1.0]]
"""

import keras
import tensorflow as tf


def validate_stride(stride, budget):
    """`stride` (None for `budget`) -> an int in 1..budget, or a `ValueError` saying which values work."""
    if stride is None:
        return budget
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= budget:
        raise ValueError(
            f"stride must be an int from 1 to {budget} (the word-pieces a window holds: seq_length - 2), got "
            f"{stride!r}: windows start every `stride` word-pieces; {budget} means windows that do not overlap.")
    return stride


def window_tokens(tokens, budget, stride):
    """Token ids `[texts, tokens]` or `[texts, words, word-pieces]` (ragged) -> (windows `[windows, <= budget]` ragged,
    the text of each window `[windows]` int32). See the module docstring for where windows start."""
    if tokens.shape.rank == 3:  # a tokenizer's words of word-pieces: the word-pieces in a row
        tokens = tokens.merge_dims(-2, -1)
    lengths = tokens.row_lengths()
    budget, stride = tf.constant(budget, lengths.dtype), tf.constant(stride, lengths.dtype)
    over = tf.maximum(lengths - budget, 0)
    counts = 1 + (over + stride - 1) // stride
    text_of_window = tf.repeat(tf.range(tf.size(lengths), dtype=tf.int32), counts)
    index = tf.ragged.range(counts).flat_values
    start = tf.minimum(index * stride, tf.gather(over, text_of_window))
    size = tf.minimum(tf.gather(lengths, text_of_window), budget)
    offsets = tf.gather(tokens.row_starts(), text_of_window) + start
    positions = tf.ragged.range(offsets, offsets + size)
    windows = tf.RaggedTensor.from_row_splits(tf.gather(tokens.flat_values, positions.flat_values), positions.row_splits)
    return windows, text_of_window


def window_inputs(preprocessor, texts, *, seq_length=None, stride=None):
    """Strings `[texts]` -> (packed model inputs `[windows, seq_length]`, the text of each window `[windows]` int32),
    tokenized and packed by `preprocessor` (`seq_length` defaults to its own)."""
    seq_length = preprocessor.seq_length if seq_length is None else seq_length
    budget = seq_length - 2
    windows, text_of_window = window_tokens(preprocessor.tokenize(tf.reshape(texts, [-1])), budget,
                                            validate_stride(stride, budget))
    return preprocessor.pack([windows], seq_length), text_of_window


def pool_windows(outputs, text_of_window, num_texts):
    """The windows' outputs `[windows, ...]` -> their mean per text `[num_texts, ...]` (for probabilities: the mean
    probability, which keeps rows summing to 1)."""
    return tf.math.unsorted_segment_mean(outputs, text_of_window, num_texts)


class WindowMean(keras.layers.Layer):
    """In a model that reads long texts in windows: the windows' outputs `[windows, ...]`, the text of each window
    `[windows]` and the texts `[texts]` -> the mean output of each text's windows `[texts, ...]` (`pool_windows`)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)

    def call(self, outputs, text_of_window, texts):
        return pool_windows(outputs, text_of_window, tf.shape(texts)[0])

    def compute_output_spec(self, outputs, text_of_window, texts):
        return keras.KerasTensor((texts.shape[0], *outputs.shape[1:]), dtype=outputs.dtype)
