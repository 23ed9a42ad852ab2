"""What `tunekit train` infers from training data by task kind: the only module of the CLI that looks at a task's name.

Inferring the task and its labels from training data and reading labels from files (multi-label `a|b` strings,
CoNLL tags) switch on the built-in tasks' names here. Predictions are not: the task turns model or artifact
outputs into JSON records itself (`Task.records`, `Artifact.records`).

Example:

>>> infer_head({}, False, ["pos", "neg", "pos"], None)
{'task': 'classification', 'labels': ['neg', 'pos']}
>>> labels_from_data("multilabel", np.array(["sports|tech", "tech"]))
[['sports', 'tech'], ['tech']]
"""

import numpy as np

TASK_NAMES = ("classification", "multilabel", "regression", "token_classification")
TOKEN_CLASSIFICATION = "token_classification"


def reads_conll(task_name):
    """Whether the task's labelled data is CoNLL (one word and tag per line).

    >>> reads_conll("token_classification"), reads_conll("classification")
    (True, False)
    """
    return task_name == TOKEN_CLASSIFICATION


def labels_from_data(task_name, labels):
    """The labels of a CSV/JSONL file as the task takes them: for multilabel, `"a|b"` strings become name lists."""
    if task_name == "multilabel" and labels.dtype.kind in "OUS":
        return [[name for name in str(names).split("|") if name] for names in labels]
    return labels


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
    task = head["task"]
    if task == TOKEN_CLASSIFICATION and head.get("labels") is None:
        head["labels"] = sorted({tag for tags in labels for tag in tags}, key=lambda tag: (tag != "O", tag))
    elif task == "multilabel" and head.get("labels") is None and head.get("num_classes") is None:
        head["labels"] = sorted({name for names in labels for name in names})
    elif task == "classification" and head.get("labels") is None and head.get("num_classes") is None:
        array = np.asarray(labels)
        if label_names is not None:
            head["labels"] = label_names
        elif array.dtype.kind in "OUS":
            head["labels"] = sorted({str(label) for label in array})
        elif array.dtype.kind in "iu":
            head["num_classes"] = max(2, int(array.max()) + 1)
    if isinstance(head.get("labels"), str):
        head["labels"] = [name.strip() for name in head["labels"].split(",") if name.strip()]
    return head


