"""int8 / float16 LiteRT exports that take raw strings: agreement with the float32 model, manifests, bad input."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from sample_texts import sentiment_texts

# int8 dynamic-range weights move a probability of these tiny models by well under this (measured: < 0.01).
PROBABILITY_TOLERANCE = 0.03


@pytest.fixture(scope="module")
def classifier_exports(classifier, fixture_texts, tmp_path_factory):
    import tunekit as tk
    from tunekit.deploy import export_tflite

    root = tmp_path_factory.mktemp("classifier")
    texts, labels = fixture_texts
    return {
        "float32": tk.export_model(classifier, root / "float32"),
        "int8": export_tflite(classifier, root / "int8", validation_data=(texts, labels), base="tiny"),
        "float16": export_tflite(classifier, root / "float16", compression="float16"),
    }


def test_int8_classification_agrees_with_float32_savedmodel(classifier_exports, fixture_texts):
    from tunekit.deploy import load_artifact

    texts, labels = fixture_texts
    reference = load_artifact(classifier_exports["float32"]).predict(texts)
    int8 = load_artifact(classifier_exports["int8"])
    outputs = int8.predict(texts)
    assert set(outputs) == {"probabilities", "class_id", "label"}
    assert outputs["label"].tolist() == reference["label"].tolist()
    assert np.mean(outputs["class_id"] == labels) > 0.9  # the trained model is right, not just consistent
    assert np.max(np.abs(outputs["probabilities"] - reference["probabilities"])) < PROBABILITY_TOLERANCE
    assert int8.predict_labels(texts[:2]) == reference["label"][:2].tolist()
    assert int8.runtime == "ai-edge-litert"


def test_int8_manifest_records_what_compression_cost(classifier_exports, fixture_texts):
    from tunekit.deploy import load_artifact

    artifact = load_artifact(classifier_exports["int8"])
    manifest = artifact.manifest
    assert (artifact.kind, manifest["compression"], manifest["base"]["name"]) == ("tflite", "int8", "tiny")
    assert artifact.labels == ["negative", "positive"] and artifact.num_segments == 1
    assert artifact.task["name"] == "classification" and artifact.seq_length == 16
    assert manifest["size_bytes"] == os.path.getsize(os.path.join(artifact.path, "model.tflite"))
    accuracy = manifest["accuracy"]
    assert accuracy["examples"] == len(fixture_texts[0])
    assert accuracy["delta"]["accuracy"] == pytest.approx(
        accuracy["compressed"]["accuracy"] - accuracy["float32"]["accuracy"])
    assert abs(accuracy["delta"]["accuracy"]) <= 1 / len(fixture_texts[0])
    assert set(manifest["custom_ops"]) <= {"FastBertNormalize", "FastWordpieceTokenizeWithOffsets",
                                           "RaggedTensorToTensor"}


def test_float16_agrees_and_int8_is_smaller(classifier_exports, fixture_texts):
    from tunekit.deploy import load_artifact

    texts, _ = fixture_texts
    reference = load_artifact(classifier_exports["float32"]).predict(texts)
    float16 = load_artifact(classifier_exports["float16"])
    assert np.max(np.abs(float16.predict(texts)["probabilities"] - reference["probabilities"])) < 1e-2
    int8_size = load_artifact(classifier_exports["int8"]).manifest["size_bytes"]
    assert int8_size < float16.manifest["size_bytes"]


@pytest.fixture(scope="module")
def pair_int8(pair_classifier, tmp_path_factory):
    from tunekit.deploy import export_tflite

    return export_tflite(pair_classifier, tmp_path_factory.mktemp("pairs") / "int8")


def float32_outputs(model, *segments):
    """The float32 Keras model's serving outputs (what `export_model` serves), as numpy."""
    import tensorflow as tf

    inputs = [tf.constant(segment) for segment in segments]
    outputs = model.task.serving_outputs(model(inputs if len(inputs) == 2 else inputs[0], training=False))
    return {name: value.numpy() for name, value in outputs.items()}


def test_int8_pairs_agree_with_float32(pair_classifier, pair_int8, fixture_texts):
    from tunekit.deploy import load_artifact

    texts, _ = fixture_texts
    pairs = texts[::-1]
    reference = float32_outputs(pair_classifier, texts, pairs)
    artifact = load_artifact(pair_int8)
    outputs = artifact.predict(texts, pairs)
    assert artifact.num_segments == 2
    assert outputs["class_id"].tolist() == reference["class_id"].tolist()
    assert np.max(np.abs(outputs["probabilities"] - reference["probabilities"])) < PROBABILITY_TOLERANCE
    with pytest.raises(ValueError, match="text_pairs"):
        artifact.predict(texts)


@pytest.mark.parametrize("task", ["multilabel", "regression"])
def test_int8_multilabel_and_regression_agree_with_float32(task, sentiment, fixture_texts, tmp_path):
    from deploy_models import trained

    from tunekit.deploy import export_tflite, load_artifact

    texts, labels = sentiment
    if task == "multilabel":
        model = trained(task, texts, np.stack([labels, 1 - labels], axis=1), labels=["good", "bad"])
    else:
        model = trained(task, texts, labels.astype("float32"))
    held_out = fixture_texts[0]
    reference = float32_outputs(model, held_out)
    outputs = load_artifact(export_tflite(model, tmp_path / "int8")).predict(held_out)
    assert set(outputs) == set(reference)
    for name, values in reference.items():
        if values.dtype == bool:
            assert np.mean(outputs[name] == values) > 0.95
        else:
            assert np.max(np.abs(outputs[name] - values)) < PROBABILITY_TOLERANCE


def test_a_model_trained_in_bfloat16_converts_in_float32(sentiment, fixture_texts, tmp_path):
    from deploy_models import trained

    from tunekit.deploy import export_tflite, load_artifact
    from tunekit.model import in_float32

    model = trained("classification", *sentiment, labels=["negative", "positive"], dtype="mixed_bfloat16")
    assert model.encoder.compute_dtype == "bfloat16"
    texts = fixture_texts[0]
    reference = float32_outputs(in_float32(model), texts)
    artifact = export_tflite(model, tmp_path / "float32", compression="float32")
    outputs = load_artifact(artifact).predict(texts)
    assert outputs["class_id"].tolist() == reference["class_id"].tolist()
    assert np.max(np.abs(outputs["probabilities"] - reference["probabilities"])) < 1e-4  # float32 throughout


def test_token_classification_names_the_ops_that_cannot_convert(tmp_path):
    from deploy_models import tiny_backbone

    import tunekit as tk
    from tunekit.deploy import export_tflite

    model = tk.attach_head(tiny_backbone(), "token_classification", labels=["O", "B-X", "I-X"])
    with pytest.raises(ValueError, match="token_classification.*RaggedRange.*SavedModel"):
        export_tflite(model, tmp_path / "tags")
    assert os.listdir(tmp_path) == []  # nothing half-written


def test_corrupted_truncated_and_swapped_files_are_refused(classifier_exports, pair_int8, tmp_path):
    import shutil

    from tunekit.deploy import load_artifact
    from tunekit.files import manifest_digest, sha256_of_file

    truncated = shutil.copytree(classifier_exports["int8"], tmp_path / "truncated")
    with open(truncated / "model.tflite", "r+b") as file:
        file.truncate(1000)
    with pytest.raises(ValueError, match="model.tflite"):
        load_artifact(truncated)

    # Without a checksum to catch it, the runtime's own check names the file.
    manifest = json.loads((truncated / "tunekit.json").read_text())
    manifest["files"]["model.tflite"] = sha256_of_file(truncated / "model.tflite")
    manifest["manifest_sha256"] = manifest_digest(manifest)
    (truncated / "tunekit.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="not a readable TFLite model"):
        load_artifact(truncated)

    # The manifest of a pair model next to a single-text model's file.
    swapped = shutil.copytree(classifier_exports["int8"], tmp_path / "swapped")
    shutil.copy(os.path.join(pair_int8, "tunekit.json"), swapped / "tunekit.json")
    with pytest.raises(ValueError, match="another model"):
        load_artifact(swapped)


def test_texts_of_the_wrong_type_are_refused(classifier_exports):
    from tunekit.deploy import load_artifact

    for kind in ("int8", "float32"):
        artifact = load_artifact(classifier_exports[kind])
        with pytest.raises(TypeError, match="wrap it in a list"):
            artifact.predict("A single text.")
        with pytest.raises(TypeError, match=r"texts\[1\] is int"):
            artifact.predict(["fine", 3])
        with pytest.raises(ValueError, match="not pairs"):
            artifact.predict(["fine"], ["pair"])


def test_bad_export_arguments_fail_before_any_work(classifier, tmp_path):
    from tunekit.deploy import export_tflite

    with pytest.raises(ValueError, match="compression"):
        export_tflite(classifier, tmp_path / "x", compression="int4")
    with pytest.raises(TypeError, match="TextModel"):
        export_tflite("model", tmp_path / "x")
    user_folder = tmp_path / "mine"
    user_folder.mkdir()
    (user_folder / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="Refusing to replace"):
        export_tflite(classifier, user_folder)
    with pytest.raises(ValueError, match="one label per text|labels"):
        export_tflite(classifier, tmp_path / "x", validation_data=(["a", "b"], [0]))
    assert sorted(os.listdir(tmp_path)) == ["mine"]


def test_predictions_grouped_by_length_match_one_text_at_a_time(classifier_exports):
    """`predict` runs short texts several per invocation and long ones alone, in length order; the outputs come
    back in the caller's order and equal those of one text per invocation."""
    from tunekit.deploy import load_artifact

    texts, _ = sentiment_texts(10, seed=3)
    texts = [" ".join([text] * 40) if i % 4 == 1 else text for i, text in enumerate(texts)]  # some long ones
    artifact = load_artifact(classifier_exports["int8"])
    groups = artifact._runner.groups({"text": np.array(texts, dtype=object)})
    assert sorted(len(group) for group in groups)[0] == 1 and max(len(group) for group in groups) > 1
    one_at_a_time = artifact.predict(texts, batch_size=1)["probabilities"]
    np.testing.assert_allclose(artifact.predict(texts)["probabilities"], one_at_a_time, atol=1e-6)
    np.testing.assert_allclose(artifact.predict(texts, batch_size=3)["probabilities"], one_at_a_time, atol=1e-6)


def test_loading_an_artifact_imports_the_runtime_not_the_exporter(classifier_exports):
    """`load_artifact` (what `tunekit serve` runs) needs `litert_runtime` only, not the graph builder or exporter."""
    code = ("import sys; from tunekit.deploy import load_artifact; load_artifact(sys.argv[1]).predict(['Fine.']); "
            "print(sorted(name for name in sys.modules if name.startswith('tunekit.deploy')))")
    root = str(pathlib.Path(__file__).resolve().parents[2])
    process = subprocess.run([sys.executable, "-c", code, str(classifier_exports["int8"])], capture_output=True,
                             text=True, timeout=300, env={**os.environ, "PYTHONPATH": root})
    assert process.returncode == 0, process.stderr[-3000:]
    loaded = process.stdout.strip().splitlines()[-1]
    assert loaded == str(["tunekit.deploy", "tunekit.deploy.artifact", "tunekit.deploy.litert_runtime"])
