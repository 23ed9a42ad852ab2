import io
import json
import os
import shutil
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest
import tensorflow as tf
from sample_texts import sentiment_texts

import tunekit as tk
from tunekit.files import sha256_of_file

TEXTS = ["The film was superb and lovely.", "The plot was dull and awful.", "", "good good bad"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, hub_models):
    """A classifier fine-tuned for a few steps, with its encoder and preprocessor in a private folder."""
    root = tmp_path_factory.mktemp("sources")
    shutil.copytree(hub_models["encoder"], root / "encoder")
    shutil.copytree(hub_models["preprocessor"], root / "preprocessor")
    backbone = tk.load_backbone(str(root / "encoder"), preprocessor=str(root / "preprocessor"), seq_length=24)
    model = tk.attach_head(backbone, "classification", labels=["negative", "positive"], seed=0)
    trainer = tk.Trainer(model, learning_rate=1e-3, epochs=1, batch_size=16, seed=0, verbose=0)
    trainer.fit(*sentiment_texts(64))
    return trainer, root


def test_save_load_in_fresh_process_gives_identical_predictions(trained, tmp_path):
    trainer, _ = trained
    trainer.save(tmp_path / "model")
    expected = trainer.predict(TEXTS)
    script = (
        "import sys, numpy as np, tunekit as tk\n"
        "model = tk.load_model(sys.argv[1])\n"
        "np.save(sys.argv[2], tk.Trainer(model).predict(sys.argv[3:]))\n"
        "print(model.seq_length, model.task.labels)\n"
    )
    out = tmp_path / "predictions.npy"
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "model"), str(out), *TEXTS],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "24 ['negative', 'positive']"
    assert np.abs(np.load(out) - expected).max() <= 1e-6


def test_loaded_model_keeps_training_state_and_string_interface(trained, tmp_path):
    trainer, _ = trained
    path = tk.save_model(trainer.model, tmp_path / "model")
    info = json.loads((tmp_path / "model" / "tunekit.json").read_text())
    assert info["seq_length"] == 24 and info["task"]["labels"] == ["negative", "positive"]
    loaded = tk.load_model(path)
    assert isinstance(loaded, tk.TextModel)
    direct = loaded(tf.constant(TEXTS)).numpy()
    assert np.abs(direct - trainer.predict(TEXTS)).max() <= 1e-6
    assert tk.Trainer(loaded).predict_labels(TEXTS[:2]) == trainer.predict_labels(TEXTS[:2])


def test_export_is_self_contained_and_serves_raw_strings(trained, tmp_path):
    trainer, sources = trained
    expected = trainer.predict(TEXTS)
    trainer.export(tmp_path / "serving")
    moved = tmp_path / "sources-gone"
    shutil.move(str(sources), str(moved))  # the export must not need the hub folders
    try:
        serving = tf.saved_model.load(str(tmp_path / "serving"))
        outputs = serving.signatures["serving_default"](text=tf.constant(TEXTS))
    finally:
        shutil.move(str(moved), str(sources))
    assert np.abs(outputs["probabilities"].numpy() - expected).max() <= 1e-6
    assert [label.decode() for label in outputs["label"].numpy()] == trainer.predict_labels(TEXTS)
    assert outputs["class_id"].numpy().tolist() == np.argmax(expected, axis=1).tolist()


def test_interrupted_save_leaves_previous_model_intact(trained, tmp_path, monkeypatch):
    trainer, _ = trained
    target = tmp_path / "model"
    trainer.save(target)
    before = sorted(os.listdir(target))

    def fail(*args, **kwargs):
        raise KeyboardInterrupt("interrupted mid-save")

    monkeypatch.setattr(type(trainer.model), "save", fail)
    with pytest.raises(KeyboardInterrupt):
        trainer.save(target)
    assert sorted(os.listdir(target)) == before
    assert sorted(os.listdir(tmp_path)) == ["model"]  # no partial folder left beside it
    tk.load_model(target)


def test_load_model_errors(tmp_path):
    with pytest.raises(ValueError, match="not a saved tunekit model"):
        tk.load_model(tmp_path)
    with pytest.raises(TypeError, match="TextModel"):
        tk.save_model(object(), tmp_path / "x")


def test_save_and_export_refuse_user_files_and_the_current_directory(trained, tmp_path, monkeypatch):
    trainer, _ = trained
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text("print('my script')")
    (project / "notes.txt").write_text("my notes")
    monkeypatch.chdir(project)
    (project / "data").mkdir()
    (project / "data" / "reviews.csv").write_text("text,label\n")
    for call in (trainer.save, trainer.export):
        for target in (".", ".."):
            with pytest.raises(ValueError, match="current directory or one of its parents"):
                call(target)
        with pytest.raises(ValueError, match=r"tunekit did not write \(reviews.csv\)"):
            call("data")
        with pytest.raises(ValueError, match="it is a file"):
            call("notes.txt")
    assert sorted(os.listdir(project)) == ["data", "notes.txt", "train.py"]
    assert os.listdir(project / "data") == ["reviews.csv"]
    assert (project / "notes.txt").read_text() == "my notes"
    trainer.save("model")
    trainer.save("model")  # an earlier save is ours: replaced
    trainer.export("serving")
    trainer.export("serving")
    assert sorted(os.listdir(project)) == ["data", "model", "notes.txt", "serving", "train.py"]
    info = json.loads((project / "serving" / "tunekit.json").read_text())
    assert info["kind"] == "export" and info["num_segments"] == 1 and info["task"]["labels"] == ["negative", "positive"]


def test_damaged_saves_are_reported_by_file(trained, tmp_path):
    trainer, _ = trained
    path = tmp_path / "model"
    trainer.save(path)
    keras_file = path / "model.keras"
    original = keras_file.read_bytes()
    keras_file.write_bytes(original[: len(original) // 2])
    with pytest.raises(ValueError, match="damaged: model.keras"):
        tk.load_model(path)
    keras_file.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # one flipped bit: caught by the checksum
    with pytest.raises(ValueError, match="damaged: model.keras .* \\(checksum mismatch"):
        tk.load_model(path)
    keras_file.write_bytes(original)
    info_file = path / "tunekit.json"
    info_text = info_file.read_text()
    info_file.write_text(info_text[:-20])
    with pytest.raises(ValueError, match="damaged: tunekit.json"):
        tk.load_model(path)
    info_file.write_text(info_text)
    tk.load_model(path)
    # A bare .keras file (no tunekit.json) that is truncated: named, not "File not found".
    (tmp_path / "bare.keras").write_bytes(original[:1000])
    with pytest.raises(ValueError, match="damaged: bare.keras"):
        tk.load_model(tmp_path / "bare.keras")


def test_load_model_refuses_a_newer_format_and_says_which_version_reads_it(trained, tmp_path):
    trainer, _ = trained
    trainer.save(tmp_path / "model")
    info = json.loads((tmp_path / "model" / "tunekit.json").read_text())
    info.update(format_version=99, tunekit_version="9.1.0")
    (tmp_path / "model" / "tunekit.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"has format version 99, written by tunekit 9.1.0; this tunekit \(.*\) reads "
                                         r"format versions up to 3\. Upgrade to read it: pip install -U \"tunekit>=9.1.0\""):
        tk.load_model(tmp_path / "model")


def _keras_file(path):
    """(the core's compile config, the weight file's optimizer entries, the size) of a save's model.keras."""
    import h5py

    file = os.path.join(path, "model.keras")
    with zipfile.ZipFile(file) as archive:
        config = json.loads(archive.read("config.json"))
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
            names = []
            weights.visit(names.append)
    return config["config"]["core"].get("compile_config"), [name for name in names if "optimizer" in name], \
        os.path.getsize(file)


def test_the_optimizer_state_is_saved_only_when_asked(trained, tmp_path):
    trainer, _ = trained
    lean = trainer.save(tmp_path / "lean")
    full = tk.save_model(trainer.model, tmp_path / "full", include_optimizer=True)
    lean_compile, lean_optimizer, lean_size = _keras_file(lean)
    full_compile, full_optimizer, full_size = _keras_file(full)
    assert not lean_compile and lean_optimizer == []
    assert full_compile["optimizer"]["class_name"] == "AdamW" and full_optimizer
    moments = 2 * sum(int(np.prod(variable.shape)) * 4 for variable in trainer.model.core.trainable_variables)
    assert full_size - lean_size > 0.9 * moments, (full_size, lean_size, moments)
    for path, included in ((lean, False), (full, True)):
        assert json.loads((tmp_path / os.path.basename(path) / "tunekit.json").read_text())["optimizer"] is included
    core = trainer.model.core
    assert core.compiled and core.optimizer is not None  # the trained model keeps its optimizer after the save
    assert not tk.load_model(lean).core.compiled
    reloaded = tk.load_model(full).core.optimizer
    assert int(reloaded.iterations) == int(core.optimizer.iterations) > 0
    np.testing.assert_array_equal(reloaded.variables[-1].numpy(), core.optimizer.variables[-1].numpy())
    with pytest.raises(TypeError, match="include_optimizer must be True or False, got 'yes'"):
        tk.save_model(trainer.model, tmp_path / "x", include_optimizer="yes")
    assert not (tmp_path / "x").exists()


def test_frozen_layers_reload_frozen_and_without_keras_optimizer_warnings(hub_models, tmp_path):
    # Layers of a TF Hub SavedModel encoder are frozen variable by variable: before HubEncoder's config recorded
    # them, they reloaded trainable, and a save with its optimizer warned "Skipping variable loading for optimizer
    # 'adam_w', because it has 83 variables whereas the saved optimizer has 41 variables".
    backbone = tk.load_backbone(hub_models["encoder"], preprocessor=hub_models["preprocessor"], seq_length=16)
    tk.peft.freeze_layers(backbone, 1)
    model = tk.attach_head(backbone, "classification", num_classes=2, seed=0)
    trainer = tk.Trainer(model, learning_rate=1e-3, epochs=1, batch_size=16, seed=0, verbose=0)
    trainer.fit(*sentiment_texts(32))
    frozen = [variable.trainable for variable in model.core.variables]
    assert not all(frozen)
    for include_optimizer in (False, True):
        path = trainer.save(tmp_path / f"model-{include_optimizer}", include_optimizer=include_optimizer)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loaded = tk.load_model(path)
        assert [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)] == []
        assert [variable.trainable for variable in loaded.core.variables] == frozen
    assert int(loaded.core.optimizer.iterations) == int(model.core.optimizer.iterations)


def test_saved_model_on_hub_encoder_loads_after_the_sources_are_deleted(tmp_path, hub_models):
    sources = tmp_path / "sources"
    shutil.copytree(hub_models["encoder"], sources / "encoder")
    shutil.copytree(hub_models["preprocessor"], sources / "preprocessor")
    backbone = tk.load_backbone(str(sources / "encoder"), preprocessor=str(sources / "preprocessor"), seq_length=16)
    model = tk.attach_head(backbone, "classification", num_classes=2, seed=0)
    trainer = tk.Trainer(model, learning_rate=1e-3, epochs=1, batch_size=8, seed=0, verbose=0)
    trainer.fit(*sentiment_texts(16))
    expected = trainer.predict(TEXTS)
    trainer.save(tmp_path / "model")
    shutil.rmtree(sources)
    loaded = tk.load_model(tmp_path / "model")
    assert np.abs(tk.Trainer(loaded).predict(TEXTS) - expected).max() <= 1e-6
    loaded_again = tk.load_model(tk.save_model(loaded, tmp_path / "model2"))  # a loaded model saves again
    assert np.abs(tk.Trainer(loaded_again).predict(TEXTS) - expected).max() <= 1e-6


def _hashes(root):
    """{relative path: sha256} of every file under `root`, to prove a write changed nothing."""
    return {os.path.relpath(os.path.join(folder, name), root): sha256_of_file(os.path.join(folder, name))
            for folder, _, files in os.walk(root) for name in files}


def _native_model(lora=False):
    """A tiny classifier on a native encoder (what export_tflite converts), with LoRA adapters (what save_adapter
    writes) when `lora`."""
    from sample_texts import VOCAB

    from tunekit.backbones.backbone import Backbone
    from tunekit.backbones.bert import BertEncoder
    from tunekit.preprocessing.wordpiece import WordPiecePreprocessor

    encoder = BertEncoder(vocabulary_size=len(VOCAB), hidden_size=32, num_layers=1, num_heads=4,
                          intermediate_size=64, max_sequence_length=32, name="encoder")
    encoder.build()
    backbone = Backbone(encoder=encoder, preprocessor=WordPiecePreprocessor(VOCAB, seq_length=16), name="tiny")
    backbone = tk.peft.enable_lora(backbone, seed=0) if lora else backbone
    return tk.attach_head(backbone, "classification", labels=["neg", "pos"], seed=0)


@pytest.mark.parametrize("marker", ["# not json", '{"project": "mine"}'])
def test_no_writer_replaces_a_user_folder_that_holds_a_tunekit_json(trained, tmp_path, marker):
    from tunekit.deploy import export_tflite

    trainer, _ = trained
    lora, native = _native_model(lora=True), _native_model()
    writers = {"save_model": lambda path: tk.save_model(trainer.model, path),
               "export_model": lambda path: tk.export_model(trainer.model, path),
               "save_adapter": lambda path: tk.peft.save_adapter(lora, path),
               "export_tflite": lambda path: export_tflite(native, path),
               "trainer.save": trainer.save}
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text("print('my training script')")
    (project / "tunekit.json").write_text(marker)
    before = _hashes(project)
    for name, write in writers.items():
        with pytest.raises(ValueError, match=r"holds files that tunekit did not write \(train.py, tunekit.json\)"):
            write(project)
        assert _hashes(project) == before, name
    assert sorted(os.listdir(tmp_path)) == ["project"]


def test_a_file_added_to_an_earlier_save_or_export_stops_the_next_one(trained, tmp_path):
    trainer, _ = trained
    for write in (trainer.save, trainer.export):
        target = tmp_path / write.__name__
        write(target)
        (target / "MY_NOTES.md").write_text("lr 1e-3, the March data")
        before = _hashes(target)
        with pytest.raises(ValueError, match=r"earlier tunekit (model|export) but also holds files tunekit did "
                                             r"not write \(MY_NOTES.md\)"):
            write(target)
        assert _hashes(target) == before


def test_save_and_load_expand_the_home_folder(trained, tmp_path, monkeypatch):
    trainer, _ = trained
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert trainer.save("~/models/m") == str(tmp_path / "home" / "models" / "m")
    assert tk.load_model("~/models/m").task.labels == ["negative", "positive"]
    assert os.listdir(tmp_path) == ["home"]  # no folder literally named "~"


def test_an_edited_manifest_or_one_of_another_format_is_refused(trained, tmp_path):
    from tunekit.files import manifest_digest

    trainer, _ = trained
    path = trainer.save(tmp_path / "model")
    info_file = tmp_path / "model" / "tunekit.json"
    original = info_file.read_text()
    info_file.write_text(original.replace('"negative"', '"nefative"'))  # one flipped bit in a label name
    with pytest.raises(ValueError, match="tunekit.json in .* changed since tunekit wrote it"):
        tk.load_model(path)
    for version in ("3", -1, 2, None):
        info = json.loads(original)
        info["format_version"] = version
        info["manifest_sha256"] = manifest_digest(info)
        info_file.write_text(json.dumps(info))
        with pytest.raises(ValueError, match=f"has format version {version!r}, which this tunekit"):
            tk.load_model(path)


def test_weights_that_diverged_to_nan_are_never_saved_or_exported(tmp_path):
    from tunekit.deploy import export_tflite

    model = _native_model()
    kernel = model.core.trainable_weights[-2]
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    lora = _native_model(lora=True)
    lora.core.trainable_weights[-1].assign(np.full(lora.core.trainable_weights[-1].shape, np.inf, "float32"))
    for write in (lambda path: tk.save_model(model, path), lambda path: tk.export_model(model, path),
                  lambda path: export_tflite(model, path), lambda path: tk.peft.save_adapter(lora, path)):
        with pytest.raises(ValueError, match="weight tensors hold NaN or infinite values .* Training diverged"):
            write(tmp_path / "out")
    assert os.listdir(tmp_path) == []


def test_an_export_never_replaces_a_saved_model(trained, tmp_path):
    trainer, _ = trained
    path = trainer.save(tmp_path / "model")
    before = _hashes(path)
    with pytest.raises(ValueError, match="it holds a tunekit model, and this writes a new export"):
        trainer.export(path)
    assert _hashes(path) == before


def _stored_values(path):
    """{checkpoint key: number of values} of the variables an export stores (its object graph entry left out)."""
    reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
    return {key: int(np.prod(shape)) for key, shape in reader.get_variable_to_shape_map().items()
            if key != "_CHECKPOINTABLE_OBJECT_GRAPH"}


@pytest.mark.parametrize("encoder", ["native", "hub"])
def test_the_export_stores_each_weight_once(trained, tmp_path, encoder):
    # keras.export.ExportArchive.track(model) listed the model's Keras variables beside the tf.Variables its endpoint
    # captures, and SavedModel stored both: 2x the weights (MiniLM: 182 MB instead of 91 MB; keras-team/keras#23553).
    model = _native_model() if encoder == "native" else trained[0].model
    path = tk.export_model(model, tmp_path / "serving")
    stored = _stored_values(path)
    weights = model.count_params()
    # Besides the weights, only the dropout layers' random state (2 int64 each; the export runs in inference mode).
    seed_states = sum(int(np.prod(variable.shape)) for variable in model.variables
                      if variable.name == "seed_generator_state")
    total = sum(stored.values())
    assert weights <= total <= weights + seed_states, (
        f"the export stores {total} values for {weights} weights (+ {seed_states} values of dropout seed state): "
        f"{total / weights:.2f}x the weights, in {len(stored)} entries")
    data = [name for name in os.listdir(os.path.join(path, "variables")) if name.startswith("variables.data")]
    size = sum(os.path.getsize(os.path.join(path, "variables", name)) for name in data)
    assert size < 1.25 * 4 * weights + 16_384, (size, weights)  # float32; the object graph takes a few kB
    loaded = tf.saved_model.load(path)  # Keras' documented collections of a revived archive are kept
    assert [variable.numpy().tolist() for variable in loaded.variables] == \
        [variable.numpy().tolist() for variable in model.variables]
    assert (len(loaded.trainable_variables), len(loaded.non_trainable_variables)) == \
        (len(model.trainable_variables), len(model.non_trainable_variables))


def test_the_reloaded_export_serves_the_models_predictions(tmp_path):
    model = _native_model()
    expected = model(tf.constant(TEXTS)).numpy()
    path = tk.export_model(model, tmp_path / "serving")
    serving = tf.saved_model.load(path)
    assert sorted(serving.signatures) == ["serve", "serving_default"]
    outputs = serving.signatures["serving_default"](text=tf.constant(TEXTS))
    assert sorted(outputs) == ["class_id", "label", "probabilities"]
    assert np.abs(outputs["probabilities"].numpy() - expected).max() <= 1e-6
    assert outputs["class_id"].numpy().tolist() == np.argmax(expected, axis=1).tolist()
    assert [label.decode() for label in outputs["label"].numpy()] == [["neg", "pos"][i] for i in
                                                                      np.argmax(expected, axis=1)]
    assert np.array_equal(serving.serve(tf.constant(TEXTS))["probabilities"].numpy(), outputs["probabilities"].numpy())
