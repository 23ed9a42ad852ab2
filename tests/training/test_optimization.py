import keras
import numpy as np
import pytest

from tunekit.backbones.depth import depth
from tunekit.training.optimization import LayerwiseAdamW, check_layer_decay, create_optimizer


@pytest.mark.parametrize("learning_rate, error, match", [
    ("fast", TypeError, r"learning_rate must be a number such as 3e-5, got str 'fast'"),
    (True, TypeError, "got bool"),
    (None, TypeError, "got NoneType"),
    (-1e-5, ValueError, r"learning_rate must be in \(0, 1\], got -1e-05"),
    (float("inf"), ValueError, "learning_rate must be a finite number such as 3e-5, got inf"),
    (float("nan"), ValueError, "learning_rate must be a finite number"),
    (1e6, ValueError, r"learning_rate must be in \(0, 1\], got 1000000.0: fine-tuning BERT uses 1e-5..1e-4"),
])
def test_learning_rate_must_be_a_positive_number(learning_rate, error, match):
    with pytest.raises(error, match=match):
        create_optimizer([], learning_rate=learning_rate, total_steps=10)


@pytest.mark.parametrize("setting, error, match", [
    ({"weight_decay": float("nan")}, ValueError, "weight_decay must be a finite number such as 0.01, got nan"),
    ({"weight_decay": float("inf")}, ValueError, "weight_decay must be a finite number"),
    ({"weight_decay": -0.01}, ValueError, r"weight_decay must be >= 0 \(0.01 is usual"),
    ({"weight_decay": "0.01"}, TypeError, r"weight_decay must be a number such as 0.01, got str '0.01' \(a string: "
                                          "drop the quotes\)"),
    ({"clipnorm": 0.0}, ValueError, "clipnorm must be a positive number such as 1.0"),
    ({"clipnorm": -1.0}, ValueError, "clipnorm must be a positive number"),
    ({"clipnorm": float("nan")}, ValueError, "clipnorm must be a finite number such as 1.0, got nan"),
    ({"warmup_ratio": "0.1"}, TypeError, "warmup_ratio must be a number such as 0.1, got str"),
])
def test_settings_that_cannot_train_are_refused(setting, error, match):
    with pytest.raises(error, match=match):
        create_optimizer([], learning_rate=3e-5, total_steps=10, **setting)


def test_layerwise_adamw_with_multipliers_of_one_computes_keras_adamw():
    shapes = [(4, 3), (3,), (3, 2)]
    results = []
    for multipliers in (None, [1.0] * len(shapes)):
        variables = [keras.Variable(np.ones(shape, np.float32)) for shape in shapes]
        optimizer = create_optimizer(variables, learning_rate=1e-2, total_steps=5, weight_decay=0.1, clipnorm=1.0,
                                     learning_rate_multipliers=multipliers)
        steps = np.random.default_rng(1)
        for _ in range(5):
            optimizer.apply([steps.normal(size=shape).astype(np.float32) for shape in shapes], variables)
        results.append([v.numpy() for v in variables])
    assert isinstance(optimizer, LayerwiseAdamW)
    for keras_adamw, layerwise in zip(*results):
        np.testing.assert_allclose(layerwise, keras_adamw, rtol=0, atol=1e-7)
    assert np.abs(results[0][0] - 1.0).max() > 1e-3  # and they did move


def test_weight_decay_follows_each_variables_learning_rate():
    variables = [keras.Variable(np.full((2, 2), 2.0, np.float32)), keras.Variable(np.full((2, 2), 2.0, np.float32))]
    optimizer = LayerwiseAdamW([0.25, 1.0], learning_rate=0.1, weight_decay=0.5)
    optimizer.apply([np.zeros((2, 2), np.float32)] * 2, variables)  # no gradient: only the decay moves them
    np.testing.assert_allclose([float(v[0, 0]) for v in variables], [2.0 - 2.0 * 0.5 * 0.1 * 0.25, 2.0 - 2.0 * 0.5 * 0.1],
                               rtol=1e-6)


@pytest.mark.parametrize("layer_decay", [0, 1.5, -0.5, True, "0.9"])
def test_layer_decay_must_be_in_zero_one(layer_decay):
    with pytest.raises(ValueError, match=r"layer_decay must be a number in \(0, 1\]"):
        check_layer_decay(layer_decay)


def test_block_depths_of_native_model_garden_and_lora_names():
    assert [depth(name, 12) for name in (
        "encoder/word_embeddings/embeddings", "encoder/embeddings_layer_norm/gamma",
        "bert_encoder/transformer_block_0/query/kernel", "transformer.layer_11.self_attention.query.kernel",
        "lora_encoder/lora_4_value_a", "encoder/pooler/kernel", "pooler_transform.kernel",
    )] == [0, 0, 1, 12, 5, 13, 13]
