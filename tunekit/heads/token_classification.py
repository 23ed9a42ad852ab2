"""Token classification (named entities, IOB tagging): a softmax over the tags for every word of a sentence.

The head sits on the encoder's `sequence_output` (one vector per word-piece), not on a sentence vector.
Words are aligned to word-pieces and long sentences are chunked by `tunekit.inputs.word_batches`; a
word's prediction is the one of its first word-piece.
"""

import keras
import numpy as np
import tensorflow as tf

from tunekit.heads.task import LabelIndex, Task, dense_output
from tunekit.metrics import entity_metrics
from tunekit.inputs.word_batches import tag_probabilities, unknown_token_id


def is_iob_tag(tag):
    """True for "O", "B-TYPE" and "I-TYPE"."""
    return tag == "O" or (len(tag) > 2 and tag[0] in "BI" and tag[1] == "-")


class TokenClassificationTask(Task):
    """One tag per word among `labels` (e.g. CoNLL's `["O", "B-PER", "I-PER", ...]`).

    Tags are given per sentence, as tag names or tag ids (indices into `labels`). When every label is an
    IOB tag ("O", "B-X", "I-X"; IOB1 or IOB2), `evaluate` reports entity-level precision, recall and F1
    (CoNLL's `conlleval` definitions) besides the token accuracy; for other tag sets (part of speech, ...)
    only the token accuracy.

    Example:

    >>> task = TokenClassificationTask(labels=["O", "B-PER", "I-PER"])
    >>> [ids.tolist() for ids in task.encode_labels([["B-PER", "I-PER", "O"], [0, 1]])]
    [[1, 2, 0], [0, 1]]
    >>> task.decode([np.array([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1]])])
    [['B-PER', 'O']]
    """

    name = "token_classification"
    per_token = True
    single_class = True
    output_names = ("tags", "num_words", "probabilities")
    primary_output = "probabilities"

    @classmethod
    def from_arguments(cls, backbone, *, num_classes=None, labels=None, num_outputs=1, threshold=0.5, pooling=None,
                       text_pairs=False):
        if pooling is not None or text_pairs or num_classes is not None:
            raise ValueError(
                "token_classification tags every word of single texts with one of labels=[tag names]: it takes no "
                "pooling, text_pairs or num_classes."
            )
        if backbone.seq_length < 3:
            raise ValueError(
                f"token_classification needs seq_length >= 3 ([CLS], a word-piece, [SEP]), got {backbone.seq_length}."
            )
        return cls(labels=labels)

    @classmethod
    def arguments_from_labels(cls, labels, *, label_names=None, given=None):
        if (given or {}).get("labels") is not None:
            return {}
        return {"labels": sorted({tag for tags in labels for tag in tags}, key=lambda tag: (tag != "O", tag))}

    def __init__(self, labels=None):
        if labels is None or isinstance(labels, str) or len(labels) < 2:
            raise ValueError(
                "Token classification needs labels=[tag names], at least 2, in output order, e.g. "
                f"['O', 'B-PER', 'I-PER', 'B-LOC', 'I-LOC']; got {labels!r}."
            )
        self.index = LabelIndex(labels, what="Tag names", unknown="tags", known="tags")
        labels = self.index.labels
        self.labels = labels
        self.num_tags = len(labels)
        self.iob = all(is_iob_tag(label) for label in labels)

    def build_output(self, features, *, dropout, seed):
        return dense_output(features, self.num_tags, dropout=dropout, seed=seed, activation="softmax")

    def loss(self):
        # The mean over labelled positions only (first word-pieces, sample weight 1), not over the padded batch.
        return keras.losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight")

    def fit_metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")]

    def encode_labels(self, labels):
        """Tags per sentence (names or ids) -> a list of int32 arrays; a `ValueError` for unknown tags."""
        if hasattr(labels, "to_numpy"):
            labels = labels.to_numpy()
        if isinstance(labels, (str, bytes)) or not hasattr(labels, "__len__"):
            raise TypeError(f"Tags must be one list of tags per sentence, got {type(labels).__name__}.")
        encoded, unknown = [], set()
        for row, tags in enumerate(labels):
            if isinstance(tags, (str, bytes)) or not hasattr(tags, "__len__"):
                raise TypeError(f"Tags of sentence {row} must be a list of tags (one per word), got {tags!r}.")
            ids = []
            for tag in tags:
                if isinstance(tag, str):
                    ids.append(self.index.id(tag) if tag in self.index else -1)
                    if tag not in self.index:
                        unknown.add(tag)
                elif isinstance(tag, (int, np.integer)) and not isinstance(tag, (bool, np.bool_)):
                    if not 0 <= tag < self.num_tags:
                        raise ValueError(
                            f"Tag id {tag} in sentence {row} is out of range: tag ids run from 0 to "
                            f"{self.num_tags - 1}."
                        )
                    ids.append(int(tag))
                else:
                    raise TypeError(f"Tags must be tag names (str) or tag ids (int); sentence {row} holds {tag!r}.")
            encoded.append(np.array(ids, dtype=np.int32))
        self.index.check(unknown)
        return encoded

    def evaluate(self, y_true, predictions):
        """Tag ids and per-word probabilities, one array per sentence -> entity P/R/F1 and token accuracy."""
        true_tags = [[self.labels[i] for i in ids] for ids in y_true]
        predicted_tags = self.decode(predictions)
        if not self.iob:
            correct = sum(t == p for gold, pred in zip(true_tags, predicted_tags) for t, p in zip(gold, pred))
            return {"token_accuracy": correct / sum(len(gold) for gold in true_tags)}
        metrics = entity_metrics(true_tags, predicted_tags)
        return {key: metrics[key] for key in ("precision", "recall", "f1", "token_accuracy")}

    def decode(self, predictions):
        return [[self.labels[i] for i in np.argmax(words, axis=-1)] for words in predictions]

    def features(self, encoder_outputs, input_mask, *, pooling):
        return encoder_outputs["sequence_output"]

    def records(self, predictions):
        return [{"tags": tags} for tags in self.decode(predictions)]

    def artifact_labels(self, outputs):
        return [list(tags[:count]) for tags, count in zip(outputs["tags"], outputs["num_words"])]

    def artifact_records(self, outputs):
        return [{"tags": [str(tag) for tag in tags]} for tags in self.artifact_labels(outputs)]

    def serving_function(self, model):
        """The exported `serving_default`: raw sentences in, one tag per whitespace-separated word out.

        Returns `(function, input_signature)`. The function takes `text` (string `[B]`) and returns `tags`
        (string `[B, max_words]`, padded with ""), `num_words` (int32 `[B]`) and `probabilities`
        (float32 `[B, max_words, num_tags]`, padded with 0). Long sentences are chunked as in training.
        """
        names = tf.constant(self.labels)
        unknown_id = unknown_token_id(model.preprocessor)

        def serve(text):
            words = tf.strings.split(text)
            probabilities = tag_probabilities(model.preprocessor, model.core, words, unknown_id=unknown_id)
            tags = probabilities.with_flat_values(
                tf.gather(names, tf.argmax(probabilities.flat_values, axis=-1, output_type=tf.int32)))
            return {
                "tags": tags.to_tensor(default_value=""),
                "num_words": tf.cast(words.row_lengths(), tf.int32),
                "probabilities": probabilities.to_tensor(default_value=0.0),
            }

        return serve, [tf.TensorSpec([None], tf.string, name="text")]

    def get_config(self):
        return {**super().get_config(), "labels": self.labels}
