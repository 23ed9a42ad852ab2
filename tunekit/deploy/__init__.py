"""Deployment: run any exported model the same way, and make smaller, faster artifacts of a fine-tuned one.

- `load_artifact(path)`: a SavedModel export (`tunekit.export_model`) or a TFLite artifact (`export_tflite`)
  -> an object with `predict(texts, text_pairs=None)` and `predict_labels(texts)`.
- `export_tflite(model, path, compression="int8")`: a raw-string LiteRT model with int8 (or float16) weights and
  a manifest of what the compression cost.

Smaller encoders before fine-tuning: `tunekit.backbones.layer_dropping.drop_layers`. See docs/deployment.md.

Example: `export_tflite(model, "imdb_int8", validation_data=(texts, labels))` writes an artifact folder (run in
`tunekit.deploy.tflite`'s example); `artifact_dir` here is one written for a tiny, untrained test classifier:

>>> from tunekit.deploy import load_artifact
>>> load_artifact(artifact_dir).predict_labels(["A masterpiece."])    # fine-tuned: ['pos']
['...']
"""

from tunekit._lazy import lazy_attributes as _lazy_attributes

# Imported on first use: loading an artifact (`load_artifact`) does not import the exporter.
_EXPORTS = {
    "Artifact": "tunekit.deploy.artifact",
    "load_artifact": "tunekit.deploy.artifact",
    "export_tflite": "tunekit.deploy.tflite",
}

__getattr__, __dir__ = _lazy_attributes(globals(), _EXPORTS)

__all__ = ["Artifact", "export_tflite", "load_artifact"]
