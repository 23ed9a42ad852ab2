"""`export_tflite`: a LiteRT (TFLite) model that still takes raw strings, with int8 or float16 weights.

The tokenizer goes inside the model: tunekit rebuilds the model's WordPiece tokenizer as tensorflow-text's
`FastBertTokenizer` (whose ops have LiteRT kernels: `FastBertNormalize`, `FastWordpieceTokenizeWithOffsets`,
`RaggedTensorToTensor`, registered at load time from `tensorflow_text.tflite_registrar`), packs `[CLS] a [SEP]
(b [SEP])` with plain dense ops (the same truncation as the model's preprocessor: head+tail or head for single
texts, round-robin for pairs), cuts each batch to its longest text (rounded up to 8 tokens), and runs the
encoder and head. Everything else converts to LiteRT builtin ops; an op that does not (today: the word
chunking of token classification) is named in a `ValueError` and nothing is written.

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

Example:

>>> from tunekit.deploy import export_tflite, load_artifact
>>> export_tflite(model, "imdb_int8", validation_data=(val_texts, val_labels))     # doctest: +SKIP
>>> load_artifact("imdb_int8").manifest["accuracy"]["delta"]["accuracy"]             # doctest: +SKIP
-0.002
"""

import os
import re
import warnings

import numpy as np

from tunekit.files import FORMAT_VERSIONS, check_replaceable, write_atomically, write_manifest

COMPRESSIONS = ("int8", "float16", "float32")
FORMAT_VERSION = FORMAT_VERSIONS["tflite"]  # 2: the manifest holds a checksum of itself
TFLITE_FILE = "model.tflite"
# The tensorflow-text custom ops these models use; `tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS` registers
# their LiteRT kernels when an artifact is loaded. Any other custom op makes the conversion fail.
TEXT_CUSTOM_OPS = frozenset({"FastBertNormalize", "FastWordpieceTokenizeWithOffsets", "RaggedTensorToTensor"})
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
    from tunekit.model import TextModel, check_finite_weights

    if not isinstance(model, TextModel):
        raise TypeError(f"export_tflite needs a tunekit TextModel (from tunekit.attach_head), got {type(model).__name__}.")
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}.")
    if base is not None and not isinstance(base, str):
        raise TypeError(f"base must be a string naming the source model, got {type(base).__name__}.")
    refuse_saved_model_encoder(model.encoder, "LiteRT export", "its graph holds ops that LiteRT has no kernel for")
    validation = _validation_segments(model, validation_data) if validation_data is not None else None
    check_replaceable(path, "tflite")  # a user's folder is refused before the (slow) conversion
    check_finite_weights(model, "export")
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


def convert(model, compression):
    """The `.tflite` bytes of `model` (raw strings in, the task's serving outputs out) and its custom ops."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    # The weights become constants first: left as variables, LiteRT reads them back as NaN.
    function = serving_function(model).get_concrete_function()
    frozen = convert_variables_to_constants_v2(function)

    @tf.function(input_signature=function.structured_input_signature[0])
    def named(*texts):  # freezing keeps the outputs, in order, but not their names
        return tf.nest.pack_sequence_as(function.structured_outputs, tf.nest.flatten(frozen(*texts)))

    converter = tf.lite.TFLiteConverter.from_concrete_functions([named.get_concrete_function()], tf.Module())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = True  # the tokenizer's tensorflow-text ops; any other custom op is refused below
    if compression != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if compression == "float16":
        converter.target_spec.supported_types = [tf.float16]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flat = converter.convert()
    except Exception as error:  # noqa: BLE001 - the converter raises ConverterError and others (MLIR diagnostics)
        first_lines = "; ".join(str(error).strip().splitlines()[:3])
        raise ValueError(f"This {model.task.name} model cannot be converted to TFLite: {first_lines}") from None
    custom_ops = custom_op_names(flat)
    unsupported = sorted(custom_ops - TEXT_CUSTOM_OPS)
    if unsupported:
        raise ValueError(
            f"This {model.task.name} model cannot be converted to a TFLite model that runs: the ops {unsupported} "
            "have no LiteRT kernel (builtin or tensorflow-text). Serve it as a SavedModel (tunekit.export_model)."
        )
    return flat, custom_ops


def custom_op_names(flat):
    """The names of the custom ops a `.tflite` flatbuffer uses."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(flat, 0)
    codes = (model.OperatorCodes(i) for i in range(model.OperatorCodesLength()))
    return {code.CustomCode().decode("utf-8") for code in codes if code.CustomCode()}


def serving_function(model):
    """A `tf.function` over raw strings `text` (+ `text_pair`) -> the task's serving outputs, with LiteRT-friendly
    tokenization and packing (see the module docstring)."""
    import tensorflow as tf

    if model.task.per_token:
        return _token_serving_function(model)
    tokenizer, special = fast_tokenizer(model.preprocessor)
    seq_length, truncation = model.preprocessor.seq_length, model.preprocessor.truncation
    names = ("text", "text_pair")[: model.num_segments]
    signature = [tf.TensorSpec([None], tf.string, name=name) for name in names]

    @tf.function(input_signature=signature, autograph=False)
    def serve(*texts):
        segments = [tokenizer.tokenize(text) for text in texts]
        if len(segments) == 1:
            inputs = pack_single(segments[0], seq_length, special, head_tail=truncation == "head_tail")
        else:
            inputs = pack_pair(*segments, seq_length, special)
        return model.task.serving_outputs(model.core(trim_to_longest(inputs), training=False))

    return serve


def _token_serving_function(model):
    import tensorflow as tf

    tokenizer, _ = fast_tokenizer(model.preprocessor)
    preprocessor = _FastPreprocessor(tokenizer, model.preprocessor)
    serve, signature = model.task.serving_function(_StandIn(model, preprocessor))
    return tf.function(serve, input_signature=signature, autograph=True)


class _FastPreprocessor:
    """The preprocessor interface (`tokenize`, `pack`, `seq_length`) over a `FastBertTokenizer`, for the token
    classification serving function."""

    def __init__(self, tokenizer, preprocessor):
        self._tokenizer = tokenizer
        self._preprocessor = preprocessor
        self.seq_length = preprocessor.seq_length
        self.special_tokens = preprocessor.special_tokens

    def tokenize(self, strings):
        return self._tokenizer.tokenize(strings)

    def pack(self, segments, seq_length=None):
        tokens = segments[0].merge_dims(1, 2) if segments[0].shape.rank == 3 else segments[0]
        return pack_single(tokens, seq_length or self.seq_length, self.special_tokens, head_tail=False)


class _StandIn:
    """What `TokenClassificationTask.serving_function` reads from a model: `preprocessor` and `core`."""

    def __init__(self, model, preprocessor):
        self.preprocessor = preprocessor
        self.core = model.core


def fast_tokenizer(preprocessor):
    """A tensorflow-text `FastBertTokenizer` equivalent to the model's WordPiece preprocessor, and its special ids."""
    import tensorflow_text as text

    from tunekit.preprocessing.wordpiece import WordPiecePreprocessor

    if isinstance(preprocessor, WordPiecePreprocessor):
        vocabulary, lower_case = preprocessor.vocabulary, preprocessor.lower_case
    else:
        equivalent = getattr(preprocessor, "wordpiece_vocabulary", lambda: None)()
        if equivalent is None:
            raise ValueError(
                f"TFLite export needs a WordPiece tokenizer it can rebuild with LiteRT ops; the model's preprocessor "
                f"({type(preprocessor).__name__} {getattr(preprocessor, 'handle', '')!r}) carries no vocab.txt that "
                "reproduces its token ids. Load the backbone without preprocessor= (the encoder's own vocabulary), "
                "or serve a SavedModel (export_model)."
            )
        vocabulary, lower_case = equivalent
    special = preprocessor.special_tokens
    tokenizer = text.FastBertTokenizer(
        vocab=list(vocabulary), lower_case_nfd_strip_accents=lower_case, token_out_type="int32",
        unknown_token="[UNK]", support_detokenization=False,
    )
    return tokenizer, special


def pack_single(tokens, seq_length, special, *, head_tail):
    """Ragged ids `[B, tokens]` -> `[CLS] ids [SEP]` padded to `seq_length`, with dense ops only.

    Too long rows keep their first `seq_length - 2` ids, or with `head_tail` their first quarter and last three
    quarters of that budget (as `tunekit.preprocessing.packing.keep_head_and_tail`).
    """
    import tensorflow as tf

    budget = max(seq_length - 2, 0)
    lengths = tf.cast(tokens.row_lengths(), tf.int32)
    keep = tf.expand_dims(tf.minimum(lengths, budget), 1)  # [B, 1]
    column = _positions(budget, keep)
    source = column
    if head_tail:
        shift = tf.expand_dims(tf.maximum(lengths - budget, 0), 1)
        source = column + tf.cast(column >= budget // 4, tf.int32) * shift
    body = _select(column < keep, tf.gather(_dense(tokens, budget), source, batch_dims=1), special["padding_id"])
    edge = tf.zeros_like(keep)
    ids = tf.concat([edge + special["start_of_sequence_id"], body, edge + special["padding_id"]], axis=1)
    ids = ids[:, :seq_length]
    position = _positions(seq_length, keep)
    ids = _select(tf.equal(position, keep + 1), special["end_of_segment_id"], ids)
    mask = _step(keep + 2 - position)
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": tf.zeros_like(ids)}


def pack_pair(first, second, seq_length, special):
    """Two ragged id batches -> `[CLS] a [SEP] b [SEP]` padded to `seq_length`, trimmed round-robin (as
    tensorflow-text's `RoundRobinTrimmer`), with dense ops only."""
    import tensorflow as tf

    budget = max(seq_length - 3, 0)
    length_a = tf.expand_dims(tf.cast(first.row_lengths(), tf.int32), 1)
    length_b = tf.expand_dims(tf.cast(second.row_lengths(), tf.int32), 1)
    keep_a = tf.minimum(length_a, tf.maximum(budget - length_b, (budget + 1) // 2))
    keep_b = tf.minimum(length_b, budget - keep_a)
    end_b = keep_a + keep_b + 2  # the position of the second [SEP]
    position = _positions(seq_length, keep_a)
    from_a = tf.gather(_dense(first, seq_length), tf.clip_by_value(position - 1, 0, seq_length - 1), batch_dims=1)
    from_b = tf.gather(_dense(second, seq_length), tf.clip_by_value(position - keep_a - 2, 0, seq_length - 1),
                       batch_dims=1)
    ids = _select(position <= keep_a, from_a, _select(position < end_b, from_b, special["padding_id"]))
    ids = _select(tf.equal(position, 0), special["start_of_sequence_id"], ids)
    ids = _select(tf.equal(position, keep_a + 1) | tf.equal(position, end_b), special["end_of_segment_id"], ids)
    mask = _step(end_b + 1 - position)
    type_ids = _step(position - keep_a - 1) * mask
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": type_ids}


def trim_to_longest(inputs):
    """Cuts packed inputs to the batch's longest row, rounded up to `multiple` (as the training pipeline's
    `trim_to_longest`), with a gather: LiteRT has no kernel for a slice whose end is computed in the graph. A
    short text then costs its own length, not `seq_length` (SST-2 at seq_length 64: 1.35x the texts/s)."""
    import tensorflow as tf

    from tunekit.inputs.text_batches import PAD_TO_MULTIPLE as multiple

    padded = tf.shape(inputs["input_mask"])[1]
    longest = tf.reduce_max(tf.reduce_sum(inputs["input_mask"], axis=1))
    length = tf.minimum(padded, tf.maximum((longest + multiple - 1) // multiple * multiple, 1))
    return {key: tf.gather(value, tf.range(length), axis=1) for key, value in inputs.items()}


def _positions(width, rows):
    """int32 `[B, width]`: 0..width-1 in every row (`rows` is any `[B, 1]` int32 tensor)."""
    import tensorflow as tf

    return tf.expand_dims(tf.range(width), 0) + tf.zeros_like(rows)


def _step(x):
    """1 where the int32 `x` is positive, else 0, by arithmetic (a cast of a comparison here makes the converter
    fold the encoder's `ids < 0` checks into a boolean `zeros_like`, which LiteRT lacks)."""
    import tensorflow as tf

    return tf.clip_by_value(x, 0, 1)


def _select(condition, x, y):
    """`tf.where(condition, x, y)` for int32 values by arithmetic: LiteRT's select does not broadcast scalars."""
    import tensorflow as tf

    chosen = tf.cast(condition, tf.int32)
    return chosen * x + (1 - chosen) * y


def _dense(tokens, min_width):
    """Ragged `[B, tokens]` -> dense int32 `[B, max(longest, min_width)]`, padded with 0."""
    import tensorflow as tf

    dense = tf.cast(tokens.to_tensor(), tf.int32)
    return tf.pad(dense, [[0, 0], [0, min_width]])


def open_interpreter(model_file, *, num_segments, task):
    """Loads a `.tflite` file into the LiteRT runtime -> (runtime name, signature runner).

    Raises a `ValueError` when the file is not a TFLite model, or its signature does not fit `num_segments`
    and `task` (a manifest written for another model).
    """
    import tensorflow_text as text

    try:
        from ai_edge_litert.interpreter import InterpreterWithCustomOps

        runtime = "ai-edge-litert"
    except ImportError:
        from tensorflow.lite.python.interpreter import InterpreterWithCustomOps

        runtime = "tensorflow.lite"
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            interpreter = InterpreterWithCustomOps(
                model_path=model_file, custom_op_registerers=text.tflite_registrar.SELECT_TFTEXT_OPS,
                num_threads=threads)
            runner = interpreter.get_signature_runner("serving_default")
    except (ValueError, RuntimeError) as error:
        raise ValueError(
            f"{model_file!r} is not a readable TFLite model ({error}); it may be truncated or corrupted. Export it "
            "again with tunekit.deploy.export_tflite."
        ) from None
    inputs = sorted(runner.get_input_details())
    expected = sorted(("text", "text_pair")[:num_segments])
    outputs = set(runner.get_output_details())
    wanted = _expected_outputs(task)
    if inputs != expected or not wanted <= outputs:
        raise ValueError(
            f"{model_file!r} takes {inputs} and gives {sorted(outputs)}, but its manifest describes a "
            f"{task.get('name')} model taking {expected}: the manifest belongs to another model. Export it again."
        )
    return runtime, _Runner(runner, model_file)


class _Runner:
    """Calls a signature runner on numpy string arrays and returns the outputs in the order of the texts.

    Long texts go one per invocation, short ones a few together: measured on MiniLM with int8 weights on 2 CPU
    cores, IMDB reviews at seq_length 256 ran at 104 texts/s one at a time and 84 in groups of 8, while SST-2
    sentences (about 25 tokens) ran at 438 texts/s alone and 591 in groups of 8. So texts are sorted by length
    and grouped while a group holds at most `GROUP_CHARACTERS` characters per text times its size (about 256
    tokens of padded batch) and at most `GROUP_TEXTS` texts. Missing kernels become clear `ValueError`s.
    """

    GROUP_CHARACTERS = 1024
    GROUP_TEXTS = 8

    def __init__(self, runner, model_file):
        self._runner = runner
        self._model_file = model_file

    def groups(self, feeds):
        """Index arrays, one per invocation: texts of similar length together, short ones several at a time."""
        lengths = sum(np.char.str_len(values.astype(str)) for values in feeds.values())
        order = np.argsort(lengths, kind="stable")
        groups, start = [], 0
        while start < len(order):
            end = start + 1
            while (end < len(order) and end - start < self.GROUP_TEXTS
                   and lengths[order[end]] * (end + 1 - start) <= self.GROUP_CHARACTERS):
                end += 1
            groups.append(order[start:end])
            start = end
        return groups

    def __call__(self, **feeds):
        groups = self.groups(feeds)
        parts = [self._invoke({name: values[group] for name, values in feeds.items()}) for group in groups]
        restore = np.argsort(np.concatenate(groups), kind="stable")
        return {name: np.concatenate([part[name] for part in parts])[restore] for name in parts[0]}

    def _invoke(self, feeds):
        try:
            return self._runner(**feeds)
        except RuntimeError as error:
            missing = re.findall(r"unresolved custom op: ([\w>]+)", str(error))
            if missing:
                raise ValueError(
                    f"{self._model_file!r} needs the op(s) {missing}, which this LiteRT runtime lacks."
                ) from None
            raise


def _expected_outputs(task):
    name = task.get("name")
    if name == "classification":
        return {"probabilities", "class_id"}
    if name == "multilabel":
        return {"probabilities", "predicted"}
    if name == "token_classification":
        return {"tags", "num_words", "probabilities"}
    return {"predictions"}


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
    if model.task.per_token:
        from tunekit.inputs.word_batches import check_tags, sentence_words

        check_tags(sentence_words(segments[0]), labels)
    y_true = model.task.encode_labels(labels)
    if len(y_true) != len(segments[0]):
        raise ValueError(f"Got {len(segments[0])} validation texts but {len(y_true)} labels; give one label per text.")
    return segments, y_true


def _float32_outputs(model, segments, batch_size):
    """The float32 Keras model's predictions (what the SavedModel export serves) for 1-2 lists of texts."""
    import tensorflow as tf

    if model.task.per_token:
        serve, _ = model.task.serving_function(model)
        serve = tf.function(serve)
        parts = []
        for start in range(0, len(segments[0]), batch_size):
            out = serve(tf.constant(segments[0][start:start + batch_size]))
            parts.append(_per_word(out["probabilities"].numpy(), out["num_words"].numpy()))
        return [row for part in parts for row in part]
    parts = []
    for start in range(0, len(segments[0]), batch_size):
        batch = [tf.constant(segment[start:start + batch_size]) for segment in segments]
        parts.append(np.asarray(model(batch if len(batch) == 2 else batch[0], training=False)))
    return np.concatenate(parts)


def _artifact_outputs(model, runner, segments, batch_size):
    name = "predictions" if model.task.name == "regression" else "probabilities"
    parts = []
    for start in range(0, len(segments[0]), batch_size):
        feeds = {key: np.array(segment[start:start + batch_size], dtype=object)
                 for key, segment in zip(("text", "text_pair"), segments)}
        out = runner(**feeds)
        if model.task.per_token:
            parts.append(_per_word(out["probabilities"], out["num_words"]))
        else:
            parts.append(np.asarray(out[name]))
    if model.task.per_token:
        return [row for part in parts for row in part]
    return np.concatenate(parts)


def _per_word(probabilities, num_words):
    return [probabilities[i, :count] for i, count in enumerate(num_words)]


def _compare_outputs(model, runner, segments):
    """Largest absolute difference between float32 and converted outputs on a few sample texts."""
    reference = _float32_outputs(model, segments, len(segments[0]))
    converted = _artifact_outputs(model, runner, segments, len(segments[0]))
    if model.task.per_token:
        return float(max(np.max(np.abs(a - b)) for a, b in zip(reference, converted)))
    return float(np.max(np.abs(reference - converted)))


def _validate(model, runner, segments, y_true, *, batch_size):
    """Metrics of the float32 model and of the converted one on the validation data, and their difference."""
    reference = _float32_outputs(model, segments, batch_size)
    converted = _artifact_outputs(model, runner, segments, batch_size)
    float32 = _scalars(model.task.evaluate(y_true, reference))
    compressed = _scalars(model.task.evaluate(y_true, converted))
    if model.task.per_token:
        difference = max(float(np.max(np.abs(a - b))) for a, b in zip(reference, converted))
    else:
        difference = float(np.max(np.abs(reference - converted)))
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
