import numpy as np
import pytest

from tunekit.heads import ClassificationTask, MultilabelTask, RegressionTask, task_from_config


def test_classification_labels_by_name_and_index():
    task = ClassificationTask(labels=["neg", "neu", "pos"])
    assert task.num_classes == 3
    assert task.encode_labels(["pos", "neg", "neu"]).tolist() == [2, 0, 1]
    assert task.encode_labels(np.array([2.0, 0.0])).tolist() == [2, 0]
    assert task.decode(np.array([[0.1, 0.2, 0.7], [0.8, 0.1, 0.1]])) == ["pos", "neg"]


@pytest.mark.parametrize("kwargs, match", [
    ({}, "num_classes=<int ≥ 2> or labels"),
    ({"num_classes": 1}, "at least 2 classes"),
    ({"num_classes": 2, "labels": ["a", "b", "c"]}, "3 label names"),
    ({"labels": ["a", "a"]}, "distinct"),
])
def test_classification_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClassificationTask(**kwargs)


@pytest.mark.parametrize("labels, match", [
    ([0, 3], "out of range"),
    ([-1], "out of range"),
    ([0.5], "whole class indices"),
    (["pos"], "need label names"),
    ([[0, 1]], "one per text"),
    ([True, False], "class indices or label names"),
])
def test_classification_label_errors(labels, match):
    with pytest.raises(ValueError, match=match):
        ClassificationTask(num_classes=3).encode_labels(labels)


def test_multilabel_encoding_thresholds_and_decoding():
    task = MultilabelTask(labels=["a", "b", "c"], threshold=[0.5, 0.9, 0.1])
    assert task.encode_labels([["c"], ["a", "b"], []]).tolist() == [[0, 0, 1], [1, 1, 0], [0, 0, 0]]
    assert task.encode_labels(np.array([[1, 0, 1]])).tolist() == [[1, 0, 1]]
    assert task.decode(np.array([[0.6, 0.8, 0.2]])) == [["a", "c"]]
    with pytest.raises(ValueError, match=r"Unknown label names \['d'\]"):
        task.encode_labels([["d"]])
    with pytest.raises(ValueError, match="only 0 and 1"):
        task.encode_labels(np.array([[2, 0, 0]]))
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        MultilabelTask(labels=["a"], threshold=1.0)


def test_regression_targets():
    task = RegressionTask(num_outputs=2)
    assert task.encode_labels([[1, 2], [3, 4]]).shape == (2, 2)
    with pytest.raises(ValueError, match="NaN"):
        RegressionTask().encode_labels([1.0, float("nan")])
    with pytest.raises(ValueError, match="2 values per text, the head has 1"):
        RegressionTask().encode_labels([[1.0, 2.0]])
    with pytest.raises(ValueError, match="must be numbers"):
        RegressionTask().encode_labels(["high"])


@pytest.mark.parametrize("task", [ClassificationTask(labels=["x", "y"]), MultilabelTask(num_labels=4, threshold=0.3),
                                  RegressionTask(num_outputs=3)])
def test_task_config_round_trip(task):
    assert task_from_config(task.get_config()).get_config() == task.get_config()
