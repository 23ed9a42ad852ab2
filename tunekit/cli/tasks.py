"""What `tunekit train` infers from training data: the task when the config names none (CoNLL data: token
classification, float labels: regression, else classification) and, by asking the task's class, its label names
or class count (`Task.arguments_from_labels`), how it reads a file's labels (`Task.labels_from_strings`: multi-label
`a|b` strings) and whether it reads CoNLL words. Predictions are the task's too (`Task.records`, `Artifact.records`).

Example:

>>> infer_head({}, False, ["pos", "neg", "pos"], None)
{'task': 'classification', 'labels': ['neg', 'pos']}
>>> labels_from_data("multilabel", np.array(["sports|tech", "tech"]))
[['sports', 'tech'], ['tech']]
"""

import numpy as np

TASK_NAMES = ("classification", "multilabel", "regression", "token_classification")
TOKEN_CLASSIFICATION = "token_classification"


def _task_class(task_name):
    """The registered task class of `task_name`, or None (no task named yet, or an unknown one that the settings
    refuse)."""
    from tunekit.heads import TASKS

    return TASKS.get(task_name)


def reads_conll(task_name):
    """Whether the task's labelled data is CoNLL (one word and tag per line): the task reads words.

    >>> reads_conll("token_classification"), reads_conll("classification")
    (True, False)
    """
    from tunekit.inputs import input_kind

    task_class = _task_class(task_name)
    return task_class is not None and input_kind(task_class).takes_words


def labels_from_data(task_name, labels):
    """The labels of a CSV/JSONL file as the task takes them: for multilabel, `"a|b"` strings become name lists."""
    task_class = _task_class(task_name)
    return labels if task_class is None else task_class.labels_from_strings(labels)


def infer_head(head, data_format_is_conll, labels, label_names):
    """Fills in the task and its label names / class count from the training labels when the config leaves them out."""
    head = dict(head)
    if "task" not in head:
        if data_format_is_conll:
            head["task"] = TOKEN_CLASSIFICATION
        elif np.asarray(labels).dtype.kind == "f":
            head["task"] = "regression"
        else:
            head["task"] = "classification"
    task_class = _task_class(head["task"])
    if task_class is not None:
        head.update(task_class.arguments_from_labels(labels, label_names=label_names, given=head))
    if isinstance(head.get("labels"), str):
        head["labels"] = [name.strip() for name in head["labels"].split(",") if name.strip()]
    return head


