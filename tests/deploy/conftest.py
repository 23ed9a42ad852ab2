"""Tiny fine-tuned models for the deployment tests: a native 2-layer BERT on a made-up vocabulary, trained for a few
seconds so that its predictions are confident (float32 and int8 labels can then be compared meaningfully)."""

import numpy as np
import pytest
from deploy_models import trained
from sample_texts import sentiment_texts

TRAIN_SIZE = 96


@pytest.fixture(scope="session")
def sentiment():
    return sentiment_texts(TRAIN_SIZE, seed=0)


@pytest.fixture(scope="session")
def classifier(sentiment):
    return trained("classification", *sentiment, labels=["negative", "positive"])


@pytest.fixture(scope="session")
def pair_classifier(sentiment):
    texts, labels = sentiment
    return trained("classification", [texts, texts[::-1]], labels, labels=["no", "yes"], text_pairs=True)


@pytest.fixture(scope="session")
def fixture_texts():
    """Held-out texts (another seed), a long one (truncated head+tail), an empty one and unknown words."""
    texts, labels = sentiment_texts(24, seed=7)
    texts[0] = " ".join([texts[0]] * 6)
    texts[1] = "Zzyzx qwerty " + texts[1]
    return texts, np.asarray(labels)
