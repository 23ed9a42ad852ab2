"""Raw strings -> BERT token ids: TF Hub preprocessing models, WordPiece from a `vocab.txt`, packing.

Every preprocessor is a `Preprocessor` (a Keras layer). Names are imported on first use.

>>> from tunekit.preprocessing import LONG_TEXT_MODES, MAX_SEQ_LENGTH, TRUNCATION_MODES
>>> MAX_SEQ_LENGTH, TRUNCATION_MODES, LONG_TEXT_MODES
(512, ('head', 'head_tail'), ('truncate', 'windows'))
"""

from tunekit._lazy import lazy_attributes as _lazy_attributes

_EXPORTS = {
    "Preprocessor": "tunekit.preprocessing.preprocessor",
    "HubPreprocessor": "tunekit.preprocessing.hub_preprocessor",
    "WordPiecePreprocessor": "tunekit.preprocessing.wordpiece",
    "read_vocabulary": "tunekit.preprocessing.wordpiece",
    "save_hub_preprocessor": "tunekit.preprocessing.wordpiece",
    "MAX_SEQ_LENGTH": "tunekit.preprocessing.packing",
    "MODEL_INPUT_KEYS": "tunekit.preprocessing.packing",
    "TRUNCATION_MODES": "tunekit.preprocessing.packing",
    "LONG_TEXT_MODES": "tunekit.preprocessing.packing",
}

__getattr__, __dir__ = _lazy_attributes(globals(), _EXPORTS)

__all__ = [
    "LONG_TEXT_MODES",
    "MAX_SEQ_LENGTH",
    "MODEL_INPUT_KEYS",
    "TRUNCATION_MODES",
    "HubPreprocessor",
    "Preprocessor",
    "WordPiecePreprocessor",
    "read_vocabulary",
    "save_hub_preprocessor",
]
