"""Long texts read whole at prediction: `load_backbone(long_texts="windows")` (tunekit.inputs.text_windows)."""

import numpy as np
import pytest
import tensorflow as tf
from sample_texts import VOCAB, sentiment_texts

import tunekit as tk
from tunekit.backbones.backbone import Backbone
from tunekit.deploy import export_tflite
from tunekit.inputs.text_batches import trim_to_longest
from tunekit.inputs.text_windows import validate_stride, window_inputs, window_tokens
from tunekit.preprocessing.wordpiece import WordPiecePreprocessor

# 16 tokens per row: 14 word-pieces of text. LONG has 3 * 9 + 1 = 28 words (one piece each): 2 windows.
LONG = " ".join(["the film was good and the plot was great"] * 3 + ["awful"])
SHORT = "a dull movie"
TEXTS = [LONG, SHORT, LONG + " " + LONG]


def windowed(backbone):
    """The same encoder with a preprocessor that reads long texts in windows."""
    preprocessor = WordPiecePreprocessor(VOCAB, seq_length=16, long_texts="windows", name="preprocessor")
    return Backbone(encoder=backbone.encoder, preprocessor=preprocessor, name=backbone.name, pooling=backbone.pooling)


@pytest.fixture
def models(new_backbone):
    """(a classifier reading windows, one with the same weights that truncates)."""
    backbone = new_backbone(seed=3)
    truncating = tk.attach_head(backbone, "classification", labels=["neg", "pos"], seed=0)
    windows = tk.attach_head(windowed(backbone), "classification", labels=["neg", "pos"], seed=0)
    windows.core.set_weights(truncating.core.get_weights())
    return windows, truncating


def test_windows_cover_every_word_piece_and_end_on_the_last():
    tokens = tf.ragged.constant([list(range(10)), list(range(4)), [], list(range(5))])
    windows, text = window_tokens(tokens, budget=4, stride=4)
    assert windows.to_list() == [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9], [0, 1, 2, 3], [], [0, 1, 2, 3], [1, 2, 3, 4]]
    assert text.numpy().tolist() == [0, 0, 0, 1, 2, 3, 3]
    assert validate_stride(None, 14) == 14
    for bad in (0, 15, 2.0, True):
        with pytest.raises(ValueError, match="stride must be an int from 1 to 14"):
            validate_stride(bad, 14)


def test_prediction_is_the_mean_over_the_windows(models):
    windows, truncating = models
    predicted = windows.predict(TEXTS)
    rows, text = window_inputs(windows.preprocessor, tf.constant(TEXTS))
    assert text.numpy().tolist() == [0, 0, 1, 2, 2, 2, 2]
    per_window = truncating.core(trim_to_longest(rows)).numpy()
    expected = np.stack([per_window[text.numpy() == i].mean(axis=0) for i in range(len(TEXTS))])
    np.testing.assert_allclose(predicted, expected, atol=1e-6)
    # A text that fits is one window: as truncation reads it; a long one differs.
    truncated = truncating.predict(TEXTS)
    np.testing.assert_allclose(predicted[1], truncated[1], atol=1e-6)
    assert np.abs(predicted[0] - truncated[0]).max() > 1e-4
    # The Keras call of the model (its functional graph) pools the windows too.
    np.testing.assert_allclose(windows(TEXTS).numpy(), predicted, atol=1e-6)


@pytest.mark.filterwarnings("ignore:The run ended with accuracy")  # one short epoch: learning is not the point
def test_trainer_fits_on_rows_and_evaluates_and_predicts_windows(models):
    windows, _ = models
    texts, labels = sentiment_texts(64)
    texts = [text + " " + LONG for text in texts]  # every text spans two windows
    trainer = tk.Trainer(windows, epochs=1, batch_size=16, seed=0, verbose=0)
    before = [weight.copy() for weight in windows.core.get_weights()]
    trainer.fit(texts, labels)
    assert any(np.abs(a - b).max() > 0 for a, b in zip(before, windows.core.get_weights()))
    predicted = trainer.predict(texts)
    metrics = trainer.evaluate(texts, labels)
    assert metrics["accuracy"] == pytest.approx(float(np.mean(predicted.argmax(axis=1) == labels)))
    loss = tf.keras.losses.sparse_categorical_crossentropy(labels, predicted).numpy().mean()
    assert metrics["loss"] == pytest.approx(float(loss), rel=1e-5)
    dataset = tf.data.Dataset.from_tensor_slices((texts, ["pos" if label else "neg" for label in labels]))
    np.testing.assert_allclose(trainer.predict(dataset.map(lambda text, label: text)), predicted, atol=1e-6)
    assert trainer.evaluate(dataset)["accuracy"] == metrics["accuracy"]


def test_save_load_and_export_keep_reading_windows(models, tmp_path):
    windows, _ = models
    expected = windows.predict(TEXTS)
    loaded = tk.load_model(tk.save_model(windows, tmp_path / "model"))
    assert loaded.preprocessor.long_texts == "windows"
    np.testing.assert_allclose(loaded.predict(TEXTS), expected, atol=1e-6)
    tk.export_model(windows, tmp_path / "serving")
    outputs = tf.saved_model.load(str(tmp_path / "serving")).signatures["serving_default"](text=tf.constant(TEXTS))
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="reads long texts in windows.*export_model"):
        export_tflite(windows, tmp_path / "lite")
    assert not (tmp_path / "lite").exists()


@pytest.mark.parametrize("source", ["hub_models", "model_garden"])
def test_tf_hub_encoders_read_windows(source, request):
    """The SavedModel path (`hub_models`) and a published-format encoder from Model Garden's exporter, read natively."""
    paths = request.getfixturevalue(source)
    backbone = tk.load_backbone(paths["encoder"], preprocessor=paths["preprocessor"], seq_length=16,
                                long_texts="windows")
    assert "long texts read in windows" in backbone.describe()
    model = tk.attach_head(backbone, "regression", seed=0)
    rows, text = window_inputs(model.preprocessor, tf.constant(TEXTS))
    per_window = model.core(trim_to_longest(rows)).numpy()[:, 0]
    expected = [per_window[text.numpy() == i].mean() for i in range(len(TEXTS))]
    np.testing.assert_allclose(model.predict(TEXTS)[:, 0], expected, atol=1e-6)


def test_windows_are_refused_where_they_do_not_apply(new_backbone):
    backbone = windowed(new_backbone())
    with pytest.raises(ValueError, match="reads single texts; text pairs"):
        tk.attach_head(backbone, "classification", num_classes=2, text_pairs=True)
    with pytest.raises(ValueError, match="reads long sentences whole already"):
        tk.attach_head(backbone, "token_classification", labels=["O", "B-X"])
    with pytest.raises(ValueError, match="long_texts must be one of \\('truncate', 'windows'\\)"):
        tk.load_backbone("/nonexistent/encoder", long_texts="window")
