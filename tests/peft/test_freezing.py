"""freeze_layers: which variables train, that no gradient reaches the frozen layers, and the refusals."""

import numpy as np
import pytest
import tensorflow as tf

import tunekit as tk
from tunekit.peft import enable_lora, freeze_layers


def snapshot(variables):
    return {variable.path: variable.numpy().copy() for variable in variables}


def test_only_the_layers_above_the_frozen_ones_and_the_head_change(new_backbone, sentiment_data):
    backbone = freeze_layers(new_backbone(), 1)
    model = tk.attach_head(backbone, "classification", labels=["neg", "pos"], seed=0)
    encoder = backbone.encoder
    frozen = [*encoder.word_embeddings.weights, *encoder.position_embeddings.weights,
              *encoder.token_type_embeddings.weights, *encoder.embeddings_layer_norm.weights,
              *encoder.transformer_blocks[0].weights]
    trained = [*encoder.transformer_blocks[1].weights, *model.core.get_layer("logits").weights]
    assert {v.path for v in model.core.trainable_variables} == {v.path for v in trained + encoder.pooler.weights}
    before_frozen, before_trained = snapshot(frozen), snapshot(trained)
    tk.Trainer(model, learning_rate=1e-2, epochs=1, batch_size=16, verbose=0, seed=0).fit(*sentiment_data)
    assert all(np.array_equal(before_frozen[v.path], v.numpy()) for v in frozen)
    assert all(not np.array_equal(before_trained[v.path], v.numpy()) for v in trained)


def test_no_gradient_flows_below_the_lowest_trainable_layer(new_backbone):
    encoder = new_backbone().encoder
    inputs = {"input_word_ids": tf.constant([[2, 9, 10, 3]]), "input_mask": tf.ones([1, 4], tf.int32),
              "input_type_ids": tf.zeros([1, 4], tf.int32)}
    bottom_kernel = encoder.transformer_blocks[0].query.kernel.value

    def gradient_of_bottom_kernel():
        with tf.GradientTape() as tape:
            tape.watch(bottom_kernel)  # watched explicitly: only a cut graph gives no gradient
            loss = tf.reduce_sum(encoder(inputs, training=True)["sequence_output"])
        return tape.gradient(loss, bottom_kernel)

    assert gradient_of_bottom_kernel() is not None
    encoder.freeze_bottom(1)
    assert gradient_of_bottom_kernel() is None


def test_freezing_every_layer_leaves_pooler_and_head(new_backbone):
    backbone = freeze_layers(new_backbone(), 2)
    model = tk.attach_head(backbone, "classification", num_classes=2, pooling="pooled")
    assert sorted(v.path for v in model.core.trainable_variables) == [
        "encoder/pooler/bias", "encoder/pooler/kernel", "logits/bias", "logits/kernel"]


def test_freezing_survives_save_and_load(new_backbone, tmp_path):
    model = tk.attach_head(freeze_layers(new_backbone(), 1), "classification", num_classes=2)
    tk.save_model(model, tmp_path / "model")
    loaded = tk.load_model(tmp_path / "model")
    assert loaded.encoder.num_frozen_layers == 1
    assert len(loaded.core.trainable_variables) == len(model.core.trainable_variables)


@pytest.mark.parametrize("num_layers", [3, -1, True, 1.0])
def test_freezing_more_layers_than_exist_is_refused(new_backbone, num_layers):
    backbone = new_backbone()
    with pytest.raises(ValueError, match="this encoder has 2 transformer layers"):
        freeze_layers(backbone, num_layers)
    assert backbone.encoder.num_frozen_layers is None
    assert all(variable.trainable for variable in backbone.encoder.weights)


def test_freezing_a_lora_backbone_or_another_object_is_refused(new_backbone):
    with pytest.raises(TypeError, match="LoRA encoder's base is frozen already"):
        freeze_layers(enable_lora(new_backbone()), 1)
    with pytest.raises(TypeError, match="needs a Backbone or a TextModel"):
        freeze_layers("minilm-l6", 1)


def test_tf_hub_encoder_freezes_by_layer_name(backbone):
    freeze_layers(backbone, 1)
    frozen = {v.name for v in backbone.encoder.weights if not v.trainable and "seed_generator" not in v.name}
    trainable = {v.name for v in backbone.encoder.trainable_weights}
    assert frozen and all("transformer_block_1" not in name and "pooler" not in name for name in frozen)
    assert any("embeddings" in name for name in frozen) and any("transformer_block_0" in name for name in frozen)
    assert trainable and all("transformer_block_1" in name or "pooler" in name for name in trainable)


def test_tf_hub_encoder_without_per_layer_names_is_refused(tmp_path):
    from tunekit.backbones.hub_encoder import HubEncoder

    # An encoder whose one weight is shared by every layer (as in ALBERT) has no layer to freeze separately.
    module = tf.__internal__.tracking.AutoTrackable()
    shared = tf.Variable(tf.ones([4, 4]), name="shared/kernel")
    spec = {key: tf.TensorSpec([None, None], tf.int32) for key in ("input_word_ids", "input_mask", "input_type_ids")}

    @tf.function(input_signature=[spec, tf.TensorSpec([], tf.bool)])
    def call(inputs, training):
        vectors = tf.one_hot(inputs["input_word_ids"] % 4, 4) @ shared
        return {"pooled_output": vectors[:, 0], "sequence_output": vectors, "encoder_outputs": [vectors, vectors]}

    module.__call__ = call
    module.variables = module.trainable_variables = [shared]
    tf.saved_model.save(module, str(tmp_path / "shared"))
    encoder = HubEncoder(str(tmp_path / "shared"))
    backbone = tk.Backbone(encoder=encoder, preprocessor=None, name="shared")
    with pytest.raises(ValueError, match="not named per transformer block"):
        freeze_layers(backbone, 1)
    assert all(variable.trainable for variable in encoder.trainable_weights) and encoder.trainable_weights
