"""Self-training: learn from unlabelled texts by training on the model's own most confident predictions.

`trainer.fit(texts, labels, unlabeled_texts=more_texts)` trains on the labelled texts (the teacher), then for
`rounds` rounds labels the unlabelled texts with the model, keeps the most confident of them as pseudo-labels, and
trains a student on the labelled texts plus those for `round_epochs` epochs: the same model put back to the
weights it had when `fit` was called (for a new model: pretrained encoder, new head), with a new optimizer and
learning-rate schedule; the student is the next round's teacher. (Training the teacher on instead learns little:
its most confident pseudo-labels are texts it already predicts with probability near 1, whose loss and gradients
are near 0.) Works for single-label classification of texts and of pairs. Measured over 3 seeds, it gained
reliably nowhere (SST-2: +2.1 points at 100 labels, carried by one seed's +7.0; −1.3 at 300, −0.1 at 1,000; IMDB:
−5.4 at 100, one seed collapsing, +0.2 at 300, −0.7 at 1,000); docs/less-labelled-data.md has the runs
and the designs tried.

Which pseudo-labels are kept: at most `fraction` of the unlabelled texts, shared among the classes in the
proportions of the labelled texts' classes, each class taking the texts predicted as it with the highest
probability, and none below `threshold`. A threshold alone is not enough: a model fine-tuned on a few hundred
texts is over-confident (`benchmarks/small_data.py`, IMDB, 300 labels: 90 % of the unlabelled reviews had
probability ≥ 0.9, and 85.5 % of those were right, hardly more than the model's 82.4 %; the 40 % most confident,
class-balanced, were 96.7 % right), and its pseudo-labels lean to the class it over-predicts.

Example:

>>> trainer = tk.Trainer(model, epochs=1, batch_size=4, verbose=0)
>>> _ = trainer.fit(texts, labels, unlabeled_texts=texts, confidence_threshold=0.0)
>>> record = trainer.self_training[-1]          # the round: how many texts, how many kept, their labels
>>> record["unlabeled"], record["pseudo_labelled"] <= 0.4 * 8
(8, True)
"""

import numbers

import numpy as np

from tunekit.arguments import positive_int
from tunekit.heads.classification import ClassificationTask
from tunekit.inputs.text_batches import split_segments

DEFAULT_THRESHOLD = 0.9
DEFAULT_ROUNDS = 1
DEFAULT_ROUND_EPOCHS = 2
DEFAULT_FRACTION = 0.4


def check_self_training(trainer, x, unlabeled_texts, threshold, rounds, round_epochs, fraction):
    """Validates the self-training arguments before any work -> (labelled segments, unlabelled segments)."""
    if not isinstance(trainer.task, ClassificationTask):
        raise ValueError(f"Self-training (unlabeled_texts=) works for single-label classification; this model's task "
                         f"is {trainer.task.name!r}.")
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"confidence_threshold must be a probability from 0 to 1 (the confidence a pseudo-label "
                         f"needs), got {threshold!r}.")
    positive_int(rounds, "self_training_rounds", "pseudo-labelling rounds after the first training")
    positive_int(round_epochs, "self_training_epochs",
                 "epochs of each round over the labelled and pseudo-labelled texts")
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0.0 < fraction <= 1.0:
        raise ValueError(f"self_training_fraction must be above 0 and at most 1 (the largest share of the unlabelled "
                         f"texts kept as pseudo-labels in a round), got {fraction!r}.")
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


def select_pseudo_labels(probabilities, *, threshold, fraction, class_shares):
    """The pseudo-labels a round keeps -> (indices into the unlabelled texts, ascending; their labels).

    Class `c` keeps at most `round(fraction * len(probabilities) * class_shares[c])` of the texts predicted as `c`,
    the most probable first, none with probability below `threshold`.
    """
    predicted, confidence = probabilities.argmax(axis=1), probabilities.max(axis=1)
    budget = fraction * len(probabilities)
    kept = []
    for label, share in enumerate(class_shares):
        candidates = np.flatnonzero((predicted == label) & (confidence >= threshold))
        most_confident = candidates[np.argsort(-confidence[candidates], kind="stable")]
        kept.append(most_confident[:int(round(budget * share))])
    kept = np.sort(np.concatenate(kept))
    return kept, predicted[kept]


def self_train(trainer, x, y, unlabeled_texts, *, threshold, rounds, round_epochs, fraction, fit):
    """Runs self-training with `fit(x, y, epochs)` (the trainer's own fit; `epochs` None for the first training, a
    round's `round_epochs` on a new optimizer and learning-rate schedule, from the weights at the start); returns
    the last call's result and records each round in `trainer.self_training` (how many texts were pseudo-labelled,
    with which labels)."""
    labelled, unlabeled = check_self_training(trainer, x, unlabeled_texts, threshold, rounds, round_epochs, fraction)
    labels = trainer.task.encode_labels(y)
    num_classes = trainer.task.num_classes
    class_shares = np.bincount(labels, minlength=num_classes) / len(labels)
    initial_weights = trainer.model.core.get_weights()
    history = fit(_as_x(labelled), labels, None)
    trainer.self_training = []
    for round_index in range(1, rounds + 1):
        probabilities = trainer.predict(_as_x(unlabeled))
        kept, pseudo = select_pseudo_labels(probabilities, threshold=threshold, fraction=fraction,
                                            class_shares=class_shares)
        trainer.self_training.append({
            "round": round_index, "pseudo_labelled": int(len(kept)), "unlabeled": len(unlabeled[0]),
            "threshold": float(threshold), "fraction": float(fraction),
            "label_counts": np.bincount(pseudo, minlength=num_classes).tolist(),
        })
        if not len(kept):
            break
        combined = [segment + [unlabeled[i][j] for j in kept] for i, segment in enumerate(labelled)]
        trainer.model.core.set_weights(initial_weights)
        history = fit(_as_x(combined), np.concatenate([labels, pseudo.astype(labels.dtype)]), round_epochs)
    return history


def _as_x(segments):
    return segments[0] if len(segments) == 1 else tuple(segments)
