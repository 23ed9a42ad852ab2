"""What a task reads: texts (one output per text) or sentences of words (one output per word).

`input_kind(task)` is the one place outside `tunekit.heads` that looks at `Task.per_token`; the commands and
exporters ask the kind it returns instead of switching on the task.

>>> from tunekit.heads import ClassificationTask, TokenClassificationTask
>>> input_kind(ClassificationTask(num_classes=2)).takes_words, input_kind(TokenClassificationTask(["O", "B-X"])).takes_words
(False, True)
>>> WORDS.joined_texts([["New", "York"], ["Hi"]])
['New York', 'Hi']
"""

from collections.abc import Mapping

import numpy as np


def reject_mapping(x, what="texts"):
    """A dict given as texts would be read as its keys: refused, saying how to pass it."""
    if isinstance(x, Mapping):
        raise TypeError(
            f"Got a dict ({len(x)} item(s)) as the {what}: tunekit would read its keys as the {what}. Pass a list "
            "(or array, Series) of texts; for {text: label} data: fit(list(data.keys()), list(data.values())).")


class TextInputs:
    """Texts (or text pairs) in, one output per text."""

    takes_words = False
    accepts_datasets = True  # a tf.data.Dataset of texts (and labels) is read by the trainer's dataset path

    def read(self, task, num_segments, x, y=None, *, labels_required=True):
        """In-memory texts and labels -> (validated segments, labels encoded by `task`, or None without `y`)."""
        from tunekit.inputs.text_batches import split_segments

        reject_mapping(x)
        segments = split_segments(x, num_segments)
        if y is None:
            if labels_required:
                raise ValueError("Labels are missing: pass fit(texts, labels) or a dataset of (text, label) pairs.")
            return segments, None
        labels = task.encode_labels(y)
        if len(labels) != len(segments[0]):
            raise ValueError(f"Got {len(segments[0])} texts but {len(labels)} labels; they must match one to one.")
        return segments, labels

    def read_unlabelled(self, x, num_segments):
        """Texts to predict -> validated segments."""
        from tunekit.inputs.text_batches import split_segments

        reject_mapping(x)
        return split_segments(x, num_segments)

    def batches(self, preprocessor, segments, labels, *, batch_size):
        """Validated inputs (and encoded labels) -> their batches, in order (evaluation)."""
        from tunekit.inputs.text_batches import text_dataset

        return text_dataset(preprocessor, segments, labels, batch_size=batch_size)

    def epochs(self, preprocessor, segments, labels, *, batch_size, by_length, augment=None):
        """`batches(epoch, seed)` of training: tokenized once, shuffled per epoch; `augment` rewrites the texts
        every epoch (see `tunekit.augment`)."""
        from tunekit.augment import epochs_with
        from tunekit.inputs.text_batches import text_epochs

        if augment is None:
            return text_epochs(preprocessor, segments, labels, batch_size=batch_size, by_length=by_length)
        return epochs_with(augment, lambda segments, labels: text_epochs(
            preprocessor, segments, labels, batch_size=batch_size, by_length=by_length), segments, labels)

    def predict(self, model, segments, *, batch_size, predictor, limit):
        """Validated segments -> the model's outputs as numpy: up to `limit` texts through the model's compiled
        `predictor`, more through a `tf.data` pipeline."""
        from tunekit.inputs.text_batches import text_dataset

        # Windows: the compiled function pools each batch's windows, whatever the number of texts.
        if len(segments[0]) <= limit or model.preprocessor.reads_windows(len(segments)):
            return predictor(model).texts(segments, batch_size)
        return model.core.predict(text_dataset(model.preprocessor, segments, batch_size=batch_size), verbose=0)

    def predict_function(self, preprocessor, core, num_segments):
        """`(run, input_signature)` of the compiled prediction function (`tunekit.model.Predictor`): strings `[B]`
        (one tensor per segment) -> tokenize, pack, cut to the batch's longest text -> the model's output (with
        `long_texts="windows"`: of every window, averaged per text)."""
        import tensorflow as tf

        def run(*segments):
            return text_outputs(preprocessor, core, list(segments))

        return run, [tf.TensorSpec([None], tf.string, name=f"text_{i}") for i in range(num_segments)]

    def check_labels(self, segments, labels):
        """Checks what `Task.encode_labels` cannot see (nothing for texts)."""

    def model_outputs(self, task, outputs):
        """One batch of an export's outputs (numpy) -> the model's outputs, `[N, ...]` as `TextModel.predict`
        gives them (a task's `[N]` primary output as `[N, 1]`)."""
        values = np.asarray(outputs[task.primary_output])
        return values.reshape(len(values), -1)

    def concatenate(self, parts):
        return np.concatenate(parts)

    def max_difference(self, a, b):
        """The largest absolute difference between two models' outputs."""
        return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))

    def joined_texts(self, texts):
        """The model's input as the raw strings an exported artifact takes."""
        return texts

    def from_texts(self, texts):
        """Lines of text read for prediction -> (echo records, the model's input)."""
        return [{"text": text} for text in texts], texts


class WordInputs:
    """Sentences of words in (split on whitespace), one output per word."""

    takes_words = True
    accepts_datasets = False

    def read(self, task, num_segments, x, y=None, *, labels_required=True):
        """Sentences and tags -> (the words of every sentence, their tag ids by `task`, or None without `y`)."""
        from tunekit.inputs.word_batches import check_tags, sentence_words

        reject_mapping(x, "sentences")
        words = sentence_words(x)
        if y is None:
            if labels_required:
                raise ValueError("Tags are missing: pass fit(sentences, tags), one list of tags per sentence.")
            return words, None
        tags = task.encode_labels(y)
        check_tags(words, tags)
        return words, tags

    def read_unlabelled(self, x, num_segments):
        from tunekit.inputs.word_batches import sentence_words

        reject_mapping(x, "sentences")
        return sentence_words(x, allow_empty=True)

    def batches(self, preprocessor, words, tags, *, batch_size):
        from tunekit.inputs.word_batches import token_dataset

        return token_dataset(preprocessor, words, tags, batch_size=batch_size)[0]

    def epochs(self, preprocessor, words, tags, *, batch_size, by_length, augment=None):
        from tunekit.augment import augmented, epochs_with
        from tunekit.inputs.word_batches import token_epochs

        if augment is None:
            return token_epochs(preprocessor, words, tags, batch_size=batch_size)
        batches = epochs_with(augment, lambda segments, tags: token_epochs(
            preprocessor, segments[0], tags, batch_size=batch_size), [words], tags)
        augmented(augment, words[:1], tags[:1], 0)  # one that cannot keep tags aligned refuses now
        return batches

    def predict(self, model, sentences, *, batch_size, predictor, limit):
        """Sentences as lists of words -> one `[words, C]` float32 array per sentence (`[0, C]` for a sentence
        without words)."""
        from tunekit.inputs.word_batches import token_dataset, word_probabilities

        kept = [sentence for sentence in sentences if sentence]
        if not kept:
            outputs = []
        elif len(kept) <= limit:
            outputs = predictor(model).words(kept, batch_size)
        else:
            dataset, _ = token_dataset(model.preprocessor, kept, batch_size=batch_size)
            outputs = word_probabilities(model.core, dataset, kept)
        filled = iter(outputs)
        empty = np.zeros((0, int(model.core.outputs[0].shape[-1])), np.float32)
        return [next(filled) if sentence else empty for sentence in sentences]

    def predict_function(self, preprocessor, core, num_segments):
        """`(run, input_signature)`: the words of `B` sentences (flat words and their counts) -> word-piece
        alignment and chunking -> the model's output for every word (flat)."""
        import tensorflow as tf

        from tunekit.inputs.word_batches import tag_probabilities, unknown_token_id

        unknown_id = unknown_token_id(preprocessor)

        def run(words, lengths):
            sentences = tf.RaggedTensor.from_row_lengths(words, lengths)
            return tag_probabilities(preprocessor, core, sentences, unknown_id=unknown_id).flat_values

        return run, [tf.TensorSpec([None], tf.string, name="words"), tf.TensorSpec([None], tf.int64, name="lengths")]

    def check_labels(self, segments, labels):
        """One tag per word of every sentence, or a `ValueError` naming the first sentence that differs."""
        from tunekit.inputs.word_batches import check_tags, sentence_words

        check_tags(sentence_words(segments[0]), labels)

    def model_outputs(self, task, outputs):
        """One batch of an export's outputs -> one `[words, ...]` array per sentence (`num_words` of each)."""
        values = np.asarray(outputs[task.primary_output])
        return [values[i, :count] for i, count in enumerate(np.asarray(outputs["num_words"]))]

    def concatenate(self, parts):
        return [row for part in parts for row in part]

    def max_difference(self, a, b):
        return float(max(np.max(np.abs(x - y)) for x, y in zip(a, b)))

    def joined_texts(self, sentences):
        return [" ".join(words) for words in sentences]

    def from_texts(self, texts):
        words = [text.split() for text in texts]
        return [{"text": text, "words": sentence} for text, sentence in zip(texts, words)], words


TEXTS, WORDS = TextInputs(), WordInputs()


def text_serving_function(model):
    """(function, input signature) of a per-text task's export `serving_default`: raw strings -> the task's
    `serving_outputs`.

    Each request's batch is cut to its longest text (as training batches and `tunekit.model.predict_texts` are),
    so a short text costs its own length, not `seq_length`; the outputs are those of the padded model."""
    import tensorflow as tf

    from tunekit.formats import TEXT_INPUT_NAMES

    signature = [tf.TensorSpec([None], tf.string, name=name) for name in TEXT_INPUT_NAMES[: model.num_segments]]

    def outputs(segments):
        return model.task.serving_outputs(text_outputs(model.preprocessor, model.core, segments))

    if model.num_segments == 1:
        def serve(text):
            return outputs([text])
    else:
        def serve(text, text_pair):
            return outputs([text, text_pair])
    return serve, signature


def text_outputs(preprocessor, core, segments):
    """1 or 2 string tensors `[B]` -> the model's outputs `[B, ...]`: rows packed by `preprocessor`, each batch cut
    to its longest row; for a preprocessor that reads long texts in windows, the mean over each text's windows
    (`tunekit.inputs.text_windows`)."""
    from tunekit.inputs.text_batches import trim_to_longest
    from tunekit.inputs.text_windows import pool_windows

    if preprocessor.reads_windows(len(segments)):
        import tensorflow as tf

        rows, text_of_window = preprocessor.windows(segments[0])
        return pool_windows(core(trim_to_longest(rows), training=False), text_of_window, tf.shape(segments[0])[0])
    return core(trim_to_longest(preprocessor.encode(segments)), training=False)


def input_kind(task):
    """`WORDS` for a per-token task (`Task.per_token`), else `TEXTS`."""
    return WORDS if task.per_token else TEXTS
