"""What the `tunekit` command does differently by task kind: the only module of the CLI that looks at a task's name.

Inferring the task and its labels from training data, reading labels from files (multi-label `a|b` strings,
CoNLL tags), and turning model or artifact outputs into JSON records all switch on the task here, so that a task
that describes its own outputs later replaces this module alone.

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


def artifact_per_token(artifact):
    """Whether an exported artifact (`tunekit.deploy.load_artifact`) tags words rather than texts."""
    return artifact.task.get("name") == TOKEN_CLASSIFICATION


def _values(outputs):
    values = np.asarray(outputs).reshape(len(outputs), -1)
    return [{"value": float(row[0])} if len(row) == 1 else {"values": [float(v) for v in row]} for row in values]


def prediction_records(task, outputs):
    """JSON-ready predictions of one chunk: label and per-label probabilities, values, or tags.

    >>> from tunekit.heads import ClassificationTask
    >>> prediction_records(ClassificationTask(labels=["neg", "pos"]), [[0.25, 0.75]])
    [{'label': 'pos', 'probabilities': {'neg': 0.25, 'pos': 0.75}}]
    """
    if task.name == TOKEN_CLASSIFICATION:
        return [{"tags": tags} for tags in task.decode(outputs)]
    outputs = np.asarray(outputs)
    if task.name == "classification":
        names = task.labels or list(range(task.num_classes))
        return [{"label": names[int(np.argmax(row))],
                 "probabilities": {str(name): float(p) for name, p in zip(names, row)}} for row in outputs]
    if task.name == "multilabel":
        names = task.labels or [str(i) for i in range(task.num_labels)]
        return [{"labels": [name for name, p, t in zip(names, row, task.thresholds) if p >= t],
                 "probabilities": {name: float(p) for name, p in zip(names, row)}} for row in outputs]
    return _values(outputs)


def artifact_records(artifact, outputs):
    """JSON-ready predictions of an exported artifact (`tunekit.deploy.load_artifact`), shaped as
    `prediction_records` shapes a saved model's."""
    name = artifact.task.get("name")
    if name == TOKEN_CLASSIFICATION:
        counts = outputs["num_words"]
        return [{"tags": [str(tag) for tag in tags[:count]]} for tags, count in zip(outputs["tags"], counts)]
    if name == "regression":
        return _values(outputs["predictions"])
    probabilities = np.asarray(outputs["probabilities"])
    names = artifact.labels or [str(i) for i in range(probabilities.shape[-1])]
    records = [{"probabilities": {label: float(p) for label, p in zip(names, row)}} for row in probabilities]
    for index, record in enumerate(records):
        if name == "multilabel":
            record["labels"] = [names[j] for j in np.flatnonzero(outputs["predicted"][index])]
        else:
            record["label"] = str(outputs["label"][index]) if "label" in outputs else int(outputs["class_id"][index])
    return records
