"""Tests of the native Keras 3 BertEncoder: shapes, masking, dropout, serialisation, mixed precision, XLA."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tunekit.backbones.bert import BertEncoder
from tunekit.preprocessing.packing import MODEL_INPUT_KEYS


def symbolic_inputs():
    return {key: keras.Input((None,), dtype="int32", name=key) for key in MODEL_INPUT_KEYS}


def valid_tokens(inputs, values):
    return np.asarray(values, "float32")[inputs["input_mask"].astype(bool)]


@pytest.fixture
def restore_dtype_policy():
    policy = keras.mixed_precision.global_policy()
    yield
    keras.mixed_precision.set_dtype_policy(policy)


@pytest.mark.parametrize("length", [5, 11])
def test_outputs_have_hub_encoder_structure_for_any_length(tiny_config, make_inputs, length):
    encoder = BertEncoder(**tiny_config)
    outputs = encoder(make_inputs(length))

    assert set(outputs) == {"pooled_output", "sequence_output", "encoder_outputs"}
    assert tuple(outputs["pooled_output"].shape) == (3, 32)
    assert tuple(outputs["sequence_output"].shape) == (3, length, 32)
    assert [tuple(output.shape) for output in outputs["encoder_outputs"]] == [(3, length, 32)] * 2
    np.testing.assert_array_equal(outputs["encoder_outputs"][-1], outputs["sequence_output"])
    assert not np.allclose(outputs["encoder_outputs"][0], outputs["encoder_outputs"][1])


def test_padded_positions_do_not_affect_valid_tokens(tiny_config, make_inputs):
    encoder = BertEncoder(**tiny_config)
    inputs = make_inputs(8)
    reference = encoder(inputs)

    changed = {key: value.copy() for key, value in inputs.items()}
    padding = inputs["input_mask"] == 0
    changed["input_word_ids"][padding] = 42
    changed["input_type_ids"][padding] = 1
    outputs = encoder(changed)
    np.testing.assert_allclose(valid_tokens(inputs, outputs["sequence_output"]),
                               valid_tokens(inputs, reference["sequence_output"]), atol=1e-6)
    np.testing.assert_allclose(outputs["pooled_output"], reference["pooled_output"], atol=1e-6)

    # More padding (dynamic padding to a longer batch) changes nothing either.
    longer = {key: np.pad(value, ((0, 0), (0, 5))) for key, value in inputs.items()}
    outputs = encoder(longer)
    np.testing.assert_allclose(valid_tokens(longer, outputs["sequence_output"]),
                               valid_tokens(inputs, reference["sequence_output"]), atol=1e-5)


def test_dropout_only_when_training(tiny_config, make_inputs):
    encoder = BertEncoder(**tiny_config)
    inputs = make_inputs(6)
    inference = encoder(inputs, training=False)["sequence_output"]
    np.testing.assert_array_equal(encoder(inputs)["sequence_output"], inference)
    first = encoder(inputs, training=True)["sequence_output"]
    second = encoder(inputs, training=True)["sequence_output"]
    assert np.abs(np.asarray(first) - np.asarray(inference)).max() > 1e-3
    assert np.abs(np.asarray(first) - np.asarray(second)).max() > 1e-3


def test_every_trainable_weight_gets_a_gradient(tiny_config, make_inputs):
    encoder = BertEncoder(**tiny_config)
    inputs = make_inputs(6)
    encoder.build()
    with tf.GradientTape() as tape:
        outputs = encoder(inputs, training=True)
        loss = tf.reduce_sum(outputs["pooled_output"]) + tf.reduce_sum(outputs["sequence_output"] ** 2)
    gradients = tape.gradient(loss, [weight.value for weight in encoder.trainable_weights])
    assert len(gradients) == 3 + 2 + 2 * 16 + 2  # 3 embeddings, embedding LayerNorm, 2 blocks, pooler
    assert all(gradient is not None for gradient in gradients)


def test_get_config_round_trip(tiny_config, make_inputs):
    encoder = BertEncoder(**tiny_config, dropout=0.2, attention_dropout=0.0, layer_norm_epsilon=1e-6)
    encoder.build()
    config = encoder.get_config()
    assert {key: config[key] for key in tiny_config} == tiny_config
    assert (config["dropout"], config["attention_dropout"], config["layer_norm_epsilon"]) == (0.2, 0.0, 1e-6)

    clone = BertEncoder.from_config(config)
    assert clone.get_config() == config
    clone.build()
    clone.set_weights(encoder.get_weights())
    inputs = make_inputs(7)
    np.testing.assert_allclose(clone(inputs)["sequence_output"], encoder(inputs)["sequence_output"], atol=1e-6)


def test_functional_model_gets_distinct_symbolic_outputs(tiny_config):
    encoder = BertEncoder(**tiny_config)
    outputs = encoder(symbolic_inputs())
    tensors = [outputs["pooled_output"], outputs["sequence_output"], *outputs["encoder_outputs"]]
    assert len({id(tensor) for tensor in tensors}) == 4
    assert outputs["sequence_output"].shape == (None, None, 32)
    assert outputs["pooled_output"].shape == (None, 32)


def test_keras_file_save_and_load_gives_identical_outputs(tiny_config, make_inputs, tmp_path):
    inputs = symbolic_inputs()
    outputs = BertEncoder(**tiny_config)(inputs)
    model = keras.Model(inputs, {"pooled": outputs["pooled_output"], "tokens": outputs["sequence_output"]})
    model.save(tmp_path / "encoder.keras")
    loaded = keras.saving.load_model(tmp_path / "encoder.keras")

    for length in (5, 9):
        batch = make_inputs(length)
        expected, actual = model.predict(batch, verbose=0), loaded.predict(batch, verbose=0)
        for key in ("pooled", "tokens"):
            assert np.abs(actual[key] - expected[key]).max() <= 1e-6


def test_jit_compiled_model_matches_eager(tiny_config, make_inputs):
    inputs = symbolic_inputs()
    model = keras.Model(inputs, BertEncoder(**tiny_config)(inputs)["sequence_output"])
    model.compile(jit_compile=True)
    for length in (4, 10):
        batch = make_inputs(length)
        np.testing.assert_allclose(model.predict(batch, verbose=0), model(batch), atol=1e-5)


@pytest.mark.parametrize("policy, compute_dtype", [("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")])
def test_mixed_precision_computes_in_low_precision(tiny_config, make_inputs, restore_dtype_policy, policy,
                                                   compute_dtype):
    full_precision = BertEncoder(**tiny_config)
    full_precision.build()
    keras.mixed_precision.set_dtype_policy(policy)
    encoder = BertEncoder(**tiny_config)
    encoder.build()
    encoder.set_weights(full_precision.get_weights())
    inputs = make_inputs(8)

    outputs = encoder(inputs)
    assert outputs["sequence_output"].dtype == compute_dtype
    assert outputs["pooled_output"].dtype == compute_dtype
    assert all(weight.dtype == "float32" for weight in encoder.trainable_weights)
    # Close to the float32 result (token vectors are LayerNorm-ed, so values are O(1)), and masking still works.
    np.testing.assert_allclose(valid_tokens(inputs, outputs["sequence_output"]),
                               valid_tokens(inputs, full_precision(inputs)["sequence_output"]), atol=0.15)


def test_rejects_inconsistent_configuration_and_overlong_input(tiny_config, make_inputs):
    with pytest.raises(ValueError, match="hidden_size .30. must be a multiple of num_heads .4."):
        BertEncoder(**{**tiny_config, "hidden_size": 30})
    with pytest.raises(ValueError, match="Sequence length 17 exceeds max_sequence_length 16"):
        BertEncoder(**tiny_config)(make_inputs(17))
