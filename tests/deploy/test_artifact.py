"""`load_artifact` on SavedModel exports: outputs, labels, the fallback without tunekit.json, and wrong folders."""

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


def test_export_without_manifest_falls_back_to_its_signature(export_dir, tmp_path):
    import shutil

    from tunekit.deploy import load_artifact

    bare = shutil.copytree(export_dir, tmp_path / "bare")
    os.remove(bare / "tunekit.json")
    artifact = load_artifact(bare)
    assert (artifact.num_segments, artifact.task, artifact.labels) == (1, {"name": "classification"}, None)
    assert artifact.predict_labels(["The film was good."])[0] in ("negative", "positive")


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
