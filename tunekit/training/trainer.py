"""`Trainer`: fit / evaluate / predict / save / export a `TextModel` with defaults that work for BERT.

Example, on tiny stand-ins (`model`: a 2-layer encoder with a "neg"/"pos" classification head; `texts`, `labels`:
8 short reviews). A real run would build `model = tk.attach_head(tk.load_backbone("minilm-l6", seq_length=128),
"classification", labels=["neg", "pos"])` and train it with
`tk.Trainer(model, learning_rate=5e-5, epochs=2, batch_size=32)`:

>>> import tunekit as tk
>>> trainer = tk.Trainer(model, epochs=1, batch_size=4, verbose=0)
>>> history = trainer.fit(texts, labels, validation_data=(texts[:4], labels[:4]))
>>> sorted(trainer.history)                        # one value per epoch
['accuracy', 'epoch', 'loss', 'val_accuracy', 'val_loss']
>>> trainer.evaluate(texts, labels)                # a fine-tuned MiniLM: {'loss': 0.31, 'accuracy': 0.88, ...}
{'loss': ..., 'accuracy': ..., 'precision': ..., 'recall': ..., 'f1': ..., 'confusion_matrix': ..., 'per_class': ...}
>>> trainer.predict_labels(["A masterpiece.", "Dull."])   # a trained model: ['pos', 'neg']
['...', '...']

Token classification takes words and tags per sentence (see `tunekit.inputs.word_batches`):

>>> ner = tk.attach_head(backbone, "token_classification", labels=["O", "B-PER", "B-LOC"])
>>> ner_trainer = tk.Trainer(ner, epochs=1, batch_size=1, verbose=0)
>>> history = ner_trainer.fit([["Ada", "lives", "in", "Paris"]], [["B-PER", "O", "O", "B-LOC"]])
>>> ner_trainer.predict_labels(["Ada met Bob"])     # one tag per word; trained: [['B-PER', 'O', 'B-PER']]
[['...', '...', '...']]
"""

import hashlib
import math
import random
import sys

import keras
import numpy as np
import tensorflow as tf

from tunekit.backbones.depth import variable_depths
from tunekit.distributed import chief_writes, is_chief, read_tf_config
from tunekit.model import TextModel, predict_inputs
from tunekit.saving import export_model, save_model
from tunekit.augment import as_augmentation, describe
from tunekit.backbones.hub_encoder import SEVERAL_REPLICAS, refuse_saved_model_encoder
from tunekit.arguments import positive_int
from tunekit.training.backup import BackupCallback, BackupStore, check_backup_dir
from tunekit.training.callbacks import DivergenceGuard, MajorityClassWarning, check_log_dir, claim_log_dir
from tunekit.training.checkpoint import EpochCheckpoint, check_checkpoint_dir
from tunekit.inputs.kinds import input_kind
from tunekit.inputs.text_batches import check_dataset_elements, dataset_epochs, dataset_size_and_labels, tf_dataset
from tunekit.training.engine import TrainingLoop, clipnorm_per_replica, predict_batches
from tunekit.training.optimization import (check_layer_decay, check_optimizer_settings, create_optimizer,
                                           layer_decay_multipliers)
from tunekit.training.self_training import (DEFAULT_FRACTION, DEFAULT_ROUND_EPOCHS, DEFAULT_ROUNDS, DEFAULT_THRESHOLD,
                                           self_train)
from tunekit.training.state import StateCallback, TrainingState


MAX_SEED = 2**31 - 1


def _seed(seed):
    """`seed` checked: None, or an int from 0 to 2**31 - 1."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int from 0 to {MAX_SEED} (or None), got {type(seed).__name__} {seed!r}"
                        + (": drop the quotes." if isinstance(seed, str) else "."))
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an int from 0 to {MAX_SEED} (or None), got {seed!r}.")
    return int(seed)


def fingerprint(*values):
    """A sha256 hex digest of nested lists / tuples of str, numbers and numpy arrays (training data, weights)."""
    digest = hashlib.sha256()

    def update(value):
        if isinstance(value, np.ndarray) and value.dtype.kind not in "OUS":
            digest.update(f"a{value.dtype}{value.shape}".encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        elif isinstance(value, (list, tuple, np.ndarray)):
            digest.update(f"[{len(value)}".encode())
            for item in value:
                update(item)
        else:
            text = str(value).encode("utf-8", "surrogatepass")
            digest.update(f"{type(value).__name__}{len(text)}:".encode() + text)

    update(list(values))
    return digest.hexdigest()


# Keras names a random layer's state variable "seed_generator_state" (keras.random.SeedGenerator) and has no public
# way to list a model's random states or nested layers (Layer._flatten_layers): both are pinned by
# tests/test_private_apis.py, which fails naming them if a Keras release moves them.
DROPOUT_STATE = "seed_generator_state"


def weights_sha256(model):
    """A sha256 of a model's weights (not its dropout random states): what the run starts from."""
    return fingerprint([np.asarray(keras.ops.convert_to_numpy(weight)) for weight in model.weights
                        if weight.name != DROPOUT_STATE])


def dropout_rates(model):
    """The rates of the model's Keras dropout layers, in order (part of a run's fingerprint)."""
    return [float(layer.rate) for layer in model._flatten_layers()  # private: see DROPOUT_STATE
            if isinstance(layer, keras.layers.Dropout)]


def reseed_dropout(model, seed):
    """Resets the random state of every Keras random layer (dropout) in `model` from `seed`: their
    `seed_generator_state` variables, which `model.variables` lists (and backups therefore hold)."""
    states = [variable for variable in model.variables if variable.name == DROPOUT_STATE]
    for i, state in enumerate(states):
        state.assign(np.array([seed, i], dtype=state.dtype))


def class_names(task):
    """The label names of a task whose labels are class ids (one class per text or per word: `Task.single_class`),
    else None."""
    return getattr(task, "labels", None) if task.single_class else None


def class_weight_vector(class_weight, task, num_classes, labels):
    """`class_weight` ("balanced", or a dict by label name or class id) -> float32 weights per class id.

    "balanced" weighs class c by `n / (num_classes * n_c)` over the training labels (scikit-learn's formula).
    """
    if not task.single_class:
        raise ValueError("class_weight applies to classification and token classification (one class per text or "
                         f"word); this model's task is {task.get_config()['name']!r}.")
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f'class_weight must be "balanced" or a dict by label name, got {class_weight!r}.')
        ids = np.concatenate([np.ravel(row) for row in labels]) if isinstance(labels, list) else np.ravel(labels)
        counts = np.bincount(ids.astype(np.int64), minlength=num_classes)
        return np.where(counts > 0, len(ids) / (num_classes * np.maximum(counts, 1)), 1.0).astype(np.float32)
    if not isinstance(class_weight, dict):
        raise TypeError(f'class_weight must be "balanced" or a dict by label name, got {type(class_weight).__name__}.')
    names = class_names(task) or []
    index = {name: i for i, name in enumerate(names)}
    weights = np.ones(num_classes, np.float32)
    for key, value in class_weight.items():
        if isinstance(key, str) and key in index:
            position = index[key]
        elif isinstance(key, (int, np.integer)) and not isinstance(key, bool) and 0 <= key < num_classes:
            position = int(key)
        else:
            known = names or list(range(num_classes))
            raise ValueError(f"class_weight has the key {key!r}, which is not a label of this model; its labels "
                             f"are {known}.")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not value >= 0:
            raise ValueError(f"class_weight[{key!r}] must be a number >= 0, got {value!r}.")
        weights[position] = value
    return weights


# Default peak learning rates by encoder width: BERT-base and larger (hidden size >= 768) fine-tune at 2e-5..5e-5;
# smaller encoders need more: on 400 SST-2 rows, MiniLM-L6 (H=384) reached 0.56 test accuracy at 3e-5 (198 of 200
# predicted positive) and 0.655 at 1e-4, and the README's IMDB example (MiniLM-L6) reaches 0.88 at 1e-4.
BASE_LEARNING_RATE, SMALL_ENCODER_LEARNING_RATE, BASE_HIDDEN_SIZE = 3e-5, 1e-4, 768


def default_learning_rate(model):
    """The peak learning rate `Trainer` uses when none is given: 3e-5 for encoders as wide as BERT-base or wider
    (hidden size >= 768), 1e-4 for smaller ones (MiniLM, BERT-small, ...)."""
    hidden_size = getattr(model.encoder, "hidden_size", BASE_HIDDEN_SIZE)
    return BASE_LEARNING_RATE if hidden_size >= BASE_HIDDEN_SIZE else SMALL_ENCODER_LEARNING_RATE


def encoder_learning_rate_multipliers(model, decay):
    """One learning-rate multiplier per trainable variable of `model.core` for layer-wise decay: the head and the
    encoder's pooler 1.0, its top block `decay`, ..., its embeddings `decay ** (num_layers + 1)`."""
    encoder = model.encoder
    trainable = model.core.trainable_variables
    own = {id(variable) for variable in encoder.variables}
    depths = iter(variable_depths(encoder, [variable for variable in trainable if id(variable) in own]))
    return layer_decay_multipliers([next(depths) if id(variable) in own else None for variable in trainable],
                                   encoder.num_layers, decay)


class Trainer:
    """Fine-tunes a `TextModel` on raw texts.

    Args:
        model: a `TextModel` from `tunekit.attach_head` (or `tunekit.load_model`).
        learning_rate: peak learning rate (after warmup). None (default): by the encoder's width
            (`default_learning_rate`): 3e-5 for BERT-base and wider (hidden size >= 768), 1e-4 for smaller
            encoders such as MiniLM, which barely move at BERT-base's rate on small data.
        epochs: passes over the training data.
        batch_size: texts per training step (chunks of sentences for token classification).
        weight_decay: AdamW decoupled weight decay (not applied to biases and LayerNorm parameters).
        warmup_ratio: fraction of all steps with linear warmup.
        schedule: learning rate after warmup: "linear" (to 0, the BERT recipe), "cosine" or "constant".
        clipnorm: global gradient-norm clip.
        early_stopping_patience: with validation data, stop after this many epochs without a lower
            validation loss and restore the best weights.
        checkpoint_dir: save the weights after every epoch into this folder (`epoch-XX.weights.h5`): absent, empty
            or one tunekit wrote checkpoints to (see `tunekit.training.checkpoint`).
        callbacks: extra Keras callbacks.
        seed: makes runs repeatable: seeds Keras/NumPy/Python, the shuffle order and every dropout layer
            (for identical weights across processes also pass `seed` to `attach_head`); an int from 0 to 2**31 - 1.
        group_by_length: batch training texts of similar length together (on by default). Each batch is padded
            only to its longest text, so on data of mixed lengths this cuts padding: measured over 3 seeds
            (docs/performance.md), SST-2 trained 1.78x faster at +0.34 points and IMDB at equal speed and
            +0.12 points. Batches stay random draws apart from their length. Pass False where length tracks the
            label (batches of one length would then be batches of one label).
        jit_compile: compile the training step with XLA (the string preprocessing is never compiled).
        verbose: Keras progress output: "auto", 0, 1 or 2.
        backup_dir: keep crash-safe backups of the run here (model, optimizer, epoch and step, data order,
            dropout random state; see `tunekit.training.backup`): rerunning the same script after a crash
            resumes where the last backup was made. Backups are removed when `fit` completes. A backup of another
            run (other data, settings, base weights or dropout) is refused, naming what differs.
        backup_every: optimizer steps between backups (besides one at every epoch end).
        log_dir: write TensorBoard event files and `epochs.csv` / `steps.csv` here (see
            `tunekit.training.callbacks`; needs `pip install "tunekit[logs]"`): absent, empty, or the log folder of
            this same run (resumed).
        log_every: optimizer steps between rows of `steps.csv`.
        class_weight: "balanced", or a dict from label name (or class id) to weight; the loss of an example
            (a word, for token classification) is multiplied by its class's weight.
        gradient_accumulation_steps: average the gradients of this many batches before each optimizer step:
            an effective batch of `batch_size * gradient_accumulation_steps` in the memory of one batch.
        layer_decay: layer-wise learning-rate decay, a number in (0, 1]: the head and the pooler train at the
            learning rate, the encoder's top block at `layer_decay` times it, the next block down at
            `layer_decay**2`, ..., the embeddings at `layer_decay**(num_layers + 1)` (see
            `tunekit.training.optimization`). None (default) trains every layer at the same rate.
        augment: None, an augmentation of `tunekit.augment`, a function `(texts, labels, seed) -> (texts, labels)`,
            or a list of them: each epoch trains on a new rewrite of the (in-memory) training texts, fixed by the
            run's seed and the epoch, so resumed runs stay exact (docs/less-labelled-data.md).

    Under several workers (`python -m tunekit.distributed`), `batch_size` is the global batch: each of the N
    workers takes `batch_size / N` examples of it per step.

    Settings that cannot train (a learning rate that is not a number in (0, 1], a NaN, infinite or negative weight
    decay, a clipnorm that is not positive, a seed that is not an int from 0 to 2**31 - 1, a checkpoint or log
    folder that is a file or holds the user's files) are refused here, before any work. A run whose loss or
    weights become NaN or infinite stops with a `FloatingPointError` and the model keeps its last good weights
    (see `fit`).
    """

    def __init__(self, model, *, learning_rate=None, epochs=3, batch_size=32, weight_decay=0.01,
                 warmup_ratio=0.1, schedule="linear", clipnorm=1.0, early_stopping_patience=None,
                 checkpoint_dir=None, callbacks=None, seed=None, group_by_length=True, jit_compile=False,
                 verbose="auto", backup_dir=None, backup_every=100, log_dir=None, log_every=10, class_weight=None,
                 gradient_accumulation_steps=1, layer_decay=None, augment=None):
        if not isinstance(model, TextModel):
            raise TypeError(f"Trainer needs a TextModel from tunekit.attach_head, got {type(model).__name__}.")
        self.model = model
        self.learning_rate = default_learning_rate(model) if learning_rate is None else learning_rate
        self.epochs = positive_int(epochs, "epochs")
        self.batch_size = positive_int(batch_size, "batch_size")
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.schedule = schedule
        self.clipnorm = clipnorm
        self.early_stopping_patience = early_stopping_patience
        self.checkpoint_dir = None if checkpoint_dir is None else check_checkpoint_dir(checkpoint_dir)
        self.callbacks = list(callbacks or [])
        self.seed = _seed(seed)
        self.group_by_length = group_by_length
        self.jit_compile = jit_compile
        self.verbose = verbose
        self.backup_dir = None if backup_dir is None else check_backup_dir(backup_dir)
        if self.backup_dir is not None and model.encoder.trainable:
            refuse_saved_model_encoder(
                model.encoder, "Exact resume from backups (backup_dir)",
                "its dropout draws random numbers inside the SavedModel's graph, where a backup cannot save or "
                "restore them, so a resumed run would differ from an uninterrupted one. Freeze it "
                "(load_backbone(..., trainable=False)) or train without backup_dir")
        self.backup_every = positive_int(backup_every, "backup_every")
        self.log_dir = None if log_dir is None else check_log_dir(log_dir)
        self.log_every = positive_int(log_every, "log_every")
        self.class_weight = class_weight
        self.gradient_accumulation_steps = positive_int(gradient_accumulation_steps, "gradient_accumulation_steps")
        self.layer_decay = check_layer_decay(layer_decay)
        self.augment = as_augmentation(augment)
        folders = {name: path for name, path in (("checkpoint_dir", self.checkpoint_dir), ("log_dir", self.log_dir),
                                                 ("backup_dir", self.backup_dir)) if path is not None}
        for name, path in folders.items():
            shared = [other for other, other_path in folders.items() if other != name and other_path == path]
            if shared:
                raise ValueError(f"{name} and {shared[0]} are the same folder ({path!r}); tunekit keeps checkpoints, "
                                 "logs and backups apart: give each its own folder, e.g. run/checkpoints, run/logs "
                                 "and run/backups.")
        if self.layer_decay is not None:  # an encoder whose layers cannot be told apart fails now
            encoder_learning_rate_multipliers(model, self.layer_decay)
        if class_weight is not None:  # bad keys fail now, not after the data pipeline is built
            class_weight_vector(class_weight, self.task, self._num_outputs(), np.zeros([0], np.int64))
        # Fail on bad optimizer settings now rather than after the data pipeline is built.
        check_optimizer_settings(learning_rate=self.learning_rate, weight_decay=weight_decay, warmup_ratio=warmup_ratio,
                                 clipnorm=clipnorm, schedule=schedule)
        self.state = TrainingState()
        self._loop = None
        self._initial_weights = None

    @property
    def history(self):
        """Per-epoch values (`epoch`, `loss`, metrics, `val_...`) of the run so far, over every `fit` call
        (`trainer.state.history`)."""
        return self.state.history

    @property
    def task(self):
        return self.model.task

    def _num_outputs(self):
        return int(self.model.core.outputs[0].shape[-1])

    def _batch_size(self, batch_size):
        return self.batch_size if batch_size is None else positive_int(batch_size, "batch_size")

    def _dataset(self, x, y=None, *, labels_required=True, batch_size=None):
        """Validates evaluation or prediction inputs -> their batches, in order."""
        batch_size = self._batch_size(batch_size)
        kind = input_kind(self.task)
        if isinstance(x, tf.data.Dataset) and kind.accepts_datasets:
            first_read, _ = self._read_dataset(x, y)
            dataset = tf_dataset(self.model.preprocessor, x, self.model.num_segments, batch_size=batch_size,
                                 encode_label=self._label_encoder(), first_read=first_read)
            return dataset.apply(tf.data.experimental.assert_cardinality(math.ceil(first_read.count / batch_size)))
        inputs, labels = kind.read(self.task, self.model.num_segments, x, y, labels_required=labels_required)
        return kind.batches(self.model.preprocessor, inputs, labels, batch_size=batch_size)

    def _read_dataset(self, dataset, y):
        """A user's `tf.data.Dataset` -> (its `FirstRead`, its labels encoded or None without labels), read once
        and checked like in-memory labels, before any work."""
        if y is not None:
            raise ValueError("With a tf.data.Dataset, put the labels in the dataset: (text, label) elements.")
        first_read = dataset_size_and_labels(dataset, self.model.num_segments)
        return first_read, None if first_read.labels is None else self.task.encode_labels(first_read.labels)

    def _reads_windows(self):
        return self.model.preprocessor.reads_windows(self.model.num_segments)

    def _dataset_in_memory(self, dataset, y, *, labels_required=True):
        """A `tf.data.Dataset` of texts or `(text, label)` elements, read in one pass -> (validated segments,
        encoded labels or None): what a model reading long texts in windows predicts on."""
        if y is not None:
            raise ValueError("With a tf.data.Dataset, put the labels in the dataset: (text, label) elements.")
        labelled = check_dataset_elements(dataset, self.model.num_segments)
        elements = list(dataset.as_numpy_iterator())
        texts = [(element[0] if labelled else element).decode("utf-8") for element in elements]
        labels = None
        if labelled:
            labels = [element[1].decode("utf-8") if isinstance(element[1], bytes) else element[1] for element in elements]
        return self._read(texts, labels, labels_required=labels_required)

    def _read(self, x, y=None, *, labels_required=True):
        """In-memory inputs and labels -> (inputs validated by the task's input kind: segments of texts or words of
        sentences; the labels encoded by the task, or None without `y`)."""
        return input_kind(self.task).read(self.task, self.model.num_segments, x, y, labels_required=labels_required)

    def _label_encoder(self):
        names = class_names(self.task)
        if names is None:
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

    def _callbacks(self, chief, guard, backup, labels):
        """The run's callbacks, in order: backups (first: they restore the state the others start from), the
        divergence guard, the user's, early stopping, checkpoints, logs, and the majority-class warning of
        single-label classification. Backups, the guard, user callbacks and early stopping run in every worker;
        files are written and warnings given by the chief only."""
        callbacks = [*([backup] if backup is not None else []), guard, *self.callbacks]
        if self.early_stopping_patience is not None:
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=self.early_stopping_patience, restore_best_weights=True))
        if self.checkpoint_dir is not None and chief:
            callbacks.append(EpochCheckpoint(self.checkpoint_dir))
        if self.log_dir is not None and chief:
            from tunekit.training.callbacks import log_callbacks

            callbacks.extend(log_callbacks(self.log_dir, every=self.log_every))
        names = class_names(self.task)
        if names is not None and not input_kind(self.task).takes_words and chief:  # one class per text
            callbacks.append(MajorityClassWarning(labels, names, self.learning_rate))
        for callback in callbacks:
            if isinstance(callback, StateCallback):
                callback.set_state(self.state)
        return callbacks

    def _check_schedule(self, steps, epochs):
        """Refuses a `fit` that would run past the end of the learning-rate schedule of the run it continues
        (planned at its first `fit` for the trainer's `epochs`): it would train at a learning rate of 0."""
        state = self.state
        planned, done = state.planned_batches, state.batches_done
        more = steps * epochs - state.step  # a fit interrupted mid-epoch continues that epoch
        if self._loop is None or planned is None or done + more <= planned:
            return
        left = (planned - done + state.step) // steps
        raise ValueError(
            f"This fit would continue the run past the end of its learning-rate schedule: the {self.schedule!r} "
            f"schedule was planned at the first fit for {planned} batches ({planned // steps} epoch(s) of {steps}), "
            f"{done} are done, and epochs={epochs} needs {more} more; past the end the learning rate is 0 and "
            "nothing would train. To train more with a new warmup and decay (the weights are kept), call "
            "fit(..., reset=True)" + (f"; to finish the planned run, fit(..., epochs={left})" if left else "")
            + "; or plan the whole run at once: Trainer(..., epochs=TOTAL), or schedule=\"constant\".")

    def _verbosity(self):
        """Keras' progress output: "auto" is the live bar (1) in a terminal or notebook, else one line per epoch (2),
        so that redirected logs get no escape codes (Keras' own "auto" takes every POSIX system for a terminal)."""
        if self.verbose != "auto":
            return self.verbose
        return 1 if "ipykernel" in sys.modules or (hasattr(sys.stdout, "isatty") and sys.stdout.isatty()) else 2

    def _strategy(self):
        """The current `tf.distribute` strategy, checked against TF_CONFIG, the model and the batch size."""
        strategy = tf.distribute.get_strategy()
        cluster = read_tf_config()
        if cluster is not None and len(cluster["workers"]) > 1 and strategy.num_replicas_in_sync == 1:
            raise ValueError(
                f"TF_CONFIG names {len(cluster['workers'])} workers, but this process trains alone. Start the script "
                "with `python -m tunekit.distributed script.py` (it creates the MultiWorkerMirroredStrategy before "
                "the model is built), or build the model and the Trainer inside strategy.scope().")
        replicas = strategy.num_replicas_in_sync
        if replicas > 1:
            refuse_saved_model_encoder(self.model.encoder, *SEVERAL_REPLICAS)
            variable = self.model.core.trainable_variables[0]
            if not strategy.extended.variable_created_in_scope(getattr(variable, "value", variable)):
                raise ValueError(
                    "The model was built outside the distribution strategy's scope, so its variables are not "
                    "mirrored: build it inside strategy.scope() (python -m tunekit.distributed does this for you).")
            if self.batch_size % replicas:
                raise ValueError(
                    f"batch_size={self.batch_size} is the global batch and must divide evenly between the {replicas} "
                    f"replicas (workers x devices): use a multiple of {replicas}, e.g. "
                    f"{self.batch_size // replicas * replicas or replicas}.")
        return strategy

    def _training_batches(self, x, y):
        """Validates the training data (before any work) -> (batches(epoch, seed), the encoded labels, a sha256 of
        the data: texts and labels; a tf.data dataset's labels and size).

        `batches(epoch, seed)` gives that epoch's shuffled batches, in an order fixed by `seed` and the epoch; the
        texts are tokenized (and words aligned with their pieces) once for all epochs.
        """
        preprocessor, batch_size = self.model.preprocessor, self.batch_size
        kind = input_kind(self.task)
        if isinstance(x, tf.data.Dataset) and kind.accepts_datasets:
            if self.augment is not None:
                raise ValueError("augment= rewrites in-memory texts; a tf.data.Dataset is not. Pass lists of texts "
                                 "and labels, or augment inside your dataset (dataset.map).")
            first_read, labels = self._read_dataset(x, y)
            if labels is None:
                raise ValueError("Labels are missing: the dataset must yield (text, label) elements to train on.")
            batches = dataset_epochs(preprocessor, x, self.model.num_segments, first_read, batch_size=batch_size,
                                     encode_label=self._label_encoder(), by_length=self.group_by_length)
            return batches, labels, fingerprint(first_read.count, labels)
        inputs, labels = self._read(x, y)
        batches = kind.epochs(preprocessor, inputs, labels, batch_size=batch_size, by_length=self.group_by_length,
                              augment=self.augment)
        return batches, labels, fingerprint(inputs, labels)

    def _validation(self, validation_data):
        if validation_data is None:
            return None
        if isinstance(validation_data, tf.data.Dataset):
            return self._dataset(validation_data)
        if isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
            return self._dataset(*validation_data)
        raise ValueError("validation_data must be (texts, labels) or a tf.data.Dataset of (text, label).")

    def _start(self, steps_per_epoch, epochs, labels):
        """The state that lives across `fit` calls: optimizer (moments, iterations, schedule), training loop."""
        core = self.model.core
        total_steps = steps_per_epoch * max(self.epochs, epochs)
        self.state.planned_batches = None if self.schedule == "constant" else total_steps
        optimizer = create_optimizer(
            core.trainable_variables, learning_rate=self.learning_rate, total_steps=total_steps,
            weight_decay=self.weight_decay, warmup_ratio=self.warmup_ratio, schedule=self.schedule,
            clipnorm=clipnorm_per_replica(self.clipnorm), gradient_accumulation_steps=self.gradient_accumulation_steps,
            learning_rate_multipliers=None if self.layer_decay is None else encoder_learning_rate_multipliers(
                self.model, self.layer_decay))
        if any(keras.backend.standardize_dtype(layer.compute_dtype) == "float16" for layer in core.layers):
            # float16 gradients underflow without loss scaling (bfloat16 has float32's range and needs none).
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(core.trainable_variables)
        # Compiled too, so that core.evaluate / core.fit work for users; training runs through TrainingLoop.
        core.compile(optimizer=optimizer, loss=self.task.loss(), weighted_metrics=self.task.fit_metrics())
        weights = None
        if self.class_weight is not None:
            weights = class_weight_vector(self.class_weight, self.task, self._num_outputs(), labels)
        self._loop = TrainingLoop(core, self.task.loss(), self.task.fit_metrics, optimizer, class_weights=weights,
                                  jit_compile=self.jit_compile)

    def reset(self):
        """Starts afresh at the next `fit`: a new optimizer and schedule, epoch count and history at zero (the
        model's weights stay as they are)."""
        self._loop = None
        self._initial_weights = None
        self.state = TrainingState()

    def _run_identity(self, data_sha256):
        """What makes a training run this run: its data, the weights it started from, dropout and settings (JSON)."""
        return {"data_sha256": data_sha256, "initial_weights_sha256": self._initial_weights,
                "dropout": dropout_rates(self.model.core), "learning_rate": float(self.learning_rate),
                "weight_decay": float(self.weight_decay), "warmup_ratio": float(self.warmup_ratio),
                "schedule": self.schedule, "clipnorm": None if self.clipnorm is None else float(self.clipnorm),
                "seed": self.seed, "class_weight": repr(self.class_weight), "group_by_length": self.group_by_length,
                "augment": None if self.augment is None else describe(self.augment)}

    def _backup_store(self, steps_per_epoch, epochs, identity):
        variables = self._loop.variables
        run = {"model": self.model.core.name, "task": self.task.get_config(), "num_segments": self.model.num_segments,
               "variables": [list(v.shape) for v in variables], "steps_per_epoch": steps_per_epoch,
               "batch_size": self.batch_size, "epochs": self.state.epoch + epochs,
               "gradient_accumulation_steps": self.gradient_accumulation_steps, "layer_decay": self.layer_decay,
               **identity}
        return BackupStore(self.backup_dir, run)

    def fit(self, x, y=None, *, validation_data=None, epochs=None, reset=False, unlabeled_texts=None,
            confidence_threshold=DEFAULT_THRESHOLD, self_training_rounds=DEFAULT_ROUNDS,
            self_training_epochs=DEFAULT_ROUND_EPOCHS, self_training_fraction=DEFAULT_FRACTION):
        """Trains on texts and labels for `epochs` more epochs; returns the Keras `History` of this call.

        The optimizer (its moments, iteration count and learning-rate schedule, planned at the first call for the
        trainer's `epochs`), the run's state (`trainer.state`: epochs and steps done, data order, history) and the
        dropout random state live across calls: `Trainer(epochs=2)` then `fit(epochs=1)` twice equals `fit()` once,
        and a call interrupted mid-epoch (Ctrl-C) continues that epoch at the next call. A call that would run past
        the end of the planned schedule (where the learning rate is 0: `fit()` again on a finished run) is refused
        before any work, saying how to go on. `reset=True` (or `trainer.reset()`) starts afresh: a new optimizer
        and schedule, the weights as they are. With `backup_dir`, a call that
        finds a backup of the same run resumes from it (a backup of another run is refused, naming what differs;
        a damaged newest backup is passed over for the one before it, with a warning).

        A loss or weights that become NaN or infinite (a learning rate far too high) stop training (Keras'
        `TerminateOnNaN`): the model's weights are put back to the last good ones (the end of the last finite
        epoch, or the start of this call), the trainer is reset (the next `fit` starts afresh), and a
        `FloatingPointError` says what happened.

        Args:
            x: texts (see `tunekit.inputs.text_batches` for the accepted forms) or a `tf.data.Dataset` of
                `(text, label)` elements; token classification: sentences as lists of words (or plain strings,
                split on whitespace).
            y: labels: class indices or label names (classification), lists of names or a 0/1 matrix
                (multilabel), numbers (regression), one list of tag names or ids per sentence (token
                classification). None when `x` is a dataset.
            validation_data: `(texts, labels)` or a dataset, evaluated after each epoch.
            epochs: overrides the trainer's `epochs` for this call.
            reset: start afresh (new optimizer and schedule, epoch count 0) instead of continuing.
            unlabeled_texts: texts without labels, for self-training (single-label classification): after training
                on `x, y`, the model labels them, and for `self_training_rounds` rounds a student (the model put
                back to its weights at this call's start) trains for `self_training_epochs` epochs on `x, y` plus
                the most confident of those predictions: at most `self_training_fraction` of the texts, shared
                among the classes as in `y`, none with probability below `confidence_threshold`
                (`tunekit.training.self_training`; `trainer.self_training` records each round). Measured: it
                rarely beat plain fine-tuning; check it on validation data (docs/less-labelled-data.md).
            confidence_threshold, self_training_rounds, self_training_epochs, self_training_fraction: see
                `unlabeled_texts`.
        """
        if unlabeled_texts is not None:
            def fit_round(x, y, round_epochs):
                again = round_epochs is not None
                return self.fit(x, y, validation_data=validation_data, epochs=round_epochs if again else epochs,
                                reset=reset or again)

            return self_train(self, x, y, unlabeled_texts, threshold=confidence_threshold, rounds=self_training_rounds,
                              round_epochs=self_training_epochs, fraction=self_training_fraction, fit=fit_round)
        epochs = self.epochs if epochs is None else positive_int(epochs, "epochs")
        strategy = self._strategy()
        chief = is_chief(strategy)
        if reset:
            self.reset()
        state = self.state
        if state.seed is None:
            # Without a seed, one is drawn for the run (and kept in backups), so the data order is still a function
            # of seed and epoch; several workers must agree on it, so they use 0.
            state.seed = self.seed if self.seed is not None else (
                0 if strategy.num_replicas_in_sync > 1 else random.randrange(2**31))
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
        batches, labels, data_sha256 = self._training_batches(x, y)
        steps = int(batches(state.epoch, state.seed).cardinality())
        self._check_schedule(steps, epochs)
        validation = self._validation(validation_data)
        if self.early_stopping_patience is not None and validation is None:
            raise ValueError("early_stopping_patience needs validation_data to watch.")
        guard = DivergenceGuard()
        first_epoch, target = state.epoch, state.epoch + epochs
        state.steps_per_epoch = steps
        with strategy.scope():
            if self._loop is None:
                if self.seed is not None:
                    reseed_dropout(self.model.core, self.seed)
                self._initial_weights = weights_sha256(self.model.core)
                if self.log_dir is not None and chief:  # the logs of another run are refused before any work
                    claim_log_dir(self.log_dir, self._run_identity(data_sha256))
                self._start(steps, epochs, labels)
            loop, core = self._loop, self.model.core
            backup = None
            if self.backup_dir is not None:
                store = self._backup_store(steps, epochs, self._run_identity(data_sha256))
                backup = BackupCallback(store, loop.variables, every=self.backup_every, write=chief, strategy=strategy)
        callbacks = self._callbacks(chief, guard, backup, labels)
        callback_list = keras.callbacks.CallbackList(callbacks, add_progbar=bool(self._verbosity()) and chief,
                                                     model=core, verbose=self._verbosity(), epochs=target, steps=steps)
        core.stop_training = False
        state.diverged = None
        callback_list.on_train_begin()  # a backup of this run, if any, puts the state back here
        while state.epoch < target and not core.stop_training:
            epoch = state.epoch
            callback_list.on_epoch_begin(epoch)
            if state.step == 0:
                loop.reset_metrics()
                state.begin_epoch()
            for batch in batches(epoch, state.seed).skip(state.step):
                callback_list.on_train_batch_begin(state.step)
                state.end_step(*loop.train_step(batch))
                callback_list.on_train_batch_end(state.step - 1, state.logs)
                if guard.diverged or core.stop_training:
                    break
            if guard.diverged or not guard.check_weights(epoch):
                break
            if validation is not None:
                state.logs.update({f"val_{name}": value for name, value in loop.evaluate(validation).items()})
            state.end_epoch()
            callback_list.on_epoch_end(epoch, state.logs)
        state.diverged = guard.diverged
        callback_list.on_train_end(state.logs)
        if guard.diverged:
            self._diverged(guard, first_epoch)
        history = keras.callbacks.History()
        history.set_model(core)
        done = [i for i, epoch in enumerate(state.history.get("epoch", [])) if epoch > first_epoch]
        history.history = {name: [values[i] for i in done] for name, values in state.history.items()
                           if name != "epoch"}
        history.epoch = [state.history["epoch"][i] - 1 for i in done]
        return history

    def _diverged(self, guard, first_epoch):
        """Puts back the last good weights, resets the run, and raises the `FloatingPointError` of a diverged run."""
        guard.restore()
        done = first_epoch + guard.good_epoch
        self.reset()
        raise FloatingPointError(
            f"Training diverged: {guard.diverged} (learning_rate={self.learning_rate!r}, weight_decay="
            f"{self.weight_decay!r}, clipnorm={self.clipnorm!r}). The model's weights were put back to "
            + (f"those after epoch {done}" if done else "those before this fit") + ", and the next fit starts "
            "afresh. Train with a lower learning_rate (e.g. 10 times lower) and clipnorm=1.0, and check the labels "
            "(regression targets far from 0 need scaling).")

    def predict(self, x, *, batch_size=None):
        """Model outputs for raw texts: class probabilities `[N, C]`, label probabilities `[N, L]` or values;
        token classification: a list with one `[words, C]` array of tag probabilities per sentence (a sentence
        without words gets a `[0, C]` array). A few texts cost about what the model itself takes: see
        `tunekit.model.predict_texts`."""
        kind = input_kind(self.task)
        if isinstance(x, tf.data.Dataset) and self._reads_windows():
            inputs, _ = self._dataset_in_memory(x, None, labels_required=False)
            return predict_inputs(self.model, inputs, batch_size=self._batch_size(batch_size))
        if isinstance(x, tf.data.Dataset) and kind.accepts_datasets:
            return self.model.core.predict(self._dataset(x, labels_required=False, batch_size=batch_size), verbose=0)
        inputs = kind.read_unlabelled(x, self.model.num_segments)
        return predict_inputs(self.model, inputs, batch_size=self._batch_size(batch_size))

    def predict_labels(self, x, *, batch_size=None):
        """Predicted labels: names (or class ids) for classification, lists of names for multilabel,
        values for regression, one list of tags per sentence (one tag per word) for token classification."""
        return self.task.decode(self.predict(x, batch_size=batch_size))

    def evaluate(self, x, y=None, *, batch_size=None):
        """Loss and exact task metrics over the whole split.

        Classification: the floats `loss`, `accuracy`, `precision`, `recall`, `f1` (of class 1 when binary, macro
        averages otherwise) and two dicts, `confusion_matrix` (`{"labels": names, "matrix": rows of ints}`, row =
        true class) and `per_class` (`{name: {"precision", "recall", "f1", "support"}}`): not every value is a
        number. Multilabel: subset/hamming accuracy, micro/macro F1. Regression: mse, mae,
        rmse, pearson, spearman. Token classification: `loss` (mean over words), entity-level `precision`,
        `recall`, `f1` (CoNLL's, for IOB tags) and `token_accuracy`.
        """
        if input_kind(self.task).takes_words:  # per word: the loss is the mean over the words of all sentences
            words, tags = self._read(x, y)
            probabilities = predict_inputs(self.model, words, batch_size=self._batch_size(batch_size))
            loss = float(self.task.loss()(np.concatenate(tags), np.concatenate(probabilities)))
            return {"loss": loss, **self.task.evaluate(tags, probabilities)}
        if self._reads_windows():  # long texts read whole: the model's windows, averaged per text
            segments, truth = (self._dataset_in_memory(x, y) if isinstance(x, tf.data.Dataset) else self._read(x, y))
            predictions = predict_inputs(self.model, segments, batch_size=self._batch_size(batch_size))
        else:
            dataset = self._dataset(x, y, batch_size=batch_size)
            truth = np.concatenate([labels.numpy() for _, labels in dataset])
            predictions = predict_batches(self.model.core, dataset)
        loss = float(self.task.loss()(truth, predictions))
        return {"loss": loss, **self.task.evaluate(truth, predictions)}

    def save(self, path, *, include_optimizer=False):
        """Saves the model (see `tunekit.save_model`, also for `include_optimizer`); reload with
        `tunekit.load_model(path)`. Under several workers only the chief writes."""
        return chief_writes(lambda target: save_model(self.model, target, include_optimizer=include_optimizer), path)

    def export(self, path):
        """Exports a serving SavedModel taking raw strings (see `tunekit.export_model`). Under several workers
        only the chief writes."""
        return chief_writes(lambda target: export_model(self.model, target), path)
