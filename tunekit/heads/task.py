"""The task interface: what a head outputs, how labels are encoded, which loss and metrics apply.

A task is plain Python (no weights). `TextModel` builds the head's layers with `build_output` and
keeps the task's config, so label names, thresholds and output sizes survive save and load.

A task is per sentence (a pooled sentence vector in, one output per text) or, with `per_token = True`, per
token (the encoder's vector of every word-piece in, one output per word-piece): then the `Trainer` feeds it
words and tags through `tunekit.inputs.word_batches`, and the export serves the task's `serving_function`.
"""

import keras
import numpy as np


class Task:
    """Base class of the tasks `attach_head` knows. Subclasses set `name` and implement the methods."""

    name = None
    per_token = False

    def build_output(self, features, *, dropout, seed):
        """Keras tensors: sentence vectors `[B, H]` (token vectors `[B, T, H]` if `per_token`) -> the head's
        float32 output."""
        raise NotImplementedError

    def loss(self):
        raise NotImplementedError

    def fit_metrics(self):
        """Keras metrics shown in the progress bar during `fit`."""
        return []

    def encode_labels(self, labels):
        """User labels -> numeric array for training; a `ValueError` naming the problem if any is invalid."""
        raise NotImplementedError

    def evaluate(self, y_true, predictions):
        """Exact metrics over a whole split (numpy), without the loss."""
        raise NotImplementedError

    def decode(self, predictions):
        """Model outputs -> user-facing labels."""
        raise NotImplementedError

    def serving_outputs(self, predictions):
        """The exported `serving_default` outputs (TF tensors) for a batch of model outputs."""
        return {"predictions": predictions}

    def get_config(self):
        return {"name": self.name}


def dense_output(features, units, *, dropout, seed, activation=None, name="logits"):
    """Dropout, then a float32 Dense layer (float32 whatever the encoder's dtype policy), then `activation`."""
    x = keras.layers.Dropout(dropout, seed=seed, name="head_dropout")(features)
    x = keras.layers.Dense(
        units,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02, seed=seed),
        dtype="float32",
        name=name,
    )(x)
    if activation is None:
        return x
    return keras.layers.Activation(activation, dtype="float32", name="probabilities")(x)


def as_label_array(labels):
    """Lists, tuples, numpy arrays and pandas Series/DataFrames -> a numpy array (object for strings)."""
    if hasattr(labels, "to_numpy"):
        labels = labels.to_numpy()
    array = np.asarray(labels)
    if array.ndim == 0:
        raise TypeError(f"labels must be a sequence (list, numpy array, pandas Series), got {type(labels).__name__}.")
    return array


def check_finite(array, what):
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        bad = int(np.flatnonzero(~np.isfinite(array).reshape(len(array), -1).all(axis=1))[0])
        raise ValueError(f"{what} must be finite numbers; row {bad} is {array[bad].tolist()!r} (NaN or inf). Drop or fill it.")
