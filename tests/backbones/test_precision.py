"""What native encoders compute in: float32 by default, `dtype=...`, `TUNEKIT_DTYPE`, and `"auto"` (bfloat16 on
hardware with bfloat16 units, float32 elsewhere). Where a test needs a machine with or without such units, it
stands in for the CPU's flags.
"""

import platform

import keras
import numpy as np
import pytest
import tensorflow as tf
from sample_texts import sentiment_texts

import tunekit as tk
from tunekit.backbones import precision

TEXTS, LABELS = sentiment_texts(8)
from tunekit.backbones.hub_encoder import HubEncoder
from tunekit.model import in_float32


@pytest.fixture
def cpu(monkeypatch):
    """`cpu("avx512_bf16", ...)`: `"auto"` sees a CPU with these flags (and there is no TUNEKIT_DTYPE)."""
    monkeypatch.delenv(precision.DTYPE_ENV, raising=False)

    def with_flags(*flags):
        monkeypatch.setattr(precision, "cpu_flags", lambda: {"fpu", "avx2", *flags})

    return with_flags


@pytest.fixture
def global_policy():
    """Sets the global Keras dtype policy for one test and restores it."""
    before = keras.config.dtype_policy()
    yield keras.config.set_dtype_policy
    keras.config.set_dtype_policy(before)


def compute_dtypes(model_garden, **options):
    backbone = tk.load_backbone(model_garden["encoder"], seq_length=16, **options)
    return backbone.encoder.compute_dtype, {weight.dtype for weight in backbone.encoder.weights}


def test_the_default_is_float32_even_on_bfloat16_hardware(model_garden, cpu):
    cpu("amx_bf16")
    assert compute_dtypes(model_garden) == ("float32", {"float32"})
    assert "computes in float32" in tk.load_backbone(model_garden["encoder"], seq_length=16).describe()


@pytest.mark.parametrize("flag", ["amx_bf16", "avx512_bf16"])
def test_auto_is_bfloat16_compute_with_float32_weights_on_cpus_with_bfloat16_units(model_garden, cpu, flag):
    cpu(flag)
    assert precision.bfloat16_hardware() == f"CPU with {flag}"
    assert compute_dtypes(model_garden, dtype="auto") == ("bfloat16", {"float32"})
    assert "computes in bfloat16" in tk.load_backbone(model_garden["encoder"], seq_length=16,
                                                      dtype="auto").describe()


def test_auto_is_float32_on_cpus_without_bfloat16_units(model_garden, cpu):
    cpu("avx512f", "avx512_vnni")
    assert precision.bfloat16_hardware() is None
    assert compute_dtypes(model_garden, dtype="auto") == ("float32", {"float32"})


def test_the_environment_variable_sets_the_dtype_and_the_argument_wins(model_garden, cpu, monkeypatch):
    cpu("avx512_bf16")
    monkeypatch.setenv(precision.DTYPE_ENV, "auto")
    assert compute_dtypes(model_garden)[0] == "bfloat16"
    assert compute_dtypes(model_garden, dtype="float32")[0] == "float32"  # the argument wins
    cpu()
    monkeypatch.setenv(precision.DTYPE_ENV, "mixed_bfloat16")  # bfloat16 even where it is emulated
    assert compute_dtypes(model_garden)[0] == "bfloat16"


def test_a_global_keras_policy_is_followed_by_the_default(model_garden, cpu, global_policy):
    global_policy("mixed_float16")
    assert compute_dtypes(model_garden)[0] == "float16"


def test_auto_leaves_a_saved_model_encoder_in_float32_without_an_error(hub_models, cpu):
    cpu("amx_bf16")
    backbone = tk.load_backbone(hub_models["encoder"], seq_length=16, dtype="auto")
    assert isinstance(backbone.encoder, HubEncoder)
    assert "computes in float32" in backbone.describe()
    with pytest.raises(ValueError, match="dtype='mixed_bfloat16' needs a native encoder"):
        tk.load_backbone(hub_models["encoder"], dtype="mixed_bfloat16")


def test_bad_dtypes_are_refused_before_loading(cpu, monkeypatch):
    with pytest.raises(ValueError, match=r"dtype='bf16' is not a dtype tunekit knows.*'mixed_bfloat16'.*'auto'"):
        tk.load_backbone("/no/such/folder", dtype="bf16")
    with pytest.raises(TypeError, match="dtype must be a dtype policy name"):
        tk.load_backbone("/no/such/folder", dtype=16)
    monkeypatch.setenv(precision.DTYPE_ENV, "half")
    with pytest.raises(ValueError, match=r"\$TUNEKIT_DTYPE='half' is not a dtype tunekit knows"):
        tk.load_backbone("/no/such/folder")


@pytest.mark.skipif(platform.system() != "Linux" or platform.machine() != "x86_64", reason="reads x86 Linux flags")
def test_cpu_flags_are_read_from_this_machine():
    flags = precision.cpu_flags()
    assert "sse2" in flags  # every x86-64 CPU
    expected = next((f"CPU with {flag}" for flag in precision.BFLOAT16_CPU_FLAGS if flag in flags), None)
    if not tf.config.list_physical_devices("GPU"):
        assert precision.bfloat16_hardware() == expected


def test_a_model_trained_in_bfloat16_saves_float32_weights_and_reloads_identically(model_garden, tmp_path):
    model = tk.attach_head(tk.load_backbone(model_garden["encoder"], seq_length=16, dtype="mixed_bfloat16"),
                           "classification",
                           labels=["neg", "pos"], seed=0)
    before = [np.array(weight) for weight in model.core.weights]
    trainer = tk.Trainer(model, epochs=1, batch_size=4, learning_rate=1e-3, verbose=0)
    trainer.fit(TEXTS, [["neg", "pos"][label] for label in LABELS])
    after = [np.array(weight) for weight in model.core.weights]
    assert any(not np.array_equal(b, a) for b, a in zip(before, after))  # it trained
    assert {weight.dtype for weight in model.core.weights} == {"float32"}

    tk.save_model(model, tmp_path / "model")
    loaded = tk.load_model(tmp_path / "model")
    assert {weight.dtype for weight in loaded.core.weights} == {"float32"}
    encoder = next(layer for layer in loaded.core.layers if "encoder" in layer.name)
    assert encoder.compute_dtype == "bfloat16"
    np.testing.assert_array_equal(loaded.predict(TEXTS), model.predict(TEXTS))


def test_a_model_trained_in_bfloat16_is_exported_in_float32(model_garden, tmp_path):
    model = tk.attach_head(tk.load_backbone(model_garden["encoder"], seq_length=16, dtype="mixed_bfloat16"),
                           "classification",
                           labels=["neg", "pos"], seed=0)
    float32 = in_float32(model)
    assert float32 is not model and float32.encoder.compute_dtype == "float32"
    assert model.encoder.compute_dtype == "bfloat16"  # the trained model is left as it is
    for mine, theirs in zip(model.get_weights(), float32.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    assert in_float32(float32) is float32

    served = tf.saved_model.load(tk.export_model(model, tmp_path / "serving")).signatures["serving_default"]
    probabilities = served(text=tf.constant(TEXTS))["probabilities"].numpy()
    np.testing.assert_allclose(probabilities, float32.predict(TEXTS), atol=1e-5)
    assert np.abs(probabilities - model.predict(TEXTS)).max() < 0.05  # bfloat16 rounding only
