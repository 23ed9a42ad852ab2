"""Exact evaluation metrics computed in numpy on whole prediction sets.

These are the numbers `Trainer.evaluate` reports. They are computed once on all predictions (not averaged
over batches as Keras' streaming metrics are), and they follow the usual reference definitions:

- `classification_metrics`: accuracy, and precision / recall / F1 as scikit-learn computes them with
  `zero_division=0` (of class 1 for two classes, macro-averaged otherwise).
- `multilabel_metrics`: subset and Hamming accuracy, micro precision / recall / F1, macro F1.
- `regression_metrics`: MSE, MAE, RMSE, Pearson and Spearman correlation.
- `entity_metrics` / `extract_entities`: entity-level scores of the CoNLL shared tasks (`conlleval`, which
  `seqeval` reproduces in its default mode).

All results are plain Python floats (and ints for supports), ready for logging or JSON.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

ENTITY_SCHEMES = ("auto", "IOB1", "IOB2")


# ----------------------------------------------------------------------------------------------------------------------
# Classification
# ----------------------------------------------------------------------------------------------------------------------


def classification_metrics(y_true, probabilities, label_names=None) -> dict:
    """Accuracy, precision, recall and F1 of single-label predictions, the confusion matrix and per-class scores.

    The predicted class of each row is the argmax of `probabilities` (logits work as well).
    With two classes, precision, recall and F1 are those of the positive class 1. With more classes they are
    macro averages over the classes that occur in `y_true` or in the predictions (scikit-learn's
    `average="macro"`). A precision or recall whose denominator is zero counts as 0, as does the F1 built from it
    (scikit-learn's `zero_division=0`).

    Args:
        y_true: integer class ids, shape [N].
        probabilities: class scores, shape [N, C] with C >= 2.
        label_names: the names of the C classes (default: the class ids).

    Returns:
        `{"accuracy", "precision", "recall", "f1"}` as Python floats, `"confusion_matrix"`: `{"labels": names,
        "matrix": rows of ints}` (row = true class, column = predicted class), and `"per_class"`: `{name:
        {"precision", "recall", "f1", "support"}}`.

    Example:
        >>> m = classification_metrics([1, 0, 1, 1], [[0.2, 0.8], [0.6, 0.4], [0.7, 0.3], [0.1, 0.9]], ["neg", "pos"])
        >>> m["accuracy"], m["precision"], round(m["recall"], 4)
        (0.75, 1.0, 0.6667)
        >>> m["confusion_matrix"]
        {'labels': ['neg', 'pos'], 'matrix': [[1, 0], [1, 2]]}
        >>> m["per_class"]["neg"]["precision"]
        0.5
    """
    scores = _as_finite_2d(probabilities, "probabilities")
    num_rows, num_classes = scores.shape
    if num_classes < 2:
        raise ValueError(
            f"probabilities must have at least 2 columns (one per class), got shape {scores.shape}. "
            "For a single sigmoid output p, pass np.stack([1 - p, p], axis=1)."
        )
    labels = _as_class_ids(y_true, num_classes)
    if labels.shape[0] != num_rows:
        raise ValueError(f"y_true has {labels.shape[0]} rows but probabilities has {num_rows}.")

    predicted = scores.argmax(axis=1)
    true_positives = np.bincount(labels[labels == predicted], minlength=num_classes)
    support = np.bincount(labels, minlength=num_classes)
    predicted_counts = np.bincount(predicted, minlength=num_classes)
    precision = _safe_ratio(true_positives, predicted_counts)
    recall = _safe_ratio(true_positives, support)
    f1 = _f1(precision, recall)

    if num_classes == 2:
        averaged = slice(1, 2)
    else:
        averaged = (support > 0) | (predicted_counts > 0)
    names = list(range(num_classes)) if label_names is None else [str(name) for name in label_names]
    if len(names) != num_classes:
        raise ValueError(f"Got {len(names)} label names for {num_classes} classes.")
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return {
        "accuracy": float(np.mean(labels == predicted)),
        "precision": float(np.mean(precision[averaged])),
        "recall": float(np.mean(recall[averaged])),
        "f1": float(np.mean(f1[averaged])),
        "confusion_matrix": {"labels": names, "matrix": matrix.tolist()},
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
            for i, name in enumerate(names)
        },
    }


def multilabel_metrics(y_true, probabilities, thresholds=0.5) -> dict[str, float]:
    """Metrics of multi-label predictions: label j is predicted when `probabilities[:, j] >= thresholds[j]`.

    - `subset_accuracy`: share of rows whose whole label set is right.
    - `hamming_accuracy`: share of (row, label) cells that are right.
    - `micro_precision`, `micro_recall`, `micro_f1`: from true/false positives pooled over all labels.
    - `macro_f1`: mean over all L labels of the per-label F1 (0 for a label that is never true nor predicted,
      as scikit-learn's `f1_score(average="macro", zero_division=0)` on indicator matrices).

    Args:
        y_true: 0/1 indicator matrix, shape [N, L].
        probabilities: scores, shape [N, L].
        thresholds: a scalar or one threshold per label, shape [L].

    Example:
        >>> m = multilabel_metrics([[1, 0], [1, 1]], [[0.9, 0.2], [0.8, 0.4]], thresholds=0.5)
        >>> m["subset_accuracy"], m["hamming_accuracy"], m["micro_recall"]
        (0.5, 0.75, 0.6666666666666666)
    """
    scores = _as_finite_2d(probabilities, "probabilities")
    truth = _as_finite_2d(y_true, "y_true")
    if truth.shape != scores.shape:
        raise ValueError(f"y_true has shape {truth.shape} but probabilities has shape {scores.shape}.")
    if not np.isin(truth, (0, 1)).all():
        raise ValueError("y_true must contain only 0 and 1.")
    cutoffs = np.asarray(thresholds, dtype=np.float64)
    if cutoffs.ndim > 1 or (cutoffs.ndim == 1 and cutoffs.shape[0] != scores.shape[1]):
        raise ValueError(
            f"thresholds must be a scalar or have one value per label ({scores.shape[1]}), got shape {cutoffs.shape}."
        )
    if not np.isfinite(cutoffs).all():
        raise ValueError("thresholds must be finite.")

    truth = truth.astype(bool)
    predicted = scores >= cutoffs
    true_positives = (truth & predicted).sum(axis=0)
    predicted_counts = predicted.sum(axis=0)
    support = truth.sum(axis=0)

    micro_precision = _safe_ratio(true_positives.sum(), predicted_counts.sum())
    micro_recall = _safe_ratio(true_positives.sum(), support.sum())
    per_label_f1 = _f1(_safe_ratio(true_positives, predicted_counts), _safe_ratio(true_positives, support))
    return {
        "subset_accuracy": float(np.mean((truth == predicted).all(axis=1))),
        "hamming_accuracy": float(np.mean(truth == predicted)),
        "micro_precision": float(micro_precision),
        "micro_recall": float(micro_recall),
        "micro_f1": float(_f1(micro_precision, micro_recall)),
        "macro_f1": float(np.mean(per_label_f1)),
    }


# ----------------------------------------------------------------------------------------------------------------------
# Regression
# ----------------------------------------------------------------------------------------------------------------------


def regression_metrics(y_true, predictions) -> dict[str, float]:
    """MSE, MAE, RMSE, Pearson r and Spearman rho of real-valued predictions.

    With K outputs ([N, K] arrays) every metric is computed per output and then averaged (RMSE is the mean of the
    per-output RMSEs, as scikit-learn's `root_mean_squared_error`). A [N] target may be paired with [N, 1]
    predictions (the usual output of a one-unit regression head). Spearman's rho is the Pearson correlation of
    the ranks, tied values sharing their average rank (as `scipy.stats.spearmanr`). A correlation is `nan` when
    the targets or the predictions of an output are constant (or N < 2): it is undefined there.

    Example:
        >>> m = regression_metrics([1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.5, 5.0])
        >>> m["mse"], m["mae"], round(m["pearson"], 4), m["spearman"]
        (0.375, 0.5, 0.9135, 1.0)
    """
    truth = _as_finite_columns(y_true, "y_true")
    estimate = _as_finite_columns(predictions, "predictions")
    if truth.shape != estimate.shape:
        raise ValueError(
            f"y_true has shape {np.shape(y_true)} but predictions has shape {np.shape(predictions)}."
        )

    errors = estimate - truth
    mse = np.mean(errors**2, axis=0)
    pearson = [_pearson(truth[:, k], estimate[:, k]) for k in range(truth.shape[1])]
    spearman = [
        _pearson(_average_ranks(truth[:, k]), _average_ranks(estimate[:, k])) for k in range(truth.shape[1])
    ]
    return {
        "mse": float(np.mean(mse)),
        "mae": float(np.mean(np.abs(errors))),
        "rmse": float(np.mean(np.sqrt(mse))),
        "pearson": float(np.mean(pearson)),
        "spearman": float(np.mean(spearman)),
    }


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x_centered = x - x.mean()
    y_centered = y - y.mean()
    denominator = math.sqrt(float(x_centered @ x_centered) * float(y_centered @ y_centered))
    if denominator == 0.0:
        return math.nan
    return float(np.clip((x_centered @ y_centered) / denominator, -1.0, 1.0))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values get the mean of the ranks they span."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    is_group_start = np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]])
    group_of_position = np.cumsum(is_group_start) - 1
    group_starts = np.flatnonzero(is_group_start)
    group_ends = np.append(group_starts[1:], len(values))  # exclusive
    group_mean_rank = (group_starts + 1 + group_ends) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = group_mean_rank[group_of_position]
    return ranks


# ----------------------------------------------------------------------------------------------------------------------
# Named entities (IOB tags)
# ----------------------------------------------------------------------------------------------------------------------


def extract_entities(tags: Sequence[str], scheme: str = "IOB2") -> list[tuple[str, int, int]]:
    """Entity spans `(type, start, end_exclusive)` of one sentence of IOB tags, decoded as `conlleval` does.

    Tags are `"O"`, `"B-TYPE"` or `"I-TYPE"` (TYPE may itself contain hyphens). An entity starts at a `B-` tag,
    and at an `I-` tag that follows `O` or a tag of another type; it goes on over `I-` tags of its type.
    These rules read IOB1 (an entity starts with `I-`; `B-` only separates two adjacent entities of the same
    type) and IOB2 (every entity starts with `B-`) alike, and treat a stray `I-` in predictions the way
    `conlleval` does (it starts a new entity), so the spans do not depend on `scheme`; the argument is checked
    (one of "IOB1", "IOB2", "auto") for symmetry with `entity_metrics`.

    Example:
        >>> extract_entities(["I-PER", "I-PER", "B-PER", "O", "I-LOC"], scheme="IOB1")
        [('PER', 0, 2), ('PER', 2, 3), ('LOC', 4, 5)]
        >>> extract_entities(["B-ORG", "I-ORG", "I-PER", "O"])
        [('ORG', 0, 2), ('PER', 2, 3)]
    """
    _check_scheme(scheme)
    entities = []
    open_type, open_start = None, 0
    for position, tag in enumerate(tags):
        prefix, entity_type = _split_tag(tag)
        continues_open_entity = prefix == "I" and entity_type == open_type
        if open_type is not None and not continues_open_entity:
            entities.append((open_type, open_start, position))
            open_type = None
        if prefix is not None and not continues_open_entity:
            open_type, open_start = entity_type, position
    if open_type is not None:
        entities.append((open_type, open_start, len(tags)))
    return entities


def entity_metrics(true_tags, pred_tags, scheme: str = "auto") -> dict:
    """Entity-level precision, recall and F1 of IOB-tagged sentences, as reported by `conlleval`.

    An entity counts as correct only if its type, start and end all match a gold entity. Precision, recall and
    F1 are micro averages over all entities (0 where a denominator is zero); `token_accuracy` is the share of
    tokens whose tag is right, `O` tokens included (conlleval's "accuracy"). `per_type` maps each entity type
    seen in gold or predictions to its `precision`, `recall`, `f1` and `support` (number of gold entities).
    Spans are decoded by `extract_entities`; `scheme` ("auto", "IOB1" or "IOB2") is checked and passed on.

    Args:
        true_tags: gold tags, one list of tag strings per sentence.
        pred_tags: predicted tags, same shape.

    Example:
        >>> gold = [["O", "B-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
        >>> pred = [["B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
        >>> m = entity_metrics(gold, pred)
        >>> m["precision"], m["recall"], m["f1"], round(m["token_accuracy"], 4)
        (0.5, 0.5, 0.5, 0.7143)
        >>> m["per_type"]["PER"]
        {'precision': 1.0, 'recall': 1.0, 'f1': 1.0, 'support': 1}
    """
    _check_scheme(scheme)
    if isinstance(true_tags, str) or isinstance(pred_tags, str):
        raise ValueError("true_tags and pred_tags must be lists of sentences (lists of tag strings), not strings.")
    if len(true_tags) != len(pred_tags):
        raise ValueError(f"true_tags has {len(true_tags)} sentences but pred_tags has {len(pred_tags)}.")
    if len(true_tags) == 0:
        raise ValueError("true_tags and pred_tags are empty.")

    gold_entities: set[tuple[int, str, int, int]] = set()
    predicted_entities: set[tuple[int, str, int, int]] = set()
    correct_tokens = total_tokens = 0
    for index, (gold, predicted) in enumerate(zip(true_tags, pred_tags)):
        if isinstance(gold, str) or isinstance(predicted, str):
            raise ValueError(f"Sentence {index} is a string; each sentence must be a list of tag strings.")
        if len(gold) != len(predicted):
            raise ValueError(f"Sentence {index} has {len(gold)} true tags but {len(predicted)} predicted tags.")
        gold_entities.update((index, *entity) for entity in extract_entities(gold, scheme))
        predicted_entities.update((index, *entity) for entity in extract_entities(predicted, scheme))
        correct_tokens += sum(g == p for g, p in zip(gold, predicted))
        total_tokens += len(gold)
    if total_tokens == 0:
        raise ValueError("true_tags and pred_tags contain no tokens.")

    correct_entities = gold_entities & predicted_entities
    result = _entity_scores(len(correct_entities), len(predicted_entities), len(gold_entities))
    result["token_accuracy"] = correct_tokens / total_tokens

    # Entities are (sentence index, type, start, end).
    gold_by_type = Counter(entity[1] for entity in gold_entities)
    predicted_by_type = Counter(entity[1] for entity in predicted_entities)
    correct_by_type = Counter(entity[1] for entity in correct_entities)
    result["per_type"] = {
        entity_type: {
            **_entity_scores(correct_by_type[entity_type], predicted_by_type[entity_type], gold_by_type[entity_type]),
            "support": gold_by_type[entity_type],
        }
        for entity_type in sorted(gold_by_type.keys() | predicted_by_type.keys())
    }
    return result


def _entity_scores(correct: int, predicted: int, gold: int) -> dict[str, float]:
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    return {"precision": precision, "recall": recall, "f1": float(_f1(precision, recall))}


def _split_tag(tag: str) -> tuple[str | None, str | None]:
    """("B" | "I", type) for an entity tag, (None, None) for "O"."""
    if tag == "O":
        return None, None
    if not isinstance(tag, str) or len(tag) < 3 or tag[1] != "-" or tag[0] not in "BI":
        unsupported_scheme = isinstance(tag, str) and tag[:2] in {"E-", "S-", "L-", "U-"}
        hint = " (IOBES/BILOU tags are not supported)" if unsupported_scheme else ""
        raise ValueError(f"Invalid IOB tag {tag!r}: expected 'O', 'B-TYPE' or 'I-TYPE'{hint}.")
    return tag[0], tag[2:]


def _check_scheme(scheme: str) -> None:
    if scheme not in ENTITY_SCHEMES:
        raise ValueError(f"scheme must be one of {ENTITY_SCHEMES}, got {scheme!r}.")


# ----------------------------------------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------------------------------------


def _safe_ratio(numerator, denominator):
    """numerator / denominator, 0 where the denominator is 0 (works elementwise on arrays)."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    zeros = np.zeros(np.broadcast(numerator, denominator).shape)
    return np.divide(numerator, denominator, out=zeros, where=denominator > 0)


def _f1(precision, recall):
    return _safe_ratio(2 * np.asarray(precision) * recall, np.asarray(precision) + recall)


def _as_finite_2d(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [N, C], got shape {array.shape}.")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty.")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return array


def _as_class_ids(values, num_classes: int) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"y_true must be a 1-D array of class ids, got shape {array.shape}.")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_)):
        as_float = array.astype(np.float64)
        if not np.array_equal(as_float, np.round(as_float)):
            raise ValueError("y_true must contain integer class ids.")
    ids = array.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        raise ValueError(
            f"y_true contains class ids outside [0, {num_classes - 1}] (min {ids.min()}, max {ids.max()}); "
            f"probabilities has {num_classes} columns."
        )
    return ids


def _as_finite_columns(values, name: str) -> np.ndarray:
    """[N] or [N, K] array as float64 [N, K]; [N, 1] stays [N, 1]."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape [N] or [N, K], got {array.shape}.")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty.")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return array
