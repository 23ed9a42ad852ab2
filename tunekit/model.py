"""`attach_head` and `TextModel`: a Keras 3 model from raw strings to a task's predictions.

A `TextModel` is two parts that share weights with nothing else:
- `preprocessor`: raw strings -> token ids (string ops; never compiled by XLA, never trained);
- `core`: token ids -> encoder -> sentence vector -> head -> predictions (the part that trains); for
  per-token tasks (token classification) the head reads every token's vector instead of a sentence vector.

`TextModel` itself chains them, so `model(["a text"])`, `model.predict`, `model.fit` on strings and
`.keras` save/load work like any Keras model; calls and `predict` also take Python lists of strings.
`model.predict` on texts runs one compiled function reused across calls (`tunekit.inference`), so a few texts
cost what the model takes. `tunekit.Trainer` trains `core` on ids tokenized once in the `tf.data` pipeline,
which is faster and keeps string ops out of the training step.

Example:

>>> import tunekit as tk
>>> backbone = tk.load_backbone("minilm-l6", seq_length=64)                        # doctest: +SKIP
>>> model = tk.attach_head(backbone, "classification", labels=["neg", "pos"])       # doctest: +SKIP
>>> model(["What a film!"]).shape                                                   # doctest: +SKIP
TensorShape([1, 2])
>>> model.predict(["What a film!", "Dull."]).shape                                  # doctest: +SKIP
(2, 2)
"""

import keras
import numpy as np
import tensorflow as tf

from tunekit.heads import TASKS, SentencePooling, Task, task_from_config
from tunekit.inference import predict_texts
from tunekit.preprocessing.packing import MODEL_INPUT_KEYS
from tunekit.inputs.text_batches import split_segments

TEXT_INPUT_NAMES = ("text", "text_pair")


def build_core(encoder, task, *, pooling, dropout, seed=None):
    """The trainable part: a functional model from the three id inputs to the task's output, computed from the
    pooled sentence vector, or from the encoder's `sequence_output` for a per-token task."""
    inputs = {key: keras.Input(shape=(None,), dtype="int32", name=key) for key in MODEL_INPUT_KEYS}
    encoder_outputs = encoder(inputs)
    if task.per_token:
        features = encoder_outputs["sequence_output"]
    else:
        features = SentencePooling(pooling, name="pooling")(encoder_outputs, inputs["input_mask"])
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
        texts = [keras.Input(shape=(), dtype="string", name=name) for name in TEXT_INPUT_NAMES[:num_segments]]
        token_ids = preprocessor(texts if num_segments == 2 else texts[0])
        outputs = core(token_ids)
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
        task runs `tunekit.inference`'s compiled function instead (same outputs, no per-call pipeline): the
        model's output as numpy, `[N, ...]`."""
        segments = self._text_segments(x)
        if segments is not None and not self.task.per_token and steps is None and not callbacks:
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
        task: `"classification"` (softmax over classes; outputs probabilities), `"multilabel"` (a sigmoid per
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
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; choose one of {sorted(TASKS)}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
    if text_pairs and backbone.seq_length < 5:
        raise ValueError(
            f"Text pairs need seq_length >= 5 ([CLS] a [SEP] b [SEP] with a token of each text), got {backbone.seq_length}."
        )
    if task == "classification":
        head = TASKS[task](num_classes=num_classes, labels=labels)
    elif task == "multilabel":
        head = TASKS[task](labels=labels, num_labels=num_classes, threshold=threshold)
    elif task == "token_classification":
        if pooling is not None or text_pairs or num_classes is not None:
            raise ValueError(
                "token_classification tags every word of single texts with one of labels=[tag names]: it takes no "
                "pooling, text_pairs or num_classes."
            )
        if backbone.seq_length < 3:
            raise ValueError(
                f"token_classification needs seq_length >= 3 ([CLS], a word-piece, [SEP]), got {backbone.seq_length}."
            )
        head = TASKS[task](labels=labels)
    else:
        head = TASKS[task](num_outputs=num_outputs)
    core = build_core(backbone.encoder, head, pooling=pooling or backbone.pooling, dropout=dropout, seed=seed)
    return TextModel(backbone.preprocessor, core, head, num_segments=2 if text_pairs else 1, name=f"{task}_model")
