"""Deployment: run any exported model the same way, and make smaller, faster artifacts of a fine-tuned one.

- `load_artifact(path)`: a SavedModel export (`tunekit.export_model`) or a TFLite artifact (`export_tflite`)
  -> an object with `predict(texts, text_pairs=None)` and `predict_labels(texts)`.
- `export_tflite(model, path, compression="int8")`: a raw-string LiteRT model with int8 (or float16) weights and
  a manifest of what the compression cost.

Smaller encoders before fine-tuning: `tunekit.backbones.layer_dropping.drop_layers`. See docs/deployment.md.

Example:

>>> from tunekit.deploy import export_tflite, load_artifact          # doctest: +SKIP
>>> export_tflite(model, "imdb_int8", validation_data=(texts, labels))  # doctest: +SKIP
>>> load_artifact("imdb_int8").predict_labels(["A masterpiece."])       # doctest: +SKIP
['positive']
"""

from tunekit.deploy.artifact import Artifact, load_artifact
from tunekit.deploy.tflite import export_tflite

__all__ = ["Artifact", "export_tflite", "load_artifact"]
