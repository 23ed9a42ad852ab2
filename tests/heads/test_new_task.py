"""A task defined here, outside `tunekit.heads`, registered with `register_task` and used end to end: trained by
`tk.Trainer`, saved and reloaded, exported and run through `load_artifact` (SavedModel and LiteRT), printed as JSON
records and served over HTTP, without any other module of tunekit knowing it."""

import pathlib
import sys

import httpx
import keras
import numpy as np
import pytest
import tensorflow as tf

import tunekit as tk
from tunekit.deploy import export_tflite, load_artifact
from tunekit.heads import LabelIndex, Task, get_task_class, register_task
from tunekit.heads.task import as_label_array, dense_output

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "serving"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from sample_texts import sentiment_texts
from server_process import serve_in_thread


class SentimentScore(Task):
    """One sigmoid score per text, trained with binary cross-entropy on 0/1 (or negative/positive) labels, decoded
    as `{"score": p, "label": "positive" | "negative"}`."""

    name = "sentiment_score"
    output_names = ("score", "label")
    primary_output = "score"

    def __init__(self, labels=("negative", "positive")):
        self.index = LabelIndex(labels)
        if len(self.index) != 2:
            raise ValueError(f"sentiment_score takes two labels (low, high), got {self.index.labels}.")
        self.labels = self.index.labels

    def build_output(self, features, *, dropout, seed):
        return dense_output(features, 1, dropout=dropout, seed=seed, activation="sigmoid")

    def loss(self):
        return keras.losses.BinaryCrossentropy()

    def fit_metrics(self):
        return [keras.metrics.BinaryAccuracy(name="accuracy")]

    def encode_labels(self, labels):
        array = as_label_array(labels)
        if array.dtype.kind in "OUS":
            array = self.index.ids(array)
        if not np.all((array == 0) | (array == 1)):
            raise ValueError("sentiment_score labels are 0/1 or label names.")
        return array.astype(np.float32).reshape(-1, 1)

    def evaluate(self, y_true, predictions):
        return {"accuracy": float(np.mean((np.asarray(predictions) >= 0.5) == (np.asarray(y_true) >= 0.5)))}

    def decode(self, predictions):
        return self.index.names(np.asarray(predictions).reshape(-1) >= 0.5)

    def records(self, predictions):
        scores = np.asarray(predictions).reshape(-1)
        return [{"score": float(score), "label": label} for score, label in zip(scores, self.decode(scores))]

    def serving_outputs(self, predictions):
        score = predictions[:, 0]
        return {"score": score, "label": tf.gather(tf.constant(self.labels), tf.cast(score >= 0.5, tf.int32))}

    def artifact_labels(self, outputs):
        return [str(label) for label in outputs["label"]]

    def artifact_records(self, outputs):
        return [{"score": float(score), "label": str(label)} for score, label in zip(outputs["score"], outputs["label"])]

    def get_config(self):
        return {**super().get_config(), "labels": self.labels}


@pytest.fixture(scope="module", autouse=True)
def registered():
    """Registered for this module's tests only (other modules see the built-in tasks alone)."""
    from tunekit.heads import TASKS

    register_task(SentimentScore)
    yield
    TASKS.pop(SentimentScore.name, None)


@pytest.fixture(scope="module")
def trained(new_backbone):
    texts, labels = sentiment_texts(64, seed=1)
    model = tk.attach_head(new_backbone(seed=3), "sentiment_score", seed=0)
    trainer = tk.Trainer(model, learning_rate=3e-3, epochs=4, batch_size=16, seed=0, verbose=0)
    trainer.fit(texts, np.where(labels == 1, "positive", "negative"))
    return model, trainer


def test_trains_and_evaluates(trained):
    model, trainer = trained
    assert model.task.name == "sentiment_score" and model.name == "sentiment_score_model"
    texts, labels = sentiment_texts(32, seed=7)
    assert trainer.evaluate(texts, labels)["accuracy"] >= 0.9
    assert trainer.predict_labels(["The film was great and superb."]) == ["positive"]
    with pytest.raises(ValueError, match=r"Unknown label names \['meh'\]; the model's labels are"):
        trainer.evaluate(texts[:2], ["meh", "positive"])


def test_saves_exports_and_serves(trained, tmp_path):
    model, trainer = trained
    texts, _ = sentiment_texts(12, seed=9)
    expected = trainer.predict(texts)
    records = model.task.records(expected)
    assert {record["label"] for record in records} == {"positive", "negative"}

    tk.save_model(model, tmp_path / "saved")
    reloaded = tk.load_model(tmp_path / "saved")
    assert isinstance(reloaded.task, SentimentScore) and reloaded.task.labels == ["negative", "positive"]
    np.testing.assert_allclose(tk.Trainer(reloaded, verbose=0).predict(texts), expected, atol=1e-6)

    tk.export_model(model, tmp_path / "export")
    artifact = load_artifact(tmp_path / "export")
    assert isinstance(artifact.head, SentimentScore)
    outputs = artifact.predict(texts)
    np.testing.assert_allclose(outputs["score"], expected[:, 0], atol=1e-5)
    assert artifact.predict_labels(texts) == model.task.decode(expected)
    for got, want in zip(artifact.records(outputs), records):
        assert got["label"] == want["label"] and got["score"] == pytest.approx(want["score"], abs=1e-5)

    from tunekit.serving import create_app

    server, thread, url = serve_in_thread(create_app({"sentiment": artifact}, allow_unauthenticated=True))
    try:
        for _ in range(200):
            if httpx.get(url + "/v2/health/ready").status_code == 200:
                break
        served = httpx.post(url + "/v1/models/sentiment:predict", json={"instances": texts}).json()["predictions"]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert [row["label"] for row in served] == [record["label"] for record in records]
    np.testing.assert_allclose([row["score"] for row in served], expected[:, 0], atol=1e-5)


def test_litert_artifact(trained, tmp_path):
    model, trainer = trained
    texts, _ = sentiment_texts(8, seed=11)
    artifact = load_artifact(export_tflite(model, tmp_path / "tflite", compression="float32"))
    assert artifact.kind == "tflite"
    np.testing.assert_allclose(artifact.predict(texts)["score"], trainer.predict(texts)[:, 0], atol=1e-4)
    assert artifact.predict_labels(texts) == trainer.predict_labels(texts)


def test_an_unregistered_task_is_named(trained, tmp_path):
    from tunekit.heads import TASKS

    model, _ = trained
    tk.save_model(model, tmp_path / "saved")
    del TASKS["sentiment_score"]
    try:
        with pytest.raises(ValueError, match="register_task"):
            tk.load_model(tmp_path / "saved")
        with pytest.raises(ValueError, match="sentiment_score"):
            get_task_class("sentiment_score")
    finally:
        register_task(SentimentScore)
