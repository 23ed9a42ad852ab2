"""Model inputs: raw texts (or words and tags) -> tokenized, batched `tf.data` pipelines, and back.

Everything that turns what a user passes (lists of strings, pairs, DataFrames, `tf.data` datasets, sentences
of words) into the id batches a model's `core` takes lives here, below the model and the trainer, so that
`tunekit.model`, `tunekit.training`, `tunekit.saving`, the heads and the exporters all read inputs one way:
- `tunekit.inputs.text_batches`: texts and text pairs (one label per text), batches cut to their longest text;
- `tunekit.inputs.kinds`: `input_kind(task)`, whether a task reads texts or sentences of words;
- `tunekit.inputs.word_batches`: sentences of words (one tag per word) aligned to word-pieces and chunked, and
  the per-word probabilities read back from a model's per-piece outputs.

Names are imported on first use.

>>> from tunekit.inputs import split_segments
>>> split_segments([("a film", "a review"), ("dull", "long")], num_segments=2)
[['a film', 'dull'], ['a review', 'long']]
"""

from tunekit._lazy import lazy_attributes as _lazy_attributes

_EXPORTS = {
    "input_kind": "tunekit.inputs.kinds",
    "split_segments": "tunekit.inputs.text_batches",
    "text_dataset": "tunekit.inputs.text_batches",
    "tf_dataset": "tunekit.inputs.text_batches",
    "trim_to_longest": "tunekit.inputs.text_batches",
    "sentence_words": "tunekit.inputs.word_batches",
    "token_dataset": "tunekit.inputs.word_batches",
}

__getattr__, __dir__ = _lazy_attributes(globals(), _EXPORTS)

__all__ = sorted(_EXPORTS)
