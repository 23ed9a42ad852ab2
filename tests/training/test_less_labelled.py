"""`Trainer(augment=...)` and `fit(..., unlabeled_texts=...)`: augmentation per epoch and self-training."""

import numpy as np
import pytest
import tensorflow as tf
from sample_texts import sentiment_texts

import tunekit as tk
from tunekit import augment
from tunekit.training.self_training import self_train

LABELS = ["neg", "pos"]


def classifier(new_backbone, task="classification", **options):
    if task == "classification":
        options.setdefault("labels", LABELS)
    return tk.attach_head(new_backbone(seed=1), task, seed=0, **options)


class Recording:
    """An augmentation (swap) that records the seeds it was called with and the texts it returned."""

    def __init__(self):
        self.calls, self.swap = [], augment.RandomSwap(0.3)

    def __call__(self, texts, labels, seed):
        texts, labels = self.swap(texts, labels, seed)
        self.calls.append((seed, texts))
        return texts, labels


def weights(model):
    return [w.numpy() for w in model.core.weights]


def test_each_epoch_trains_on_a_new_rewrite_fixed_by_the_seed(new_backbone):
    texts, labels = sentiment_texts(16)
    runs = []
    for _ in range(2):
        recording = Recording()
        model = classifier(new_backbone)
        tk.Trainer(model, epochs=3, batch_size=8, seed=5, verbose=0, augment=recording).fit(texts, labels)
        runs.append((recording, weights(model)))
    (first, first_weights), (second, second_weights) = runs
    epoch_seeds = sorted({seed for seed, _ in first.calls})
    assert len(epoch_seeds) == 3  # one rewrite per epoch
    assert len({tuple(t) for _, t in first.calls}) == 3 and all(t != texts for _, t in first.calls)
    assert [s for s, _ in first.calls] == [s for s, _ in second.calls]
    assert all(np.array_equal(a, b) for a, b in zip(first_weights, second_weights))  # reproducible
    plain = classifier(new_backbone)
    tk.Trainer(plain, epochs=3, batch_size=8, seed=5, verbose=0).fit(texts, labels)
    assert not all(np.array_equal(a, b) for a, b in zip(first_weights, weights(plain)))


def test_a_crashed_augmented_run_resumes_to_the_uninterrupted_weights(new_backbone, tmp_path):
    import keras

    texts, labels = sentiment_texts(32)

    def run(backup_dir=None, callbacks=()):
        model = classifier(new_backbone)
        trainer = tk.Trainer(model, epochs=3, batch_size=8, seed=5, verbose=0, backup_dir=backup_dir, backup_every=2,
                             augment=[augment.RandomSwap(0.2), augment.RandomDeletion(0.1)], callbacks=list(callbacks))
        trainer.fit(texts, labels)
        return weights(model)

    class CrashAt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) == 7:
                raise RuntimeError("simulated crash")

    uninterrupted = run()
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "backups", [CrashAt()])
    resumed = run(tmp_path / "backups")
    assert max(float(np.abs(a - b).max()) for a, b in zip(uninterrupted, resumed)) <= 1e-6


def test_augmentation_is_refused_where_it_cannot_apply(new_backbone):
    model = classifier(new_backbone)
    dataset = tf.data.Dataset.from_tensor_slices((["a good film", "a bad film"], [1, 0]))
    with pytest.raises(ValueError, match="augment= rewrites in-memory texts"):
        tk.Trainer(model, verbose=0, augment=augment.RandomSwap(0.1)).fit(dataset)
    with pytest.raises(TypeError, match="augment must be"):
        tk.Trainer(model, augment="swap")
    tagger = classifier(new_backbone, "token_classification", labels=["O", "B-X"])
    sentences, tags = [["good", "film"], ["bad", "film"]], [["B-X", "O"], ["O", "O"]]
    with pytest.raises(ValueError, match="cannot keep token-classification tags aligned"):
        tk.Trainer(tagger, verbose=0, augment=augment.RandomSwap(0.5)).fit(sentences, tags)
    synonyms = augment.SynonymReplacement(0.5, {"good": ["fine"], "film": ["movie"]})
    tk.Trainer(tagger, verbose=0, epochs=1, batch_size=2, augment=synonyms).fit(sentences, tags)


def test_self_training_adds_only_the_confident_pseudo_labels(new_backbone):
    texts, labels = sentiment_texts(32, seed=1)
    unlabeled, _ = sentiment_texts(24, seed=2)
    trainer = tk.Trainer(classifier(new_backbone), learning_rate=2e-3, epochs=3, batch_size=8, seed=0, verbose=0)
    trainer.fit(texts, labels)
    probabilities = trainer.predict(unlabeled)  # what the round will label with: `fit` below only records
    threshold = float(np.median(probabilities.max(axis=1)))
    confident = np.flatnonzero(probabilities.max(axis=1) >= threshold)
    assert 0 < len(confident) < len(unlabeled)
    calls = []

    def fit(x, y, again):
        calls.append((list(x), np.asarray(y), again))

    self_train(trainer, texts, labels, unlabeled, threshold=threshold, rounds=1, fit=fit)
    (_, _, first_again), (x, y, again) = calls
    assert (first_again, again) == (False, True)
    assert x == list(texts) + [unlabeled[i] for i in confident]
    np.testing.assert_array_equal(y, np.concatenate([labels, probabilities.argmax(axis=1)[confident]]))
    assert trainer.self_training == [{"round": 1, "pseudo_labelled": len(confident), "unlabeled": 24,
                                      "threshold": threshold, "label_counts": np.bincount(
                                          probabilities.argmax(axis=1)[confident], minlength=2).tolist()}]


def test_fit_with_unlabeled_texts_runs_the_rounds(new_backbone):
    texts, labels = sentiment_texts(16, seed=1)
    trainer = tk.Trainer(classifier(new_backbone), epochs=1, batch_size=8, seed=0, verbose=0)
    trainer.fit(texts, labels, unlabeled_texts=sentiment_texts(8, seed=2)[0], confidence_threshold=0.0,
                self_training_rounds=2)
    assert [r["pseudo_labelled"] for r in trainer.self_training] == [8, 8]
    assert trainer.history["epoch"] == [1]  # the last round's fresh run


@pytest.mark.parametrize("options, error, message", [
    ({"unlabeled_texts": "one text"}, TypeError, "must be a list of texts"),
    ({"unlabeled_texts": []}, ValueError, "unlabeled_texts is empty"),
    ({"unlabeled_texts": [1, 2]}, (TypeError, ValueError), "str|string"),
    ({"unlabeled_texts": ["a"], "confidence_threshold": 1.5}, ValueError, "confidence_threshold must be"),
    ({"unlabeled_texts": ["a"], "self_training_rounds": 0}, ValueError, "self_training_rounds must be"),
])
def test_bad_self_training_settings_are_refused_before_any_work(new_backbone, options, error, message):
    model = classifier(new_backbone)
    before = weights(model)
    with pytest.raises(error, match=message):
        tk.Trainer(model, verbose=0).fit(["a good film"], [1], **options)
    assert all(np.array_equal(a, b) for a, b in zip(before, weights(model)))


def test_self_training_is_refused_for_other_tasks_and_with_backups(new_backbone, tmp_path):
    regression = classifier(new_backbone, "regression")
    with pytest.raises(ValueError, match="single-label classification"):
        tk.Trainer(regression, verbose=0).fit(["a"], [0.5], unlabeled_texts=["b"])
    with pytest.raises(ValueError, match="without backup_dir"):
        tk.Trainer(classifier(new_backbone), verbose=0, backup_dir=tmp_path / "b").fit(["a"], [1], unlabeled_texts=["b"])
