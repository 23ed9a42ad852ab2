"""`Trainer(augment=...)` and `fit(..., unlabeled_texts=...)`: augmentation per epoch and self-training."""

import numpy as np
import pytest
import tensorflow as tf
from sample_texts import sentiment_texts

import tunekit as tk
from tunekit import augment
from tunekit.training.self_training import select_pseudo_labels, self_train

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


def test_pseudo_labels_are_the_most_confident_of_each_class_share_above_the_threshold():
    probabilities = np.array([[0.99, 0.01], [0.60, 0.40], [0.95, 0.05], [0.97, 0.03], [0.20, 0.80],
                              [0.10, 0.90], [0.45, 0.55], [0.98, 0.02], [0.30, 0.70], [0.55, 0.45]])
    # budget 0.6 * 10 = 6 texts: class 0 (half the labelled texts) 3, class 1 3; class 1 has only 2 above 0.75
    kept, pseudo = select_pseudo_labels(probabilities, threshold=0.75, fraction=0.6, class_shares=[0.5, 0.5])
    np.testing.assert_array_equal(kept, [0, 3, 4, 5, 7])  # class 0: 0.99, 0.98, 0.97 (not 0.95); class 1: 2
    np.testing.assert_array_equal(pseudo, [0, 0, 1, 1, 0])
    kept, _ = select_pseudo_labels(probabilities, threshold=0.0, fraction=0.5, class_shares=[0.8, 0.2])
    np.testing.assert_array_equal(kept, [0, 2, 3, 5, 7])  # 4 of class 0 (the most probable), 1 of class 1
    kept, _ = select_pseudo_labels(probabilities, threshold=0.999, fraction=1.0, class_shares=[0.5, 0.5])
    assert len(kept) == 0


def test_self_training_trains_a_fresh_student_on_the_selected_pseudo_labels(new_backbone):
    texts, labels = sentiment_texts(32, seed=1)
    unlabeled, _ = sentiment_texts(24, seed=2)
    trainer = tk.Trainer(classifier(new_backbone), learning_rate=2e-3, epochs=3, batch_size=8, seed=0, verbose=0)
    core = trainer.model.core
    before, calls, teacher = core.get_weights(), [], {}

    def fit(x, y, epochs):  # the first training is real; the round's is recorded
        calls.append((list(x), np.asarray(y), epochs, core.get_weights()))
        if epochs is None:
            trainer.fit(x, y)
            teacher["weights"], teacher["probabilities"] = core.get_weights(), trainer.predict(unlabeled)

    self_train(trainer, texts, labels, unlabeled, threshold=0.0, rounds=1, round_epochs=2, fraction=0.5, fit=fit)
    (_, _, first_epochs, _), (x, y, round_epochs, student_start) = calls
    assert (first_epochs, round_epochs) == (None, 2)
    shares = np.bincount(trainer.task.encode_labels(labels), minlength=2) / len(labels)
    kept, pseudo = select_pseudo_labels(teacher["probabilities"], threshold=0.0, fraction=0.5, class_shares=shares)
    assert len(kept) == 12
    assert x == list(texts) + [unlabeled[i] for i in kept]
    np.testing.assert_array_equal(y, np.concatenate([labels, pseudo]))
    # the student starts from the weights before the first training, not from the trained teacher's
    assert not all(np.array_equal(a, b) for a, b in zip(teacher["weights"], before))
    assert all(np.array_equal(a, b) for a, b in zip(student_start, before))
    assert trainer.self_training == [{"round": 1, "pseudo_labelled": 12, "unlabeled": 24, "threshold": 0.0,
                                      "fraction": 0.5, "label_counts": np.bincount(pseudo, minlength=2).tolist()}]


def test_fit_with_unlabeled_texts_runs_the_rounds(new_backbone):
    texts, labels = sentiment_texts(16, seed=1)
    trainer = tk.Trainer(classifier(new_backbone), epochs=3, batch_size=8, seed=0, verbose=0)
    trainer.fit(texts, labels, unlabeled_texts=sentiment_texts(8, seed=2)[0], confidence_threshold=0.0,
                self_training_rounds=2)
    assert [r["round"] for r in trainer.self_training] == [1, 2]
    # 40 % of 8 texts, half per class (as in the labels): at most 2 of each class
    assert all(0 < r["pseudo_labelled"] == sum(r["label_counts"]) <= 4 for r in trainer.self_training)
    assert max(trainer.self_training[-1]["label_counts"]) <= 2
    assert trainer.history["epoch"] == [1, 2]  # the last round's student: 2 epochs by default
    trainer.fit(texts, labels, unlabeled_texts=texts, confidence_threshold=0.0, self_training_rounds=1,
                self_training_epochs=1, self_training_fraction=1.0, reset=True)
    assert trainer.history["epoch"] == [1]


@pytest.mark.parametrize("options, error, message", [
    ({"unlabeled_texts": "one text"}, TypeError, "must be a list of texts"),
    ({"unlabeled_texts": []}, ValueError, "unlabeled_texts is empty"),
    ({"unlabeled_texts": [1, 2]}, (TypeError, ValueError), "str|string"),
    ({"unlabeled_texts": ["a"], "confidence_threshold": 1.5}, ValueError, "confidence_threshold must be"),
    ({"unlabeled_texts": ["a"], "self_training_rounds": 0}, ValueError, "self_training_rounds must be"),
    ({"unlabeled_texts": ["a"], "self_training_epochs": 1.5}, ValueError, "self_training_epochs must be"),
    ({"unlabeled_texts": ["a"], "self_training_fraction": 0.0}, ValueError, "self_training_fraction must be"),
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


@pytest.mark.parametrize("source", ["hub_models", "model_garden"])
def test_self_training_on_tf_hub_encoders(source, request):
    """The SavedModel path (`hub_models`) and a published-format encoder from Model Garden's exporter: the student
    starts from the weights at the call's start and trains on the labels plus the kept pseudo-labels."""
    paths = request.getfixturevalue(source)
    backbone = tk.load_backbone(paths["encoder"], preprocessor=paths["preprocessor"], seq_length=16)
    trainer = tk.Trainer(tk.attach_head(backbone, "classification", labels=LABELS, seed=0), epochs=1, batch_size=8,
                         seed=0, verbose=0)
    texts, labels = sentiment_texts(16, seed=1)
    before = trainer.model.core.get_weights()
    trainer.fit(texts, labels, unlabeled_texts=sentiment_texts(10, seed=2)[0], confidence_threshold=0.0)
    (record,) = trainer.self_training
    assert 0 < record["pseudo_labelled"] == sum(record["label_counts"]) <= 4  # 40 % of 10, half per class
    assert trainer.history["epoch"] == [1, 2]  # the student's 2 epochs
    assert trainer.state.steps_per_epoch == -(-(16 + record["pseudo_labelled"]) // 8)
    assert not all(np.array_equal(a, b) for a, b in zip(trainer.model.core.get_weights(), before))
