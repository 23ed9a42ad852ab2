import keras
import numpy as np
import pytest
import tensorflow as tf
from sample_texts import VOCAB

from tunekit.preprocessing.hub_preprocessor import HubPreprocessor
from tunekit.preprocessing.wordpiece import WordPiecePreprocessor, save_hub_preprocessor, special_token_ids

TEXTS = tf.constant(["The Movie was GOOD!", "", "films and plots, très boring", "xyzzy"])


def ids(pre, texts=TEXTS):
    return {key: value.numpy() for key, value in pre(texts).items()}


def test_wordpiece_tokenizes_lowercases_and_splits_wordpieces():
    pre = WordPiecePreprocessor(VOCAB, lower_case=True, seq_length=12)
    word_ids = ids(pre)["input_word_ids"]
    index = {token: i for i, token in enumerate(VOCAB)}
    assert word_ids[0][:7].tolist() == [index[t] for t in ["[CLS]", "the", "movie", "was", "good", "!", "[SEP]"]]
    assert word_ids[1][:3].tolist() == [index["[CLS]"], index["[SEP]"], 0]
    assert word_ids[2][1:3].tolist() == [index["film"], index["##s"]]
    assert word_ids[3][1] == index["[UNK]"]
    tokens = pre.tokenize(tf.constant(["films"]))
    assert tokens.to_list() == [[[index["film"], index["##s"]]]]  # [batch, words, wordpieces]


def test_hub_preprocessor_savedmodel_matches_wordpiece_layer(hub_models):
    hub = HubPreprocessor(hub_models["preprocessor"], seq_length=12)
    native = WordPiecePreprocessor(VOCAB, lower_case=True, seq_length=12)
    for key, value in ids(native).items():
        np.testing.assert_array_equal(ids(hub)[key], value)
    assert hub.special_tokens == special_token_ids(VOCAB)
    pairs = hub([TEXTS, TEXTS[::-1]])
    np.testing.assert_array_equal(pairs["input_word_ids"], native([TEXTS, TEXTS[::-1]])["input_word_ids"])


def test_head_tail_truncation_in_the_layer():
    long_text = tf.constant([" ".join(["good"] * 10 + ["bad"] * 10)])
    index = {token: i for i, token in enumerate(VOCAB)}
    head = WordPiecePreprocessor(VOCAB, seq_length=10)(long_text)["input_word_ids"].numpy()[0]
    head_tail = WordPiecePreprocessor(VOCAB, seq_length=10, truncation="head_tail")(long_text)["input_word_ids"].numpy()[0]
    assert head[1:9].tolist() == [index["good"]] * 8
    assert head_tail[1:9].tolist() == [index["good"]] * 2 + [index["bad"]] * 6


def test_preprocessors_round_trip_through_config(hub_models):
    for pre in (WordPiecePreprocessor(VOCAB, seq_length=9, truncation="head_tail"),
                HubPreprocessor(hub_models["preprocessor"], seq_length=9)):
        clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(pre))
        assert (clone.seq_length, clone.truncation) == (pre.seq_length, pre.truncation)
        np.testing.assert_array_equal(ids(clone)["input_word_ids"], ids(pre)["input_word_ids"])


def test_saved_hub_preprocessor_has_published_interface(hub_models):
    module = tf.saved_model.load(hub_models["preprocessor"])
    assert module(TEXTS)["input_word_ids"].shape == (4, 128)
    tokens = module.tokenize(TEXTS)
    assert tokens.shape.rank == 3
    for seq_length in (5, 40):
        packed = module.bert_pack_inputs([tokens, tokens], seq_length=seq_length)
        assert packed["input_mask"].shape == (4, seq_length)
    flat = module.bert_pack_inputs([tokens.merge_dims(-2, -1)], seq_length=16)
    np.testing.assert_array_equal(flat["input_word_ids"], module.bert_pack_inputs([tokens], seq_length=16)["input_word_ids"])


def test_vocabulary_without_special_tokens_is_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"lacks the BERT special tokens \['\[CLS\]'"):
        WordPiecePreprocessor(["[PAD]", "[UNK]", "a"])
    with pytest.raises(ValueError, match="special tokens"):
        save_hub_preprocessor(["a", "b"], tmp_path / "pre")
    assert not (tmp_path / "pre").exists()
