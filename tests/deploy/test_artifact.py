"""`load_artifact` on SavedModel exports: outputs, labels, and refusals: no or an edited tunekit.json, a format
it does not read, wrong folders."""

import json
import os

import numpy as np
import pytest


@pytest.fixture(scope="module")
def export_dir(classifier, tmp_path_factory):
    import tunekit as tk

    return tk.export_model(classifier, tmp_path_factory.mktemp("export") / "model")


def test_savedmodel_artifact_predicts_like_the_model(export_dir, classifier, fixture_texts):
    import tensorflow as tf

    from tunekit.deploy import load_artifact

    texts, _ = fixture_texts
    artifact = load_artifact(export_dir)
    assert (artifact.kind, artifact.num_segments, artifact.labels) == ("export", 1, ["negative", "positive"])
    assert artifact.task["name"] == "classification" and artifact.seq_length == 16
    outputs = artifact.predict(texts, batch_size=5)
    np.testing.assert_allclose(outputs["probabilities"], classifier(tf.constant(texts)).numpy(), atol=1e-5)
    assert outputs["label"].dtype == object and isinstance(outputs["label"][0], str)
    assert artifact.predict_labels(texts) == outputs["label"].tolist()


@pytest.mark.parametrize("batch_size", [0, -2, 2.5, True, "4"])
def test_predict_refuses_a_batch_size_that_is_not_a_positive_int(export_dir, fixture_texts, batch_size):
    from tunekit.deploy import load_artifact

    with pytest.raises(ValueError, match=r"batch_size must be a positive int \(texts per run of the model\), got"):
        load_artifact(export_dir).predict(fixture_texts[0], batch_size=batch_size)


def test_predict_takes_a_numpy_int_batch_size(export_dir, fixture_texts):
    from tunekit.deploy import load_artifact

    artifact = load_artifact(export_dir)
    texts = fixture_texts[0]
    np.testing.assert_array_equal(artifact.predict(texts, batch_size=np.int64(3))["probabilities"],
                                  artifact.predict(texts, batch_size=3)["probabilities"])


def test_an_export_without_its_manifest_is_refused(export_dir, tmp_path):
    import shutil

    from tunekit.deploy import load_artifact

    bare = shutil.copytree(export_dir, tmp_path / "bare")
    os.remove(bare / "tunekit.json")
    with pytest.raises(ValueError, match="holds saved_model.pb but no tunekit.json: without it the task, the label names"):
        load_artifact(bare)


def test_an_edited_manifest_is_refused(export_dir, tmp_path):
    """One flipped bit in a label name (`negative` -> `nefative`) would be served: the manifest checksum catches it."""
    import shutil

    from tunekit.deploy import load_artifact

    edited = shutil.copytree(export_dir, tmp_path / "edited")
    text = (edited / "tunekit.json").read_text()
    assert text.count('"negative"') == 1
    (edited / "tunekit.json").write_text(text.replace('"negative"', '"nefative"'))
    with pytest.raises(ValueError, match="tunekit.json in .* changed since tunekit wrote it"):
        load_artifact(edited)


@pytest.mark.parametrize("version", [99, "3", -1, None, 2])
def test_a_manifest_of_a_format_it_does_not_read_is_refused(export_dir, tmp_path, version):
    import shutil

    from tunekit.deploy import load_artifact
    from tunekit.files import manifest_digest

    other = shutil.copytree(export_dir, tmp_path / "other")
    manifest = json.loads((other / "tunekit.json").read_text())
    if version is None:
        del manifest["format_version"]
    else:
        manifest["format_version"] = version
    manifest["manifest_sha256"] = manifest_digest(manifest)  # a consistent manifest, only the version is wrong
    (other / "tunekit.json").write_text(json.dumps(manifest))
    message = "reads format versions up to 3" if version == 99 else f"has format version {version!r}, which this"
    with pytest.raises(ValueError, match=message):
        load_artifact(other)


def test_folders_that_are_not_exports_are_refused(classifier, tmp_path):
    import tunekit as tk
    from tunekit.deploy import load_artifact

    with pytest.raises(ValueError, match="not a folder"):
        load_artifact(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither"):
        load_artifact(tmp_path / "empty")
    with pytest.raises(ValueError, match="tunekit.load_model"):
        load_artifact(tk.save_model(classifier, tmp_path / "saved"))
    with pytest.raises(TypeError, match="path"):
        load_artifact(3)
