import os
import warnings

import numpy as np
import pytest
import tensorflow as tf
from sample_texts import sentiment_texts

import tunekit as tk


def train_sentiment(backbone, *, seed=0, epochs=4, **trainer_kwargs):
    model = tk.attach_head(backbone, "classification", labels=["negative", "positive"], pooling="mean", seed=seed)
    trainer = tk.Trainer(model, learning_rate=1e-3, epochs=epochs, batch_size=16, seed=seed, verbose=0, **trainer_kwargs)
    texts, labels = sentiment_texts(512, seed=1)
    names = np.array(["negative", "positive"])[labels]
    history = trainer.fit(texts, names, validation_data=sentiment_texts(64, seed=2))
    return trainer, history


def test_tiny_encoder_learns_separable_task_and_encoder_variables_change(backbone):
    before = [v.numpy().copy() for v in backbone.encoder.trainable_weights]
    trainer, history = train_sentiment(backbone)
    after = [v.numpy() for v in backbone.encoder.trainable_weights]
    changed = sum(not np.array_equal(b, a) for b, a in zip(before, after))
    # Every encoder weight trains, except the attention key biases (softmax is invariant to them) and the
    # pooler (unused with mean pooling).
    assert len(before) > 20
    assert changed >= len(before) - 4
    test_texts, test_labels = sentiment_texts(200, seed=3)
    metrics = trainer.evaluate(test_texts, test_labels)
    assert set(metrics) == {"loss", "accuracy", "precision", "recall", "f1", "confusion_matrix", "per_class"}
    matrix = np.array(metrics["confusion_matrix"]["matrix"])
    assert metrics["confusion_matrix"]["labels"] == ["negative", "positive"] and matrix.sum() == 200
    assert np.trace(matrix) / 200 == pytest.approx(metrics["accuracy"])
    assert metrics["per_class"]["positive"]["f1"] == pytest.approx(metrics["f1"])
    assert metrics["accuracy"] >= 0.9
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert trainer.predict_labels(["The film was superb and lovely.", "The plot was dull and awful."]) == [
        "positive", "negative"]
    probabilities = trainer.predict(["The film was great."])
    assert probabilities.shape == (1, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)


def test_length_grouped_batches_learn_too(backbone):
    trainer, _ = train_sentiment(backbone, group_by_length=True)
    assert trainer.evaluate(*sentiment_texts(200, seed=3))["accuracy"] >= 0.9


def test_encoder_variables_are_the_models_trainable_weights(backbone):
    model = tk.attach_head(backbone, "classification", num_classes=2)
    encoder_ids = {id(v) for v in backbone.encoder.trainable_weights}
    model_ids = {id(v) for v in model.core.trainable_weights}
    assert encoder_ids and encoder_ids <= model_ids
    assert len(model.core.trainable_weights) == len(encoder_ids) + 2  # + head kernel and bias


def test_frozen_backbone_trains_only_the_head(hub_models):
    backbone = tk.load_backbone(hub_models["encoder"], preprocessor=hub_models["preprocessor"], seq_length=16,
                                trainable=False)
    before = [v.numpy().copy() for v in backbone.encoder.weights]
    model = tk.attach_head(backbone, "classification", num_classes=2)
    assert len(model.core.trainable_weights) == 2
    texts, labels = sentiment_texts(32)
    tk.Trainer(model, epochs=1, batch_size=16, verbose=0).fit(texts, labels)
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(before, backbone.encoder.weights))


def test_same_seed_gives_same_weights(hub_models):
    weights = []
    for _ in range(2):
        backbone = tk.load_backbone(hub_models["encoder"], preprocessor=hub_models["preprocessor"], seq_length=16)
        trainer, _ = train_sentiment(backbone, seed=7, epochs=1)
        weights.append([v.numpy() for v in trainer.model.core.weights])
    assert all(np.array_equal(a, b) for a, b in zip(*weights))


def test_early_stopping_and_checkpoints(backbone, tmp_path):
    trainer, history = train_sentiment(backbone, epochs=3, early_stopping_patience=1,
                                       checkpoint_dir=str(tmp_path / "ckpt"))
    epochs_run = len(history.history["loss"])
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        f"epoch-{i:02d}.weights.h5" for i in range(1, epochs_run + 1)] + ["tunekit.json"]
    assert "val_loss" in history.history


def test_tf_data_input_with_label_names(backbone):
    model = tk.attach_head(backbone, "classification", labels=["negative", "positive"], pooling="mean", seed=0)
    trainer = tk.Trainer(model, learning_rate=1e-3, epochs=4, batch_size=16, seed=0, verbose=0)
    texts, labels = sentiment_texts(512, seed=1)
    names = np.array(["negative", "positive"])[labels]
    trainer.fit(tf.data.Dataset.from_tensor_slices((texts, names)))
    test_texts, test_labels = sentiment_texts(100, seed=3)
    metrics = trainer.evaluate(tf.data.Dataset.from_tensor_slices((test_texts, test_labels)))
    assert metrics["accuracy"] >= 0.9
    in_memory = trainer.evaluate(test_texts, test_labels)
    assert metrics["loss"] == pytest.approx(in_memory["loss"], rel=1e-5)


def test_pandas_inputs(backbone):
    pd = pytest.importorskip("pandas")
    texts, labels = sentiment_texts(32)
    frame = pd.DataFrame({"text": texts, "label": labels})
    model = tk.attach_head(backbone, "classification", num_classes=2)
    trainer = tk.Trainer(model, epochs=1, batch_size=16, verbose=0)
    trainer.fit(frame["text"], frame["label"])
    assert trainer.predict(frame[["text"]]).shape == (32, 2)


def test_empty_strings_are_valid_texts(backbone):
    model = tk.attach_head(backbone, "classification", num_classes=2)
    trainer = tk.Trainer(model, epochs=1, batch_size=4, verbose=0)
    trainer.fit(["", "good", "", "bad"], [0, 1, 0, 0])
    assert trainer.predict(["", ""]).shape == (2, 2)


@pytest.mark.parametrize(
    "texts, labels, error, match",
    [
        ([], [], ValueError, "empty"),
        (["good", None], [0, 1], TypeError, r"texts\[1\] is NoneType"),
        (["good", 3.5], [0, 1], TypeError, r"texts\[1\] is float"),
        (["good", b"\xff\xfe"], [0, 1], ValueError, "not valid UTF-8"),
        ("good", [1], TypeError, "single str"),
        (["good", "bad"], [0], ValueError, "2 texts but 1 labels"),
        (["good", "bad"], [0, 2], ValueError, "out of range"),
        (["good", "bad"], ["positive", "meh"], ValueError, r"Unknown label names \['meh'\]"),
        (["good", "bad"], [0.0, float("nan")], ValueError, "NaN"),
    ],
)
def test_bad_training_input_fails_before_training(backbone, texts, labels, error, match):
    model = tk.attach_head(backbone, "classification", labels=["negative", "positive"])
    before = [v.numpy().copy() for v in model.core.weights]
    with pytest.raises(error, match=match):
        tk.Trainer(model, epochs=1, verbose=0).fit(texts, labels)
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(before, model.core.weights))


def test_unseen_label_names_at_evaluation(backbone):
    model = tk.attach_head(backbone, "classification", labels=["negative", "positive"])
    with pytest.raises(ValueError, match=r"Unknown label names \['neutral'\]"):
        tk.Trainer(model).evaluate(["good"], ["neutral"])


def test_bad_trainer_settings():
    with pytest.raises(TypeError, match="TextModel"):
        tk.Trainer(object())


@pytest.mark.parametrize("kwargs, match", [({"epochs": 0}, "epochs"), ({"batch_size": -1}, "batch_size"),
                                           ({"learning_rate": 0}, "learning_rate"), ({"schedule": "step"}, "schedule"),
                                           ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps"),
                                           ({"backup_every": 0}, "backup_every"),
                                           ({"class_weight": {"neutral": 2.0}}, r"not a label.*\[0, 1\]"),
                                           ({"class_weight": "by frequency"}, "balanced")])
def test_bad_trainer_arguments(backbone, kwargs, match):
    model = tk.attach_head(backbone, "classification", num_classes=2)
    with pytest.raises(ValueError, match=match):
        tk.Trainer(model, **kwargs)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_native_encoder_trains_with_float32_head(policy):
    import keras

    from sample_texts import VOCAB
    from tunekit.backbones.bert import BertEncoder
    from tunekit.preprocessing.wordpiece import WordPiecePreprocessor

    encoder = BertEncoder(vocabulary_size=len(VOCAB), hidden_size=32, num_layers=2, num_heads=4,
                          intermediate_size=64, max_sequence_length=64, dtype=policy)
    backbone = tk.Backbone(encoder=encoder, preprocessor=WordPiecePreprocessor(VOCAB, seq_length=16), name="tiny",
                           pooling="mean")
    model = tk.attach_head(backbone, "classification", num_classes=2, seed=0)
    trainer = tk.Trainer(model, learning_rate=1e-3, epochs=4, batch_size=16, seed=0, verbose=0)
    texts, labels = sentiment_texts(256)
    trainer.fit(texts, labels)
    optimizer = model.core.optimizer
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer) == (policy == "mixed_float16")
    assert encoder.word_embeddings.embeddings.dtype == "float32"
    probabilities = trainer.predict(texts[:8])
    assert probabilities.dtype == np.float32 and np.isfinite(probabilities).all()
    assert trainer.evaluate(*sentiment_texts(64, seed=5))["accuracy"] >= 0.9


def tiny_model(dropout=0.0, seed=0):
    import keras

    from sample_texts import VOCAB
    from tunekit.backbones.bert import BertEncoder
    from tunekit.preprocessing.wordpiece import WordPiecePreprocessor

    keras.utils.set_random_seed(seed)
    encoder = BertEncoder(vocabulary_size=len(VOCAB), hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                          max_sequence_length=32, dropout=dropout, attention_dropout=dropout)
    backbone = tk.Backbone(encoder=encoder, preprocessor=WordPiecePreprocessor(VOCAB, seq_length=16), name="tiny",
                           pooling="mean")
    return tk.attach_head(backbone, "classification", labels=["negative", "positive"], dropout=dropout, seed=seed)


def test_gradient_accumulation_of_4_batches_of_8_equals_one_batch_of_32():
    texts, labels = sentiment_texts(64)
    weights = []
    for batch_size, steps in ((32, 1), (8, 4)):
        model = tiny_model()
        # A constant learning rate: Keras evaluates schedules per batch, so a decaying one differs slightly. Random
        # batches: the same shuffle cut into 8s or 32s holds the same examples per step (length grouping would not).
        trainer = tk.Trainer(model, learning_rate=1e-3, epochs=1, batch_size=batch_size, seed=0, verbose=0,
                             schedule="constant", warmup_ratio=0.0, gradient_accumulation_steps=steps,
                             group_by_length=False)
        trainer.fit(texts, labels)
        assert int(model.core.optimizer.iterations) == 2
        weights.append([v.numpy() for v in model.core.weights])
    initial = [v.numpy() for v in tiny_model().core.weights]
    assert max(np.abs(a - b).max() for a, b in zip(*weights)) <= 2e-6
    assert max(np.abs(a - b).max() for a, b in zip(weights[0], initial)) > 1e-3  # and they did train


def test_class_weights_shift_the_predictions_toward_the_heavy_class():
    texts, labels = sentiment_texts(64)
    test_texts, _ = sentiment_texts(64, seed=5)
    predicted = {}
    for class_weight in (None, {"negative": 0.0, "positive": 1.0}):
        trainer = tk.Trainer(tiny_model(), learning_rate=3e-3, epochs=3, batch_size=8, seed=0, verbose=0,
                             class_weight=class_weight)
        trainer.fit(texts, labels)
        predicted[class_weight is None] = trainer.predict(test_texts)[:, 1].mean()
    assert predicted[False] > predicted[True] + 0.2  # positive class probability rises when only positives count
    balanced = tk.Trainer(tiny_model(), epochs=1, batch_size=16, verbose=0, class_weight="balanced")
    balanced.fit(texts[:40], ["positive"] * 30 + ["negative"] * 10)
    np.testing.assert_allclose(balanced._loop.class_weights.numpy(), [2.0, 40 / 60], rtol=1e-6)


def test_log_dir_writes_tensorboard_and_csv_and_the_history_plots(tmp_path):
    pytest.importorskip("tensorboard")
    pytest.importorskip("matplotlib")
    from tunekit.training.callbacks import plot_history

    texts, labels = sentiment_texts(64)
    trainer = tk.Trainer(tiny_model(), learning_rate=1e-3, epochs=2, batch_size=16, seed=0, verbose=0,
                         log_dir=tmp_path / "logs", log_every=2)
    trainer.fit(texts, labels, validation_data=sentiment_texts(32, seed=2))
    epochs = (tmp_path / "logs" / "epochs.csv").read_text().splitlines()
    assert epochs[0].split(",")[:2] == ["epoch", "accuracy"] and len(epochs) == 3 and "val_loss" in epochs[0]
    steps = (tmp_path / "logs" / "steps.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in steps] == ["step", "2", "4", "6", "8"]
    events = [name for _, _, files in os.walk(tmp_path / "logs" / "tensorboard") for name in files]
    assert sum(name.startswith("events.out.tfevents") for name in events) >= 3  # train, validation, steps
    assert trainer.history["val_loss"] and len(trainer.history["loss"]) == 2
    path = plot_history(trainer.history, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path == tmp_path / "curves.png"


def test_layer_decay_gives_each_encoder_block_its_own_learning_rate(hub_models):
    """Adam's first step moves a weight by about its learning rate whatever its gradient (|g| / (|g| + eps)), so
    from the same start, the change of each variable with layer_decay=0.5 over its change without is its
    multiplier: 0.5**3 for the embeddings of this 2-block encoder, 0.5**2 and 0.5 for its blocks, 1 for the head."""
    texts, labels = sentiment_texts(16)
    changes = {}
    for layer_decay in (None, 0.5):
        backbone = tk.load_backbone(hub_models["encoder"], preprocessor=hub_models["preprocessor"], seq_length=16)
        model = tk.attach_head(backbone, "classification", labels=["negative", "positive"], pooling="mean", seed=0)
        before = [v.numpy() for v in model.core.trainable_variables]
        tk.Trainer(model, learning_rate=1e-2, epochs=1, batch_size=16, seed=0, verbose=0, weight_decay=0.0,
                   clipnorm=None, schedule="constant", warmup_ratio=0.0, layer_decay=layer_decay).fit(texts, labels)
        changes[layer_decay] = {v.path: float(np.abs(v.numpy() - start).max())
                                for v, start in zip(model.core.trainable_variables, before)}
    expected = {"embeddings": 0.125, "transformer_block_0": 0.25, "transformer_block_1": 0.5, "logits": 1.0}
    checked = []
    for path, change in changes[None].items():
        group = next((name for name in expected if name in path), None)
        if group is not None and change > 0:  # (the pooler gets no gradient under mean pooling)
            assert changes[0.5][path] / change == pytest.approx(expected[group], rel=1e-3), path
            checked.append(group)
    assert set(checked) == set(expected) and len(checked) > 20


def test_layer_decay_is_checked_before_training(backbone):
    model = tk.attach_head(backbone, "classification", num_classes=2)
    with pytest.raises(ValueError, match=r"layer_decay must be a number in \(0, 1\]"):
        tk.Trainer(model, layer_decay=1.2)


def test_fit_again_past_the_end_of_the_schedule_is_refused_saying_how_to_go_on(new_backbone):
    """The notebook trap: Trainer(epochs=1), fit, then fit again "to train a bit more" would run the whole second
    call past the end of the linear decay, at learning rate 0."""
    texts, labels = sentiment_texts(16)
    model = tk.attach_head(new_backbone(), "classification", labels=["negative", "positive"])
    trainer = tk.Trainer(model, epochs=1, batch_size=8, learning_rate=1e-3, verbose=0)
    trainer.fit(texts, labels)
    before = [w.numpy().copy() for w in model.core.weights]
    with pytest.raises(ValueError, match=r"past the end of its learning-rate schedule: the 'linear' schedule was "
                                         r"planned at the first fit for 2 batches .* 2 are done, and epochs=1 needs 2 "
                                         r"more.*fit\(\.\.\., reset=True\)"):
        trainer.fit(texts, labels)
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(before, model.core.weights))
    assert trainer.state.epoch == 1 and trainer.history["epoch"] == [1]
    trainer.fit(texts, labels, reset=True)  # a new warmup and decay: the weights train again
    assert not all(np.array_equal(b, w.numpy()) for b, w in zip(before, model.core.weights))
    assert float(model.core.optimizer.learning_rate) == 0.0  # (the end of the new schedule)

    halfway = tk.Trainer(model, epochs=3, batch_size=8, verbose=0)
    halfway.fit(texts, labels, epochs=1)
    with pytest.raises(ValueError, match=r"to finish the planned run, fit\(\.\.\., epochs=2\)"):
        halfway.fit(texts, labels)  # epochs=3 more would need 6 batches; 4 are left
    halfway.fit(texts, labels, epochs=2)
    assert halfway.state.epoch == 3 and halfway.state.batches_done == halfway.state.planned_batches == 6
    constant = tk.Trainer(model, epochs=1, batch_size=8, verbose=0, schedule="constant")
    constant.fit(texts, labels)
    constant.fit(texts, labels)  # a constant schedule has no end
    assert constant.history["epoch"] == [1, 2]


def test_callbacks_see_the_run_state(new_backbone):
    texts, labels = sentiment_texts(16)
    seen = []

    class Watch(tk.training.StateCallback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append((self.state.epoch, self.state.step, self.state.batches_done, round(logs["loss"], 6)))

        def on_epoch_end(self, epoch, logs=None):
            seen.append(("end", epoch, self.state.epoch, self.state.history["epoch"][-1]))

    model = tk.attach_head(new_backbone(), "classification", labels=["negative", "positive"])
    trainer = tk.Trainer(model, epochs=2, batch_size=8, verbose=0, callbacks=[Watch()])
    trainer.fit(texts, labels)
    assert [row[:3] for row in seen] == [(0, 1, 1), (0, 2, 2), ("end", 0, 1), (1, 1, 3), (1, 2, 4), ("end", 1, 2)]
    assert seen[1][3] == round(trainer.history["loss"][0], 6)  # the epoch's loss: the mean of its batch losses


def test_progress_output_redirected_to_a_file_has_no_escape_codes(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "train.py"
    script.write_text(
        "import sys\nsys.path[:0] = [%r, %r]\n" % (os.path.dirname(os.path.dirname(__file__)), os.path.dirname(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        + "from conftest import make_backbone\nfrom sample_texts import sentiment_texts\nimport tunekit as tk\n"
        "model = tk.attach_head(make_backbone(), 'classification', labels=['negative', 'positive'])\n"
        "tk.Trainer(model, epochs=2, batch_size=8).fit(*sentiment_texts(16))\n")
    log = tmp_path / "train.log"
    with open(log, "w") as out:
        subprocess.run([sys.executable, str(script)], stdout=out, stderr=subprocess.DEVNULL, check=True, timeout=300,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    text = log.read_text()
    assert "\x1b[" not in text and "\b" not in text
    assert [line.split(" - ")[0].strip() for line in text.splitlines() if " - loss:" in line] == ["2/2", "2/2"]


def test_the_default_learning_rate_follows_the_encoder_width(new_backbone):
    from tunekit.backbones.backbone import Backbone
    from tunekit.backbones.bert import BertEncoder

    small = tk.attach_head(new_backbone(), "classification", num_classes=2)  # hidden size 32, like MiniLM's 384
    assert tk.Trainer(small).learning_rate == 1e-4
    assert tk.Trainer(small, learning_rate=2e-5).learning_rate == 2e-5
    tiny = new_backbone()
    wide = BertEncoder(vocabulary_size=tiny.encoder.vocabulary_size, hidden_size=768, num_layers=1, num_heads=12,
                       intermediate_size=64, max_sequence_length=32)
    base = Backbone(encoder=wide, preprocessor=tiny.preprocessor, name="bert-base-width", pooling="mean")
    assert tk.Trainer(tk.attach_head(base, "classification", num_classes=2)).learning_rate == 3e-5


def test_a_run_that_ends_at_the_majority_class_share_warns_naming_the_learning_rate(new_backbone):
    texts, labels = sentiment_texts(16)
    skewed = [1] * 12 + [0] * 4  # a model that predicts "positive" for everything is right 75 % of the time
    model = tk.attach_head(new_backbone(), "classification", labels=["negative", "positive"])
    with pytest.warns(UserWarning, match=r"ended with accuracy 0\.\d+, no better than always predicting its most "
                                         r"common label 'positive' \(0\.750 .*learning_rate=1e-06 here"):
        tk.Trainer(model, learning_rate=1e-6, epochs=1, batch_size=8, verbose=0).fit(texts, skewed)

    learned = tk.attach_head(new_backbone(), "classification", labels=["negative", "positive"])
    trainer = tk.Trainer(learned, learning_rate=1e-3, epochs=4, batch_size=8, verbose=0, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a run that learned says nothing
        trainer.fit(*sentiment_texts(64), validation_data=sentiment_texts(32, seed=3))
    assert trainer.history["val_accuracy"][-1] > 0.6
