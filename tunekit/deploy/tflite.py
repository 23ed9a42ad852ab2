"""`export_tflite`: a LiteRT (TFLite) model that still takes raw strings, with int8 or float16 weights.

The tokenizer goes inside the model (the graph: `tunekit.deploy.litert_graph`), so the artifact takes raw
strings like the SavedModel export; a model with an op LiteRT cannot run (today: the word chunking of token
classification) is refused with a `ValueError` naming the ops, and nothing is written. Before the folder is
written the artifact is loaded (`tunekit.deploy.litert_runtime`) and compared with the float32 model.

Compression (`compression=`):
- `"int8"`: dynamic-range quantization (`tf.lite.Optimize.DEFAULT`): int8 weights, ~4x smaller, activations
  quantized on the fly by the int8 kernels;
- `"float16"`: float16 weights (half the size), computed in float32 on CPU;
- `"float32"`: no compression (the reference the other two are measured against on the same runtime).

The artifact is a folder: `model.tflite` and `tunekit.json` (`kind: "tflite"`, base, task and labels,
`num_segments`, `seq_length`, compression, size, the custom ops it needs, a checksum of the model file, and,
when `validation_data` is given, the metrics of the float32 Keras model and of the artifact on it and their
difference). Load it with `tunekit.deploy.load_artifact`, which runs it with the `ai-edge-litert` runtime
(`pip install "tunekit[deploy]"`) or, without that package, TensorFlow's deprecated `tf.lite` interpreter.

Example, on a tiny test encoder (a real model would be fine-tuned from e.g. `tk.load_backbone("minilm-l6")`, and
`validation_data` its validation split):

>>> import os
>>> from tunekit.deploy import export_tflite, load_artifact
>>> model = tk.attach_head(tk.load_backbone(encoder_dir, seq_length=16), "classification", labels=["neg", "pos"])
>>> path = export_tflite(model, "imdb_int8", validation_data=(texts, labels))
>>> sorted(os.listdir(path))
['model.tflite', 'tunekit.json']
>>> load_artifact("imdb_int8").manifest["accuracy"]["delta"]    # int8 minus float32; MiniLM on IMDB: -0.002
{'accuracy': ..., 'precision': ..., 'recall': ..., 'f1': ...}
"""

import os

import numpy as np

from tunekit.deploy.litert_graph import convert
from tunekit.deploy.litert_runtime import open_interpreter
from tunekit.files import FORMAT_VERSIONS, check_replaceable, write_atomically, write_manifest
from tunekit.formats import TEXT_INPUT_NAMES, TFLITE_FILE
from tunekit.inputs import input_kind

COMPRESSIONS = ("int8", "float16", "float32")
FORMAT_VERSION = FORMAT_VERSIONS["tflite"]  # 2: the manifest holds a checksum of itself
_SAMPLE_TEXTS = ("A short text.", "Another, somewhat longer text: it has a few more words than the first one.")


def export_tflite(model, path, *, compression="int8", validation_data=None, base=None, batch_size=32):
    """Converts a `TextModel` into a raw-string LiteRT model folder at `path` (atomically).

    Args:
        model: a `tunekit.TextModel` whose preprocessor is a WordPiece tokenizer (native checkpoints such as
            `minilm-l6`, Hugging Face BERTs, TF Hub-format preprocessors that carry their `vocab.txt`).
        path: the folder to create (or an earlier tunekit folder to replace).
        compression: `"int8"` (default), `"float16"` or `"float32"`.
        validation_data: optional `(texts, labels)` (`([texts, text_pairs], labels)` for pairs): the float32
            model and the converted one are evaluated on it, and both metrics and their difference go in the
            manifest. Without it the manifest still records how far the converted outputs are from the
            float32 ones on a few built-in sample texts.
        base: a name for the model this was made from (e.g. "minilm-l6 fine-tuned on IMDB"), kept in the manifest.
        batch_size: texts per run while validating.

    Returns:
        The absolute path of the folder.

    Raises:
        ValueError: bad arguments, or a model that cannot convert (naming the ops), before anything is written.
    """
    from tunekit.backbones.hub_encoder import refuse_saved_model_encoder
    from tunekit.model import TextModel, check_finite_weights, in_float32

    if not isinstance(model, TextModel):
        raise TypeError(f"export_tflite needs a tunekit TextModel (from tunekit.attach_head), got {type(model).__name__}.")
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}.")
    if base is not None and not isinstance(base, str):
        raise TypeError(f"base must be a string naming the source model, got {type(base).__name__}.")
    refuse_saved_model_encoder(model.encoder, "LiteRT export", "its graph holds ops that LiteRT has no kernel for")
    if model.preprocessor.reads_windows(model.num_segments):
        raise ValueError(
            "This model reads long texts in windows (load_backbone(long_texts='windows')), which the LiteRT graph "
            "does not do: it packs one row per text. Export it with tunekit.export_model (a SavedModel, which reads "
            "windows), or train with load_backbone(long_texts='truncate') for LiteRT.")
    validation = _validation_segments(model, validation_data) if validation_data is not None else None
    check_replaceable(path, "tflite")  # a user's folder is refused before the (slow) conversion
    check_finite_weights(model, "export")
    model = in_float32(model)  # the float32 reference and the conversion's input, however the model trained
    flat, custom_ops = convert(model, compression)

    def write(directory):
        os.makedirs(directory)
        model_file = os.path.join(directory, TFLITE_FILE)
        with open(model_file, "wb") as file:
            file.write(flat)
        runtime, runner = open_interpreter(model_file, num_segments=model.num_segments, task=model.task.get_config())
        sample = [list(_SAMPLE_TEXTS)] * model.num_segments
        check = _compare_outputs(model, runner, sample)
        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": "tflite",
            "base": _describe_base(model, base),
            "task": model.task.get_config(),
            "labels": getattr(model.task, "labels", None),
            "num_segments": model.num_segments,
            "seq_length": model.seq_length,
            "compression": compression,
            "size_bytes": len(flat),
            "custom_ops": sorted(custom_ops),
            "runtime_checked": runtime,
            "sample_max_abs_difference": check,
            "accuracy": _validate(model, runner, *validation, batch_size=batch_size) if validation else None,
        }
        write_manifest(directory, manifest)

    return write_atomically(path, write, kind="tflite")


def _describe_base(model, base):
    encoder = model.encoder
    config = encoder.get_config() if hasattr(encoder, "get_config") else {}
    return {
        "name": base,
        "encoder": type(encoder).__name__,
        "handle": getattr(encoder, "handle", None),
        "num_layers": config.get("num_layers"),
        "hidden_size": config.get("hidden_size"),
        "parameters": int(model.count_params()),
    }


def _validation_segments(model, validation_data):
    """(list of 1-2 lists of str, labels) from `validation_data`; clear errors before any work."""
    from tunekit.texts import validate_texts

    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError("validation_data must be a pair (texts, labels); for text pairs ([texts, text_pairs], labels).")
    x, labels = validation_data
    if model.num_segments == 2:
        if not isinstance(x, (tuple, list)) or len(x) != 2 or isinstance(x[0], str):
            raise ValueError("This model takes text pairs: give validation_data=([texts, text_pairs], labels).")
        segments = [validate_texts(x[0], "validation texts"), validate_texts(x[1], "validation text_pairs")]
    else:
        segments = [validate_texts(x, "validation texts")]
    if any(len(segment) != len(segments[0]) for segment in segments) or not segments[0]:
        raise ValueError("validation texts (and pairs) must be non-empty and of equal length.")
    input_kind(model.task).check_labels(segments, labels)
    y_true = model.task.encode_labels(labels)
    if len(y_true) != len(segments[0]):
        raise ValueError(f"Got {len(segments[0])} validation texts but {len(y_true)} labels; give one label per text.")
    return segments, y_true


def _float32_outputs(model, segments, batch_size):
    """The float32 Keras model's predictions (what the SavedModel export serves) for 1-2 lists of texts."""
    import tensorflow as tf

    kind = input_kind(model.task)
    serve = tf.function(model.task.serving_function(model)[0])
    parts = []
    for start in range(0, len(segments[0]), batch_size):
        out = serve(*[tf.constant(segment[start:start + batch_size]) for segment in segments])
        parts.append(kind.model_outputs(model.task, {name: value.numpy() for name, value in out.items()}))
    return kind.concatenate(parts)


def _artifact_outputs(model, runner, segments, batch_size):
    kind = input_kind(model.task)
    parts = []
    for start in range(0, len(segments[0]), batch_size):
        feeds = {key: np.array(segment[start:start + batch_size], dtype=object)
                 for key, segment in zip(TEXT_INPUT_NAMES, segments)}
        parts.append(kind.model_outputs(model.task, runner(**feeds)))
    return kind.concatenate(parts)


def _compare_outputs(model, runner, segments):
    """Largest absolute difference between float32 and converted outputs on a few sample texts."""
    reference = _float32_outputs(model, segments, len(segments[0]))
    converted = _artifact_outputs(model, runner, segments, len(segments[0]))
    return input_kind(model.task).max_difference(reference, converted)


def _validate(model, runner, segments, y_true, *, batch_size):
    """Metrics of the float32 model and of the converted one on the validation data, and their difference."""
    reference = _float32_outputs(model, segments, batch_size)
    converted = _artifact_outputs(model, runner, segments, batch_size)
    float32 = _scalars(model.task.evaluate(y_true, reference))
    compressed = _scalars(model.task.evaluate(y_true, converted))
    difference = input_kind(model.task).max_difference(reference, converted)
    return {
        "examples": len(segments[0]),
        "float32": float32,
        "compressed": compressed,
        "delta": {key: compressed[key] - float32[key] for key in float32 if key in compressed},
        "max_abs_output_difference": difference,
    }


def _scalars(metrics):
    """The single-number metrics of a task's `evaluate` (leaving out confusion matrices and per-class tables)."""
    return {key: float(value) for key, value in metrics.items()
            if isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))}
