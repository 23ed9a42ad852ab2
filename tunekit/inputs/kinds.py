"""What a task reads: texts (one output per text) or sentences of words (one output per word).

`input_kind(task)` is the one place outside `tunekit.heads` that looks at `Task.per_token`; the commands and
exporters ask the kind it returns instead of switching on the task.

>>> from tunekit.heads import ClassificationTask, TokenClassificationTask
>>> input_kind(ClassificationTask(num_classes=2)).takes_words, input_kind(TokenClassificationTask(["O", "B-X"])).takes_words
(False, True)
>>> WORDS.joined_texts([["New", "York"], ["Hi"]])
['New York', 'Hi']
"""


class TextInputs:
    """Texts (or text pairs) in, one output per text."""

    takes_words = False

    def joined_texts(self, texts):
        """The model's input as the raw strings an exported artifact takes."""
        return texts

    def from_texts(self, texts):
        """Lines of text read for prediction -> (echo records, the model's input)."""
        return [{"text": text} for text in texts], texts


class WordInputs:
    """Sentences of words in (split on whitespace), one output per word."""

    takes_words = True

    def joined_texts(self, sentences):
        return [" ".join(words) for words in sentences]

    def from_texts(self, texts):
        words = [text.split() for text in texts]
        return [{"text": text, "words": sentence} for text, sentence in zip(texts, words)], words


TEXTS, WORDS = TextInputs(), WordInputs()


def input_kind(task):
    """`WORDS` for a per-token task (`Task.per_token`), else `TEXTS`."""
    return WORDS if task.per_token else TEXTS
