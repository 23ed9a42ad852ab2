"""In-process prediction on raw texts: one compiled function per model, reused by every call.

`Trainer.predict` / `predict_labels` and `TextModel.predict` on a few texts used to build a new `tf.data`
pipeline and a new predict function on every call (about 1.7 s for one text with MiniLM, where the model
itself takes ~30 ms). Here a model gets one `tf.function` (tokenizer, dynamic padding and the model in one
graph, traced once with an input signature, so no call retraces) built on first use and kept with the model:
- per-text tasks: strings `[B]` (and `[B]` pairs) -> tokenize, pack, cut to the batch's longest text (rounded
  up to a multiple of 8, as in training) -> the model's output;
- token classification: the words of `B` sentences -> word-piece alignment and chunking
  (`tunekit.inputs.word_batches.tag_probabilities`, the code the export serves) -> tag probabilities per word.

Inputs of up to `DIRECT_LIMIT` texts (sentences) run through it in batches of `batch_size`; larger ones go
through the `tf.data` pipeline, which tokenizes in parallel with the model. Both give the same outputs
(within 1e-6). The function is rebuilt when the model's variables change (e.g. LoRA enabled after a call).
Calls are thread-safe: the graph is traced once under a lock, and running it holds no shared state.

Example:

>>> from tunekit.inference import predict_texts
>>> predict_texts(model, [["What a film!", "Dull."]], batch_size=32).shape
(2, 2)
"""

import threading

import numpy as np
import tensorflow as tf

from tunekit.inputs.text_batches import text_dataset, trim_to_longest
from tunekit.inputs.word_batches import tag_probabilities, token_dataset, unknown_token_id, word_probabilities

DIRECT_LIMIT = 1024
_LOCK = threading.Lock()


class Predictor:
    """The compiled prediction function of one `TextModel` (use `predictor(model)`, which caches it)."""

    def __init__(self, model):
        self.variables = _variable_ids(model)
        preprocessor, core = model.preprocessor, model.core
        if model.task.per_token:
            unknown_id = unknown_token_id(preprocessor)

            def run(words, lengths):
                sentences = tf.RaggedTensor.from_row_lengths(words, lengths)
                return tag_probabilities(preprocessor, core, sentences, unknown_id=unknown_id).flat_values

            signature = [tf.TensorSpec([None], tf.string, name="words"),
                         tf.TensorSpec([None], tf.int64, name="lengths")]
        else:
            def run(*segments):
                return core(trim_to_longest(preprocessor.encode(list(segments))), training=False)

            signature = [tf.TensorSpec([None], tf.string, name=f"text_{i}") for i in range(model.num_segments)]
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


def predict_texts(model, segments, *, batch_size):
    """A per-text task's outputs for validated segments (a list of 1 or 2 lists of str, from `split_segments`)."""
    if len(segments[0]) <= DIRECT_LIMIT:
        return predictor(model).texts(segments, batch_size)
    return model.core.predict(text_dataset(model.preprocessor, segments, batch_size=batch_size), verbose=0)


def predict_words(model, sentences, *, batch_size):
    """Token classification: sentences as lists of words (from `sentence_words`) -> one `[words, C]` float32
    array of tag probabilities per sentence. A sentence without words gets a `[0, C]` array (no tags)."""
    kept = [sentence for sentence in sentences if sentence]
    if not kept:
        probabilities = []
    elif len(kept) <= DIRECT_LIMIT:
        probabilities = predictor(model).words(kept, batch_size)
    else:
        dataset, _ = token_dataset(model.preprocessor, kept, batch_size=batch_size)
        probabilities = word_probabilities(model.core, dataset, kept)
    filled = iter(probabilities)
    empty = np.zeros((0, model.task.num_tags), np.float32)
    return [next(filled) if sentence else empty for sentence in sentences]


def _variable_ids(model):
    return tuple(id(variable) for variable in model.weights)
