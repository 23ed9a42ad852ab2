"""Saving, loading and exporting `TextModel`s.

- `save_model(model, path)`: a directory with `model.keras` (architecture, weights, label names,
  `seq_length`) and `tunekit.json` (format version, task, a sha256 of every file and of the manifest itself,
  see `tunekit.formats`). `load_model(path)` restores it; no extra imports needed. The optimizer's state
  (AdamW's two moments per weight: twice the weights again) is left out unless `include_optimizer=True`. The
  SavedModels of a TF Hub encoder or preprocessor are copied into `hub/`, so the folder loads on a machine
  without the original TF Hub cache or directory.
- `export_model(model, path)`: a self-contained TF SavedModel for serving (TF Serving, `tf.saved_model.load`),
  whose `serving_default` signature takes a batch of raw strings (two batches for text pairs) and holds
  the vocabulary and weights itself. A per-token task serves its own function (token classification: raw
  sentences in, one tag per word out).

All writes are atomic (the target appears complete, or stays as it was) and never replace a folder or
file that tunekit did not write (see `tunekit.files.write_atomically`). `load_model` checks the manifest and every
file against its recorded checksum, so a damaged or edited save is reported by name instead of loaded. A model
whose weights hold NaN or infinite values (a diverged training run) is refused by `save_model` and
`export_model` (`check_finite_weights`).

Example:

>>> path = tk.save_model(model, "imdb_model")      # tk.load_model(path) restores it
>>> path = tk.export_model(model, "imdb_serving")
>>> serve = tf.saved_model.load("imdb_serving").signatures["serving_default"]
>>> outputs = serve(text=tf.constant(["A masterpiece."]))
>>> sorted(outputs)
['class_id', 'label', 'probabilities']
>>> outputs["label"]                    # a fine-tuned model: b'pos'
<tf.Tensor: shape=(1,), dtype=string, numpy=array([b'...'], dtype=object)>
"""

import contextlib
import os
import shutil
import zipfile

import keras
import tensorflow as tf
import tensorflow_text  # noqa: F401 - registers the text ops that saved preprocessors use

from tunekit.hub_handles import local_copies
from tunekit.files import user_path, write_atomically
from tunekit.formats import (FORMAT_VERSIONS, MARKER_FILE, MODEL_FILE, DamagedArtifactError, read_manifest,
                             write_manifest)
from tunekit.model import TextModel, check_finite_weights, in_float32

HUB_FOLDER = "hub"


def _check_model(model):
    if not isinstance(model, TextModel):
        raise TypeError(f"Expected a tunekit TextModel (from tunekit.attach_head), got {type(model).__name__}.")


def _hub_sources(model):
    """`{handle: SavedModel directory}` of the model's layers that are loaded from TF Hub SavedModels."""
    return {layer.handle: layer.source_path for layer in (model.preprocessor, model.encoder)
            if getattr(layer, "source_path", None)}


def _write_info(directory, info):
    write_manifest(directory, {"format_version": FORMAT_VERSIONS[info["kind"]], **info})


@contextlib.contextmanager
def _without_optimizer(model):
    """`model` and its `core` as if never compiled while `model.keras` is written, so that the file holds neither
    the optimizer's variables nor the compile settings.

    Not a public Keras API: Keras 3's `.keras` format saves both for any compiled model (`save`'s
    `include_optimizer` is read only for legacy `.h5` files), and a model's `compiled` flag is what its
    `get_compile_config` reads. tests/test_saving.py checks the file, so a Keras that moves the flag fails there.
    """
    compiled = [(part, part.optimizer, part.compiled) for part in (model, model.core) if part.compiled]
    for part, _, _ in compiled:
        part.optimizer, part.compiled = None, False
    try:
        yield
    finally:
        for part, optimizer, was_compiled in compiled:
            part.optimizer, part.compiled = optimizer, was_compiled


def save_model(model, path, *, include_optimizer=False):
    """Saves a `TextModel` to the folder `path`; reload it with `load_model(path)`.

    The folder must not exist yet, or hold an earlier tunekit save (replaced atomically); anything else is
    refused with a `ValueError` (see `tunekit.files.write_atomically`).

    Args:
        model: the `TextModel`.
        path: the folder to write.
        include_optimizer: also store the optimizer's state and settings (AdamW: two moments per trained
            weight, so `model.keras` grows to about 3x the weights: 273 MB instead of 91 MB for MiniLM), for
            training on with Keras' own `model.core.fit` after `load_model`. `Trainer` starts a fresh optimizer
            on a loaded model either way, and an interrupted run resumes exactly from its `backup_dir` backups,
            which always hold the optimizer; so by default it is left out.

    Example:

    >>> path = save_model(model, "my_model")
    >>> sorted(os.listdir(path))  # hub/: the model's TF Hub encoder and preprocessor
    ['hub', 'model.keras', 'tunekit.json']
    >>> load_model(path).task.labels
    ['neg', 'pos']
    """
    if not isinstance(include_optimizer, bool):
        raise TypeError(f"include_optimizer must be True or False, got {include_optimizer!r}.")
    _check_model(model)
    check_finite_weights(model, "save")
    sources = _hub_sources(model)

    def write(directory):
        os.makedirs(directory)
        hub_models = {}
        for i, (handle, source) in enumerate(sources.items()):
            relative = f"{HUB_FOLDER}/{i}"
            shutil.copytree(source, os.path.join(directory, HUB_FOLDER, str(i)))
            hub_models[handle] = relative
        with contextlib.nullcontext() if include_optimizer else _without_optimizer(model):
            model.save(os.path.join(directory, MODEL_FILE))
        _write_info(directory, {"kind": "model", "task": model.task.get_config(), "seq_length": model.seq_length,
                                "keras_version": keras.__version__, "hub_models": hub_models,
                                "optimizer": include_optimizer})

    return write_atomically(path, write, kind="model")


def _check_keras_file(file):
    try:
        with zipfile.ZipFile(file) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise DamagedArtifactError(
            f"This saved model is damaged: {os.path.basename(file)} ({file!r}) is not a complete Keras archive "
            f"({error}); it was probably truncated. Save the model again."
        ) from None
    if bad is not None:
        raise DamagedArtifactError(f"This saved model is damaged: {os.path.basename(file)} has a corrupt member {bad!r}.")


def load_model(path):
    """Loads a model saved by `save_model` / `Trainer.save` (a folder) or a `.keras` file of a TextModel.

    Raises:
        ValueError: `path` is not a tunekit save, was written by a newer tunekit, or is damaged (the message
            names the file).
    """
    # Importing the modules registers their Keras classes for deserialization.
    import tunekit.backbones.bert  # noqa: F401
    import tunekit.backbones.hub_encoder  # noqa: F401
    import tunekit.peft.lora  # noqa: F401 - LoRA encoders
    import tunekit.preprocessing.hub_preprocessor  # noqa: F401
    import tunekit.preprocessing.wordpiece  # noqa: F401
    import tunekit.training.optimization  # noqa: F401

    path = user_path(path)
    copies = {}
    if os.path.isdir(path):
        if not any(os.path.exists(os.path.join(path, name)) for name in (MARKER_FILE, MODEL_FILE)):
            raise ValueError(f"{path!r} is not a saved tunekit model: expected a folder holding {MODEL_FILE}.")
        info = read_manifest(path, "model")  # kind, format version, the checksum of every file
        copies = {handle: os.path.join(path, *relative.split("/"))
                  for handle, relative in info.get("hub_models", {}).items()}
        file = os.path.join(path, MODEL_FILE)
        if not os.path.isfile(file):
            raise DamagedArtifactError(f"This saved model is damaged: {MODEL_FILE} is missing from {path!r}.")
    else:
        file = path
        if not os.path.isfile(file):
            raise ValueError(f"{path!r} is not a saved tunekit model: expected a folder holding {MODEL_FILE}.")
    _check_keras_file(file)
    with local_copies(copies) if copies else contextlib.nullcontext():
        return keras.saving.load_model(file)


def _export_archive(model):
    """A `keras.export.ExportArchive` that tracks `model` and stores each of its weights once.

    `ExportArchive.track(model)` lists the model's Keras variables in the archive's `variables` lists, and
    `write_out` adds the `tf.Variable`s its endpoints capture (another list): with the TensorFlow backend a Keras
    variable is a trackable of its own that saves the value of the `tf.Variable` it wraps, so every weight was
    written twice (MiniLM: 184 MB instead of 93 MB; keras-team/keras#23553). So the archive tracks a `tf.Module`
    holding the model, which is not a Keras layer: `write_out` still finds the lookup tables (the vocabulary) under
    it, and no Keras variable is listed; the reloaded export's `variables`, `trainable_variables` and
    `non_trainable_variables` (Keras' documented collections, kept as before) list the `tf.Variable`s themselves,
    the very objects the endpoint reads, which SavedModel stores once. Public APIs only (a Keras whose
    `Variable.value` were no `tf.Variable` is refused by `add_variable_collection`); tests/test_saving.py counts
    the values in the checkpoint.
    """
    archive = keras.export.ExportArchive()
    holder = tf.Module(name="tunekit_export")
    holder.model = model
    archive.track(holder)
    for name in ("variables", "trainable_variables", "non_trainable_variables"):
        archive.add_variable_collection(name, [variable.value for variable in getattr(model, name)])
    return archive


def export_model(model, path):
    """Writes a self-contained serving SavedModel whose `serving_default` takes raw strings.

    Inputs: `text` (string `[batch]`), plus `text_pair` for pair models. Outputs: the task's
    (classification: `probabilities`, `class_id` and `label` when labels are named; token classification:
    `tags` `[batch, max_words]`, `num_words` and `probabilities`, see
    `tunekit.heads.TokenClassificationTask.serving_function`). The folder also holds `tunekit.json` (task with
    its label names, `num_segments`, `seq_length`, checksums). Like `save_model`, it replaces only an earlier
    tunekit folder. The export computes in float32 even when the model trained in bfloat16 (`in_float32`).
    """
    _check_model(model)
    check_finite_weights(model, "export")
    model = in_float32(model)  # trained in bfloat16 or not, the export computes in float32
    archive = _export_archive(model)
    serve, signature = model.task.serving_function(model)
    archive.add_endpoint("serve", serve, input_signature=signature)

    def write(directory):
        archive.write_out(directory, verbose=False)
        _write_info(directory, {"kind": "export", "task": model.task.get_config(),
                                "num_segments": model.num_segments, "seq_length": model.seq_length})

    return write_atomically(path, write, kind="export")
