"""LoRA: what trains, merge and export at the cost of the plain model, and the refusals."""

import numpy as np
import pytest
import tensorflow as tf

import tunekit as tk
from tunekit.peft import (
    PROJECTIONS,
    LoraEncoder,
    enable_lora,
    freeze_layers,
    merge_lora,
)

TEXTS = ["the movie was very good and great .", "a dull , boring plot", "the actor is fine"]


def randomize_adapters(model, seed=0):
    """Gives every LoRA factor random values (B starts at zero, which would make merging trivially exact)."""
    rng = np.random.default_rng(seed)
    for a, b in model.encoder.factors.values():
        a.assign(rng.normal(0, 0.3, a.shape).astype("float32"))
        b.assign(rng.normal(0, 0.3, b.shape).astype("float32"))


def probabilities(model, texts=TEXTS):
    return np.asarray(model(tf.constant(texts)))


def test_only_adapters_and_head_train_and_the_base_stays(new_backbone, sentiment_data):
    backbone = new_backbone()
    base_before = {v.path: v.numpy().copy() for v in backbone.encoder.weights}
    model = tk.attach_head(enable_lora(backbone, rank=4, targets=("query", "value"), seed=0), "classification",
                           labels=["neg", "pos"], seed=0)
    factors = [variable for pair in model.encoder.factors.values() for variable in pair]
    assert len(factors) == 2 * 2 * 2  # 2 layers x (query, value) x (A, B)
    head = model.core.get_layer("logits").weights
    assert {v.path for v in model.core.trainable_variables} == {v.path for v in factors + head}
    factors_before = [v.numpy().copy() for v in factors]
    tk.Trainer(model, learning_rate=1e-2, epochs=1, batch_size=16, verbose=0, seed=0).fit(*sentiment_data)
    assert all(np.array_equal(base_before[v.path], v.numpy()) for v in backbone.encoder.weights)
    assert all(not np.array_equal(before, v.numpy()) for before, v in zip(factors_before, factors))


def test_fresh_adapters_do_not_change_the_base_model(new_backbone):
    backbone = new_backbone()
    plain = tk.attach_head(backbone, "classification", num_classes=2, seed=0)
    lora = tk.attach_head(enable_lora(backbone, targets="all"), "classification", num_classes=2, seed=0)
    assert len(lora.encoder.factors) == 2 * len(PROJECTIONS)
    np.testing.assert_allclose(probabilities(lora), probabilities(plain), atol=1e-6)


def test_merged_model_and_its_export_predict_like_the_adapters(new_backbone, tmp_path):
    model = tk.attach_head(enable_lora(new_backbone(), rank=2, alpha=4, targets="all"), "classification",
                           labels=["neg", "pos"], seed=0)
    randomize_adapters(model)
    expected = probabilities(model)
    merged = merge_lora(model)
    assert not isinstance(merged.encoder, LoraEncoder)
    assert len(merged.core.weights) == len(model.core.weights) - 2 * len(model.encoder.factors)
    np.testing.assert_allclose(probabilities(merged), expected, atol=1e-5)
    assert np.abs(probabilities(merged) - probabilities(tk.attach_head(new_backbone(), "classification",
                                                                        num_classes=2, seed=0))).max() > 1e-3
    tk.export_model(merged, tmp_path / "serving")
    serve = tf.saved_model.load(str(tmp_path / "serving")).signatures["serving_default"]
    served = serve(text=tf.constant(TEXTS))
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)
    assert [label.decode() for label in served["label"].numpy()] == [["neg", "pos"][i] for i in expected.argmax(-1)]


@pytest.mark.parametrize("options, message", [
    ({"rank": 0}, "rank must be an int >= 1"),
    ({"rank": 2.5}, "rank must be an int >= 1"),
    ({"alpha": 0}, "alpha must be a number > 0"),
    ({"alpha": -8}, "alpha must be a number > 0"),
    ({"targets": ("query", "dense")}, (r"Unknown LoRA target\(s\) \['dense'\]; valid names: \['query', 'key', "
                                       r"'value', 'attention_output', 'intermediate', 'output_dense'\]")),
    ({"targets": []}, "valid names"),
    ({"dropout": 1.0}, "dropout must be in"),
])
def test_bad_lora_settings_are_refused_and_change_nothing(new_backbone, options, message):
    backbone = new_backbone()
    with pytest.raises(ValueError, match=message):
        enable_lora(backbone, **options)
    assert backbone.encoder.trainable and all(v.trainable for v in backbone.encoder.weights)


def test_lora_on_an_encoder_that_cannot_take_it_is_refused(new_backbone, backbone):
    with pytest.raises(TypeError, match="LoRA needs tunekit's native BertEncoder.*got HubEncoder"):
        enable_lora(backbone)  # the TF Hub SavedModel encoder of tests/conftest.py
    with pytest.raises(TypeError, match="already carries LoRA adapters"):
        enable_lora(enable_lora(new_backbone()))
    frozen = freeze_layers(new_backbone(), 1)
    with pytest.raises(ValueError, match="bottom 1 layers frozen"):
        enable_lora(frozen)
    assert frozen.encoder.trainable_weights  # left as it was
