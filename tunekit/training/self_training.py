"""Self-training: learn from unlabelled texts by training on the model's own confident predictions.

`trainer.fit(texts, labels, unlabeled_texts=more_texts)` trains on the labelled texts, then for `rounds` rounds
labels the unlabelled texts with the model, keeps those predicted with probability ≥ `threshold` (pseudo-labels),
and trains again on the labelled texts plus those (a new learning-rate schedule, the weights kept). Works for
single-label classification of texts and of pairs. The defaults (threshold 0.9, 2 rounds) are the common choice
of the self-training literature (e.g. Du et al. 2021); `benchmarks/small_data.py` measures when it helps.

Example:

>>> trainer = tk.Trainer(model, epochs=1, batch_size=4, verbose=0)
>>> _ = trainer.fit(texts, labels, unlabeled_texts=texts, confidence_threshold=0.0, self_training_rounds=1)
>>> trainer.self_training[-1]["pseudo_labelled"]
8
"""

import numbers

import numpy as np

from tunekit.heads.classification import ClassificationTask
from tunekit.inputs.text_batches import split_segments

DEFAULT_THRESHOLD = 0.9
DEFAULT_ROUNDS = 2


def check_self_training(trainer, x, unlabeled_texts, threshold, rounds):
    """Validates the self-training arguments before any work -> (labelled segments, unlabelled segments)."""
    if not isinstance(trainer.task, ClassificationTask):
        raise ValueError(f"Self-training (unlabeled_texts=) works for single-label classification; this model's task "
                         f"is {trainer.task.name!r}.")
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"confidence_threshold must be a probability from 0 to 1 (the confidence a pseudo-label "
                         f"needs), got {threshold!r}.")
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 1:
        raise ValueError(f"self_training_rounds must be an int ≥ 1 (pseudo-labelling rounds after the first training), "
                         f"got {rounds!r}.")
    if trainer.backup_dir is not None:
        raise ValueError("Self-training trains several runs on different data, which one backup folder cannot resume "
                         "exactly: train without backup_dir, or without unlabeled_texts.")
    if isinstance(unlabeled_texts, str) or unlabeled_texts is None:
        raise TypeError("unlabeled_texts must be a list of texts (strings), not a single string.")
    if hasattr(unlabeled_texts, "__len__") and len(unlabeled_texts) == 0:
        raise ValueError("unlabeled_texts is empty: give the texts to pseudo-label, or leave it unset.")
    num_segments = trainer.model.num_segments
    unlabeled = split_segments(unlabeled_texts, num_segments)
    return split_segments(x, num_segments), unlabeled


def self_train(trainer, x, y, unlabeled_texts, *, threshold, rounds, fit):
    """Runs self-training with `fit(x, y, again)` (the trainer's own fit; `again` starts a new learning-rate
    schedule); returns the last call's result and records each round in `trainer.self_training` (how many texts
    were pseudo-labelled, with which labels)."""
    labelled, unlabeled = check_self_training(trainer, x, unlabeled_texts, threshold, rounds)
    labels = trainer.task.encode_labels(y)
    history = fit(_as_x(labelled), labels, False)
    trainer.self_training = []
    for round_index in range(1, rounds + 1):
        probabilities = trainer.predict(_as_x(unlabeled))
        confident = np.flatnonzero(probabilities.max(axis=1) >= threshold)
        pseudo = probabilities.argmax(axis=1)[confident].astype(labels.dtype)
        trainer.self_training.append({
            "round": round_index, "pseudo_labelled": int(len(confident)), "unlabeled": len(unlabeled[0]),
            "threshold": float(threshold), "label_counts": np.bincount(pseudo, minlength=trainer.task.num_classes).tolist(),
        })
        if not len(confident):
            break
        combined = [segment + [unlabeled[i][j] for j in confident] for i, segment in enumerate(labelled)]
        history = fit(_as_x(combined), np.concatenate([labels, pseudo]), True)
    return history


def _as_x(segments):
    return segments[0] if len(segments) == 1 else tuple(segments)
