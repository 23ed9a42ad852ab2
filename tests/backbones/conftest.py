"""Shared fixtures of the backbone tests: a tiny encoder configuration and batches of padded inputs."""

import numpy as np
import pytest

TINY_CONFIG = dict(vocabulary_size=100, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                   max_sequence_length=16)


@pytest.fixture(scope="session")
def tiny_config():
    """Keyword arguments of a 2-layer, H=32 BertEncoder (vocabulary 100, positions 16)."""
    return dict(TINY_CONFIG)


@pytest.fixture
def make_inputs():
    """Returns `make(length, batch_size=3, seed=0)`: int32 encoder inputs whose rows hold `length`, about half and
    1 valid tokens (then padding), with segment ids 0 then 1."""

    def make(length, batch_size=3, seed=0):
        rng = np.random.default_rng(seed)
        valid_lengths = [length, max(1, length // 2), 1][:batch_size] + [length] * max(0, batch_size - 3)
        word_ids = rng.integers(5, TINY_CONFIG["vocabulary_size"], (batch_size, length)).astype("int32")
        mask = np.zeros((batch_size, length), "int32")
        type_ids = np.zeros((batch_size, length), "int32")
        for row, valid in enumerate(valid_lengths):
            mask[row, :valid] = 1
            type_ids[row, valid // 2:valid] = 1
            word_ids[row, valid:] = 0
        return {"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": type_ids}

    return make
