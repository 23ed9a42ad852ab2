"""A Keras 3 layer over a TF Hub BERT preprocessing SavedModel (e.g. `bert_en_uncased_preprocess/3`).

Example:

>>> import tensorflow as tf
>>> from tunekit.preprocessing.hub_preprocessor import HubPreprocessor
>>> # a local folder (here a tiny test export) or a URL: "https://tfhub.dev/tensorflow/bert_en_uncased_preprocess/3"
>>> pre = HubPreprocessor(preprocessor_dir, seq_length=64)
>>> pre(tf.constant(["Hello world"]))["input_word_ids"].shape
TensorShape([1, 64])
"""

import keras
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401 - registers the text ops the SavedModel uses

from tunekit.hub_handles import resolve_handle
from tunekit.preprocessing.preprocessor import Preprocessor


@keras.saving.register_keras_serializable(package="tunekit")
class HubPreprocessor(Preprocessor):
    """Tokenizes and packs with a TF Hub preprocessing model's `tokenize` and `bert_pack_inputs`.

    Args:
        handle: a tfhub.dev/Kaggle URL or a local directory of a TF Hub BERT preprocessor SavedModel.
        seq_length: packed length, 3..512 (special tokens included).
    """

    def __init__(self, handle, seq_length=128, **kwargs):
        super().__init__(seq_length=seq_length, **kwargs)
        self.handle = handle
        path = resolve_handle(handle, what="preprocessor")
        # The local SavedModel directory: `tunekit.save_model` copies it into the saved folder.
        self.source_path = path
        module = hub.load(path)
        missing = [name for name in ("tokenize", "bert_pack_inputs") if not hasattr(module, name)]
        if missing:
            raise ValueError(
                f"{handle!r} is not a TF Hub BERT preprocessor: it lacks {' and '.join(missing)}. A preprocessor "
                "SavedModel exposes .tokenize and .bert_pack_inputs (like tensorflow/bert_en_uncased_preprocess/3); "
                "did you pass the encoder as preprocessor?"
            )
        # Keep a reference: the loaded object owns the vocabulary table the functions use.
        self._module = module
        self._special_tokens = {
            key: int(value) for key, value in module.tokenize.get_special_tokens_dict().items()
        }

    @property
    def special_tokens(self):
        return dict(self._special_tokens)

    def wordpiece_vocabulary(self):
        """(vocabulary tokens in id order, lower_case) of a WordPiece tokenizer that gives this preprocessor's ids,
        or None when they cannot be told (used to rebuild the tokenizer with LiteRT ops).

        Older TF Hub preprocessors expose `vocab_file` and `do_lower_case`; Model Garden's keep `vocab.txt` as an
        asset but record no casing, so the casing is the one whose ids equal this SavedModel's own on probe texts.
        """
        import os

        import tensorflow as tf
        import tensorflow_text as text

        from tunekit.preprocessing.wordpiece import read_vocabulary

        module = self._module
        if hasattr(module, "vocab_file") and hasattr(module, "do_lower_case"):
            return (read_vocabulary(module.vocab_file.asset_path.numpy().decode("utf-8")),
                    bool(module.do_lower_case.numpy()))
        vocab_file = os.path.join(self.source_path, "assets", "vocab.txt")
        if not os.path.isfile(vocab_file):
            return None
        vocabulary = read_vocabulary(vocab_file)
        probe = tf.constant(["The CAT sat. Déjà vu, naïve Ärger!", "hello WORLD 123 ##s [CLS]", "ÉCOLE école"])
        expected = self._module.tokenize(probe).merge_dims(1, 2)
        for lower_case in (True, False):
            tokenizer = text.FastBertTokenizer(vocab=list(vocabulary), lower_case_nfd_strip_accents=lower_case,
                                               token_out_type="int32", unknown_token="[UNK]")
            actual = tokenizer.tokenize(probe)
            if expected.to_list() == actual.to_list():
                return vocabulary, lower_case
        return None

    def tokenize(self, strings):
        return self._module.tokenize(strings)

    def pack(self, segments, seq_length=None):
        seq_length = self.seq_length if seq_length is None else seq_length
        # A Python int works whether the SavedModel traced seq_length as a constant or as a scalar tensor.
        return self._module.bert_pack_inputs(list(segments), seq_length=int(seq_length))

    def get_config(self):
        config = super().get_config()
        config["handle"] = self.handle
        return config
