"""Crash-safe resume (`Trainer(backup_dir=...)`) and state that lives across `fit` calls."""

import os
import random
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
from sample_texts import sentiment_texts
from train_script import augmentation, build, train

import tunekit as tk

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_script.py")
STEPS = 24  # train_script: 64 texts, batch 8, 3 epochs


def weights_of(trainer):
    return [v.numpy() for v in trainer.model.core.weights]


def max_difference(first, second):
    return max(float(np.abs(a - b).max()) for a, b in zip(first, second))


@pytest.fixture(scope="module")
def uninterrupted():
    """Weights of the seeded run with dropout 0.1, never interrupted."""
    return weights_of(train())


@pytest.fixture(scope="module")
def uninterrupted_augmented():
    """Weights of the same run on texts rewritten every epoch by train_script's augmentation, never interrupted."""
    return weights_of(train(augment=augmentation()))


class CrashAt(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) == self.step:
            raise RuntimeError("simulated crash")


@pytest.mark.parametrize("augmented", [False, True], ids=["plain", "augmented"])
def test_kill_9_at_a_random_step_then_rerun_gives_the_uninterrupted_weights(augmented, tmp_path, request):
    """With augmentation on, each epoch's rewrite of the texts is a function of the run's seed and the epoch, so the
    resumed run trains on the texts the killed one would have seen."""
    uninterrupted = request.getfixturevalue("uninterrupted_augmented" if augmented else "uninterrupted")
    if augmented:  # the rewritten texts did change what was learned
        assert max_difference(request.getfixturevalue("uninterrupted"), uninterrupted) > 1e-4
    kill_at = random.randint(3, STEPS - 3)
    command = [sys.executable, SCRIPT, str(tmp_path / "weights.npz"), "--backup", str(tmp_path / "backup"),
               *(["--augment"] if augmented else [])]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in child.stdout:
        if line.strip() == f"step {kill_at}":
            os.kill(child.pid, signal.SIGKILL)
            break
    assert child.wait(timeout=300) == -signal.SIGKILL, "the child finished before it was killed"
    backups = sorted(name for name in os.listdir(tmp_path / "backup") if name.startswith("step-"))
    assert backups, f"no backup before step {kill_at}"
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    first_step = int(rerun.stdout.split()[1])
    assert first_step > 1, "the rerun started from scratch instead of resuming"
    with np.load(tmp_path / "weights.npz") as saved:
        resumed = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    difference = max_difference(uninterrupted, resumed)
    assert difference <= 1e-6, f"killed at step {kill_at}, resumed at step {first_step}: max |diff| {difference}"
    assert os.listdir(tmp_path / "backup") == ["tunekit.json"]  # a finished run leaves no backup to resume


def test_resume_skips_half_written_backups_and_keeps_the_history(uninterrupted, tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(backup_dir=tmp_path, callbacks=[CrashAt(13)])
    # What an interrupted write could leave: a staging folder, and (never written by tunekit itself) a backup
    # folder without its tunekit.json.
    os.makedirs(tmp_path / ".step-000000099.partial-1-x" / "new")
    os.makedirs(tmp_path / "step-000000099")
    trainer = train(backup_dir=tmp_path)
    assert max_difference(uninterrupted, weights_of(trainer)) <= 1e-6
    assert trainer.history["epoch"] == [1, 2, 3]
    assert len(trainer.history["loss"]) == 3


def test_a_backup_of_another_run_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(backup_dir=tmp_path, callbacks=[CrashAt(3)])
    with pytest.raises(ValueError, match="different run.*steps_per_epoch: backup 8, now 10"):
        train(backup_dir=tmp_path, examples=80)


def test_backup_dir_holding_other_files_is_refused_at_once(backbone, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    model = tk.attach_head(backbone, "classification", num_classes=2)
    with pytest.raises(ValueError, match="not tunekit training backups"):
        tk.Trainer(model, backup_dir=tmp_path)


def test_second_fit_continues_and_reset_starts_afresh():
    texts, labels = sentiment_texts(32)
    once = build(epochs=2)
    once.fit(texts, labels)
    twice = build(epochs=2)
    first = twice.fit(texts, labels, epochs=1)
    second = twice.fit(texts, labels, epochs=1)
    assert first.epoch == [0] and second.epoch == [1]
    assert int(twice.model.core.optimizer.iterations) == 8
    assert max_difference(weights_of(once), weights_of(twice)) == 0  # dropout on: its state continued too
    twice.fit(texts, labels, epochs=1, reset=True)
    assert int(twice.model.core.optimizer.iterations) == 4
    assert twice.history["epoch"] == [1]


def test_a_backup_of_another_run_with_the_same_shapes_is_refused_naming_what_differs(tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(backup_dir=tmp_path, callbacks=[CrashAt(3)])
    texts, labels = sentiment_texts(64, seed=4)
    before = sorted(os.listdir(tmp_path))

    other_rate = build(backup_dir=tmp_path)
    other_rate = tk.Trainer(other_rate.model, learning_rate=2e-3, epochs=3, batch_size=8, seed=0, verbose=0,
                            backup_dir=tmp_path, backup_every=2)
    with pytest.raises(ValueError, match="different run.*learning_rate: backup 0.001, now 0.002"):
        other_rate.fit(texts, labels)
    with pytest.raises(ValueError, match=r"different run \(data_sha256: backup [0-9a-f]{12}\.\.\., now "):
        build(backup_dir=tmp_path).fit(*sentiment_texts(64, seed=5))  # other texts, as many
    other_base = build(backup_dir=tmp_path)
    kernel = other_base.model.encoder.transformer_blocks[0].query.kernel
    kernel.assign(kernel + 0.01)
    with pytest.raises(ValueError, match=r"different run \(initial_weights_sha256: backup "):
        other_base.fit(texts, labels)
    with pytest.raises(ValueError, match=r"different run \(dropout: backup \[0.1, .*\], now \[0.2, "):
        train(backup_dir=tmp_path, dropout=0.2)
    assert sorted(os.listdir(tmp_path)) == before  # the backups are kept for the run they belong to


def _newest_backup(directory):
    return directory / sorted(name for name in os.listdir(directory) if name.startswith("step-"))[-1]


def test_a_damaged_or_edited_newest_backup_falls_back_to_the_one_before(uninterrupted, tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(backup_dir=tmp_path, callbacks=[CrashAt(13)])
    newest = _newest_backup(tmp_path)
    variables = newest / "variables.npz"
    payload = bytearray(variables.read_bytes())
    payload[len(payload) // 2] ^= 1
    variables.write_bytes(bytes(payload))
    with pytest.warns(UserWarning, match=r"training backup is damaged: variables.npz .* changed since it was "
                                         r"written.*Resuming from the backup before it"):
        trainer = train(backup_dir=tmp_path)
    assert max_difference(uninterrupted, weights_of(trainer)) <= 1e-6

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(backup_dir=tmp_path, callbacks=[CrashAt(13)])
    manifest = _newest_backup(tmp_path) / "tunekit.json"
    manifest.write_text(manifest.read_text().replace('"seed": 0', '"seed": 1'))  # an edit: the checksum catches it
    with pytest.warns(UserWarning, match="tunekit.json in .* changed since tunekit wrote it.*Resuming from the backup"):
        trainer = train(backup_dir=tmp_path)
    assert max_difference(uninterrupted, weights_of(trainer)) <= 1e-6


def test_when_every_backup_is_damaged_resume_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(backup_dir=tmp_path, callbacks=[CrashAt(5)])
    for name in os.listdir(tmp_path):
        if name.startswith("step-"):
            (tmp_path / name / "variables.npz").write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="Resuming from the backup before it"), \
            pytest.raises(ValueError, match="No intact training backup is left in .*: delete the folder"):
        train(backup_dir=tmp_path)


@pytest.mark.parametrize("version", [99, "2", -1, None, 1])
def test_a_backup_of_a_format_it_does_not_read_is_refused(tmp_path, version):
    import json

    from tunekit.files import manifest_digest
    from tunekit.training.backup import BackupStore

    variable = keras.Variable(np.arange(3, dtype="float32"))
    store = BackupStore(tmp_path, run={"model": "tiny"})
    store.save([variable], {"epoch": 0, "step": 1, "global_step": 1, "seed": 0, "history": {}})
    manifest_file = _newest_backup(tmp_path) / "tunekit.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["format_version"] = version
    manifest["manifest_sha256"] = manifest_digest(manifest)
    manifest_file.write_text(json.dumps(manifest))
    message = "reads format versions up to 2" if version == 99 else f"has format version {version!r}, which this"
    with pytest.raises(ValueError, match=message):
        store.restore([variable])
