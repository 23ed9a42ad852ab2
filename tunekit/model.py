"""`attach_head` and `TextModel`: a Keras 3 model from raw strings to a task's predictions.

A `TextModel` is two parts that share weights with nothing else:
- `preprocessor`: raw strings -> token ids (string ops; never compiled by XLA, never trained);
- `core`: token ids -> encoder -> sentence vector -> head -> predictions (the part that trains); for
  per-token tasks (token classification) the head reads every token's vector instead of a sentence vector.

`TextModel` itself chains them, so `model(["a text"])`, `model.predict`, `model.fit` on strings and
`.keras` save/load work like any Keras model; calls and `predict` also take Python lists of strings.
`tunekit.Trainer` trains `core` on ids tokenized once in the `tf.data` pipeline (`tunekit.inputs`), which is
faster and keeps string ops out of the training step.

Prediction on texts in memory (`TextModel.predict`, `Trainer.predict` / `predict_labels`) runs one compiled
function per model (`Predictor`: tokenizer, dynamic padding and the model in one graph, traced once with an input
signature, so no call retraces), built on first use and kept with the model, so a few texts cost what the model
takes (a new `tf.data` pipeline and predict function per call took about 1.7 s for one text with MiniLM, the
model itself ~30 ms):
- per-text tasks: strings `[B]` (and `[B]` pairs) -> tokenize, pack, cut to the batch's longest text (rounded
  up to a multiple of 8, as in training) -> the model's output;
- token classification: the words of `B` sentences -> word-piece alignment and chunking
  (`tunekit.inputs.word_batches.tag_probabilities`, the code the export serves) -> tag probabilities per word.

Inputs of up to `DIRECT_LIMIT` texts (sentences) run through it in batches of `batch_size`; larger ones go
through the `tf.data` pipeline, which tokenizes in parallel with the model. Both give the same outputs
(within 1e-6). The function is rebuilt when the model's variables change (e.g. LoRA enabled after a call).
Calls are thread-safe: the graph is traced once under a lock, and running it holds no shared state.

Example, with `backbone` a tiny test encoder (a real one: `tk.load_backbone("minilm-l6", seq_length=64)`):

>>> import tunekit as tk
>>> model = tk.attach_head(backbone, "classification", labels=["neg", "pos"])
>>> model(["What a film!"]).shape
TensorShape([1, 2])
>>> model.predict(["What a film!", "Dull."]).shape
(2, 2)
"""

import threading

import keras
import numpy as np
import tensorflow as tf

from tunekit.backbones.precision import float32_copy
from tunekit.formats import TEXT_INPUT_NAMES
from tunekit.heads import TASKS, Task, register_task, task_from_config
from tunekit.inputs.kinds import TEXTS, WORDS, input_kind
from tunekit.inputs.text_batches import split_segments
from tunekit.inputs.text_windows import WindowMean
from tunekit.preprocessing.packing import MODEL_INPUT_KEYS


def build_core(encoder, task, *, pooling, dropout, seed=None):
    """The trainable part: a functional model from the three id inputs to the task's output, computed from the
    pooled sentence vector, or from the encoder's `sequence_output` for a per-token task."""
    inputs = {key: keras.Input(shape=(None,), dtype="int32", name=key) for key in MODEL_INPUT_KEYS}
    features = task.features(encoder(inputs), inputs["input_mask"], pooling=pooling)
    outputs = task.build_output(features, dropout=dropout, seed=seed)
    return keras.Model(inputs, outputs, name="core")


@keras.saving.register_keras_serializable(package="tunekit")
class TextModel(keras.Model):
    """Raw strings (or pairs of strings) -> task output. Build it with `tunekit.attach_head`.

    Call it (or its `predict`) on a Python list of strings, a numpy array or a string tensor `[B]`; a pair model
    on `[texts_a, texts_b]` (or `{"text": ..., "text_pair": ...}`). For token classification, calling the model
    on strings (and its `predict`) gives probabilities per word-piece `[B, seq_length, C]`; `Trainer.predict` /
    `predict_labels` and the export give them per word.

    Args:
        preprocessor: a `tunekit.preprocessing.Preprocessor` layer.
        core: the functional model from token ids to the output (see `build_core`).
        task: a `tunekit.heads.Task` or its config dict.
        num_segments: 1 for single texts, 2 for text pairs.
    """

    def __init__(self, preprocessor, core, task, num_segments=1, **kwargs):
        task = task if isinstance(task, Task) else task_from_config(task)
        if num_segments not in (1, 2):
            raise ValueError(f"num_segments must be 1 (single texts) or 2 (text pairs), got {num_segments!r}.")
        check_long_texts(preprocessor, task, num_segments)
        texts = [keras.Input(shape=(), dtype="string", name=name) for name in TEXT_INPUT_NAMES[:num_segments]]
        token_ids = preprocessor(texts if num_segments == 2 else texts[0])
        outputs = core({key: token_ids[key] for key in MODEL_INPUT_KEYS})
        if "text_of_window" in token_ids:  # long texts read in windows: one output per text, the windows' mean
            outputs = WindowMean(name="window_mean")(outputs, token_ids["text_of_window"], texts[0])
        super().__init__(inputs=texts if num_segments == 2 else texts[0], outputs=outputs, **kwargs)
        self.preprocessor = preprocessor
        self.core = core
        self.task = task
        self.num_segments = num_segments

    def __call__(self, inputs, *args, **kwargs):
        segments = self._text_segments(inputs)
        if segments is not None:
            tensors = [tf.constant(segment, tf.string) for segment in segments]
            inputs = tensors if self.num_segments == 2 else tensors[0]
        return super().__call__(inputs, *args, **kwargs)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Keras' `predict`; on texts in memory (a list of strings, or `[texts_a, texts_b]` for pairs) a per-text
        task runs the model's compiled function instead (`predict_texts`: same outputs, no per-call pipeline):
        the model's output as numpy, `[N, ...]`."""
        segments = self._text_segments(x)
        if segments is not None and not input_kind(self.task).takes_words and steps is None and not callbacks:
            return predict_texts(self, segments, batch_size=batch_size or 32)
        if segments is not None:
            tensors = [tf.constant(segment, tf.string) for segment in segments]
            x = tensors if self.num_segments == 2 else tensors[0]
        return super().predict(x, batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks)

    def _text_segments(self, inputs):
        """Texts in memory -> validated segments (1 or 2 lists of str, see `split_segments`); None for anything
        else (tensors, Keras tensors, datasets), which Keras handles."""
        if isinstance(inputs, (str, bytes)):
            raise TypeError("TextModel takes a batch of texts, got a single string: wrap it in a list.")
        if self.num_segments == 2:
            if isinstance(inputs, dict) and set(inputs) == set(TEXT_INPUT_NAMES):
                inputs = [inputs[name] for name in TEXT_INPUT_NAMES]
            if not (isinstance(inputs, (list, tuple)) and len(inputs) == 2 and all(map(_in_memory, inputs))):
                return None
            return split_segments(tuple(inputs), 2)
        return split_segments(inputs, 1) if _in_memory(inputs) else None

    @property
    def encoder(self):
        """The backbone's encoder layer (the first layer of `core` after its inputs)."""
        return next(layer for layer in self.core.layers if not isinstance(layer, keras.layers.InputLayer))

    @property
    def seq_length(self):
        """Tokens per text after packing, `[CLS]` and `[SEP]` included (longer texts are truncated): the `seq_length`
        given to `load_backbone`, saved with the model."""
        return self.preprocessor.seq_length

    def get_config(self):
        return {
            "name": self.name,
            "preprocessor": keras.saving.serialize_keras_object(self.preprocessor),
            "core": keras.saving.serialize_keras_object(self.core),
            "task": self.task.get_config(),
            "num_segments": self.num_segments,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["preprocessor"] = keras.saving.deserialize_keras_object(config["preprocessor"])
        config["core"] = keras.saving.deserialize_keras_object(config["core"])
        return cls(**config)


def check_long_texts(preprocessor, task, num_segments):
    """Refuses `long_texts="windows"` where windows do not apply: text pairs and per-token tasks."""
    if preprocessor.long_texts != "windows":
        return
    if task.per_token:
        raise ValueError(
            f"long_texts='windows' is for one output per text; the {task.name!r} task reads long sentences whole "
            "already (in chunks of seq_length word-pieces). Load the backbone with long_texts='truncate'.")
    if num_segments == 2:
        raise ValueError(
            "long_texts='windows' reads single texts; text pairs are trimmed round-robin to seq_length. Load the "
            "backbone with long_texts='truncate' for a pair model, or raise seq_length.")


def _in_memory(values):
    """True for a list, tuple, numpy array or pandas Series (texts held in Python), not for (lists of) tensors."""
    if isinstance(values, (list, tuple)):
        return not any(tf.is_tensor(value) or isinstance(value, keras.KerasTensor) for value in values)
    return isinstance(values, np.ndarray) or hasattr(values, "to_numpy")


def attach_head(backbone, task, *, num_classes=None, labels=None, num_outputs=1, threshold=0.5,
                pooling=None, dropout=0.1, text_pairs=False, seed=None):
    """Puts a task head on a backbone and returns a `TextModel` from raw strings to predictions.

    Args:
        backbone: a `tunekit.Backbone` from `tunekit.load_backbone`.
        task: a registered task's name (see `tunekit.heads.register_task`), or a `tunekit.heads.Task` built with
            its own arguments (then the task arguments below are not used). Built in: `"classification"` (softmax over classes; outputs probabilities), `"multilabel"` (a sigmoid per
            label; outputs probabilities), `"regression"` (linear outputs) or `"token_classification"` (a softmax
            over tags for every word: named entities, IOB tagging; see docs/token-classification.md).
        num_classes: classification: the number of classes (or give `labels`).
        labels: classification / multilabel: the label names, in output order; token_classification: the tag
            names (required). Predictions and string labels use them; they are saved with the model.
        num_outputs: regression: values per text.
        threshold: multilabel: decision threshold, one for all labels or one per label.
        pooling: the sentence vector: `"pooled"` (encoder's pooler), `"mean"` (masked mean of token vectors) or
            `"cls"`; default: the backbone's (`backbone.pooling`). Not for token_classification.
        dropout: dropout rate before the output layer.
        text_pairs: True for tasks on pairs of texts (paraphrase, entailment, similarity).
        seed: seeds the head's initial weights and dropout, for reproducible runs.

    Example:

    >>> model = attach_head(backbone, "classification", num_classes=3)
    >>> model = attach_head(backbone, "multilabel", labels=["a", "b", "c"])
    >>> model = attach_head(backbone, "token_classification", labels=["O", "B-PER", "I-PER"])
    """
    from tunekit.backbones.backbone import Backbone

    if not isinstance(backbone, Backbone):
        raise TypeError(f"attach_head needs a Backbone from tunekit.load_backbone, got {type(backbone).__name__}.")
    if not isinstance(task, Task):
        if not isinstance(task, str):
            raise TypeError(f"task must be a task name or a tunekit.heads.Task, got {type(task).__name__}.")
        if task not in TASKS:
            raise ValueError(f"Unknown task {task!r}; choose one of {sorted(TASKS)}, or register your own with "
                             "tunekit.heads.register_task.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
    if text_pairs and backbone.seq_length < 5:
        raise ValueError(
            f"Text pairs need seq_length >= 5 ([CLS] a [SEP] b [SEP] with a token of each text), got {backbone.seq_length}."
        )
    if isinstance(task, Task):
        head = task
        register_task(type(head))  # saved by name: load_model rebuilds it from the registry
    else:
        head = TASKS[task].from_arguments(backbone, num_classes=num_classes, labels=labels, num_outputs=num_outputs,
                                          threshold=threshold, pooling=pooling, text_pairs=text_pairs)
    check_long_texts(backbone.preprocessor, head, 2 if text_pairs else 1)
    core = build_core(backbone.encoder, head, pooling=pooling or backbone.pooling, dropout=dropout, seed=seed)
    return TextModel(backbone.preprocessor, core, head, num_segments=2 if text_pairs else 1,
                     name=f"{head.name}_model")


def check_finite_weights(model, action="save"):
    """Raises `ValueError` when a floating-point weight of `model` holds NaN or an infinity (a diverged run),
    naming the first such weight; `action` ("save", "export") is what is refused.

    Example:

    >>> check_finite_weights(model, "export")  # a model fresh from attach_head: finite, nothing raised
    """
    weights = [weight for weight in model.core.weights if keras.backend.is_float_dtype(weight.dtype)]
    bad = [weight.path for weight in weights if not np.all(np.isfinite(keras.ops.convert_to_numpy(weight)))]
    if bad:
        raise ValueError(
            f"Refusing to {action} the model: {len(bad)} of its {len(weights)} weight tensors hold NaN or infinite "
            f"values (first: {bad[0]}), so it would predict NaN. Training diverged: train again with a lower "
            "learning_rate (and clipnorm), or load the last good save or checkpoint.")


# Compiled prediction on texts in memory (see the module docstring).
DIRECT_LIMIT = 1024
_LOCK = threading.Lock()


def in_float32(model):
    """`model` itself when every layer computes in float32, else a copy with the same weights that does: what the
    exports serve. A model trained in bfloat16 (`load_backbone(dtype="mixed_bfloat16")` or `"auto"`) is exported
    in float32, which runs at full speed on any machine (bfloat16 without bfloat16 units is emulated) and was as
    fast at batch 64 and faster at batch 1 on the development CPU (docs/performance.md).

    >>> in_float32(model) is model  # a float32 model is served as it is
    True
    """
    if all(keras.backend.standardize_dtype(layer.compute_dtype) == "float32" for layer in model.core.layers):
        return model
    return float32_copy(model)


class Predictor:
    """The compiled prediction function of one `TextModel` (use `predictor(model)`, which caches it)."""

    def __init__(self, model):
        self.variables = _variable_ids(model)
        run, signature = input_kind(model.task).predict_function(model.preprocessor, model.core, model.num_segments)
        # Traced here, once; calls run the concrete graph and never re-enter Keras or the tracer.
        self.function = tf.function(run, input_signature=signature).get_concrete_function()

    def texts(self, segments, batch_size):
        """Validated segments (lists of str, see `split_segments`) -> the model's outputs as numpy."""
        parts = []
        for start in range(0, len(segments[0]), batch_size):
            batch = [tf.constant(segment[start:start + batch_size], tf.string) for segment in segments]
            parts.append(self.function(*batch))
        return tf.nest.map_structure(lambda *values: np.concatenate([v.numpy() for v in values]), *parts)

    def words(self, sentences, batch_size):
        """Sentences with at least one word each -> one `[words, C]` array of tag probabilities per sentence."""
        parts = []
        for start in range(0, len(sentences), batch_size):
            batch = sentences[start:start + batch_size]
            flat = tf.constant([word for sentence in batch for word in sentence], tf.string)
            parts.append(self.function(flat, tf.constant([len(sentence) for sentence in batch], tf.int64)).numpy())
        return np.split(np.concatenate(parts), np.cumsum([len(sentence) for sentence in sentences])[:-1])


def predictor(model):
    """The model's `Predictor`, built on first use and rebuilt when the model's variables change."""
    current = model.__dict__.get("_tunekit_predictor")
    if current is not None and current.variables == _variable_ids(model):
        return current
    with _LOCK:
        current = model.__dict__.get("_tunekit_predictor")
        if current is None or current.variables != _variable_ids(model):
            current = Predictor(model)
            # Kept outside Keras' attribute tracking: the function is not part of the model's state or exports.
            object.__setattr__(model, "_tunekit_predictor", current)
        return current


def predict_inputs(model, inputs, *, batch_size):
    """The model's outputs for inputs read by its task's input kind (`input_kind(model.task).read_unlabelled`):
    `predict_texts` or `predict_words`."""
    return input_kind(model.task).predict(model, inputs, batch_size=batch_size, predictor=predictor,
                                          limit=DIRECT_LIMIT)


def predict_texts(model, segments, *, batch_size):
    """A per-text task's outputs for validated segments (a list of 1 or 2 lists of str, from `split_segments`).

    >>> predict_texts(model, [["What a film!", "Dull."]], batch_size=32).shape
    (2, 2)
    """
    return TEXTS.predict(model, segments, batch_size=batch_size, predictor=predictor, limit=DIRECT_LIMIT)


def predict_words(model, sentences, *, batch_size):
    """Token classification: sentences as lists of words (from `sentence_words`) -> one `[words, C]` float32
    array of tag probabilities per sentence. A sentence without words gets a `[0, C]` array (no tags)."""
    return WORDS.predict(model, sentences, batch_size=batch_size, predictor=predictor, limit=DIRECT_LIMIT)


def _variable_ids(model):
    return tuple(id(variable) for variable in model.weights)
