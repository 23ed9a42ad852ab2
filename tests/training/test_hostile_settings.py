"""Settings and folders that would train nothing, diverge or destroy the user's files: refused before any work, or
stopped with a clear error and the last good weights."""

import os

import keras
import numpy as np
import pytest
from sample_texts import VOCAB, sentiment_texts

import tunekit as tk
from tunekit.backbones.bert import BertEncoder
from tunekit.files import sha256_of_file
from tunekit.preprocessing.wordpiece import WordPiecePreprocessor


def hashes(root):
    """{relative path: sha256} of every file under `root`, to prove nothing changed."""
    return {os.path.relpath(os.path.join(folder, name), root): sha256_of_file(os.path.join(folder, name))
            for folder, _, files in os.walk(root) for name in files}


def tiny(task="classification", seed=0, **head):
    keras.utils.set_random_seed(seed)
    encoder = BertEncoder(vocabulary_size=len(VOCAB), hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                          max_sequence_length=32)
    backbone = tk.Backbone(encoder=encoder, preprocessor=WordPiecePreprocessor(VOCAB, seq_length=16), name="tiny",
                           pooling="mean")
    if task == "classification":
        head.setdefault("labels", ["negative", "positive"])
    return tk.attach_head(backbone, task, seed=seed, **head)


@pytest.mark.parametrize("settings, error, message", [
    ({"seed": -1}, ValueError, r"seed must be an int from 0 to 2147483647 \(or None\), got -1"),
    ({"seed": "abc"}, TypeError, "seed must be an int from 0 to 2147483647 .* got str 'abc': drop the quotes"),
    ({"weight_decay": "0.01"}, TypeError, r"weight_decay must be a number such as 0.01, got str '0.01' \(a string"),
    ({"weight_decay": float("nan")}, ValueError, "weight_decay must be a finite number"),
    ({"weight_decay": float("inf")}, ValueError, "weight_decay must be a finite number"),
    ({"weight_decay": -0.1}, ValueError, "weight_decay must be >= 0"),
    ({"learning_rate": float("inf")}, ValueError, "learning_rate must be a finite number"),
    ({"learning_rate": 1e6}, ValueError, r"learning_rate must be in \(0, 1\]"),
    ({"clipnorm": 0}, ValueError, "clipnorm must be a positive number"),
    ({"clipnorm": float("nan")}, ValueError, "clipnorm must be a finite number"),
    ({"epochs": 0}, ValueError, "epochs must be a positive int, got 0"),
    ({"batch_size": True}, ValueError, "batch_size must be a positive int, got True"),
    ({"gradient_accumulation_steps": 1.5}, ValueError, "gradient_accumulation_steps must be a positive int"),
])
def test_settings_that_cannot_train_are_refused_by_the_trainer(settings, error, message):
    with pytest.raises(error, match=message):
        tk.Trainer(tiny(), **settings)


def test_log_and_checkpoint_folders_that_are_files_are_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="checkpoint_dir .* is a file, not a folder"):
        tk.Trainer(tiny(), checkpoint_dir=tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="log_dir .* is a file, not a folder"):
        tk.Trainer(tiny(), log_dir=tmp_path / "notes.txt")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_checkpoints_logs_and_backups_need_folders_of_their_own(tmp_path):
    with pytest.raises(ValueError, match="checkpoint_dir and backup_dir are the same folder"):
        tk.Trainer(tiny(), checkpoint_dir=tmp_path / "run", backup_dir=tmp_path / "run")
    assert os.listdir(tmp_path) == []


def test_a_users_checkpoint_is_never_overwritten(tmp_path):
    texts, labels = sentiment_texts(16)
    mine = tmp_path / "ckpt"
    mine.mkdir()
    (mine / "epoch-01.weights.h5").write_bytes(b"the user's own weights")
    before = hashes(mine)
    with pytest.raises(ValueError, match=r"checkpoint_dir .* holds files that tunekit did not write "
                                         r"\(epoch-01.weights.h5\)"):
        tk.Trainer(tiny(), checkpoint_dir=mine)
    assert hashes(mine) == before
    # tunekit's own checkpoint folder is written again, but a file the user adds to it stops the next run.
    trainer = tk.Trainer(tiny(), epochs=1, batch_size=8, verbose=0, checkpoint_dir=tmp_path / "run")
    trainer.fit(texts, labels)
    trainer.fit(texts, labels, reset=True)
    (tmp_path / "run" / "NOTES.md").write_text("keep")
    with pytest.raises(ValueError, match=r"holds files that tunekit did not write \(NOTES.md\)"):
        tk.Trainer(tiny(), checkpoint_dir=tmp_path / "run")


def test_a_users_log_folder_and_the_logs_of_another_run_are_kept(tmp_path):
    pytest.importorskip("tensorboard")
    texts, labels = sentiment_texts(16)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "steps.csv").write_text("step,loss\n1,0.5\n")
    with pytest.raises(ValueError, match=r"log_dir .* holds files that tunekit did not write \(steps.csv\)"):
        tk.Trainer(tiny(), log_dir=mine)
    assert (mine / "steps.csv").read_text() == "step,loss\n1,0.5\n"

    tk.Trainer(tiny(), epochs=1, batch_size=8, verbose=0, log_dir=tmp_path / "run", log_every=1).fit(texts, labels)
    first = hashes(tmp_path / "run")
    assert len((tmp_path / "run" / "steps.csv").read_text().splitlines()) == 3
    other = tk.Trainer(tiny(), learning_rate=5e-4, epochs=1, batch_size=8, verbose=0, log_dir=tmp_path / "run")
    with pytest.raises(ValueError, match=r"holds the logs of another training run \(it differs in: learning_rate\)"):
        other.fit(texts, labels)
    other_data = tk.Trainer(tiny(), epochs=1, batch_size=8, verbose=0, log_dir=tmp_path / "run")
    with pytest.raises(ValueError, match=r"another training run \(it differs in: data_sha256\)"):
        other_data.fit(*sentiment_texts(16, seed=9))
    assert hashes(tmp_path / "run") == first  # the first run's rows are all there


def test_fit_refuses_a_dict_of_texts():
    trainer = tk.Trainer(tiny(), epochs=1, verbose=0)
    with pytest.raises(TypeError, match=r"Got a dict \(1 item\(s\)\) as the texts: tunekit would read its keys"):
        trainer.fit({"a": "good"}, [1])
    with pytest.raises(TypeError, match="Got a dict"):
        trainer.predict({"a": "good"})


def test_divergence_stops_training_with_a_clear_error_and_keeps_the_last_good_weights(tmp_path):
    texts, labels = sentiment_texts(32)
    model = tiny("regression")
    trainer = tk.Trainer(model, learning_rate=1e-3, epochs=2, batch_size=8, verbose=0, seed=0,
                         checkpoint_dir=tmp_path / "ckpt")
    trainer.fit(texts, labels.astype("float32"), epochs=1)
    good = [weight.numpy() for weight in model.core.weights]
    # Targets far from 0 that nobody scaled: the squared error overflows float32 at the first step.
    with pytest.raises(FloatingPointError, match=r"Training diverged: the training loss became inf at batch 1 of "
                                                 r"epoch 2 \(learning_rate=0.001.*put back to those after epoch 1"):
        trainer.fit(texts, np.full(len(texts), 1e38, "float32"), epochs=1)
    assert all(np.array_equal(before, weight.numpy()) for before, weight in zip(good, model.core.weights))
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["epoch-01.weights.h5", "tunekit.json"]  # no NaN checkpoint
    assert trainer.history == {}  # reset: the next fit starts afresh
    tk.save_model(model, tmp_path / "model")  # the kept weights are finite: saved
    trainer.fit(texts, labels.astype("float32"))
    assert all(np.isfinite(weight.numpy()).all() for weight in model.core.trainable_weights)
