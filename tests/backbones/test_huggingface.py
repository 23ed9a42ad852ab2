"""Tests of load_huggingface_checkpoint on tiny checkpoint folders written here with Hugging Face names."""

import json
import math

import numpy as np
import pytest
from safetensors.numpy import save_file

from tunekit.backbones.huggingface import load_huggingface_checkpoint

HIDDEN, INTERMEDIATE, LAYERS, HEADS, VOCABULARY_SIZE, POSITIONS = 32, 64, 2, 4, 100, 16
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"tok{index}" for index in range(5, VOCABULARY_SIZE)]
CONFIG = {
    "_name_or_path": "tiny-bert",
    "architectures": ["BertModel"],
    "model_type": "bert",
    "vocab_size": VOCABULARY_SIZE,
    "hidden_size": HIDDEN,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": HEADS,
    "intermediate_size": INTERMEDIATE,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": POSITIONS,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "position_embedding_type": "absolute",
}


def random_bert_weights(seed=0):
    """BertModel weights by Hugging Face name ([out, in] dense weights), random but LayerNorm-like."""
    rng = np.random.default_rng(seed)

    def normal(*shape, scale=0.2):
        return (rng.standard_normal(shape) * scale).astype("float32")

    weights = {
        "embeddings.word_embeddings.weight": normal(VOCABULARY_SIZE, HIDDEN),
        "embeddings.position_embeddings.weight": normal(POSITIONS, HIDDEN),
        "embeddings.token_type_embeddings.weight": normal(2, HIDDEN),
        "embeddings.LayerNorm.weight": 1 + normal(HIDDEN),
        "embeddings.LayerNorm.bias": normal(HIDDEN),
        "embeddings.position_ids": np.arange(POSITIONS, dtype="int64")[None],
        "pooler.dense.weight": normal(HIDDEN, HIDDEN),
        "pooler.dense.bias": normal(HIDDEN),
    }
    for index in range(LAYERS):
        layer = f"encoder.layer.{index}."
        for part, (rows, columns) in {"attention.self.query.": (HIDDEN, HIDDEN),
                                      "attention.self.key.": (HIDDEN, HIDDEN),
                                      "attention.self.value.": (HIDDEN, HIDDEN),
                                      "attention.output.dense.": (HIDDEN, HIDDEN),
                                      "intermediate.dense.": (INTERMEDIATE, HIDDEN),
                                      "output.dense.": (HIDDEN, INTERMEDIATE)}.items():
            weights[layer + part + "weight"] = normal(rows, columns)
            weights[layer + part + "bias"] = normal(rows)
        for part in ("attention.output.LayerNorm.", "output.LayerNorm."):
            weights[layer + part + "weight"] = 1 + normal(HIDDEN)
            weights[layer + part + "bias"] = normal(HIDDEN)
    return weights


def write_checkpoint(folder, weights=None, config=None, vocabulary=VOCABULARY, tokenizer_config=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(CONFIG if config is None else config))
    (folder / "vocab.txt").write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    save_file(random_bert_weights() if weights is None else weights, str(folder / "model.safetensors"))
    if tokenizer_config is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return folder


def reference_bert(weights, word_ids, mask, type_ids):
    """Hugging Face BertModel's forward pass in numpy: (sequence_output, pooled_output)."""
    gelu = np.vectorize(lambda x: 0.5 * x * (1 + math.erf(x / math.sqrt(2))))

    def dense(x, prefix):
        return x @ weights[prefix + "weight"].T + weights[prefix + "bias"]

    def layer_norm(x, prefix):
        centred = x - x.mean(-1, keepdims=True)
        normalised = centred / np.sqrt((centred ** 2).mean(-1, keepdims=True) + 1e-12)
        return normalised * weights[prefix + "weight"] + weights[prefix + "bias"]

    def heads(x):
        return x.reshape(x.shape[0], x.shape[1], HEADS, -1).transpose(0, 2, 1, 3)

    length = word_ids.shape[1]
    hidden = (weights["embeddings.word_embeddings.weight"][word_ids]
              + weights["embeddings.position_embeddings.weight"][:length]
              + weights["embeddings.token_type_embeddings.weight"][type_ids])
    hidden = layer_norm(hidden, "embeddings.LayerNorm.")
    addend = (1.0 - mask[:, None, None, :]) * -1e9
    for index in range(LAYERS):
        layer = f"encoder.layer.{index}."
        query, key, value = (heads(dense(hidden, f"{layer}attention.self.{name}."))
                             for name in ("query", "key", "value"))
        scores = query @ key.transpose(0, 1, 3, 2) / math.sqrt(HIDDEN // HEADS) + addend
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ value).transpose(0, 2, 1, 3).reshape(hidden.shape)
        hidden = layer_norm(hidden + dense(context, layer + "attention.output.dense."),
                            layer + "attention.output.LayerNorm.")
        intermediate = gelu(dense(hidden, layer + "intermediate.dense."))
        hidden = layer_norm(hidden + dense(intermediate, layer + "output.dense."), layer + "output.LayerNorm.")
    return hidden, np.tanh(dense(hidden[:, 0], "pooler.dense."))


def encoder_outputs(encoder, inputs):
    outputs = encoder(inputs)
    return np.asarray(outputs["sequence_output"]), np.asarray(outputs["pooled_output"])


def test_loaded_encoder_matches_reference_forward_pass(tmp_path, make_inputs):
    weights = random_bert_weights()
    encoder, vocabulary, lower_case = load_huggingface_checkpoint(write_checkpoint(tmp_path / "tiny-bert", weights))

    assert vocabulary == VOCABULARY and lower_case is True
    config = encoder.get_config()
    assert (config["vocabulary_size"], config["hidden_size"], config["num_layers"], config["num_heads"],
            config["intermediate_size"], config["max_sequence_length"]) == (100, 32, 2, 4, 64, 16)
    inputs = make_inputs(7)
    sequence_output, pooled_output = encoder_outputs(encoder, inputs)
    expected_sequence, expected_pooled = reference_bert(
        {name: value.astype("float64") for name, value in weights.items()},
        inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"])
    valid = inputs["input_mask"].astype(bool)
    np.testing.assert_allclose(sequence_output[valid], expected_sequence[valid], atol=1e-4)
    np.testing.assert_allclose(pooled_output, expected_pooled, atol=1e-4)


def test_reads_bert_for_x_checkpoint_and_warns_about_missing_pooler(tmp_path, make_inputs):
    base = random_bert_weights()
    weights = {"bert." + name: value for name, value in base.items() if not name.startswith("pooler.")}
    weights["classifier.weight"] = np.zeros((3, HIDDEN), "float32")
    weights["classifier.bias"] = np.zeros((3,), "float32")
    with pytest.warns(UserWarning, match="no pooler weights"):
        encoder, _, _ = load_huggingface_checkpoint(write_checkpoint(tmp_path / "classifier", weights))

    np.testing.assert_array_equal(encoder.word_embeddings.embeddings, base["embeddings.word_embeddings.weight"])
    np.testing.assert_array_equal(encoder.transformer_blocks[1].intermediate.kernel,
                                  base["encoder.layer.1.intermediate.dense.weight"].T)
    assert not np.allclose(encoder.pooler.kernel, 0.0)  # randomly initialised
    inputs = make_inputs(5)
    expected_sequence, _ = reference_bert(base, inputs["input_word_ids"], inputs["input_mask"],
                                          inputs["input_type_ids"])
    valid = inputs["input_mask"].astype(bool)
    np.testing.assert_allclose(encoder_outputs(encoder, inputs)[0][valid], expected_sequence[valid], atol=1e-4)


@pytest.mark.parametrize("folder_name, config_update, tokenizer_config, vocabulary, expected", [
    ("tiny", {}, {"do_lower_case": False}, VOCABULARY, False),  # tokenizer_config.json decides first
    ("tiny", {"_name_or_path": "org/bert-tiny-uncased"}, None, VOCABULARY + ["Upper"], True),
    ("bert-uncased-tiny", {}, None, VOCABULARY + ["Upper"], True),
    ("tiny", {}, {"model_max_length": 512}, VOCABULARY + ["Upper"], False),  # vocabulary has uppercase tokens
    ("tiny", {}, None, VOCABULARY, True),  # only bracketed special tokens are uppercase
])
def test_lower_case_detection(tmp_path, folder_name, config_update, tokenizer_config, vocabulary, expected):
    config = {**CONFIG, "vocab_size": len(vocabulary), **config_update}
    weights = random_bert_weights()
    weights["embeddings.word_embeddings.weight"] = np.zeros((len(vocabulary), HIDDEN), "float32")
    folder = write_checkpoint(tmp_path / folder_name, weights, config, vocabulary, tokenizer_config)
    assert load_huggingface_checkpoint(folder)[2] is expected


def test_rejects_missing_or_non_folder_path(tmp_path):
    with pytest.raises(ValueError, match="does not exist or is not a folder"):
        load_huggingface_checkpoint(tmp_path / "absent")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="does not exist or is not a folder"):
        load_huggingface_checkpoint(tmp_path / "model.safetensors")


def test_rejects_folder_without_config(tmp_path):
    folder = write_checkpoint(tmp_path / "tiny")
    (folder / "config.json").unlink()
    with pytest.raises(ValueError, match="has no config.json.*model_type 'bert'.*vocab.txt.*model.safetensors"):
        load_huggingface_checkpoint(folder)


def test_rejects_other_architectures(tmp_path):
    folder = write_checkpoint(tmp_path / "roberta", config={**CONFIG, "model_type": "roberta"})
    with pytest.raises(ValueError, match="model_type 'roberta'.*BERT-architecture checkpoints"):
        load_huggingface_checkpoint(folder)


@pytest.mark.parametrize("weights_file", ["pytorch_model.bin", "tf_model.h5"])
def test_asks_to_convert_other_weight_formats(tmp_path, weights_file):
    folder = write_checkpoint(tmp_path / "tiny")
    (folder / "model.safetensors").unlink()
    (folder / weights_file).write_bytes(b"not read")
    with pytest.raises(ValueError, match=rf"only as {weights_file}.*save_pretrained\(.*safe_serialization=True\)"):
        load_huggingface_checkpoint(folder)


def test_rejects_folder_without_weights_or_vocabulary(tmp_path):
    folder = write_checkpoint(tmp_path / "tiny")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="has no model.safetensors"):
        load_huggingface_checkpoint(folder)
    folder = write_checkpoint(tmp_path / "tiny2")
    (folder / "vocab.txt").unlink()
    with pytest.raises(ValueError, match="has no vocab.txt"):
        load_huggingface_checkpoint(folder)


def test_rejects_vocabulary_larger_than_embedding_table(tmp_path):
    folder = write_checkpoint(tmp_path / "tiny", vocabulary=VOCABULARY + ["extra"])
    with pytest.raises(ValueError, match="101 tokens but config.json says vocab_size 100"):
        load_huggingface_checkpoint(folder)


@pytest.mark.parametrize("config_update, message", [
    ({"hidden_act": "relu"}, r"hidden_act 'relu'.*\['gelu', 'gelu_new', 'gelu_pytorch_tanh'\]"),
    ({"position_embedding_type": "relative_key"}, "position_embedding_type 'relative_key'"),
])
def test_rejects_unsupported_configuration(tmp_path, config_update, message):
    folder = write_checkpoint(tmp_path / "tiny", config={**CONFIG, **config_update})
    with pytest.raises(ValueError, match=message):
        load_huggingface_checkpoint(folder)


def test_tanh_gelu_checkpoints_get_the_approximate_activation(tmp_path):
    exact, _, _ = load_huggingface_checkpoint(write_checkpoint(tmp_path / "exact"))
    approximate, _, _ = load_huggingface_checkpoint(
        write_checkpoint(tmp_path / "tanh", config={**CONFIG, "hidden_act": "gelu_new"}))
    assert (exact.hidden_activation, approximate.hidden_activation) == ("gelu", "gelu_approximate")


def test_rejects_wrong_shape_and_missing_weight(tmp_path):
    weights = random_bert_weights()
    weights["encoder.layer.1.intermediate.dense.weight"] = np.zeros((HIDDEN, HIDDEN), "float32")
    with pytest.raises(ValueError, match=r"'encoder.layer.1.intermediate.dense.weight' has shape \(32, 32\).*"
                                         r"implies \(64, 32\)"):
        load_huggingface_checkpoint(write_checkpoint(tmp_path / "reshaped", weights))

    weights = random_bert_weights()
    del weights["encoder.layer.0.attention.self.key.bias"]
    with pytest.raises(ValueError, match="lacks 1 BERT weights.*encoder.layer.0.attention.self.key.bias"):
        load_huggingface_checkpoint(write_checkpoint(tmp_path / "incomplete", weights))


def test_damaged_safetensors_file_is_named(tmp_path):
    folder = write_checkpoint(tmp_path / "tiny")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"model.safetensors is damaged or not a safetensors file.*Download the checkpoint again"):
        load_huggingface_checkpoint(folder)
