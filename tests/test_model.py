import keras
import numpy as np
import pytest
import tensorflow as tf
from sample_texts import NEGATIVE, POSITIVE, sentiment_texts

import tunekit as tk


def test_text_model_is_a_keras_model_from_strings(backbone):
    model = tk.attach_head(backbone, "classification", num_classes=3)
    assert isinstance(model, keras.Model)
    probabilities = model(tf.constant(["good film", ""])).numpy()
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert model.seq_length == 16 and model.encoder is backbone.encoder


def test_plain_keras_fit_on_strings_trains(backbone):
    model = tk.attach_head(backbone, "classification", num_classes=2, pooling="mean", seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    texts, labels = sentiment_texts(256)
    dataset = tf.data.Dataset.from_tensor_slices((texts, labels)).shuffle(256, seed=0).batch(16)
    history = model.fit(dataset, epochs=4, verbose=0, shuffle=False)
    assert history.history["accuracy"][-1] >= 0.9


def test_multilabel_and_regression_heads_learn(backbone):
    texts, labels = sentiment_texts(512, seed=1)
    has_very = np.array(["very" in t for t in texts], dtype=int)
    multilabel = np.stack([labels, has_very], axis=1)
    model = tk.attach_head(backbone, "multilabel", labels=["positive", "emphatic"], pooling="mean", seed=0)
    trainer = tk.Trainer(model, learning_rate=1e-3, epochs=5, batch_size=16, seed=0, verbose=0)
    trainer.fit(texts, multilabel)
    test_texts, test_labels = sentiment_texts(100, seed=3)
    metrics = trainer.evaluate(test_texts, np.stack([test_labels, ["very" in t for t in test_texts]], axis=1))
    assert metrics["micro_f1"] >= 0.85
    predicted = trainer.predict_labels(["The film was good and great.", "The plot was dull and awful."])
    assert "positive" in predicted[0] and "positive" not in predicted[1]

    scores = labels * 4.0 + 1.0
    model = tk.attach_head(backbone, "regression", pooling="mean", seed=0)
    trainer = tk.Trainer(model, learning_rate=1e-3, epochs=5, batch_size=16, seed=0, verbose=0)
    trainer.fit(texts, scores)
    metrics = trainer.evaluate(test_texts, test_labels * 4.0 + 1.0)
    assert metrics["pearson"] >= 0.9 and metrics["mae"] < 1.0
    assert trainer.predict(["The film was superb."]).shape == (1, 1)


def test_sentence_pair_classification_learns_and_exports(backbone, tmp_path):
    # Label: is the second text of the pair positive? (the first is a distractor of either polarity)
    rng = np.random.default_rng(0)
    firsts = [f"the film was {rng.choice(POSITIVE + NEGATIVE)}" for _ in range(512)]
    same = [i % 2 for i in range(512)]
    seconds = [f"it is {rng.choice(POSITIVE if label else NEGATIVE)}" for label in same]
    model = tk.attach_head(backbone, "classification", labels=["negative", "positive"], text_pairs=True,
                           pooling="mean", seed=0)
    trainer = tk.Trainer(model, learning_rate=1e-3, epochs=4, batch_size=16, seed=0, verbose=0)
    trainer.fit((firsts[:448], seconds[:448]), same[:448])
    metrics = trainer.evaluate(list(zip(firsts[448:], seconds[448:])), same[448:])
    assert metrics["accuracy"] >= 0.8
    expected = trainer.predict((firsts[448:], seconds[448:]))
    trainer.export(tmp_path / "serving")
    serve = tf.saved_model.load(str(tmp_path / "serving")).signatures["serving_default"]
    outputs = serve(text=tf.constant(firsts[448:]), text_pair=tf.constant(seconds[448:]))
    assert np.abs(outputs["probabilities"].numpy() - expected).max() <= 1e-6
    with pytest.raises(ValueError, match="texts_a has 2 texts but texts_b has 1"):
        trainer.predict((["a", "b"], ["c"]))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"task": "ner"}, ValueError, "Unknown task 'ner'"),
    ({"task": "classification", "num_classes": 1}, ValueError, "at least 2 classes"),
    ({"task": "classification", "num_classes": 2, "pooling": "max"}, ValueError, "pooling must be one of"),
    ({"task": "classification", "num_classes": 2, "dropout": 1.5}, ValueError, "dropout"),
])
def test_attach_head_errors(backbone, kwargs, error, match):
    with pytest.raises(error, match=match):
        tk.attach_head(backbone, **kwargs)


def test_attach_head_needs_a_backbone():
    with pytest.raises(TypeError, match="Backbone"):
        tk.attach_head("bert", "classification", num_classes=2)


def test_single_text_model_rejects_pairs(backbone):
    model = tk.attach_head(backbone, "classification", num_classes=2)
    with pytest.raises(ValueError, match="text_pairs=True"):
        tk.Trainer(model).predict([("a", "b")])
