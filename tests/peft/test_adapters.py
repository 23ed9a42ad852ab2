"""Adapter directories: round trip, several adapters on one base, and refusals that change nothing."""

import numpy as np
import pytest
import tensorflow as tf

import tunekit as tk
from tunekit.peft import enable_lora, load_adapter, read_adapter, save_adapter

TEXTS = ["the movie was very good and great .", "a dull , boring plot", "the actor is fine"]


def probabilities(model):
    return np.asarray(model(tf.constant(TEXTS)))


def lora_model(backbone, *, labels=("neg", "pos"), seed=0, **options):
    model = tk.attach_head(enable_lora(backbone, seed=seed, **options), "classification", labels=list(labels),
                           seed=seed)
    rng = np.random.default_rng(seed)
    for weight in model.core.trainable_weights:  # stands in for training: every saved value is non-trivial
        weight.assign(rng.normal(0, 0.3, weight.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory, new_backbone):
    """Two adapters of different tasks trained (randomised) on one base: {"sentiment", "topic"}: (path, probs)."""
    root = tmp_path_factory.mktemp("adapters")
    base = new_backbone()
    sentiment = lora_model(base, rank=4, alpha=8, targets=("query", "value"), seed=1)
    topic = lora_model(base, labels=("film", "actor", "plot"), rank=2, targets="all", seed=2)
    return {name: (save_adapter(model, root / name), probabilities(model))
            for name, model in (("sentiment", sentiment), ("topic", topic))}


def test_adapter_directory_holds_only_what_trained_and_the_base_identity(saved, new_backbone):
    path, _ = saved["sentiment"]
    info, arrays = read_adapter(path)
    base = new_backbone()
    assert info["kind"] == "adapter" and info["format_version"] == 2
    assert info["base"]["name"] == "tiny-bert-1"
    assert info["base"]["weights_sha256"] == tk.peft.weights_fingerprint(base.encoder)
    assert info["lora"] == {"rank": 4, "alpha": 8.0, "targets": ["query", "value"], "dropout": 0.0}
    assert info["task"]["labels"] == ["neg", "pos"]
    assert sorted(arrays) == sorted([f"lora/{i}/{t}/{w}" for i in range(2) for t in ("query", "value")
                                     for w in "ab"] + ["head/0", "head/1"])


def test_two_adapters_on_one_base_predict_as_saved_without_a_second_encoder(saved, new_backbone):
    backbone = new_backbone()
    sentiment = load_adapter(saved["sentiment"][0], backbone)
    topic = load_adapter(saved["topic"][0], backbone)
    assert sentiment.encoder.encoder is backbone.encoder and topic.encoder.encoder is backbone.encoder
    np.testing.assert_allclose(probabilities(sentiment), saved["sentiment"][1], atol=1e-6)
    np.testing.assert_allclose(probabilities(topic), saved["topic"][1], atol=1e-6)
    np.testing.assert_allclose(probabilities(sentiment), saved["sentiment"][1], atol=1e-6)  # still, after topic ran
    assert sentiment.task.labels == ["neg", "pos"] and topic.task.labels == ["film", "actor", "plot"]


def test_loading_into_a_lora_model_overwrites_its_adapters(saved, new_backbone):
    model = lora_model(new_backbone(), rank=4, alpha=8, targets=("query", "value"), seed=7)
    assert load_adapter(saved["sentiment"][0], model) is model
    np.testing.assert_allclose(probabilities(model), saved["sentiment"][1], atol=1e-6)


def test_adapter_for_another_base_is_refused_and_nothing_changes(saved, new_backbone):
    other = new_backbone(seed=5)
    with pytest.raises(ValueError, match=r"belongs to another base: it was trained on 'tiny-bert-1' \(weights sha256"):
        load_adapter(saved["sentiment"][0], other)
    assert other.encoder.trainable and all(v.trainable for v in other.encoder.weights)


@pytest.mark.parametrize("options, differing", [
    ({"rank": 2, "alpha": 8, "targets": ("query", "value")}, "rank"),
    ({"rank": 4, "alpha": 8, "targets": ("query", "key", "value")}, "targets"),
    ({"rank": 4, "alpha": 4, "targets": ("query", "value")}, "alpha"),
])
def test_adapter_with_other_settings_than_the_model_is_refused(saved, new_backbone, options, differing):
    model = lora_model(new_backbone(), **options)
    before = probabilities(model)
    with pytest.raises(ValueError, match=f"differ in {{'{differing}'"):
        load_adapter(saved["sentiment"][0], model)
    np.testing.assert_array_equal(probabilities(model), before)


def test_truncated_or_damaged_adapters_are_refused(saved, new_backbone, tmp_path):
    import shutil

    source, _ = saved["sentiment"]
    truncated = shutil.copytree(source, tmp_path / "truncated")
    payload = (truncated / "adapter.npz").read_bytes()
    (truncated / "adapter.npz").write_bytes(payload[: len(payload) // 2])
    backbone = new_backbone()
    with pytest.raises(ValueError, match="adapter is damaged: adapter.npz in .* changed since it was written"):
        load_adapter(truncated, backbone)
    assert backbone.encoder.trainable

    broken_json = shutil.copytree(source, tmp_path / "broken_json")
    (broken_json / "tunekit.json").write_text('{"format_version": 1, "kind": "ada')
    with pytest.raises(ValueError, match="adapter is damaged: tunekit.json in .* cannot be read"):
        load_adapter(broken_json, backbone)

    edited = shutil.copytree(source, tmp_path / "edited")  # another alpha, as a hand edit would give
    text = (edited / "tunekit.json").read_text()
    (edited / "tunekit.json").write_text(text.replace('"alpha": 8.0', '"alpha": 16.0'))
    with pytest.raises(ValueError, match="tunekit.json in .* changed since tunekit wrote it"):
        load_adapter(edited, backbone)

    missing = shutil.copytree(source, tmp_path / "missing")
    (missing / "adapter.npz").unlink()
    with pytest.raises(ValueError, match="adapter is damaged: adapter.npz is missing"):
        load_adapter(missing, backbone)

    with pytest.raises(ValueError, match="is not an adapter directory"):
        load_adapter(tmp_path / "nowhere", backbone)

    model_dir = tk.save_model(tk.attach_head(new_backbone(), "classification", num_classes=2), tmp_path / "model")
    with pytest.raises(ValueError, match=r"holds a tunekit saved model \(kind 'model'\), not a LoRA adapter"):
        load_adapter(model_dir, backbone)
    assert backbone.encoder.trainable and all(v.trainable for v in backbone.encoder.weights)


def test_save_adapter_needs_a_lora_model(new_backbone, tmp_path):
    with pytest.raises(TypeError, match="has no LoRA adapters"):
        save_adapter(tk.attach_head(new_backbone(), "classification", num_classes=2), tmp_path / "adapter")
    assert not (tmp_path / "adapter").exists()


def test_save_adapter_refuses_a_base_that_changed(new_backbone, tmp_path):
    backbone = new_backbone()
    model = lora_model(backbone)
    kernel = backbone.encoder.transformer_blocks[0].query.kernel
    kernel.assign(kernel + 1.0)
    with pytest.raises(ValueError, match="base encoder's weights changed since enable_lora"):
        save_adapter(model, tmp_path / "adapter")
    assert not (tmp_path / "adapter").exists()
