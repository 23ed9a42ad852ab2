"""Data for the PEFT tests (their tiny native backbones come from tests/conftest.py: `new_backbone`)."""

import pytest
from sample_texts import sentiment_texts


@pytest.fixture(scope="module")
def sentiment_data():
    return sentiment_texts(64)
