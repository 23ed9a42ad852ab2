"""Published TF Hub BERT encoders (exported by TF Model Garden) load as native `BertEncoder`s.

The fixtures were written by Model Garden's own exporter (tests/fixtures/make_model_garden_encoders.py), so
they have the published variable names, signatures, assets and activation.
"""

import os
import random
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from sample_texts import sentiment_texts

import tunekit as tk
from tunekit.backbones.bert import BertEncoder
from tunekit.backbones.hub_encoder import HubEncoder
from tunekit.backbones.model_garden import TOLERANCE, NotConvertible, convert_saved_model_encoder
from tunekit.preprocessing.hub_preprocessor import HubPreprocessor
from tunekit.preprocessing.wordpiece import WordPiecePreprocessor

TRAIN_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_on_encoder.py")
# Varied texts: casing, accents, punctuation, unknown words, empty, long enough to be truncated at 24 tokens.
TEXTS = ["The movie was very good!", "bad", "", "Superb acting, LOVELY plot... the film is boring?",
         "Café déjà vu: the actors were awful, awful, awful and the plot was quite dull and very very poor indeed",
         "unknownword ##s 12345", "GREAT"]
PAIRS = ["the plot", "Was it good?", "x", "", "Dull.", "an actor", "Fine and lovely"]


def saved_model_outputs(path, inputs):
    module = tf.saved_model.load(path)
    return module({key: tf.constant(value) for key, value in inputs.items()}, training=False)


def largest_difference(expected, actual):
    pairs = [(expected["sequence_output"], actual["sequence_output"]),
             (expected["pooled_output"], actual["pooled_output"])]
    pairs += list(zip(expected["encoder_outputs"], actual["encoder_outputs"]))
    assert len(pairs) == 4
    return max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in pairs)


@pytest.mark.parametrize("key, activation", [("encoder", "gelu_approximate"), ("exact_gelu", "gelu")])
def test_published_encoder_converts_with_outputs_of_the_saved_model(model_garden, key, activation):
    backbone = tk.load_backbone(model_garden[key], preprocessor=model_garden["preprocessor"], seq_length=24)
    assert isinstance(backbone.encoder, BertEncoder)
    assert backbone.encoder.hidden_activation == activation
    assert (backbone.encoder.num_layers, backbone.encoder.hidden_size, backbone.encoder.num_heads) == (2, 32, 4)
    assert (backbone.encoder.intermediate_size, backbone.encoder.max_sequence_length) == (64, 64)
    assert backbone.encoder.dropout == 0.1  # read from the export's Keras metadata
    assert "native BertEncoder converted" in backbone.describe()
    for inputs in (backbone.preprocessor(np.array(TEXTS)),
                   backbone.preprocessor([np.array(TEXTS), np.array(PAIRS)])):
        inputs = {key: np.asarray(value) for key, value in inputs.items()}
        assert inputs["input_mask"].sum(axis=1).min() < 24 < inputs["input_mask"].sum(axis=1).max() + 1  # padding
        difference = largest_difference(saved_model_outputs(model_garden[key], inputs),
                                        backbone.encoder(inputs, training=False))
        assert difference <= 1e-5, difference


def test_every_variable_is_copied_in_its_place(model_garden):
    encoder = convert_saved_model_encoder(model_garden["encoder"]).encoder
    source = {v.name.removesuffix(":0"): v.numpy() for v in tf.saved_model.load(model_garden["encoder"]).variables}
    block = encoder.transformer_blocks[1]
    np.testing.assert_array_equal(encoder.word_embeddings.embeddings.numpy(), source["word_embeddings/embeddings"])
    np.testing.assert_array_equal(block.query.kernel.numpy(),
                                  source["transformer/layer_1/self_attention/query/kernel"].reshape(32, 32))
    np.testing.assert_array_equal(block.attention_output.kernel.numpy(),
                                  source["transformer/layer_1/self_attention/attention_output/kernel"].reshape(32, 32))
    np.testing.assert_array_equal(block.output_layer_norm.gamma.numpy(),
                                  source["transformer/layer_1/output_layer_norm/gamma"])
    np.testing.assert_array_equal(encoder.pooler.bias.numpy(), source["pooler_transform/bias"])
    converted = sum(int(np.prod(v.shape)) for v in encoder.weights)
    assert converted == sum(value.size for name, value in source.items() if name != "Variable")


def test_the_check_would_catch_the_wrong_activation(model_garden):
    """Exact vs tanh GELU differ by more than the tolerance: the output check is not a formality."""
    conversion = convert_saved_model_encoder(model_garden["encoder"])
    wrong = BertEncoder(**{**conversion.encoder.get_config(), "hidden_activation": "gelu"})
    wrong.build()
    wrong.set_weights(conversion.encoder.get_weights())
    inputs = backbone_inputs(model_garden)
    expected = saved_model_outputs(model_garden["encoder"], inputs)
    assert largest_difference(expected, conversion.encoder(inputs)) <= 1e-5
    assert largest_difference(expected, wrong(inputs)) > TOLERANCE


def backbone_inputs(model_garden):
    preprocessor = HubPreprocessor(model_garden["preprocessor"], seq_length=24)
    return {key: np.asarray(value) for key, value in preprocessor(np.array(TEXTS)).items()}


def test_an_unrecognised_structure_stays_on_the_saved_model_path(model_garden):
    backbone = tk.load_backbone(model_garden["factorised"], seq_length=16)
    assert isinstance(backbone.encoder, HubEncoder)
    assert "embedding_projection" in backbone.loaded_as
    with pytest.raises(ValueError, match="cannot be read into tunekit's native encoder: its variables are not "
                                         "BERT's.*embedding_projection.*native=False"):
        tk.load_backbone(model_garden["factorised"], native=True)
    with pytest.raises(NotConvertible):
        convert_saved_model_encoder(model_garden["factorised"])
    with pytest.raises(ValueError, match="dtype='mixed_bfloat16' needs a native encoder.*embedding_projection"):
        tk.load_backbone(model_garden["factorised"], dtype="mixed_bfloat16")


def test_native_false_keeps_the_saved_model_path(model_garden):
    backbone = tk.load_backbone(model_garden["encoder"], native=False, seq_length=16)
    assert isinstance(backbone.encoder, HubEncoder)
    assert "native=False" in backbone.describe()
    with pytest.raises(TypeError, match="native must be None"):
        tk.load_backbone(model_garden["encoder"], native="yes")


def test_wordpiece_from_the_encoders_vocabulary_gives_the_published_preprocessors_ids(model_garden):
    published = tk.load_backbone(model_garden["encoder"], preprocessor=model_garden["preprocessor"], seq_length=24)
    fast = tk.load_backbone(model_garden["encoder"], seq_length=24)
    assert isinstance(published.preprocessor, HubPreprocessor)
    assert isinstance(fast.preprocessor, WordPiecePreprocessor) and fast.preprocessor.lower_case
    for segments in (np.array(TEXTS), [np.array(TEXTS), np.array(PAIRS)]):
        expected, actual = published.preprocessor(segments), fast.preprocessor(segments)
        for key in expected:
            np.testing.assert_array_equal(np.asarray(expected[key]), np.asarray(actual[key]), err_msg=key)


def test_mixed_bfloat16_computes_in_bfloat16_with_float32_weights(model_garden):
    backbone = tk.load_backbone(model_garden["encoder"], dtype="mixed_bfloat16", seq_length=24)
    assert backbone.encoder.compute_dtype == "bfloat16"
    assert {v.dtype for v in backbone.encoder.weights} == {"float32"}
    inputs = backbone_inputs(model_garden)
    outputs = backbone.encoder(inputs)
    assert outputs["sequence_output"].dtype == "bfloat16"
    expected = saved_model_outputs(model_garden["encoder"], inputs)["pooled_output"]
    assert float(np.max(np.abs(np.asarray(outputs["pooled_output"], "float32") - expected))) < 0.1


def test_model_on_a_converted_encoder_trains_saves_and_reloads_without_the_tf_hub_files(model_garden, tmp_path):
    for key in ("encoder", "preprocessor"):
        shutil.copytree(model_garden[key], tmp_path / key)
    backbone = tk.load_backbone(tmp_path / "encoder", preprocessor=str(tmp_path / "preprocessor"), seq_length=16)
    model = tk.attach_head(backbone, "classification", labels=["negative", "positive"], seed=0)
    before = [v.numpy() for v in model.encoder.trainable_weights]
    texts, labels = sentiment_texts(32, seed=3)
    trainer = tk.Trainer(model, learning_rate=1e-3, epochs=2, batch_size=8, seed=0, verbose=0)
    trainer.fit(texts, labels)
    changed = [not np.array_equal(a, v.numpy()) for a, v in zip(before, model.encoder.trainable_weights)]
    assert all(changed), f"{changed.count(False)} encoder weights did not train"
    expected = trainer.predict(texts)
    trainer.save(tmp_path / "model")
    shutil.rmtree(tmp_path / "encoder")
    shutil.rmtree(tmp_path / "preprocessor")
    reloaded = tk.load_model(tmp_path / "model")
    assert isinstance(reloaded.encoder, BertEncoder)
    np.testing.assert_allclose(reloaded.predict(texts), expected, atol=1e-6)


# The rest of the product on a converted encoder: LoRA, freezing with the backward pass cut, layer dropping,
# int8 LiteRT. (Multi-worker training and exact resume with dropout: tests/distributed, tests/training.)

def classifier(model_garden, **options):
    backbone = tk.load_backbone(model_garden["encoder"], seq_length=16, **options)
    return backbone, tk.attach_head(backbone, "classification", labels=["negative", "positive"], seed=0)


def test_lora_on_a_converted_encoder_trains_only_the_adapters(model_garden):
    backbone = tk.load_backbone(model_garden["encoder"], seq_length=16)
    model = tk.attach_head(tk.peft.enable_lora(backbone, rank=4, seed=0), "classification", num_classes=2, seed=0)
    base = [v.numpy() for v in backbone.encoder.weights]
    adapters = [v for v in model.encoder.trainable_weights if "lora" in v.path]
    assert adapters and len(adapters) == len(model.encoder.trainable_weights)
    before = [v.numpy() for v in adapters]
    tk.Trainer(model, learning_rate=1e-2, epochs=1, batch_size=8, seed=0, verbose=0).fit(*sentiment_texts(16))
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(base, backbone.encoder.weights))
    assert any(not np.array_equal(a, v.numpy()) for a, v in zip(before, adapters))


def test_freezing_a_converted_encoder_cuts_the_backward_pass(model_garden):
    backbone, model = classifier(model_garden)
    tk.peft.freeze_layers(model, 1)
    assert backbone.encoder.num_frozen_layers == 1
    inputs = backbone_inputs(model_garden)
    with tf.GradientTape() as tape:
        tape.watch(backbone.encoder.word_embeddings.embeddings.value)
        loss = tf.reduce_sum(model.core(inputs, training=True)[0] if isinstance(model.core(inputs), list)
                             else model.core(inputs, training=True))
    # No gradient reaches the frozen embeddings: the graph below block 1 is not differentiated at all.
    assert tape.gradient(loss, backbone.encoder.word_embeddings.embeddings.value) is None
    frozen = {v.path for v in backbone.encoder.non_trainable_weights}
    assert any("transformer_block_0" in path for path in frozen)
    assert not any("transformer_block_1" in path for path in frozen)


def test_drop_layers_of_a_converted_encoder_keeps_the_bottom_layers(model_garden):
    backbone = tk.load_backbone(model_garden["encoder"], seq_length=16)
    small = tk.backbones.drop_layers(backbone, keep=1)
    assert small.encoder.num_layers == 1 and small.encoder.hidden_activation == "gelu_approximate"
    inputs = backbone_inputs(model_garden)
    np.testing.assert_allclose(small.encoder(inputs)["sequence_output"],
                               backbone.encoder(inputs)["encoder_outputs"][0], atol=1e-6)


@pytest.mark.parametrize("published_preprocessor", [False, True])
def test_int8_litert_export_of_a_model_on_a_converted_encoder(model_garden, tmp_path, published_preprocessor):
    options = {"preprocessor": model_garden["preprocessor"]} if published_preprocessor else {}
    _, model = classifier(model_garden, **options)
    texts, labels = sentiment_texts(32, seed=5)
    tk.Trainer(model, learning_rate=1e-3, epochs=2, batch_size=8, seed=0, verbose=0).fit(texts, labels)
    tk.deploy.export_tflite(model, tmp_path / "int8", compression="int8")
    artifact = tk.deploy.load_artifact(tmp_path / "int8")
    expected = model.predict(texts)
    actual = artifact.predict(texts)["probabilities"]
    assert float(np.max(np.abs(actual - expected))) < 0.05
    assert (actual.argmax(1) == expected.argmax(1)).mean() >= 0.9


# An encoder of another structure stays a HubEncoder: each feature either works or is refused before any work,
# with tunekit's message rather than an assertion from inside the SavedModel's graph.

def test_on_the_saved_model_path_unsupported_features_are_refused_before_any_work(model_garden, tmp_path):
    backbone = tk.load_backbone(model_garden["factorised"], seq_length=16)
    model = tk.attach_head(backbone, "classification", num_classes=2, seed=0)
    with pytest.raises(ValueError, match=r"Exact resume from backups \(backup_dir\) needs tunekit's native encoder.*"
                                         r"dropout.*trainable=False"):
        tk.Trainer(model, backup_dir=tmp_path / "backups")
    with pytest.raises(ValueError, match="LiteRT export needs tunekit's native encoder"):
        tk.deploy.export_tflite(model, tmp_path / "int8")
    with pytest.raises(TypeError, match="LoRA needs tunekit's native BertEncoder"):
        tk.peft.enable_lora(backbone)
    with pytest.raises(TypeError, match="drop_layers needs a native BertEncoder"):
        tk.backbones.drop_layers(backbone, keep=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    frozen = tk.attach_head(tk.load_backbone(model_garden["factorised"], seq_length=16, trainable=False),
                            "classification", num_classes=2)
    tk.Trainer(frozen, backup_dir=tmp_path / "backups")  # no dropout runs in a frozen SavedModel: resume is exact


def test_several_workers_on_the_saved_model_path_are_refused_with_tunekits_message(model_garden, tmp_path):
    result = subprocess.run([sys.executable, "-m", "tunekit.distributed", "--workers", "2", TRAIN_SCRIPT,
                             model_garden["factorised"], str(tmp_path / "weights.npz")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "Training on several replicas needs tunekit's native encoder" in result.stderr
    assert "placeholder" not in result.stderr


def test_kill_9_then_rerun_resumes_a_converted_encoder_exactly_with_dropout_on(model_garden, tmp_path):
    """The encoder's dropout (0.1, from the export) and the head's run in Keras, whose seed state the backups keep."""
    from train_on_encoder import STEPS

    def weights(file):
        with np.load(file) as saved:
            return [saved[f"arr_{i}"] for i in range(len(saved.files))]

    base = [sys.executable, TRAIN_SCRIPT, model_garden["encoder"]]
    uninterrupted = subprocess.run(base + [str(tmp_path / "uninterrupted.npz")], capture_output=True, text=True,
                                   timeout=300)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    kill_at = random.randint(3, STEPS - 3)
    command = base + [str(tmp_path / "resumed.npz"), "--backup", str(tmp_path / "backup")]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in child.stdout:
        if line.strip() == f"step {kill_at}":
            os.kill(child.pid, signal.SIGKILL)
            break
    assert child.wait(timeout=300) == -signal.SIGKILL, "the child finished before it was killed"
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    first_step = int(rerun.stdout.split()[1])
    assert first_step > 1, "the rerun started from scratch instead of resuming"
    expected, resumed = weights(tmp_path / "uninterrupted.npz"), weights(tmp_path / "resumed.npz")
    difference = max(float(np.abs(a - b).max()) for a, b in zip(expected, resumed))
    assert difference <= 1e-6, f"killed at step {kill_at}, resumed at step {first_step}: max |diff| {difference}"
