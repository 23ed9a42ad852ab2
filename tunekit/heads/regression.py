"""Regression: one or more real-valued outputs per text (scores, ratings, similarities)."""

import keras
import numpy as np

from tunekit.heads.task import Task, as_label_array, check_finite, dense_output
from tunekit.metrics import regression_metrics


class RegressionTask(Task):
    """`num_outputs` linear outputs trained with mean squared error.

    Example:

    >>> RegressionTask(num_outputs=1).encode_labels([0.5, 4.0]).tolist()
    [[0.5], [4.0]]
    """

    name = "regression"

    @classmethod
    def from_arguments(cls, backbone, *, num_classes=None, labels=None, num_outputs=1, threshold=0.5, pooling=None,
                       text_pairs=False):
        return cls(num_outputs=num_outputs)

    def __init__(self, num_outputs=1):
        if isinstance(num_outputs, bool) or not isinstance(num_outputs, (int, np.integer)) or num_outputs < 1:
            raise ValueError(f"Regression needs num_outputs=<int ≥ 1>, got {num_outputs!r}.")
        self.num_outputs = int(num_outputs)

    def build_output(self, features, *, dropout, seed):
        return dense_output(features, self.num_outputs, dropout=dropout, seed=seed, name="predictions")

    def loss(self):
        return keras.losses.MeanSquaredError()

    def fit_metrics(self):
        return [keras.metrics.MeanAbsoluteError(name="mae")]

    def encode_labels(self, labels):
        array = as_label_array(labels)
        if array.dtype.kind not in "biuf":
            raise ValueError(f"Regression targets must be numbers, got dtype {array.dtype}.")
        array = array.astype(np.float32).reshape(len(array), -1)
        if array.shape[1] != self.num_outputs:
            raise ValueError(f"Regression targets have {array.shape[1]} values per text, the head has {self.num_outputs}.")
        check_finite(array, "Regression targets")
        return array

    def evaluate(self, y_true, predictions):
        return regression_metrics(y_true, predictions)

    def decode(self, predictions):
        predictions = np.asarray(predictions)
        return predictions[:, 0] if self.num_outputs == 1 else predictions

    def artifact_labels(self, outputs):
        raise ValueError("A regression model predicts numbers, not labels: use predict(texts)['predictions'].")

    def get_config(self):
        return {**super().get_config(), "num_outputs": self.num_outputs}
