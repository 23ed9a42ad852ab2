"""The task interface: what a head outputs, how labels are encoded, which loss and metrics apply.

A task is plain Python (no weights). `TextModel` builds the head's layers with `build_output` and
keeps the task's config, so label names, thresholds and output sizes survive save and load.

A task is per sentence (a pooled sentence vector in, one output per text) or, with `per_token = True`, per
token (the encoder's vector of every word-piece in, one output per word-piece): then the `Trainer` feeds it
words and tags through `tunekit.inputs.word_batches`, and the export serves the task's `serving_function`.

A task owns its outputs: their names (`output_names`, `primary_output`), the serving outputs of the export
(`serving_outputs`), decoding model outputs to labels (`decode`) and to JSON records (`records`, what `tunekit
predict` prints), and decoding an exported artifact's outputs (`artifact_labels`, `artifact_records`). The rest of
tunekit asks the task instead of switching on its name, so a task defined outside `tunekit.heads` works everywhere
once registered with `tunekit.heads.register_task`.
"""

import keras
import numpy as np


class Task:
    """Base class of the tasks `attach_head` knows. Subclasses set `name` and implement the methods; register a
    task of your own with `tunekit.heads.register_task` so that `attach_head(backbone, name)` and `load_model`
    find it."""

    name = None
    per_token = False
    # True when the labels are one class id per text (or per word): `class_weight`, the trainer's label table for
    # string labels in a tf.data dataset and the majority-class warning apply.
    single_class = False
    # The names of the export's outputs (`serving_outputs`) that every artifact of this task has, and the one that
    # holds the model's own output (what `TextModel.predict` gives).
    output_names = ("predictions",)
    primary_output = "predictions"

    @classmethod
    def from_arguments(cls, backbone, *, num_classes=None, labels=None, num_outputs=1, threshold=0.5, pooling=None,
                       text_pairs=False):
        """The task for `attach_head(backbone, cls.name, ...)`'s arguments. The default passes `labels` when given
        and refuses the arguments of the built-in tasks; override it to take others."""
        given = {key: value for key, value, default in (("num_classes", num_classes, None), ("num_outputs", num_outputs, 1),
                                                        ("threshold", threshold, 0.5)) if value != default}
        if given:
            raise ValueError(f"The {cls.name!r} task takes no {sorted(given)}; build it yourself and pass it: "
                             f"attach_head(backbone, {cls.__name__}(...)).")
        return cls(labels=labels) if labels is not None else cls()

    @classmethod
    def labels_from_strings(cls, labels):
        """Labels read from a CSV/JSONL column (a numpy array) -> as `encode_labels` takes them. Default: as read."""
        return labels

    @classmethod
    def arguments_from_labels(cls, labels, *, label_names=None, given=None):
        """`from_arguments` arguments inferred from training labels (`tunekit train` without them in its config),
        for those the `given` ones leave out; `label_names`: the names a named dataset gives its class ids.
        Default: none."""
        return {}

    def features(self, encoder_outputs, input_mask, *, pooling):
        """What the head reads (Keras tensors): the pooled sentence vector `[B, H]`, or for a per-token task the
        encoder's `sequence_output` `[B, T, H]`."""
        from tunekit.heads.pooling import SentencePooling

        return SentencePooling(pooling, name="pooling")(encoder_outputs, input_mask)

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
        """The exported `serving_default` outputs (TF tensors) for a batch of model outputs; their names are
        `output_names` (and optional extras)."""
        return {"predictions": predictions}

    def serving_function(self, model):
        """`(function, input_signature)` of the export's `serving_default` for `model` (a `TextModel` of this
        task): raw strings in, `serving_outputs` out (see `tunekit.inputs.kinds.text_serving_function`)."""
        from tunekit.inputs.kinds import text_serving_function

        return text_serving_function(model)

    def records(self, predictions):
        """Model outputs -> one JSON-ready dict per text (what `tunekit predict` prints). Default: the values."""
        return value_records(predictions)

    def artifact_labels(self, outputs):
        """An exported artifact's outputs (dict of numpy arrays, see `serving_outputs`) -> the labels, as `decode`
        gives them from the model's outputs."""
        return self.decode(np.asarray(outputs[self.primary_output]))

    def artifact_records(self, outputs):
        """An exported artifact's outputs -> JSON-ready records, shaped as `records` shapes the model's."""
        return self.records(np.asarray(outputs[self.primary_output]))

    def get_config(self):
        return {"name": self.name}


class LabelIndex:
    """Label names <-> ids, with the one set of messages for bad names.

    >>> index = LabelIndex(["neg", "pos"])
    >>> index.ids(["pos", "neg"]).tolist(), index.names([1, 0])
    ([1, 0], ['pos', 'neg'])
    >>> index.ids(["meh"])
    Traceback (most recent call last):
    ...
    ValueError: Unknown label names ['meh']; the model's labels are ['neg', 'pos'].
    """

    def __init__(self, labels, *, what="Label names", unknown="label names", known="labels"):
        labels = [str(label) for label in labels]
        if len(set(labels)) != len(labels):
            raise ValueError(f"{what} must be distinct, got {labels}.")
        self.labels = labels
        self.unknown, self.known = unknown, known
        self._ids = {name: i for i, name in enumerate(labels)}

    def __len__(self):
        return len(self.labels)

    def __contains__(self, name):
        return name in self._ids

    def id(self, name):
        return self._ids[name]

    def check(self, names):
        """Raises the `ValueError` naming the unknown names among `names` (the first ten) and the known ones."""
        unknown = sorted({str(name) for name in names if str(name) not in self._ids})
        if unknown:
            raise ValueError(f"Unknown {self.unknown} {unknown[:10]}; the model's {self.known} are {self.labels}.")

    def ids(self, names):
        """Names -> int32 ids; the `ValueError` of `check` for unknown names."""
        names = list(names)
        self.check(names)
        return np.array([self._ids[str(name)] for name in names], dtype=np.int32)

    def names(self, ids):
        return [self.labels[int(i)] for i in ids]


def value_records(outputs):
    """Numeric outputs `[N, ...]` -> `{"value": v}` per row (one value) or `{"values": [...]}`."""
    values = np.asarray(outputs).reshape(len(outputs), -1)
    return [{"value": float(row[0])} if len(row) == 1 else {"values": [float(v) for v in row]} for row in values]


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
