"""The training step and loop of `tunekit.Trainer`, run through `tf.distribute` on one device or many.

One path for every case: TensorFlow's default strategy (one device), `MirroredStrategy` (several local devices)
and `MultiWorkerMirroredStrategy` (several processes; Keras 3's own `fit` breaks under it, keras #20585). Every
process builds the same global batch (same data, same seeded order) and each replica takes its slice of it
(`replica_slice`); the per-replica loss is divided by the global batch's denominator and the gradients are summed
across replicas into the global gradient G. Each replica then hands G / N to the Keras optimizer, which sums
them again across the N replicas (its own all-reduce) and clips before that sum: so the optimizer must be built
with `global_clipnorm = clipnorm / N` (`clipnorm_per_replica`), and clipping acts on the global gradient exactly as
in one process.

Embedding gradients arrive as `tf.IndexedSlices` with one entry per token, so a row appears once per occurrence.
Keras optimizers treat such slices entry by entry: the global norm of clipping and Adam's second moment add up
the squares of the entries instead of squaring each row's total, so they depend on how the entries are split
(several workers all-gather their slices and the optimizer's all-reduce repeats each one N times, each holding
1/N). `dense_gradient` sums each row's entries into a dense gradient after the reduction (as the optimizer would
have done in its update anyway), so the optimizer sees the same gradient under any number of workers and computes
exactly what one process training on the global batch computes (tests/distributed: 2 workers end within 1e-5 of
one process after 156 steps).

The task supplies the hooks: its loss (Keras' reduction says whether the mean is over examples or over sample
weights, e.g. the first word-pieces of token classification) and its Keras metrics. Batches are `(inputs,
labels)` or `(inputs, labels, weights)`.

Example:

`Trainer` runs `TrainingLoop(model.core, task.loss(), task.fit_metrics, optimizer)`; any Keras model works (here a
toy one, with a classification model's task):

>>> import keras
>>> toy = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
>>> task = model.task
>>> loop = TrainingLoop(toy, task.loss(), task.fit_metrics, keras.optimizers.AdamW(1e-3))
>>> batch = (np.ones((4, 3), "float32"), np.array([0, 1, 0, 1]))   # (inputs, labels)
>>> loss, metrics = loop.train_step(batch)
>>> sorted(metrics)
['accuracy']
"""

import numpy as np
import tensorflow as tf


def split_batch(batch):
    """`(inputs, labels)` or `(inputs, labels, weights)` -> `(inputs, labels, weights)`; weights of ones
    (one per example) when the batch has none."""
    if len(batch) == 3:
        return batch
    inputs, labels = batch
    return inputs, labels, tf.ones(tf.shape(labels)[:1], tf.float32)


def replica_slice(values):
    """This replica's contiguous share of a global batch (all of it outside a multi-replica strategy)."""
    context = tf.distribute.get_replica_context()
    replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
    replicas = context.num_replicas_in_sync
    size = tf.shape(tf.nest.flatten(values)[0])[0]
    start, end = size * replica // replicas, size * (replica + 1) // replicas
    return tf.nest.map_structure(lambda value: value[start:end], values)


def dense_gradient(gradient):
    """A gradient as a dense tensor: the entries of `tf.IndexedSlices` (one per token of an embedding lookup, so a
    row repeats once per occurrence) summed per row, which is what Keras' clipping norm and Adam's second moment
    need (they square entries, not rows)."""
    return tf.convert_to_tensor(gradient)


def clipnorm_per_replica(clipnorm, strategy=None):
    """The `global_clipnorm` to build the optimizer with, for clipping the global gradient at `clipnorm`."""
    if clipnorm is None:
        return None
    return clipnorm / (strategy or tf.distribute.get_strategy()).num_replicas_in_sync


def unreduced(loss):
    """A Keras loss -> (the same loss without reduction, True when its mean is over the sample weights)."""
    config = loss.get_config()
    return type(loss).from_config({**config, "reduction": None}), config.get("reduction") == "mean_with_sample_weight"


def predict_batches(model, dataset):
    """`model`'s outputs over a dataset of `(inputs, ...)` batches, concatenated (numpy); works under any strategy
    (Keras' `predict` is not used: it breaks under MultiWorkerMirroredStrategy)."""
    predict = tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)
    return np.concatenate([predict(batch[0]).numpy() for batch in dataset])


class TrainingLoop:
    """Training step, validation and prediction of a Keras model under the current `tf.distribute` strategy.

    Create it in the strategy's scope (its metrics get mirrored variables).

    Args:
        model: the Keras model to train (its variables created in the same strategy's scope).
        loss: a Keras loss object (its `reduction` decides the denominator of the batch loss).
        make_metrics: a function returning fresh Keras metrics (running metrics of training and validation).
        optimizer: a built Keras optimizer, its `global_clipnorm` from `clipnorm_per_replica`.
        class_weights: None or float32 weights per class id, multiplied into the sample weights.
        jit_compile: compile each replica's forward and backward pass with XLA.
    """

    def __init__(self, model, loss, make_metrics, optimizer, *, class_weights=None, jit_compile=False):
        self.model = model
        self.strategy = tf.distribute.get_strategy()
        self.loss, self.mean_over_weights = unreduced(loss)
        self.make_metrics = make_metrics
        self.metrics = make_metrics()
        self.optimizer = optimizer
        self.class_weights = None if class_weights is None else tf.constant(class_weights, tf.float32)
        self.trainable = list(model.trainable_variables)
        self._with_gradients = None
        replica_step = tf.function(self._replica_step, jit_compile=True) if jit_compile else self._replica_step
        self._replica = replica_step
        self._train = tf.function(self._train_step, reduce_retracing=True)
        self._predict = tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)

    @property
    def variables(self):
        """Everything a backup must hold: the model's variables (with the dropout random states), the
        optimizer's, and the running metrics'."""
        return [*self.model.variables, *self.optimizer.variables,
                *(variable for metric in self.metrics for variable in metric.variables)]

    def _weights(self, labels, weights):
        if self.class_weights is None:
            return weights
        return weights * tf.gather(self.class_weights, tf.cast(labels, tf.int32))

    def _denominator(self, weights):
        if self.mean_over_weights:
            return tf.maximum(tf.reduce_sum(weights), 1e-12)
        return tf.cast(tf.size(weights), tf.float32)

    def _replica_step(self, inputs, labels, weights, denominator):
        inputs, labels, weights = replica_slice((inputs, labels, weights))
        with tf.GradientTape() as tape:
            predictions = self.model(inputs, training=True)
            loss = tf.reduce_sum(self.loss(labels, predictions) * weights) / denominator
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, self.trainable)
        for metric in self.metrics:
            metric.update_state(labels, predictions, sample_weight=weights)
        # Variables without a gradient (an unused pooler) are left out, as Keras' fit does.
        self._with_gradients = [i for i, gradient in enumerate(gradients) if gradient is not None]
        context = tf.distribute.get_replica_context()
        # Embedding slices are all-gathered (token rows, not the vocabulary) and summed per row afterwards.
        loss, *gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, [loss, *(gradients[i] for i in self._with_gradients)])
        replicas = context.num_replicas_in_sync
        self.optimizer.apply([dense_gradient(gradient) / replicas for gradient in gradients],
                             [self.trainable[i] for i in self._with_gradients])
        return loss

    def _train_step(self, batch):
        inputs, labels, weights = split_batch(batch)
        weights = self._weights(labels, weights)
        loss = self.strategy.run(self._replica, args=(inputs, labels, weights, self._denominator(weights)))
        return self.strategy.experimental_local_results(loss)[0], {m.name: m.result() for m in self.metrics}

    def train_step(self, batch):
        """One optimizer step on a global batch -> (its loss as a float, running metrics as floats)."""
        loss, metrics = self._train(batch)
        return float(loss), {name: float(value) for name, value in metrics.items()}

    def reset_metrics(self):
        for metric in self.metrics:
            metric.reset_state()

    def evaluate(self, dataset):
        """Loss (reduced like the training loss) and the task's Keras metrics over a dataset of batches."""
        metrics = self.make_metrics()
        total, denominator = 0.0, 0.0
        for batch in dataset:
            inputs, labels, weights = split_batch(batch)
            predictions = self._predict(inputs)
            total += float(tf.reduce_sum(self.loss(labels, predictions) * weights))
            denominator += float(self._denominator(weights))
            for metric in metrics:
                metric.update_state(labels, predictions, sample_weight=weights)
        return {"loss": total / max(denominator, 1e-12), **{m.name: float(m.result()) for m in metrics}}
