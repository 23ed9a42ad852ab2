"""`load_artifact`: one way to run any exported tunekit model, whichever form it takes.

Two kinds of artifact folder are recognised, by their files and their `tunekit.json`:

- `"export"`: a TF SavedModel written by `tunekit.export_model` (float32; TensorFlow and tensorflow-text run it);
- `"tflite"`: a LiteRT (TFLite) model written by `tunekit.deploy.export_tflite` (int8, float16 or float32 weights,
  the tokenizer inside), run by the `ai-edge-litert` runtime (`pip install "tunekit[deploy]"`), or by
  TensorFlow's own TFLite interpreter where that package is missing.

Both take raw strings and give the same outputs, named like the SavedModel's `serving_default` outputs:
classification `probabilities`, `class_id`, `label`; multi-label `probabilities`, `predicted`; regression
`predictions`; token classification `tags`, `num_words`, `probabilities`. String outputs are numpy arrays of
`str`. `tunekit.json` must be present, unedited (it carries a checksum of itself) and of the format this
tunekit reads, and every file is checked against the checksum it records, so a truncated or swapped file, an
edited label name or a missing manifest is reported by name instead of loaded (see `tunekit.formats.read_manifest`).

Example, on `artifact_dir`: the folder `export_tflite(model, "imdb_int8")` wrote for a tiny, untrained test
classifier with labels "neg"/"pos" (a fine-tuned model's labels are right where these are arbitrary):

>>> from tunekit.deploy import load_artifact
>>> artifact = load_artifact(artifact_dir)
>>> artifact.kind, artifact.labels
('tflite', ['neg', 'pos'])
>>> artifact.predict(["A masterpiece."])["label"]                 # fine-tuned: array(['pos'], dtype=object)
array(['...'], dtype=object)
>>> artifact.predict_labels(["A masterpiece.", "Dull."])          # fine-tuned: ['pos', 'neg']
['...', '...']
"""

import os
import threading

import numpy as np

from tunekit.arguments import positive_int
from tunekit.files import user_path
from tunekit.formats import (KINDS, MARKER_FILE, SAVED_MODEL_FILE, TEXT_INPUT_NAMES, TFLITE_FILE,
                             DamagedArtifactError, read_manifest, verify_checksums)
from tunekit.texts import validate_texts

DEFAULT_BATCH_SIZE = 64


def load_artifact(path):
    """Loads an exported model folder (SavedModel export or TFLite artifact) for prediction.

    Args:
        path: a folder written by `tunekit.export_model` or `tunekit.deploy.export_tflite`.

    Returns:
        An `Artifact`: `.predict(texts, text_pairs=None)` -> dict of numpy arrays, `.predict_labels(texts)`,
        `.labels`, `.task` (the task's config dict), `.num_segments`, `.seq_length`, `.kind`.

    Raises:
        ValueError: the path is not such a folder, its manifest does not describe its files, or a file is damaged.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a folder path (str or os.PathLike), got {type(path).__name__}.")
    path = user_path(path)
    if not os.path.isdir(path):
        raise ValueError(
            f"{path!r} is not a folder. load_artifact takes the folder written by tunekit.export_model (a SavedModel) "
            "or tunekit.deploy.export_tflite (a .tflite model with its tunekit.json)."
        )
    if not os.path.isfile(os.path.join(path, MARKER_FILE)):
        found = [name for name in (TFLITE_FILE, SAVED_MODEL_FILE) if os.path.isfile(os.path.join(path, name))]
        if found:
            raise DamagedArtifactError(
                f"{path!r} holds {found[0]} but no {MARKER_FILE}: without it the task, the label names and the "
                "checksums of the files are unknown. Copy the whole folder, or export the model again with "
                "tunekit.export_model or tunekit.deploy.export_tflite.")
        raise ValueError(
            f"{path!r} holds neither {SAVED_MODEL_FILE} (a SavedModel export) nor {TFLITE_FILE} (a TFLite artifact). "
            "Give the folder written by tunekit.export_model or tunekit.deploy.export_tflite.")
    # The files are checked by the artifact (a truncated model file is named with what it means for that kind).
    manifest = read_manifest(path, ("export", "tflite", "model"), what="exported model", verify_files=False)
    kind = manifest["kind"]
    if os.path.isfile(os.path.join(path, TFLITE_FILE)):
        if kind != "tflite":
            raise ValueError(
                f"{path!r} holds {TFLITE_FILE} but its {MARKER_FILE} is the manifest of a {KINDS[kind].what} (kind "
                f"{kind!r}), not of a LiteRT (TFLite) artifact: the manifest belongs to another artifact. Export the "
                "model again with tunekit.deploy.export_tflite."
            )
        return TFLiteArtifact(path, manifest)
    if os.path.isfile(os.path.join(path, SAVED_MODEL_FILE)):
        if kind != "export":
            raise ValueError(
                f"{path!r} holds a SavedModel but its {MARKER_FILE} is the manifest of a {KINDS[kind].what} (kind "
                f"{kind!r}), not of a SavedModel export: the manifest belongs to another artifact. Export the model "
                "again with tunekit.export_model."
            )
        return SavedModelArtifact(path, manifest)
    if kind == "model":
        raise ValueError(
            f"{path!r} is a saved tunekit model (for training; load it with tunekit.load_model), not an exported "
            "one. Export it for prediction with tunekit.export_model(model, path) or tunekit.deploy.export_tflite."
        )
    raise ValueError(
        f"{path!r} holds neither {SAVED_MODEL_FILE} (a SavedModel export) nor {TFLITE_FILE} (a TFLite artifact). "
        "Give the folder written by tunekit.export_model or tunekit.deploy.export_tflite."
    )


class Artifact:
    """An exported model ready to predict. Made by `load_artifact`; subclasses run one kind of artifact.

    Attributes:
        path: the artifact folder.
        kind: `"export"` (SavedModel) or `"tflite"`.
        task: the task's config dict (`{"name": "classification", "labels": [...], ...}`).
        head: the `tunekit.heads.Task` rebuilt from `task` (a task of your own must be registered with
            `tunekit.heads.register_task`); it decodes the outputs (`predict_labels`, `records`).
        labels: the label (tag) names, or None.
        num_segments: 1 (single texts) or 2 (text pairs: `predict(texts, text_pairs)`).
        seq_length: tokens per text (None when unknown).
        manifest: the folder's `tunekit.json` object.
    """

    kind = None

    def __init__(self, path, manifest):
        self.path = path
        self.manifest = manifest
        self._lock = threading.Lock()

    @property
    def labels(self):
        labels = self.task.get("labels")
        return list(labels) if labels is not None else None

    @property
    def head(self):
        if self.__dict__.get("_head") is None:
            from tunekit.heads import task_from_config

            self._head = task_from_config(self.task)
        return self._head

    def records(self, outputs):
        """`predict`'s outputs -> one JSON-ready dict per text, shaped by the task (what `tunekit predict` prints)."""
        return self.head.artifact_records(outputs)

    def predict(self, texts, text_pairs=None, *, batch_size=DEFAULT_BATCH_SIZE):
        """Raw strings (and their pairs) -> dict of numpy arrays, one row per text.

        Args:
            texts: a list (tuple, numpy array, pandas Series) of str.
            text_pairs: the second texts, one per text, for pair models; None otherwise.
            batch_size: texts per run of the model.
        """
        texts = validate_texts(texts, "texts")
        if self.num_segments == 2:
            if text_pairs is None:
                raise ValueError("This model classifies pairs of texts: call predict(texts, text_pairs).")
            text_pairs = validate_texts(text_pairs, "text_pairs")
            if len(text_pairs) != len(texts):
                raise ValueError(f"Got {len(texts)} texts but {len(text_pairs)} text_pairs; give one pair per text.")
        elif text_pairs is not None:
            raise ValueError("This model takes single texts, not pairs: call predict(texts) without text_pairs.")
        batch_size = positive_int(batch_size, "batch_size", "texts per run of the model")
        if not texts:
            raise ValueError("texts is empty: pass at least one text.")
        parts = []
        for start in range(0, len(texts), batch_size):
            segments = [texts[start:start + batch_size]]
            if text_pairs is not None:
                segments.append(text_pairs[start:start + batch_size])
            with self._lock:
                parts.append(self._run(segments))
        return _decode_strings(_concatenate(parts))

    def predict_labels(self, texts, text_pairs=None, *, batch_size=DEFAULT_BATCH_SIZE):
        """Label names: one per text (classification), a list per text (multi-label: the labels over their
        threshold; token classification: one tag per word)."""
        return self.head.artifact_labels(self.predict(texts, text_pairs, batch_size=batch_size))

    def _run(self, segments):
        """One batch: a list of 1 or 2 lists of str -> dict of numpy arrays."""
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__} {self.task.get('name')} from {self.path!r}>"


class SavedModelArtifact(Artifact):
    """A SavedModel written by `tunekit.export_model`, run by TensorFlow."""

    kind = "export"

    def __init__(self, path, manifest):
        super().__init__(path, manifest)
        for key in ("task", "num_segments"):
            if key not in manifest:
                raise ValueError(f"{MARKER_FILE} in {path!r} lacks {key!r}; export the model again with export_model.")
        verify_checksums(path, manifest["files"], what="export")
        import tensorflow as tf
        import tensorflow_text  # noqa: F401 - registers the text ops of the exported tokenizer

        try:
            self._module = tf.saved_model.load(path)
        except Exception as error:  # noqa: BLE001 - TF raises many types for a damaged SavedModel
            raise ValueError(f"{path!r} is not a loadable SavedModel ({type(error).__name__}: {error}).") from None
        if "serving_default" not in self._module.signatures:
            raise ValueError(f"The SavedModel in {path!r} has no serving_default signature; export it with tunekit.")
        self._serve = self._module.signatures["serving_default"]
        inputs = sorted(self._serve.structured_input_signature[1])
        if inputs not in (list(TEXT_INPUT_NAMES[:1]), list(TEXT_INPUT_NAMES)):
            raise ValueError(
                f"The SavedModel in {path!r} takes {inputs}, not raw strings 'text' (and 'text_pair'): it is not a "
                "tunekit export."
            )
        self.num_segments = len(inputs)
        if manifest["num_segments"] != self.num_segments:
            raise ValueError(
                f"{MARKER_FILE} in {path!r} says num_segments={manifest['num_segments']} but the SavedModel takes "
                f"{inputs}: the manifest belongs to another model. Export the model again."
            )
        self.seq_length = manifest.get("seq_length")
        self.task = manifest["task"]
        self._tf = tf

    def _run(self, segments):
        tf = self._tf
        feeds = {name: tf.constant(values, tf.string) for name, values in zip(TEXT_INPUT_NAMES, segments)}
        return {name: value.numpy() for name, value in self._serve(**feeds).items()}


class TFLiteArtifact(Artifact):
    """A LiteRT model written by `tunekit.deploy.export_tflite`; see `tunekit.deploy.tflite`."""

    kind = "tflite"

    def __init__(self, path, manifest):
        from tunekit.deploy.litert_runtime import open_interpreter

        super().__init__(path, manifest)
        for key in ("task", "num_segments", "files"):
            if key not in manifest:
                raise ValueError(f"{MARKER_FILE} in {path!r} lacks {key!r}; export the model again with export_tflite.")
        if TFLITE_FILE not in manifest["files"]:
            raise ValueError(
                f"{MARKER_FILE} in {path!r} does not describe {TFLITE_FILE}: the manifest belongs to another model."
            )
        try:
            verify_checksums(path, manifest["files"], what="TFLite artifact")
        except DamagedArtifactError as error:
            raise DamagedArtifactError(
                f"{error} Either the file is damaged, or {MARKER_FILE} belongs to another model."
            ) from None
        self.task = manifest["task"]
        self.num_segments = int(manifest["num_segments"])
        self.seq_length = manifest.get("seq_length")
        self.compression = manifest.get("compression")
        self.runtime, self._runner = open_interpreter(os.path.join(path, TFLITE_FILE),
                                                      num_segments=self.num_segments, task=self.task)

    def _run(self, segments):
        feeds = {name: np.array(values, dtype=object) for name, values in zip(TEXT_INPUT_NAMES, segments)}
        return {name: np.asarray(value) for name, value in self._runner(**feeds).items()}


def _concatenate(parts):
    """Batches of outputs -> one dict; arrays of `[B, W, ...]` with different `W` are padded ("" or 0)."""
    if len(parts) == 1:
        return parts[0]
    merged = {}
    for name in parts[0]:
        arrays = [part[name] for part in parts]
        if arrays[0].ndim >= 2:
            width = max(array.shape[1] for array in arrays)
            fill = b"" if arrays[0].dtype.kind in "OS" else 0
            arrays = [np.pad(array, [(0, 0), (0, width - array.shape[1])] + [(0, 0)] * (array.ndim - 2),
                             constant_values=fill) for array in arrays]
        merged[name] = np.concatenate(arrays)
    return merged


def _decode_strings(outputs):
    """bytes outputs (label, tags) -> numpy object arrays of str."""
    decoded = {}
    for name, array in outputs.items():
        if array.dtype.kind in "OS":
            flat = [value.decode("utf-8") if isinstance(value, bytes) else str(value) for value in array.reshape(-1)]
            array = np.array(flat, dtype=object).reshape(array.shape)
        decoded[name] = array
    return decoded
