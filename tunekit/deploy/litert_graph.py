"""The LiteRT graph of a `TextModel`: raw strings -> tokenizer -> packing -> encoder and head, converted to `.tflite`.

The tokenizer goes inside the model: the model's WordPiece tokenizer is rebuilt as tensorflow-text's
`FastBertTokenizer` (whose ops have LiteRT kernels, `TEXT_CUSTOM_OPS`), `[CLS] a [SEP] (b [SEP])` is packed with
plain dense ops (the same truncation as the model's preprocessor: head+tail or head for single texts, round-robin
for pairs), each batch is cut to its longest text (`tunekit.inputs.text_batches.trim_to_longest`, a gather that
LiteRT runs), and the encoder and head follow. Everything else converts to LiteRT builtin ops; `convert` names any
op that does not (today: the word chunking of token classification) in a `ValueError`.

Example:

>>> import tensorflow as tf
>>> special = {"start_of_sequence_id": 2, "end_of_segment_id": 3, "padding_id": 0}
>>> packed = pack_single(tf.ragged.constant([[7, 8, 9], [7]]), 6, special, head_tail=False)
>>> packed["input_word_ids"].numpy().tolist(), packed["input_mask"].numpy().tolist()
([[2, 7, 8, 9, 3, 0], [2, 7, 3, 0, 0, 0]], [[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]])
"""

import warnings

from tunekit.formats import TEXT_INPUT_NAMES
from tunekit.inputs.text_batches import trim_to_longest

# The tensorflow-text custom ops these models use; `tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS` registers
# their LiteRT kernels when an artifact is loaded. Any other custom op makes the conversion fail.
TEXT_CUSTOM_OPS = frozenset({"FastBertNormalize", "FastWordpieceTokenizeWithOffsets", "RaggedTensorToTensor"})


def convert(model, compression):
    """The `.tflite` bytes of `model` (raw strings in, the task's serving outputs out) and its custom ops."""
    import tensorflow as tf

    # Private (pinned by tests/test_private_apis.py): TensorFlow has no public way to freeze a function's
    # variables, and its public converter paths (from_concrete_functions with the model as trackable, from a
    # SavedModel, experimental_enable_resource_variables=False) keep the weights as resource variables that LiteRT
    # reads back as NaN (TF 2.21); without a trackable, the deprecated path writes no serving_default signature.
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

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
    # Private (pinned by tests/test_private_apis.py): TensorFlow exports no reader of a flatbuffer's operator
    # codes (tf.lite.experimental.Analyzer only prints a report); this is the generated reader of LiteRT's schema.
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(flat, 0)
    codes = (model.OperatorCodes(i) for i in range(model.OperatorCodesLength()))
    return {code.CustomCode().decode("utf-8") for code in codes if code.CustomCode()}


def serving_function(model):
    """A `tf.function` over raw strings `text` (+ `text_pair`) -> the task's serving outputs, with LiteRT-friendly
    tokenization and packing (see the module docstring)."""
    import tensorflow as tf

    from tunekit.inputs import input_kind

    if input_kind(model.task).takes_words:
        return _token_serving_function(model)
    tokenizer, special = fast_tokenizer(model.preprocessor)
    seq_length, truncation = model.preprocessor.seq_length, model.preprocessor.truncation
    names = TEXT_INPUT_NAMES[: model.num_segments]
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
