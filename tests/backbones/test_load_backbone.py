import hashlib
import shutil

import numpy as np
import pytest
import tensorflow as tf

import tunekit as tk
from tunekit.backbones.hub_encoder import HubEncoder
from tunekit.hub_handles import HandleNotAvailableError

URL = "https://tfhub.dev/tensorflow/small_bert/bert_en_uncased_L-2_H-128_A-2/2"


def test_local_directories_load_with_matching_preprocessor(hub_models):
    backbone = tk.load_backbone(hub_models["encoder"], preprocessor=hub_models["preprocessor"], seq_length=20)
    assert isinstance(backbone.encoder, HubEncoder)
    assert backbone.seq_length == 20
    ids = backbone.preprocessor(tf.constant(["the movie was good", ""]))
    assert ids["input_word_ids"].shape == (2, 20)
    outputs = backbone.encoder(ids)
    assert outputs["pooled_output"].shape == (2, 32)
    assert outputs["sequence_output"].shape == (2, 20, 32)
    assert len(outputs["encoder_outputs"]) == 2


def test_preprocessor_found_from_encoder_vocab_extras(hub_models):
    backbone = tk.load_backbone(hub_models["encoder"], seq_length=12)
    reference = tk.load_backbone(hub_models["encoder"], preprocessor=hub_models["preprocessor"], seq_length=12)
    texts = tf.constant(["The Movie was GOOD!", "bad plots"])
    for key, value in reference.preprocessor(texts).items():
        np.testing.assert_array_equal(backbone.preprocessor(texts)[key], value)



def test_long_texts_keep_head_and_tail_by_default_and_head_on_request(hub_models):
    long_text = tf.constant(["the movie was " + "good " * 30 + "but bad"])
    default = tk.load_backbone(hub_models["encoder"], preprocessor=hub_models["preprocessor"], seq_length=10)
    head = tk.load_backbone(hub_models["encoder"], preprocessor=hub_models["preprocessor"], seq_length=10,
                            truncation="head")
    assert (default.preprocessor.truncation, head.preprocessor.truncation) == ("head_tail", "head")
    kept_by_default = default.preprocessor(long_text)["input_word_ids"].numpy()[0]
    kept_by_head = head.preprocessor(long_text)["input_word_ids"].numpy()[0]
    short = tf.constant(["the movie was good"])
    np.testing.assert_array_equal(default.preprocessor(short)["input_word_ids"],
                                  head.preprocessor(short)["input_word_ids"])
    # Same first word piece after [CLS], different endings: head+tail keeps "but bad", head keeps more "good"s.
    assert kept_by_default[1] == kept_by_head[1]
    assert not np.array_equal(kept_by_default[-3:-1], kept_by_head[-3:-1])

def test_cached_url_loads_offline_from_tfhub_cache(hub_models, tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    shutil.copytree(hub_models["encoder"], tmp_path / hashlib.sha1(URL.encode()).hexdigest())
    preprocessor_url = "https://tfhub.dev/tensorflow/bert_en_uncased_preprocess/3"
    shutil.copytree(hub_models["preprocessor"], tmp_path / hashlib.sha1(preprocessor_url.encode()).hexdigest())
    backbone = tk.load_backbone("small_bert/bert_en_uncased_L-2_H-128_A-2", seq_length=8)
    assert backbone.encoder.handle == URL
    assert backbone.preprocessor.handle == preprocessor_url
    assert backbone.encoder(backbone.preprocessor(tf.constant(["good"])))["pooled_output"].shape == (1, 32)


def test_uncached_url_offline_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    with pytest.raises(HandleNotAvailableError) as error:
        tk.load_backbone("small_bert/bert_en_uncased_L-2_H-128_A-2")
    message = str(error.value)
    assert URL in message and "TFHUB_CACHE_DIR" in message and "local directory" in message


def test_unknown_short_name_lists_close_names():
    with pytest.raises(ValueError, match="Did you mean: small_bert/bert_en_uncased_L-4_H-512_A-8"):
        tk.load_backbone("small_bert/bert_en_uncased_L-4_H-512_A8")


def test_directory_that_is_not_a_saved_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="not a SavedModel"):
        tk.load_backbone(str(tmp_path))
    with pytest.raises(ValueError, match="neither a URL nor an existing directory"):
        tk.load_backbone(str(tmp_path / "missing"))


def test_preprocessor_passed_as_encoder_is_rejected(hub_models):
    with pytest.raises(ValueError, match="outputs lack|not a TF Hub encoder"):
        tk.load_backbone(hub_models["preprocessor"], preprocessor=hub_models["preprocessor"])


def test_encoder_passed_as_preprocessor_is_rejected(hub_models):
    with pytest.raises(ValueError, match="not a TF Hub BERT preprocessor"):
        tk.load_backbone(hub_models["encoder"], preprocessor=hub_models["encoder"])


def test_encoder_without_bert_outputs_is_rejected(tmp_path):
    module = tf.__internal__.tracking.AutoTrackable()
    module.scale = tf.Variable(2.0)
    module.variables = [module.scale]
    module.trainable_variables = [module.scale]
    spec = {k: tf.TensorSpec([None, None], tf.int32) for k in ("input_word_ids", "input_mask", "input_type_ids")}
    module.__call__ = tf.function(
        lambda inputs, training=False: {"logits": tf.cast(inputs["input_word_ids"], tf.float32) * module.scale},
        input_signature=[spec, tf.TensorSpec([], tf.bool)])
    tf.saved_model.save(module, str(tmp_path / "not_bert"))
    with pytest.raises(ValueError, match=r"outputs lack \['pooled_output', 'sequence_output'\]"):
        tk.load_backbone(str(tmp_path / "not_bert"), preprocessor=str(tmp_path / "not_bert"))


@pytest.mark.parametrize("seq_length, error", [(0, ValueError), (1, ValueError), (2, ValueError), (513, ValueError),
                                                (12.5, TypeError), ("128", TypeError)])
def test_seq_length_out_of_range(hub_models, seq_length, error):
    with pytest.raises(error, match="seq_length"):
        tk.load_backbone(hub_models["encoder"], seq_length=seq_length)


def test_seq_length_beyond_the_encoders_position_table_is_refused_at_load(hub_models):
    # The tiny test encoder's position table holds 128 tokens (tests/conftest.py).
    with pytest.raises(ValueError, match=r"seq_length=200 is longer .* position embeddings hold 128 tokens"):
        tk.load_backbone(hub_models["encoder"], preprocessor=hub_models["preprocessor"], seq_length=200)
    assert tk.load_backbone(hub_models["encoder"], preprocessor=hub_models["preprocessor"], seq_length=128).seq_length == 128


def test_text_pairs_need_room_for_both_texts(hub_models):
    backbone = tk.load_backbone(hub_models["encoder"], preprocessor=hub_models["preprocessor"], seq_length=4)
    with pytest.raises(ValueError, match="Text pairs need seq_length >= 5"):
        tk.attach_head(backbone, "classification", num_classes=2, text_pairs=True)


def test_list_backbones_covers_the_published_families():
    names = tk.list_backbones()
    assert len([n for n in names if n.startswith("small_bert/")]) == 24
    for name in ("bert_en_uncased_L-12_H-768_A-12", "bert_multi_cased_L-12_H-768_A-12", "bert_zh_L-12_H-768_A-12",
                 "albert_en_base", "electra_small", "experts_pubmed", "talkheads_ggelu_bert_en_base", "minilm-l6"):
        assert name in names
