"""Single-label classification (binary or multi-class): softmax over the classes, probabilities out."""

import keras
import numpy as np
import tensorflow as tf

from tunekit.heads.task import LabelIndex, Task, as_label_array, check_finite, dense_output
from tunekit.metrics import classification_metrics


class ClassificationTask(Task):
    """One label per text among `num_classes`; `labels` optionally names them (then string labels are accepted).

    Example:

    >>> task = ClassificationTask(labels=["negative", "positive"])
    >>> task.encode_labels(["positive", "negative"]).tolist()
    [1, 0]
    """

    name = "classification"
    single_class = True
    output_names = ("probabilities", "class_id")
    primary_output = "probabilities"

    @classmethod
    def from_arguments(cls, backbone, *, num_classes=None, labels=None, num_outputs=1, threshold=0.5, pooling=None,
                       text_pairs=False):
        return cls(num_classes=num_classes, labels=labels)

    @classmethod
    def arguments_from_labels(cls, labels, *, label_names=None, given=None):
        given = given or {}
        if given.get("labels") is not None or given.get("num_classes") is not None:
            return {}
        array = np.asarray(labels)
        if label_names is not None:
            return {"labels": label_names}
        if array.dtype.kind in "OUS":
            return {"labels": sorted({str(label) for label in array})}
        if array.dtype.kind in "iu":
            return {"num_classes": max(2, int(array.max()) + 1)}
        return {}

    def __init__(self, num_classes=None, labels=None):
        self.index = None
        if labels is not None:
            self.index = LabelIndex(labels)
            labels = self.index.labels
            if num_classes is not None and num_classes != len(labels):
                raise ValueError(f"num_classes={num_classes} but {len(labels)} label names were given: {labels}.")
            num_classes = len(labels)
        if num_classes is None:
            raise ValueError("Classification needs num_classes=<int ≥ 2> or labels=[names of the classes].")
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
            raise ValueError(
                f"Classification needs at least 2 classes, got num_classes={num_classes!r}. For a single yes/no "
                "output use num_classes=2 (softmax over two classes); for one score use the 'regression' task."
            )
        self.num_classes = int(num_classes)
        self.labels = labels

    def build_output(self, features, *, dropout, seed):
        return dense_output(features, self.num_classes, dropout=dropout, seed=seed, activation="softmax")

    def loss(self):
        return keras.losses.SparseCategoricalCrossentropy()

    def fit_metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def encode_labels(self, labels):
        array = as_label_array(labels)
        if array.ndim != 1:
            raise ValueError(f"Classification labels must be one per text (1-D), got shape {array.shape}.")
        if array.dtype.kind in "OUS":
            if self.labels is None:
                raise ValueError(
                    f"String labels (e.g. {array[0]!r}) need label names: attach_head(..., labels=[...]) with the "
                    "class names in the order of the outputs."
                )
            return self.index.ids(array)
        if array.dtype.kind == "b" or array.dtype.kind not in "iuf":
            raise ValueError(f"Classification labels must be class indices or label names, got dtype {array.dtype}.")
        check_finite(array, "Classification labels")
        if array.dtype.kind == "f" and not np.all(array == np.round(array)):
            raise ValueError("Classification labels must be whole class indices, got fractional values.")
        bad = (array < 0) | (array >= self.num_classes)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"Label {array[row].item()!r} at row {row} is out of range: class indices run from 0 to {self.num_classes - 1}."
            )
        return array.astype(np.int32)

    def evaluate(self, y_true, predictions):
        return classification_metrics(y_true, predictions, self.labels)

    def decode(self, predictions):
        ids = np.argmax(predictions, axis=-1)
        return [self.labels[i] for i in ids] if self.labels is not None else ids

    def records(self, predictions):
        names = self.labels or list(range(self.num_classes))
        return [{"label": names[int(np.argmax(row))],
                 "probabilities": {str(name): float(p) for name, p in zip(names, row)}} for row in np.asarray(predictions)]

    def artifact_labels(self, outputs):
        return outputs["label"].tolist() if "label" in outputs else outputs["class_id"].tolist()

    def artifact_records(self, outputs):
        probabilities = np.asarray(outputs["probabilities"])
        names = self.labels or [str(i) for i in range(probabilities.shape[-1])]
        records = [{"probabilities": {label: float(p) for label, p in zip(names, row)}} for row in probabilities]
        for index, record in enumerate(records):
            record["label"] = str(outputs["label"][index]) if "label" in outputs else int(outputs["class_id"][index])
        return records

    def serving_outputs(self, predictions):
        class_ids = tf.argmax(predictions, axis=-1, output_type=tf.int32)
        outputs = {"probabilities": predictions, "class_id": class_ids}
        if self.labels is not None:
            outputs["label"] = tf.gather(tf.constant(self.labels), class_ids)
        return outputs

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "labels": self.labels}
