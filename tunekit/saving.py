"""Saving, loading and exporting `TextModel`s.

- `save_model(model, path)`: a directory with `model.keras` (architecture, weights, label names,
  `seq_length`). `load_model(path)` restores it; no extra imports needed. A TF Hub encoder or
  preprocessor is stored by handle and reloaded from it (the TF Hub cache or the local directory), with
  the fine-tuned weights from the file.
- `export_model(model, path)`: a self-contained TF SavedModel for serving (TF Serving, `tf.saved_model.load`),
  whose `serving_default` signature takes a batch of raw strings (two batches for text pairs) and holds
  the vocabulary and weights itself. A per-token task serves its own function (token classification: raw
  sentences in, one tag per word out).

All writes are atomic: the target appears complete, or stays as it was.

Example:

>>> tk.save_model(model, "imdb_model"); model2 = tk.load_model("imdb_model")      # doctest: +SKIP
>>> tk.export_model(model, "imdb_serving")                                         # doctest: +SKIP
>>> serve = tf.saved_model.load("imdb_serving").signatures["serving_default"]    # doctest: +SKIP
>>> serve(text=tf.constant(["A masterpiece."]))["label"]                          # doctest: +SKIP
"""

import json
import os

import keras
import tensorflow as tf
import tensorflow_text  # noqa: F401 - registers the text ops that saved preprocessors use

from tunekit.files import write_atomically
from tunekit.model import TEXT_INPUT_NAMES, TextModel

MODEL_FILE = "model.keras"
INFO_FILE = "tunekit.json"
FORMAT_VERSION = 1


def _check_model(model):
    if not isinstance(model, TextModel):
        raise TypeError(f"Expected a tunekit TextModel (from tunekit.attach_head), got {type(model).__name__}.")


def save_model(model, path):
    """Saves a `TextModel` to the directory `path` (replacing it atomically if it exists)."""
    _check_model(model)

    def write(directory):
        os.makedirs(directory)
        model.save(os.path.join(directory, MODEL_FILE))
        with open(os.path.join(directory, INFO_FILE), "w", encoding="utf-8") as file:
            json.dump({"format_version": FORMAT_VERSION, "task": model.task.get_config(),
                       "seq_length": model.seq_length, "keras_version": keras.__version__}, file, indent=2)

    return write_atomically(path, write)


def load_model(path):
    """Loads a model saved by `save_model` / `Trainer.save` (a directory) or a `.keras` file of a TextModel."""
    # Importing the modules registers their Keras classes for deserialization.
    import tunekit.backbones.bert  # noqa: F401
    import tunekit.backbones.hub_encoder  # noqa: F401
    import tunekit.preprocessing.hub_preprocessor  # noqa: F401
    import tunekit.preprocessing.wordpiece  # noqa: F401
    import tunekit.training.optimization  # noqa: F401

    path = os.fspath(path)
    file = os.path.join(path, MODEL_FILE) if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise ValueError(f"{path!r} is not a saved tunekit model: expected a directory holding {MODEL_FILE}.")
    return keras.saving.load_model(file)


def export_model(model, path):
    """Writes a self-contained serving SavedModel whose `serving_default` takes raw strings.

    Inputs: `text` (string `[batch]`), plus `text_pair` for pair models. Outputs: the task's
    (classification: `probabilities`, `class_id` and `label` when labels are named; token classification:
    `tags` `[batch, max_words]`, `num_words` and `probabilities`, see
    `tunekit.heads.TokenClassificationTask.serving_function`).
    """
    _check_model(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    if model.task.per_token:
        serve, signature = model.task.serving_function(model)
    else:
        serve, signature = _text_serving_function(model)
    archive.add_endpoint("serve", serve, input_signature=signature)
    return write_atomically(path, lambda directory: archive.write_out(directory, verbose=False))


def _text_serving_function(model):
    """(function, input signature) of a per-text task's `serving_default`: raw strings -> the task's outputs."""
    signature = [tf.TensorSpec([None], tf.string, name=name) for name in TEXT_INPUT_NAMES[: model.num_segments]]
    if model.num_segments == 1:
        def serve(text):
            return model.task.serving_outputs(model(text, training=False))
    else:
        def serve(text, text_pair):
            return model.task.serving_outputs(model([text, text_pair], training=False))
    return serve, signature
