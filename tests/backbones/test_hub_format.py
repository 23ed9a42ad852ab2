"""Tests of save_hub_encoder: the SavedModel has the interface of a published TF Hub BERT encoder."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

from tunekit.backbones.bert import BertEncoder
from tunekit.backbones.hub_format import save_hub_encoder

VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_config):
    """(native encoder, loaded SavedModel, vocab file) for one export, shared by the tests of this module."""
    folder = tmp_path_factory.mktemp("hub")
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(VOCABULARY) + "\n")
    encoder = BertEncoder(**tiny_config)
    export_dir = save_hub_encoder(encoder, folder / "encoder", vocab_file=vocab_file, do_lower_case=True)
    return encoder, hub.load(export_dir), vocab_file


def as_tensors(inputs):
    return {key: tf.constant(value) for key, value in inputs.items()}


@pytest.mark.parametrize("length, batch_size", [(5, 3), (12, 4)])
def test_loaded_outputs_equal_native_outputs(exported, make_inputs, length, batch_size):
    encoder, loaded, _ = exported
    inputs = make_inputs(length, batch_size)
    expected = encoder(inputs, training=False)
    outputs = loaded(as_tensors(inputs), training=False)

    assert set(outputs) == {"pooled_output", "sequence_output", "encoder_outputs", "default"}
    assert outputs["sequence_output"].shape == (batch_size, length, 32)
    assert len(outputs["encoder_outputs"]) == 2
    for key in ("pooled_output", "sequence_output"):
        assert np.abs(outputs[key].numpy() - np.asarray(expected[key])).max() <= 1e-5
    for actual, native in zip(outputs["encoder_outputs"], expected["encoder_outputs"]):
        assert np.abs(actual.numpy() - np.asarray(native)).max() <= 1e-5
    np.testing.assert_array_equal(outputs["default"], outputs["pooled_output"])
    np.testing.assert_array_equal(loaded(as_tensors(inputs))["sequence_output"], outputs["sequence_output"])


def test_dropout_acts_only_with_training_true(exported, make_inputs):
    _, loaded, _ = exported
    inputs = as_tensors(make_inputs(6))
    inference = loaded(inputs, training=False)["sequence_output"].numpy()
    first = loaded(inputs, training=True)["sequence_output"].numpy()
    second = loaded(inputs, training=True)["sequence_output"].numpy()
    assert np.abs(first - inference).max() > 1e-3
    assert np.abs(first - second).max() > 1e-3  # the seed state advances between calls


def test_exposes_variables_for_fine_tuning(exported, make_inputs):
    encoder, loaded, _ = exported
    assert len(loaded.trainable_variables) == len(encoder.trainable_weights)
    assert len(loaded.variables) == len(encoder.variables)
    assert all(isinstance(variable, tf.Variable) for variable in loaded.variables)
    seed_states = [variable for variable in loaded.variables if not variable.trainable]
    assert len(seed_states) == 7 and all(variable.dtype == tf.int64 for variable in seed_states)
    assert list(loaded.regularization_losses) == []

    with tf.GradientTape() as tape:
        outputs = loaded(as_tensors(make_inputs(6)), training=True)
        loss = tf.reduce_sum(outputs["pooled_output"]) + tf.reduce_sum(outputs["sequence_output"] ** 2)
    gradients = tape.gradient(loss, list(loaded.trainable_variables))
    assert all(gradient is not None for gradient in gradients)


def test_vocabulary_asset_and_lower_case_flag(exported):
    _, loaded, vocab_file = exported
    asset_path = loaded.vocab_file.asset_path.numpy().decode()
    assert asset_path != str(vocab_file)
    assert open(asset_path).read().split() == VOCABULARY
    assert loaded.do_lower_case.dtype == tf.bool and bool(loaded.do_lower_case.numpy()) is True


def test_serving_signature(exported, make_inputs):
    encoder, loaded, _ = exported
    inputs = make_inputs(7)
    outputs = loaded.signatures["serving_default"](**as_tensors(inputs))
    assert set(outputs) == {"pooled_output", "sequence_output", "default", "encoder_outputs_0", "encoder_outputs_1"}
    assert np.abs(outputs["sequence_output"].numpy() - np.asarray(encoder(inputs)["sequence_output"])).max() <= 1e-5
    np.testing.assert_array_equal(outputs["encoder_outputs_1"], outputs["sequence_output"])


def test_replaces_existing_folder_atomically_and_without_extras(tmp_path, tiny_config, make_inputs):
    export_dir = tmp_path / "encoder"
    encoder = BertEncoder(**tiny_config)
    save_hub_encoder(BertEncoder(**tiny_config), export_dir)  # an earlier export, which holds tunekit.json
    (export_dir / "stale.txt").write_text("added by the user")
    with pytest.raises(ValueError, match=r"also holds files tunekit did not write \(stale.txt\)"):
        save_hub_encoder(encoder, export_dir)  # a file its manifest does not list is never deleted
    (export_dir / "stale.txt").unlink()

    assert save_hub_encoder(encoder, export_dir) == str(export_dir)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["encoder"]  # no temporary siblings left
    assert (export_dir / "saved_model.pb").is_file()
    loaded = tf.saved_model.load(str(export_dir))
    assert not hasattr(loaded, "vocab_file") and not hasattr(loaded, "do_lower_case")
    inputs = make_inputs(4)
    assert np.abs(loaded(as_tensors(inputs), training=False)["pooled_output"].numpy()
                  - np.asarray(encoder(inputs)["pooled_output"])).max() <= 1e-5


def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path, tiny_config):
    export_dir = tmp_path / "encoder"
    export_dir.mkdir()
    (export_dir / "notes.txt").write_text("the user's file")
    with pytest.raises(ValueError, match=r"tunekit did not write \(notes.txt\)"):
        save_hub_encoder(BertEncoder(**tiny_config), export_dir)
    assert [path.name for path in export_dir.iterdir()] == ["notes.txt"]


def test_missing_vocab_file_fails_before_touching_export_dir(tmp_path, tiny_config):
    export_dir = tmp_path / "encoder"
    export_dir.mkdir()
    (export_dir / "saved_model.pb").write_text("an earlier export")
    with pytest.raises(ValueError, match="vocab_file .*absent.txt' is not a file"):
        save_hub_encoder(BertEncoder(**tiny_config), export_dir, vocab_file=tmp_path / "absent.txt")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["encoder"]
    assert (export_dir / "saved_model.pb").read_text() == "an earlier export"


def test_mixed_precision_encoder_exports_float32_outputs(tmp_path, tiny_config, make_inputs):
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        encoder = BertEncoder(**tiny_config)
    finally:
        keras.mixed_precision.set_dtype_policy(policy)
    loaded = tf.saved_model.load(save_hub_encoder(encoder, tmp_path / "encoder"))
    inputs = as_tensors(make_inputs(5))
    outputs = loaded(inputs, training=False)
    assert outputs["sequence_output"].dtype == tf.float32 and outputs["pooled_output"].dtype == tf.float32
    # It computes in float32: equal to a float32 encoder with the same weights, not just cast at the end.
    float32 = BertEncoder(**tiny_config, dtype="float32")
    float32.build()
    float32.set_weights(encoder.get_weights())
    expected = float32(inputs, training=False)["sequence_output"].numpy()
    np.testing.assert_allclose(outputs["sequence_output"].numpy(), expected, atol=1e-5)
    assert encoder.compute_dtype == "bfloat16"  # the encoder given is left as it is
