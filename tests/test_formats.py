"""On-disk formats (`tunekit.formats`): every kind of folder tunekit writes goes through one reader, which refuses a
newer `format_version` naming the versions and the tunekit that reads it, and a missing or unknown marker saying
what the folder should be. Each kind is written for real, once, by a tiny trained model."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import tunekit
from tunekit.formats import (FORMAT_VERSIONS, KINDS, MARKER_FILE, DamagedArtifactError, NewerFormatError,
                             manifest_digest, read_manifest, write_manifest)

RUN = {"model": "tiny", "examples": 32}


def _store(path):
    from tunekit.training.backup import BackupStore

    return BackupStore(path, run=RUN)


def _variables():
    import keras

    return [keras.Variable([1.0, 2.0], name="weight")]


@pytest.fixture(scope="module")
def written(tmp_path_factory, new_backbone):
    """`{kind: folder}`: one folder of every kind, written by tunekit's own writers: a tiny model's save, export
    and LiteRT artifact, the checkpoint and log folders `Trainer` writes (one epoch), a LoRA adapter, a training
    backup in its folder of backups, and a backbone folder."""
    import keras

    import tunekit as tk
    from tunekit.backbones.hub_format import save_backbone
    from tunekit.deploy import export_tflite
    from tunekit.training.callbacks import claim_log_dir
    from tunekit.training.checkpoint import EpochCheckpoint

    root = tmp_path_factory.mktemp("written")
    model = tk.attach_head(new_backbone(), "classification", labels=["neg", "pos"], seed=0)
    logs = claim_log_dir(root / "logs", RUN)
    epochs = keras.callbacks.CSVLogger(os.path.join(logs, "epochs.csv"), append=True)  # as Trainer(log_dir=...)
    checkpoints = EpochCheckpoint(root / "checkpoints")
    for callback in (epochs, checkpoints):
        callback.set_model(model.core)
        callback.on_train_begin()
        callback.on_epoch_end(0, {"loss": 0.7})
    epochs.on_train_end()
    lora = tk.attach_head(tk.peft.enable_lora(new_backbone(seed=2), seed=0), "classification", num_classes=2)
    _store(root / "backup").save(_variables(), {"epoch": 0, "step": 1, "global_step": 1})
    (backup,) = [name for name in os.listdir(root / "backup") if name.startswith("step-")]
    return {
        "model": tk.save_model(model, root / "model"),
        "export": tk.export_model(model, root / "export"),
        "tflite": export_tflite(model, root / "tflite", compression="float32"),
        "adapter": tk.peft.save_adapter(lora, root / "adapter"),
        "backup": str(root / "backup" / backup),
        "backups": str(root / "backup"),
        "checkpoints": checkpoints.directory,
        "logs": logs,
        "backbone": save_backbone(new_backbone(), root / "backbone"),
    }


def _read_model(path):
    return tunekit.load_model(path)


def _read_artifact(path):
    from tunekit.deploy import load_artifact

    return load_artifact(path)


def _read_adapter(path):
    return tunekit.peft.read_adapter(path)


def _read_backup(path):
    return _store(os.path.dirname(path)).restore(_variables())


def _read_backups(path):
    from tunekit.training.backup import check_backup_dir

    return check_backup_dir(path)


def _read_checkpoints(path):
    from tunekit.training.checkpoint import check_checkpoint_dir

    return check_checkpoint_dir(path)


def _read_logs(path):
    from tunekit.training.callbacks import check_log_dir

    return check_log_dir(path)


def _read_backbone(path):
    return tunekit.load_backbone(path)


# kind -> (how tunekit reads it, what the refusal of a folder without its tunekit.json says)
READERS = {
    "model": (_read_model, r"is not a saved model, or is damaged: it has no tunekit.json.*Expected a saved model "
                           r"\(written by tunekit.save_model or Trainer.save\)"),
    "export": (_read_artifact, "holds saved_model.pb but no tunekit.json: without it the task, the label names"),
    "tflite": (_read_artifact, "holds model.tflite but no tunekit.json: without it the task, the label names"),
    "adapter": (_read_adapter, "is not an adapter directory: expected tunekit.json and adapter.npz"),
    "backup": (_read_backup, r"is not a training backup, or is damaged: it has no tunekit.json.*No intact training "
                             "backup is left"),
    "backups": (_read_backups, "holds files that are not tunekit training backups"),
    "checkpoints": (_read_checkpoints, r"holds files that tunekit did not write \(epoch-01.weights.h5"),
    "logs": (_read_logs, r"holds files that tunekit did not write \(epochs.csv"),
    "backbone": (_read_backbone, r"is not a backbone folder, or is damaged: it has no tunekit.json.*Expected a "
                                 r"backbone folder \(written by tunekit.backbones.hub_format.save_backbone\)"),
}


def _copy(written, kind, tmp_path):
    """A copy of the folder of `kind` (a backup with the folder of backups it lies in)."""
    source = written[kind]
    if kind == "backup":
        return os.path.join(shutil.copytree(os.path.dirname(source), tmp_path / "backup"), os.path.basename(source))
    return str(shutil.copytree(source, tmp_path / kind))


def _rewrite(folder, **changes):
    """Changes keys of `folder`'s manifest and recomputes its checksum, so that only those keys are wrong."""
    path = os.path.join(folder, MARKER_FILE)
    with open(path, encoding="utf-8") as file:
        manifest = json.load(file)
    manifest.update(changes)
    manifest["manifest_sha256"] = manifest_digest(manifest)
    with open(path, "w", encoding="utf-8") as file:
        json.dump(manifest, file)


def test_every_kind_is_written_with_its_kind_version_and_tunekit_version(written):
    assert set(written) == set(KINDS) - {"artifact"}
    for kind, folder in written.items():
        manifest = read_manifest(folder, kind, verify_files=False)
        assert (manifest["kind"], manifest["format_version"], manifest["tunekit_version"]) == (
            kind, FORMAT_VERSIONS[kind], tunekit.__version__), kind


@pytest.mark.parametrize("kind", sorted(READERS))
def test_a_newer_format_version_is_refused_naming_the_versions_and_the_upgrade(written, kind, tmp_path):
    read, _ = READERS[kind]
    folder = _copy(written, kind, tmp_path)
    _rewrite(folder, format_version=99)
    with pytest.raises(NewerFormatError) as refusal:
        read(folder)
    message = str(refusal.value)
    assert f"has format version 99, written by tunekit {tunekit.__version__}" in message, message
    assert f"this tunekit ({tunekit.__version__}) reads format versions up to {FORMAT_VERSIONS[kind]}" in message
    assert message.endswith("Upgrade to read it: pip install -U tunekit.")


@pytest.mark.parametrize("kind", sorted(READERS))
def test_a_missing_marker_is_refused_saying_what_the_folder_should_be(written, kind, tmp_path):
    read, expected = READERS[kind]
    folder = _copy(written, kind, tmp_path)
    os.remove(os.path.join(folder, MARKER_FILE))
    if kind == "tflite":  # a truncated model.tflite without its manifest (the message once said "a None artifact")
        with open(os.path.join(folder, "model.tflite"), "r+b") as file:
            file.truncate(1000)
    with pytest.raises(ValueError, match=expected) as refusal:
        read(folder)
    assert "None" not in str(refusal.value)


@pytest.mark.parametrize("kind", sorted(READERS))
def test_a_marker_of_an_unknown_kind_is_refused(written, kind, tmp_path):
    read, expected = READERS[kind]
    folder = _copy(written, kind, tmp_path)
    _rewrite(folder, kind="hologram")
    if kind in ("backups", "checkpoints", "logs"):  # a folder tunekit only writes into when it is its own
        message = expected
    else:
        version = re.escape(tunekit.__version__)
        message = (f"holds a tunekit.json of kind 'hologram', which this tunekit \\({version}\\) does not know .*, so "
                   f"the folder is not an? .*Expected .*{re.escape(KINDS[kind].what)}")
    with pytest.raises(ValueError, match=message):
        read(folder)


def test_backbone_folders_of_tunekit_0_1_load_and_a_hand_made_one_keeps_the_default_pooling(written, tmp_path):
    assert tunekit.load_backbone(written["backbone"], seq_length=16).pooling == "mean"  # recorded in backbone.json
    legacy = shutil.copytree(written["backbone"], tmp_path / "legacy")
    write_manifest(legacy, {"kind": "artifact", "format_version": 1, "tunekit_version": "0.1.0"})
    assert tunekit.load_backbone(legacy, seq_length=16).pooling == "mean"
    by_hand = tmp_path / "by_hand"
    for part in ("encoder", "preprocessor"):
        shutil.copytree(os.path.join(written["backbone"], part), by_hand / part)
    assert tunekit.load_backbone(by_hand, seq_length=16).pooling == "pooled"
    edited = shutil.copytree(written["backbone"], tmp_path / "edited")
    (edited / "backbone.json").write_text('{"pooling": "cls"}')
    with pytest.raises(DamagedArtifactError, match="backbone folder is damaged: backbone.json in .* changed"):
        tunekit.load_backbone(edited, seq_length=16)


def test_the_upgrade_names_the_tunekit_that_wrote_the_folder(tmp_path):
    write_manifest(tmp_path, {"kind": "model", "format_version": 99, "tunekit_version": "9.1.0"}, files={})
    with pytest.raises(NewerFormatError, match=r"format version 99, written by tunekit 9.1.0; this tunekit \(.*\) "
                                               r"reads format versions up to 3\. Upgrade to read it: "
                                               r"pip install -U \"tunekit>=9.1.0\"\.$"):
        read_manifest(tmp_path, "model")
    write_manifest(tmp_path, {"kind": "model", "format_version": 99, "tunekit_version": None}, files={})
    with pytest.raises(NewerFormatError, match="written by a newer tunekit; .* pip install -U tunekit"):
        read_manifest(tmp_path, "model")
    assert read_manifest(tmp_path)["format_version"] == 99  # any kind, any format: what tunekit.files relies on


def test_older_formats_other_kinds_and_foreign_markers_are_refused_by_name(tmp_path):
    write_manifest(tmp_path, {"kind": "adapter", "format_version": 1}, files={})
    with pytest.raises(ValueError, match=r"has format version 1, which this tunekit .* does not read \(it reads LoRA "
                                         r"adapter format 2\)\. Write it again with tunekit.peft.save_adapter"):
        read_manifest(tmp_path, "adapter")
    with pytest.raises(ValueError, match=r"holds a tunekit LoRA adapter \(kind 'adapter'\), not a saved model"):
        read_manifest(tmp_path, "model")
    (tmp_path / MARKER_FILE).write_text('{"project": "mine"}')
    with pytest.raises(ValueError, match="is not a tunekit manifest .*names no kind.*not a SavedModel export or "
                                         "LiteRT"):
        read_manifest(tmp_path, ("export", "tflite"))
    with pytest.raises(ValueError, match=r"unknown kind 'modle'; the kinds are \['adapter'"):
        read_manifest(tmp_path, "modle")


def test_the_formats_module_imports_no_tensorflow():
    script = ("import sys, tunekit.formats, tunekit.files\n"
              "print(sorted(name for name in ('tensorflow', 'keras') if name in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
