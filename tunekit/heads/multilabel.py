"""Multi-label classification: an independent sigmoid per label, each with its own decision threshold."""

import keras
import numpy as np
import tensorflow as tf

from tunekit.heads.task import LabelIndex, Task, as_label_array, dense_output
from tunekit.metrics import multilabel_metrics


class MultilabelTask(Task):
    """Any number of labels per text. Labels are lists of names, or a 0/1 matrix `[N, num_labels]`.

    Example:

    >>> task = MultilabelTask(labels=["sports", "politics", "tech"], threshold=0.5)
    >>> task.encode_labels([["tech"], ["sports", "politics"], []]).tolist()
    [[0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    """

    name = "multilabel"
    output_names = ("probabilities", "predicted")
    primary_output = "probabilities"

    @classmethod
    def from_arguments(cls, backbone, *, num_classes=None, labels=None, num_outputs=1, threshold=0.5, pooling=None,
                       text_pairs=False):
        return cls(labels=labels, num_labels=num_classes, threshold=threshold)

    @classmethod
    def labels_from_strings(cls, labels):
        """`"a|b"` strings (a file's label column) -> lists of names."""
        if labels.dtype.kind in "OUS":
            return [[name for name in str(names).split("|") if name] for names in labels]
        return labels

    @classmethod
    def arguments_from_labels(cls, labels, *, label_names=None, given=None):
        given = given or {}
        if given.get("labels") is not None or given.get("num_classes") is not None:
            return {}
        return {"labels": sorted({name for names in labels for name in names})}

    def __init__(self, labels=None, num_labels=None, threshold=0.5):
        self.index = None
        if labels is not None:
            self.index = LabelIndex(labels)
            labels = self.index.labels
            num_labels = len(labels)
        if isinstance(num_labels, bool) or not isinstance(num_labels, (int, np.integer)) or num_labels < 1:
            raise ValueError(f"Multi-label needs labels=[names] or num_labels=<int ≥ 1>, got {num_labels!r}.")
        thresholds = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (int(num_labels),))
        if not np.all((thresholds > 0) & (thresholds < 1)):
            raise ValueError(f"Thresholds must lie strictly between 0 and 1, got {threshold!r}.")
        self.labels = labels
        self.num_labels = int(num_labels)
        self.thresholds = [float(t) for t in thresholds]

    def build_output(self, features, *, dropout, seed):
        return dense_output(features, self.num_labels, dropout=dropout, seed=seed, activation="sigmoid")

    def loss(self):
        return keras.losses.BinaryCrossentropy()

    def fit_metrics(self):
        return [keras.metrics.BinaryAccuracy(name="hamming_accuracy")]

    def encode_labels(self, labels):
        if hasattr(labels, "to_numpy"):
            labels = labels.to_numpy()
        rows = list(labels)
        if rows and all(isinstance(row, (list, tuple, set, frozenset)) and all(isinstance(x, str) for x in row) for row in rows):
            if self.labels is None:
                raise ValueError("Label-name lists need label names: attach_head(..., 'multilabel', labels=[...]).")
            self.index.check(name for row in rows for name in row)
            encoded = np.zeros((len(rows), self.num_labels), dtype=np.float32)
            for i, row in enumerate(rows):
                encoded[i, [self.index.id(name) for name in row]] = 1.0
            return encoded
        array = as_label_array(labels)
        if array.ndim != 2 or array.shape[1] != self.num_labels or array.dtype.kind not in "biuf":
            raise ValueError(
                f"Multi-label labels must be lists of label names or a 0/1 matrix of shape [N, {self.num_labels}], "
                f"got an array of shape {array.shape} and dtype {array.dtype}."
            )
        if not np.all((array == 0) | (array == 1)):
            raise ValueError("A multi-label matrix must hold only 0 and 1.")
        return array.astype(np.float32)

    def evaluate(self, y_true, predictions):
        return multilabel_metrics(y_true, predictions, np.asarray(self.thresholds))

    def decode(self, predictions):
        chosen = np.asarray(predictions) >= np.asarray(self.thresholds)
        names = self.labels if self.labels is not None else list(range(self.num_labels))
        return [[names[j] for j in np.flatnonzero(row)] for row in chosen]

    def records(self, predictions):
        names = self.labels or [str(i) for i in range(self.num_labels)]
        return [{"labels": [name for name, p, t in zip(names, row, self.thresholds) if p >= t],
                 "probabilities": {name: float(p) for name, p in zip(names, row)}} for row in np.asarray(predictions)]

    def artifact_labels(self, outputs):
        names = self.labels or [str(i) for i in range(outputs["predicted"].shape[-1])]
        return [[names[j] for j in np.flatnonzero(row)] for row in outputs["predicted"]]

    def artifact_records(self, outputs):
        probabilities = np.asarray(outputs["probabilities"])
        names = self.labels or [str(i) for i in range(probabilities.shape[-1])]
        records = [{"probabilities": {label: float(p) for label, p in zip(names, row)}} for row in probabilities]
        for index, record in enumerate(records):
            record["labels"] = [names[j] for j in np.flatnonzero(outputs["predicted"][index])]
        return records

    def serving_outputs(self, predictions):
        return {"probabilities": predictions, "predicted": predictions >= tf.constant(self.thresholds, tf.float32)}

    def get_config(self):
        return {**super().get_config(), "labels": self.labels, "num_labels": self.num_labels, "threshold": self.thresholds}
