"""The training step of `tunekit.training.engine` computes what Keras' AdamW computes on the dense gradient, so that
the embedding rows (sparse `tf.IndexedSlices` gradients, a row repeated once per token) train the same whatever the
number of workers (the multi-worker comparison itself is in test_launcher.py)."""

import keras
import numpy as np
import tensorflow as tf

from tunekit.training.engine import TrainingLoop
from tunekit.training.optimization import create_optimizer


def tiny_model():
    keras.utils.set_random_seed(1)
    ids = keras.Input(shape=(None,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(6, 4)(ids))
    return keras.Model(ids, keras.layers.Dense(2, activation="softmax")(pooled))


def optimizer_for(model, clipnorm):
    return create_optimizer(model.trainable_variables, learning_rate=0.05, total_steps=10, warmup_ratio=0.0,
                            clipnorm=clipnorm)


def test_a_step_equals_adamw_on_the_dense_gradient_when_tokens_repeat():
    """Token 1 appears 4 times: Keras squares the 4 entries of the sparse gradient one by one (clipping norm and
    Adam's second moment), which the engine must not let happen. Clipping is on (norm 0.05 < the gradient's)."""
    ids = tf.constant([[1, 1, 2], [1, 3, 1]])
    labels = tf.constant([1, 0])
    batch = (ids, labels)
    loss = keras.losses.SparseCategoricalCrossentropy()

    trained = tiny_model()
    loop = TrainingLoop(trained, loss, lambda: [], optimizer_for(trained, clipnorm=0.05))

    reference = tiny_model()
    optimizer = optimizer_for(reference, clipnorm=0.05)
    with tf.GradientTape() as tape:
        first = loss(labels, reference(ids, training=True))
    gradient = tape.gradient(first, reference.trainable_variables)[0]
    assert isinstance(gradient, tf.IndexedSlices) and len(gradient.indices) == 6
    assert float(tf.linalg.global_norm([tf.convert_to_tensor(gradient)])) > 0.05  # clipping acts

    for _ in range(5):
        loop.train_step(batch)
        with tf.GradientTape() as tape:
            value = loss(labels, reference(ids, training=True))
        gradients = tape.gradient(value, reference.trainable_variables)
        optimizer.apply([tf.convert_to_tensor(g) for g in gradients], reference.trainable_variables)

    for mine, expected in zip(trained.weights, reference.weights):
        np.testing.assert_allclose(mine.numpy(), expected.numpy(), rtol=0, atol=1e-6)
    # The embedding rows moved: the comparison is not between two untrained models.
    assert float(np.abs(trained.weights[0].numpy() - tiny_model().weights[0].numpy()).max()) > 0.05
