"""`Trainer.fit` on `tf.data` inputs checks them as strictly as lists, and checkpoints are never half-written."""

import os

import numpy as np
import pytest
import tensorflow as tf
from sample_texts import sentiment_texts

import tunekit as tk


def _trainer(backbone, task="classification", **kwargs):
    head = {"labels": ["negative", "positive"]} if task == "classification" else {}
    model = tk.attach_head(backbone, task, **head)
    return tk.Trainer(model, epochs=1, batch_size=4, verbose=0, **kwargs), [v.numpy().copy() for v in model.core.weights]


def _unchanged(trainer, before):
    return all(np.array_equal(b, v.numpy()) for b, v in zip(before, trainer.model.core.weights))


def test_dataset_that_repeats_forever_is_refused_at_once(backbone):
    texts, labels = sentiment_texts(8)
    trainer, before = _trainer(backbone)
    forever = tf.data.Dataset.from_tensor_slices((texts, labels)).repeat()
    with pytest.raises(ValueError, match=r"repeats forever.*dataset.take\(number_of_examples\)"):
        trainer.fit(forever)
    assert _unchanged(trainer, before)


def test_a_dataset_of_unknown_size_that_never_ends_is_refused_not_waited_for(backbone, monkeypatch):
    """`repeat().filter(...)` hides the repeat (unknown cardinality): the count pass stops at a bound."""
    import time

    from tunekit.inputs import text_batches as data

    monkeypatch.setattr(data, "MAX_DATASET_ELEMENTS", 1000)
    texts, labels = sentiment_texts(8)
    endless = tf.data.Dataset.from_tensor_slices((texts, labels)).repeat().filter(lambda text, label: True)
    assert int(endless.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    trainer, before = _trainer(backbone)
    started = time.monotonic()
    for call in (lambda: trainer.fit(endless), lambda: trainer.predict(endless.map(lambda text, label: text))):
        with pytest.raises(ValueError, match=r"more than 1,000 elements: it may never end.*dataset.take"):
            call()
    assert time.monotonic() - started < 60 and _unchanged(trainer, before)
    finite = tf.data.Dataset.from_tensor_slices((texts, labels)).filter(lambda text, label: True)
    trainer.fit(finite)  # unknown size but finite: counted and trained on


def test_texts_that_are_not_utf8_in_a_dataset_are_refused_before_any_work(backbone):
    trainer, before = _trainer(backbone)
    texts = [b"a good film", "caf\xe9 au lait".encode("latin-1")]
    with pytest.raises(ValueError, match="not valid UTF-8.*iconv"):
        trainer.fit(tf.data.Dataset.from_tensor_slices((texts, [1, 0])))
    with pytest.raises(ValueError, match="not valid UTF-8"):
        trainer.predict(tf.data.Dataset.from_tensor_slices(texts))
    assert _unchanged(trainer, before)


@pytest.mark.parametrize("task, labels, match", [
    ("classification", [0.0, 0.5, 1.7, 1.0], "whole class indices, got fractional"),
    ("classification", [0, 1, 2, 1], r"Label 2 at row 2 is out of range"),
    ("classification", ["positive", "meh", "negative", "positive"], r"Unknown label names \['meh'\]"),
    ("regression", [0.5, float("nan"), 1.0, 2.0], r"row 1 is .*nan"),
])
def test_dataset_labels_get_the_errors_of_in_memory_labels(backbone, task, labels, match):
    trainer, before = _trainer(backbone, task)
    dataset = tf.data.Dataset.from_tensor_slices((["good", "bad", "fine", "awful"], labels))
    with pytest.raises(ValueError, match=match):
        trainer.fit(dataset)
    with pytest.raises(ValueError, match=match):
        trainer.fit(["good", "bad", "fine", "awful"], labels)  # the same message as for lists
    assert _unchanged(trainer, before)


def test_dataset_of_unknown_size_is_counted(backbone):
    texts, labels = sentiment_texts(12)
    generated = tf.data.Dataset.from_generator(
        lambda: zip(texts, labels), output_signature=(tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int64)))
    trainer, before = _trainer(backbone)
    history = trainer.fit(generated)
    assert len(history.history["loss"]) == 1 and not _unchanged(trainer, before)


def test_dataset_is_read_and_tokenized_once_for_all_epochs(backbone):
    texts, labels = sentiment_texts(12)
    reads = {}

    def read_all(epochs):
        reads[epochs] = 0

        def examples():
            for text, label in zip(texts, labels):
                yield text, label
            reads[epochs] += 1  # one whole pass over the data

        dataset = tf.data.Dataset.from_generator(
            examples, output_signature=(tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int64)))
        trainer, _ = _trainer(backbone)
        history = trainer.fit(dataset, epochs=epochs)
        assert len(history.history["loss"]) == epochs

    read_all(1)
    read_all(3)
    assert reads[3] == reads[1] <= 3  # counting and label checks, then one pass that fills the token cache


def test_checkpoint_write_that_dies_leaves_no_file_under_the_final_name(backbone, tmp_path, monkeypatch):
    texts, labels = sentiment_texts(8)
    trainer, _ = _trainer(backbone, checkpoint_dir=str(tmp_path / "ckpt"))
    save_weights = type(trainer.model.core).save_weights

    def dies_halfway(model, path, **kwargs):
        with open(path, "wb") as file:
            file.write(b"\x89HDF\r\n half of a file")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(type(trainer.model.core), "save_weights", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(texts, labels)
    assert os.listdir(tmp_path / "ckpt") == ["tunekit.json"]  # neither a truncated epoch-01 nor the temporary file
    monkeypatch.setattr(type(trainer.model.core), "save_weights", save_weights)
    (tmp_path / "ckpt" / ".partial-999-epoch-01.weights.h5").write_bytes(b"left by a killed run")
    trainer.fit(texts, labels, epochs=2, reset=True)
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["epoch-01.weights.h5", "epoch-02.weights.h5", "tunekit.json"]
    trainer.model.core.load_weights(str(tmp_path / "ckpt" / "epoch-02.weights.h5"))


@pytest.mark.parametrize("change, match", [
    ("labels flipped", r"12 of its 12 \(text, label\) elements are not those read before"),
    ("one label out of range", r"1 of its 12 \(text, label\) elements are not those read before"),
    ("one unknown label name", "a label read again is not one of the model's labels"),
    ("one element more", "it yielded 12 elements when counted and 13 when read again"),
    ("one element less", "it yielded 12 elements when counted and 11 when read again"),
])
def test_a_generator_whose_labels_change_between_reads_is_refused_before_any_work(backbone, change, match):
    """tunekit reads a dataset twice (count and check the labels, then tokenize): a second read that brings other
    labels would train on labels that were never checked (or fail deep in the loss), so it is refused."""
    texts, labels = sentiment_texts(12)
    names = change == "one unknown label name"
    reads = []

    def examples():
        reads.append(1)
        again = len(reads) > 1
        for i, (text, label) in enumerate(zip(texts, labels)):
            if again and (change == "labels flipped" or (i == 5 and "label" in change)):
                label = {"labels flipped": 1 - label, "one label out of range": 7}.get(change, 2)
            if again and i == 11 and change == "one element less":
                return
            yield text, (["negative", "positive", "meh"][label] if names else label)
        if again and change == "one element more":
            yield "one more", 1

    label_spec = tf.TensorSpec([], tf.string if names else tf.int64)
    dataset = tf.data.Dataset.from_generator(examples, output_signature=(tf.TensorSpec([], tf.string), label_spec))
    trainer, before = _trainer(backbone)
    with pytest.raises(ValueError, match=r"changed between two reads: " + match + r".*fixed seed"):
        trainer.fit(dataset)
    assert _unchanged(trainer, before) and trainer.history == {}
    reads.clear()
    with pytest.raises(ValueError, match=r"changed between two reads: " + match):
        trainer.evaluate(dataset)


def test_a_dataset_that_shuffles_itself_reads_the_same_labels_in_another_order_and_trains(backbone):
    texts, labels = sentiment_texts(12)
    dataset = tf.data.Dataset.from_tensor_slices((texts, labels)).shuffle(12)  # a new order on every read
    trainer, before = _trainer(backbone)
    assert len(trainer.fit(dataset).history["loss"]) == 1 and not _unchanged(trainer, before)
