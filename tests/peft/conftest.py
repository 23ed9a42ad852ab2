"""Tiny native backbones (2-layer BertEncoder + WordPiece preprocessor) for the PEFT tests."""

import keras
import pytest
from sample_texts import VOCAB, sentiment_texts


def make_backbone(seed=1, num_layers=2):
    """A fresh `Backbone` with a random 2-layer, H=32 native encoder; the same `seed` gives the same weights."""
    from tunekit.backbones.backbone import Backbone
    from tunekit.backbones.bert import BertEncoder
    from tunekit.preprocessing.wordpiece import WordPiecePreprocessor

    keras.utils.set_random_seed(seed)
    encoder = BertEncoder(vocabulary_size=len(VOCAB), hidden_size=32, num_layers=num_layers, num_heads=4,
                          intermediate_size=64, max_sequence_length=32, name="encoder")
    encoder.build()
    preprocessor = WordPiecePreprocessor(VOCAB, seq_length=16, name="preprocessor")
    return Backbone(encoder=encoder, preprocessor=preprocessor, name=f"tiny-bert-{seed}", pooling="mean")


@pytest.fixture(scope="session")
def new_backbone():
    """`new_backbone(seed=1, num_layers=2)` -> a fresh tiny `Backbone` (same seed, same weights)."""
    return make_backbone


@pytest.fixture(scope="module")
def sentiment_data():
    return sentiment_texts(64)
