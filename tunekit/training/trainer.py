"""`Trainer`: fit / evaluate / predict / save / export a `TextModel` with defaults that work for BERT.

Example:

>>> import tunekit as tk
>>> backbone = tk.load_backbone("minilm-l6", seq_length=128)                        # doctest: +SKIP
>>> model = tk.attach_head(backbone, "classification", labels=["neg", "pos"])       # doctest: +SKIP
>>> trainer = tk.Trainer(model, learning_rate=5e-5, epochs=2, batch_size=32)        # doctest: +SKIP
>>> trainer.fit(train_texts, train_labels, validation_data=(val_texts, val_labels)) # doctest: +SKIP
>>> trainer.evaluate(test_texts, test_labels)                                       # doctest: +SKIP
{'loss': 0.31, 'accuracy': 0.88, 'precision': 0.87, 'recall': 0.89, 'f1': 0.88}
>>> trainer.predict_labels(["A masterpiece.", "Dull."])                             # doctest: +SKIP
['pos', 'neg']

Token classification takes words and tags per sentence (see `tunekit.training.token_data`):

>>> trainer.fit([["Ada", "lives", "in", "Paris"]], [["B-PER", "O", "O", "B-LOC"]])  # doctest: +SKIP
>>> trainer.predict_labels(["Ada met Bob"])                                        # doctest: +SKIP
[['B-PER', 'O', 'B-PER']]
"""

import math
import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from tunekit.model import TextModel
from tunekit.saving import export_model, save_model
from tunekit.training.data import split_segments, text_dataset, tf_dataset
from tunekit.training.optimization import create_optimizer
from tunekit.training.token_data import check_tags, sentence_words, token_dataset, word_probabilities


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return int(value)


def _count_element(total, _):
    return total + 1


def _inputs_only(inputs, labels):
    return inputs


def reseed_dropout(model, seed):
    """Resets the random state of every seeded Keras layer (dropout) in `model` from `seed`."""
    generators = [layer.seed_generator for layer in model._flatten_layers() if hasattr(layer, "seed_generator")]
    for i, generator in enumerate(generators):
        generator.state.assign(np.array([seed, i], dtype=generator.state.dtype))


class Trainer:
    """Fine-tunes a `TextModel` on raw texts.

    Args:
        model: a `TextModel` from `tunekit.attach_head` (or `tunekit.load_model`).
        learning_rate: peak learning rate (after warmup). 2e-5..5e-5 suit BERT-base; small models like
            more (5e-5..1e-4).
        epochs: passes over the training data.
        batch_size: texts per training step (chunks of sentences for token classification).
        weight_decay: AdamW decoupled weight decay (not applied to biases and LayerNorm parameters).
        warmup_ratio: fraction of all steps with linear warmup.
        schedule: learning rate after warmup: "linear" (to 0, the BERT recipe), "cosine" or "constant".
        clipnorm: global gradient-norm clip.
        early_stopping_patience: with validation data, stop after this many epochs without a lower
            validation loss and restore the best weights.
        checkpoint_dir: save the weights after every epoch into this folder (`epoch-XX.weights.h5`).
        callbacks: extra Keras callbacks.
        seed: makes runs repeatable: seeds Keras/NumPy/Python, the shuffle order and every dropout layer
            (for identical weights across processes also pass `seed` to `attach_head`).
        group_by_length: batch training texts of similar length together. Each batch is padded only to its
            longest text, so on data of mixed lengths this cuts padding (SST-2: see benchmarks/sst2_minilm.py);
            batches stay random otherwise. Off by default: where length correlates with the label, batches of
            one length are batches of one label, which can slow learning.
        jit_compile: compile the training step with XLA (the string preprocessing is never compiled).
        verbose: Keras progress output: "auto", 0, 1 or 2.
    """

    def __init__(self, model, *, learning_rate=3e-5, epochs=3, batch_size=32, weight_decay=0.01,
                 warmup_ratio=0.1, schedule="linear", clipnorm=1.0, early_stopping_patience=None,
                 checkpoint_dir=None, callbacks=None, seed=None, group_by_length=False, jit_compile=False,
                 verbose="auto"):
        if not isinstance(model, TextModel):
            raise TypeError(f"Trainer needs a TextModel from tunekit.attach_head, got {type(model).__name__}.")
        self.model = model
        self.learning_rate = learning_rate
        self.epochs = _positive_int(epochs, "epochs")
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.schedule = schedule
        self.clipnorm = clipnorm
        self.early_stopping_patience = early_stopping_patience
        self.checkpoint_dir = checkpoint_dir
        self.callbacks = list(callbacks or [])
        self.seed = seed
        self.group_by_length = group_by_length
        self.jit_compile = jit_compile
        self.verbose = verbose
        # Fail on bad optimizer settings now rather than after the data pipeline is built.
        create_optimizer([], learning_rate=learning_rate, total_steps=1, weight_decay=weight_decay,
                         warmup_ratio=warmup_ratio, schedule=schedule, clipnorm=clipnorm)

    @property
    def task(self):
        return self.model.task

    def _batch_size(self, batch_size):
        return self.batch_size if batch_size is None else _positive_int(batch_size, "batch_size")

    def _dataset(self, x, y=None, *, shuffle=False, labels_required=True, batch_size=None):
        """Validates the inputs and returns (batched dataset, number of examples: texts, or the chunks of the
        sentences for a per-token task)."""
        batch_size = self._batch_size(batch_size)
        if self.task.per_token:
            words, tags = self._words_and_tags(x, y, labels_required=labels_required)
            return token_dataset(self.model.preprocessor, words, tags, batch_size=batch_size, shuffle=shuffle,
                                 seed=self.seed)
        if isinstance(x, tf.data.Dataset):
            if y is not None:
                raise ValueError("With a tf.data.Dataset, put the labels in the dataset: (text, label) elements.")
            dataset = tf_dataset(self.model.preprocessor, x, self.model.num_segments, batch_size=batch_size,
                                 shuffle=shuffle, seed=self.seed, encode_label=self._label_encoder(),
                                 by_length=self.group_by_length)
            count = int(x.cardinality())
            if count < 0:
                count = int(x.reduce(0, _count_element))
            return dataset.apply(tf.data.experimental.assert_cardinality(math.ceil(count / batch_size))), count
        segments = split_segments(x, self.model.num_segments)
        labels = None
        if y is not None:
            labels = self.task.encode_labels(y)
            if len(labels) != len(segments[0]):
                raise ValueError(f"Got {len(segments[0])} texts but {len(labels)} labels; they must match one to one.")
        elif labels_required:
            raise ValueError("Labels are missing: pass fit(texts, labels) or a dataset of (text, label) pairs.")
        dataset = text_dataset(self.model.preprocessor, segments, labels, batch_size=batch_size,
                               shuffle=shuffle, seed=self.seed, by_length=self.group_by_length)
        return dataset, len(segments[0])

    def _words_and_tags(self, x, y=None, *, labels_required=True):
        """Per-token tasks: the words of every sentence, and their tag ids (None without `y`)."""
        words = sentence_words(x)
        if y is None:
            if labels_required:
                raise ValueError("Tags are missing: pass fit(sentences, tags), one list of tags per sentence.")
            return words, None
        tags = self.task.encode_labels(y)
        check_tags(words, tags)
        return words, tags

    def _word_probabilities(self, words, batch_size):
        dataset, _ = token_dataset(self.model.preprocessor, words, batch_size=self._batch_size(batch_size))
        return word_probabilities(self.model.core, dataset, words)

    def _label_encoder(self):
        names = getattr(self.task, "labels", None)
        if self.task.name != "classification" or names is None:
            return None
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(names), tf.range(len(names), dtype=tf.int32)), -1
        )

        def encode(label):
            if label.dtype != tf.string:
                return tf.cast(label, tf.int32)
            ids = table.lookup(label)
            with tf.control_dependencies([tf.debugging.assert_non_negative(ids, message=f"unknown label; labels are {names}")]):
                return tf.identity(ids)

        return encode

    def _callbacks(self, has_validation):
        callbacks = list(self.callbacks)
        if self.early_stopping_patience is not None:
            if not has_validation:
                raise ValueError("early_stopping_patience needs validation_data to watch.")
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=self.early_stopping_patience, restore_best_weights=True))
        if self.checkpoint_dir is not None:
            os.makedirs(self.checkpoint_dir, exist_ok=True)
            callbacks.append(keras.callbacks.ModelCheckpoint(
                os.path.join(self.checkpoint_dir, "epoch-{epoch:02d}.weights.h5"), save_weights_only=True))
        return callbacks

    def fit(self, x, y=None, *, validation_data=None, epochs=None):
        """Trains on texts and labels; returns the Keras `History`.

        Args:
            x: texts (see `tunekit.training.data` for the accepted forms) or a `tf.data.Dataset` of
                `(text, label)` elements; token classification: sentences as lists of words (or plain strings,
                split on whitespace).
            y: labels: class indices or label names (classification), lists of names or a 0/1 matrix
                (multilabel), numbers (regression), one list of tag names or ids per sentence (token
                classification). None when `x` is a dataset.
            validation_data: `(texts, labels)` or a dataset, evaluated after each epoch.
            epochs: overrides the trainer's `epochs` for this call.
        """
        epochs = self.epochs if epochs is None else _positive_int(epochs, "epochs")
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
        train, count = self._dataset(x, y, shuffle=True)
        validation = None
        if validation_data is not None:
            if isinstance(validation_data, tf.data.Dataset):
                validation, _ = self._dataset(validation_data)
            elif isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
                validation, _ = self._dataset(*validation_data)
            else:
                raise ValueError("validation_data must be (texts, labels) or a tf.data.Dataset of (text, label).")
        callbacks = self._callbacks(validation is not None)
        if self.seed is not None:
            reseed_dropout(self.model, self.seed)
        core = self.model.core
        total_steps = math.ceil(count / self.batch_size) * epochs
        optimizer = create_optimizer(
            core.trainable_variables, learning_rate=self.learning_rate, total_steps=total_steps,
            weight_decay=self.weight_decay, warmup_ratio=self.warmup_ratio, schedule=self.schedule,
            clipnorm=self.clipnorm)
        if any(layer.dtype_policy.name == "mixed_float16" for layer in core._flatten_layers()):
            # float16 gradients underflow without loss scaling (bfloat16 has float32's range and needs none).
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        # Weighted: a per-token task's sample weights leave out the positions that are not a word's first piece.
        core.compile(optimizer=optimizer, loss=self.task.loss(), weighted_metrics=self.task.fit_metrics(),
                     jit_compile=self.jit_compile)
        with warnings.catch_warnings():
            # With mean or [CLS] pooling the encoder's pooler is unused, and Keras warns about its missing gradients.
            warnings.filterwarnings("ignore", message="Gradients do not exist for variables .*pooler")
            return core.fit(train, validation_data=validation, epochs=epochs, callbacks=callbacks,
                            verbose=self.verbose, shuffle=False)  # the pipeline shuffles (seeded) before batching

    def predict(self, x, *, batch_size=None):
        """Model outputs for raw texts: class probabilities `[N, C]`, label probabilities `[N, L]` or values;
        token classification: a list with one `[words, C]` array of tag probabilities per sentence."""
        if self.task.per_token:
            words, _ = self._words_and_tags(x, labels_required=False)
            return self._word_probabilities(words, batch_size)
        dataset, _ = self._dataset(x, labels_required=False, batch_size=batch_size)
        return self.model.core.predict(dataset, verbose=0)

    def predict_labels(self, x, *, batch_size=None):
        """Predicted labels: names (or class ids) for classification, lists of names for multilabel,
        values for regression, one list of tags per sentence (one tag per word) for token classification."""
        return self.task.decode(self.predict(x, batch_size=batch_size))

    def evaluate(self, x, y=None, *, batch_size=None):
        """Loss and exact task metrics over the whole split.

        Classification: `loss`, `accuracy`, `precision`, `recall`, `f1` (of class 1 when binary, macro
        averages otherwise). Multilabel: subset/hamming accuracy, micro/macro F1. Regression: mse, mae,
        rmse, pearson, spearman. Token classification: `loss` (mean over words), entity-level `precision`,
        `recall`, `f1` (CoNLL's, for IOB tags) and `token_accuracy`.
        """
        if self.task.per_token:
            words, tags = self._words_and_tags(x, y)
            probabilities = self._word_probabilities(words, batch_size)
            loss = float(self.task.loss()(np.concatenate(tags), np.concatenate(probabilities)))
            return {"loss": loss, **self.task.evaluate(tags, probabilities)}
        dataset, _ = self._dataset(x, y, batch_size=batch_size)
        truth = np.concatenate([labels.numpy() for _, labels in dataset])
        predictions = self.model.core.predict(dataset.map(_inputs_only), verbose=0)
        loss = float(self.task.loss()(truth, predictions))
        return {"loss": loss, **self.task.evaluate(truth, predictions)}

    def save(self, path):
        """Saves the model (see `tunekit.save_model`); reload with `tunekit.load_model(path)`."""
        return save_model(self.model, path)

    def export(self, path):
        """Exports a serving SavedModel taking raw strings (see `tunekit.export_model`)."""
        return export_model(self.model, path)
