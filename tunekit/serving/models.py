"""The served models: which versions exist, loading and warm-up, and one micro-batcher per version.

A model source is an export directory (version "1"), a TF Serving-style base directory whose numeric
subdirectories are versions (the highest is served by default), a `{version: directory}` dict, or an artifact
already loaded by `tunekit.deploy.load_artifact` (anything with `.predict(texts, text_pairs)`, `.labels`,
`.task`, `.num_segments`, `.kind`).

Example:

>>> import shutil
>>> resolve_versions(artifact_dir) == {"1": artifact_dir}    # one export folder (artifact_dir): version "1"
True
>>> for version in ("1", "2"):
...     _ = shutil.copytree(artifact_dir, f"exports/imdb/{version}")
>>> resolve_versions("exports/imdb")                        # a folder of numbered versions
{'1': 'exports/imdb/1', '2': 'exports/imdb/2'}
"""

import logging
import os
import re
import time

import numpy as np

from tunekit.formats import MARKER_FILE, SAVED_MODEL_FILE
from tunekit.serving.batching import MicroBatcher

logger = logging.getLogger("tunekit.serving")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MARKERS = (MARKER_FILE, SAVED_MODEL_FILE)
WARMUP_TEXT = "Warm-up request: a short sentence, repeated to reach the model's longest input. " * 40


def check_name(name, what="model name"):
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"Invalid {what} {name!r}: use 1-64 letters, digits, '_', '.' or '-', starting with a "
                         "letter or digit.")
    return name


def _is_artifact_dir(path):
    return any(os.path.isfile(os.path.join(path, marker)) for marker in _MARKERS)


def is_version_base(source):
    """True for a directory that holds numbered version folders rather than one export (the kind that is watched
    for new versions)."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    path = os.fspath(source)
    return os.path.isdir(path) and not _is_artifact_dir(path)


def resolve_versions(source):
    """`{version: path or artifact}` for one model source (see the module docstring)."""
    if isinstance(source, dict):
        if not source:
            raise ValueError("A model's version dict is empty: give at least one {version: export directory}.")
        return {check_name(str(version), "model version"): value for version, value in source.items()}
    if hasattr(source, "predict"):
        return {"1": source}
    path = os.fspath(source)
    if not os.path.isdir(path):
        raise ValueError(f"{path!r} is not a directory: pass a directory written by tunekit.export_model "
                         "(or a folder of numbered version directories).")
    if _is_artifact_dir(path):
        return {"1": path}
    versions = {entry: os.path.join(path, entry) for entry in os.listdir(path)
                if entry.isdigit() and _is_artifact_dir(os.path.join(path, entry))}
    if not versions:
        raise ValueError(f"{path!r} holds no export: expected tunekit.json/saved_model.pb in it, or numbered "
                         "version subdirectories (1/, 2/, ...) that hold them.")
    return dict(sorted(versions.items(), key=lambda item: int(item[0])))


def default_version(versions):
    """The version served when a request names none: the highest number (else the last given)."""
    numeric = [v for v in versions if v.isdigit()]
    return max(numeric, key=int) if numeric else list(versions)[-1]


class ServedModel:
    """One version of one model: its artifact (loaded lazily by `load`), description and micro-batcher."""

    def __init__(self, name, version, source, batching):
        self.name, self.version, self.source = name, version, source
        self.batching = dict(batching)
        self.artifact = None
        self.batcher = None
        self.ready = False
        self.status = "LOADING"  # TF Serving's states: LOADING, AVAILABLE, UNLOADING, END
        self.error = None  # why it failed to load (status END)
        self.in_flight = 0  # requests routed to this version and not yet answered
        self.outputs = {}  # output name -> (numpy dtype, shape after the batch dimension), from the warm-up

    @property
    def labels(self):
        return list(self.artifact.labels) if getattr(self.artifact, "labels", None) is not None else None

    @property
    def num_segments(self):
        return int(self.artifact.num_segments)

    def load(self):
        """Loads the artifact (if given as a path) and warms it up at batch sizes 1 and the batch limit (blocking)."""
        started = time.perf_counter()
        if self.artifact is None:
            if hasattr(self.source, "predict"):
                self.artifact = self.source
            else:
                from tunekit.deploy import load_artifact

                self.artifact = load_artifact(self.source)
        for size in sorted({1, self.batching["max_batch_size"]}):
            pairs = [WARMUP_TEXT] * size if self.num_segments == 2 else None
            outputs = self.artifact.predict([WARMUP_TEXT] * size, pairs)
        self.outputs = {name: (np.asarray(value).dtype, list(np.asarray(value).shape[1:]))
                        for name, value in outputs.items()}
        logger.info("loaded model %s version %s (%s) in %.1f s", self.name, self.version,
                    getattr(self.artifact, "kind", "artifact"), time.perf_counter() - started)

    def start(self, on_batch):
        """Creates and starts the micro-batcher (inside the running event loop), then marks the model ready."""
        self.batcher = MicroBatcher(self.artifact.predict, on_batch=on_batch, **self.batching)
        self.batcher.start()
        self.ready, self.status = True, "AVAILABLE"

    def describe(self):
        """Name, version, task and the signature (inputs and outputs) of this model version."""
        from tunekit.serving.protocols import TEXT_INPUTS, kserve_datatype

        return {
            "name": self.name,
            "version": self.version,
            "kind": getattr(self.artifact, "kind", None),
            "task": getattr(self.artifact, "task", None),
            "labels": self.labels,
            "inputs": [{"name": name, "datatype": "BYTES", "shape": [-1]} for name in TEXT_INPUTS[: self.num_segments]],
            "outputs": [{"name": name, "datatype": kserve_datatype(dtype), "shape": [-1, *shape]}
                        for name, (dtype, shape) in self.outputs.items()],
        }
