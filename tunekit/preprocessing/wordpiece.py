"""A BERT preprocessor built from a WordPiece `vocab.txt`, and its export as a TF Hub-format SavedModel.

`WordPiecePreprocessor` is what tunekit uses for checkpoints that ship a vocabulary instead of a TF Hub
preprocessing model (Hugging Face BERT folders). `save_hub_preprocessor` writes the same tokenizer as a
SavedModel with the published TF Hub preprocessor interface (`__call__`, `tokenize`, `bert_pack_inputs`),
so anything that consumes TF Hub models, `tunekit.load_backbone` included, can use it.

Example:

>>> import tensorflow as tf
>>> from tunekit.preprocessing.wordpiece import WordPiecePreprocessor
>>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "movie", "##s"]
>>> pre = WordPiecePreprocessor(vocab, lower_case=True, seq_length=8)
>>> pre(tf.constant(["Good movies"]))["input_word_ids"].numpy().tolist()
[[2, 5, 6, 7, 3, 0, 0, 0]]
"""

import os
import tempfile

import keras
import tensorflow as tf
import tensorflow_text as text

from tunekit.files import write_atomically
from tunekit.preprocessing.packing import pack_inputs, validate_seq_length
from tunekit.preprocessing.preprocessor import Preprocessor

SPECIAL_TOKENS = {"padding_id": "[PAD]", "start_of_sequence_id": "[CLS]", "end_of_segment_id": "[SEP]", "mask_id": "[MASK]"}


def read_vocabulary(path):
    """Tokens of a `vocab.txt` (one per line) in id order."""
    with open(path, encoding="utf-8") as file:
        return [line.rstrip("\r\n") for line in file]


def special_token_ids(vocabulary):
    """The TF Hub `get_special_tokens_dict()` values for a vocabulary; a `ValueError` if one is missing."""
    index = {token: i for i, token in enumerate(vocabulary)}
    missing = [token for token in [*SPECIAL_TOKENS.values(), "[UNK]"] if token not in index]
    if missing:
        raise ValueError(
            f"The vocabulary lacks the BERT special tokens {missing}; a BERT WordPiece vocab.txt holds "
            "[PAD], [UNK], [CLS], [SEP] and [MASK]."
        )
    ids = {key: index[token] for key, token in SPECIAL_TOKENS.items()}
    ids["vocab_size"] = len(vocabulary)
    return ids


def _bert_tokenizer(vocab_table, lower_case):
    return text.BertTokenizer(vocab_table, lower_case=lower_case, token_out_type=tf.int32, unknown_token="[UNK]")


@keras.saving.register_keras_serializable(package="tunekit")
class WordPiecePreprocessor(Preprocessor):
    """BERT tokenization (basic split + WordPiece, optional lower-casing and accent stripping) and packing.

    Args:
        vocabulary: the tokens in id order, or the path of a `vocab.txt`.
        lower_case: lower-case and strip accents first (uncased checkpoints); False for cased ones.
        seq_length: packed length, 3..512 (special tokens included).
    """

    def __init__(self, vocabulary, lower_case=True, seq_length=128, **kwargs):
        super().__init__(seq_length=seq_length, **kwargs)
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = read_vocabulary(vocabulary)
        self.vocabulary = [str(token) for token in vocabulary]
        self.lower_case = bool(lower_case)
        self._special_tokens = special_token_ids(self.vocabulary)
        self._vocab_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(self.vocabulary), tf.range(len(self.vocabulary), dtype=tf.int64)
            ),
            default_value=-1,
        )
        self._tokenizer = _bert_tokenizer(self._vocab_table, self.lower_case)

    @property
    def special_tokens(self):
        return dict(self._special_tokens)

    def tokenize(self, strings):
        return self._tokenizer.tokenize(strings)

    def pack(self, segments, seq_length=None):
        return pack_inputs(
            list(segments),
            self.seq_length if seq_length is None else seq_length,
            start_id=self._special_tokens["start_of_sequence_id"],
            end_id=self._special_tokens["end_of_segment_id"],
            pad_id=self._special_tokens["padding_id"],
        )

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary=self.vocabulary, lower_case=self.lower_case)
        return config


class _Tokenize(tf.Module):
    def __init__(self, vocab_file, lower_case, special_tokens):
        super().__init__()
        self._vocab_table = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                vocab_file,
                key_dtype=tf.string,
                key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
                value_dtype=tf.int64,
                value_index=tf.lookup.TextFileIndex.LINE_NUMBER,
            ),
            default_value=-1,
        )
        self._tokenizer = _bert_tokenizer(self._vocab_table, lower_case)
        self._special_tokens = special_tokens

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, strings):
        return self._tokenizer.tokenize(strings)

    @tf.function(input_signature=[])
    def get_special_tokens_dict(self):
        return {key: tf.constant(value, tf.int32) for key, value in self._special_tokens.items()}


class _BertPackInputs(tf.Module):
    def __init__(self, special_tokens, default_seq_length):
        super().__init__()
        self._special_tokens = special_tokens
        self._default_seq_length = default_seq_length

    @tf.function
    def __call__(self, inputs, seq_length=None):
        return pack_inputs(
            list(inputs),
            self._default_seq_length if seq_length is None else seq_length,
            start_id=self._special_tokens["start_of_sequence_id"],
            end_id=self._special_tokens["end_of_segment_id"],
            pad_id=self._special_tokens["padding_id"],
        )


class _HubPreprocessorModule(tf.Module):
    def __init__(self, vocab_file, lower_case, default_seq_length):
        super().__init__()
        special_tokens = special_token_ids(read_vocabulary(vocab_file))
        self.vocab_file = tf.saved_model.Asset(vocab_file)
        self.do_lower_case = tf.Variable(lower_case, trainable=False)
        self.tokenize = _Tokenize(self.vocab_file, lower_case, special_tokens)
        self.bert_pack_inputs = _BertPackInputs(special_tokens, default_seq_length)
        self._default_seq_length = default_seq_length

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, strings):
        return self.bert_pack_inputs([self.tokenize(strings)], seq_length=self._default_seq_length)


def save_hub_preprocessor(vocabulary, export_dir, *, lower_case=True, default_seq_length=128):
    """Writes a TF Hub-format BERT preprocessor SavedModel for a WordPiece vocabulary.

    The result behaves like `tensorflow/bert_en_uncased_preprocess/3`: `pre(strings)` packs to
    `default_seq_length`, `pre.tokenize(strings)` gives `[batch, words, wordpieces]` ids,
    `pre.bert_pack_inputs([a, b], seq_length=N)` packs one or two segments to any N ≤ 512, and
    `pre.tokenize.get_special_tokens_dict()` gives the special ids. The vocabulary travels as
    `assets/vocab.txt`. The directory appears complete or not at all (written beside it, then renamed).

    Args:
        vocabulary: tokens in id order, or the path of a `vocab.txt`.
        export_dir: the SavedModel directory to create (replaced if it exists).
        lower_case: whether tokenization lower-cases and strips accents.
        default_seq_length: the length `pre(strings)` packs to.

    Returns:
        `export_dir`.
    """
    validate_seq_length(default_seq_length)
    tokens = read_vocabulary(vocabulary) if isinstance(vocabulary, (str, os.PathLike)) else list(vocabulary)
    special_token_ids(tokens)
    export_dir = os.path.abspath(os.fspath(export_dir))
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent, prefix=".tunekit-vocab-") as vocab_dir:
        vocab_file = os.path.join(vocab_dir, "vocab.txt")
        with open(vocab_file, "w", encoding="utf-8") as file:
            file.writelines(token + "\n" for token in tokens)
        module = _HubPreprocessorModule(vocab_file, bool(lower_case), default_seq_length)
        seq_length_spec = tf.TensorSpec([], tf.int32)
        for ragged_rank in (1, 2):
            segment_spec = tf.RaggedTensorSpec([None] * (ragged_rank + 1), tf.int32, ragged_rank=ragged_rank)
            for num_segments in (1, 2):
                module.bert_pack_inputs.__call__.get_concrete_function(
                    [segment_spec] * num_segments, seq_length=seq_length_spec
                )
        write_atomically(export_dir, lambda path: tf.saved_model.save(module, path))
    return export_dir

