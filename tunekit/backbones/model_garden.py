"""Reads a published TF Hub BERT encoder SavedModel into tunekit's native `BertEncoder`.

The BERT-family encoders on TF Hub / Kaggle (BERT en cased/uncased base/large/wwm, the 24 small BERTs,
multilingual and Chinese BERT, BERT Experts, ELECTRA discriminators, ...) were exported by TF Model Garden
(`official.nlp.modeling.networks.BertEncoder` through `official/nlp/tools/export_tfhub_lib.py`), so their
variables have known names: `word_embeddings/embeddings`, `position_embedding/embeddings`,
`type_embeddings/embeddings`, `embeddings/layer_norm/*`, `transformer/layer_N/self_attention/{query,key,value,
attention_output}/*`, `transformer/layer_N/{self_attention_layer_norm,intermediate,output,output_layer_norm}/*` and
`pooler_transform/*`. Everything the native encoder needs is read from the SavedModel, not guessed:

- shapes (vocabulary, width, heads, feed-forward width, positions, segment types, depth) from the variables;
- the activation from the graph: Model Garden's `"gelu"` is the tanh approximation (a `Pow` op), what Google's
  BERT checkpoints use; exact GELU shows as `Erf`/`Erfc`;
- dropout rates from the Keras metadata the exporter writes (`keras_metadata.pb`), else BERT's 0.1.

Then the conversion is checked: the SavedModel and the native encoder run on the same padded probe batch and
their `sequence_output`, `pooled_output` and `encoder_outputs` must agree within `TOLERANCE`. A SavedModel whose
structure is not this one (ALBERT's shared layers, factorised embeddings, Talking-Heads, anything else) raises
`NotConvertible` with the reason, and `load_backbone` keeps it on the SavedModel path (`HubEncoder`).

Example, with `encoder_dir` a TF Hub BERT encoder folder (e.g. a download of `bert_en_uncased_L-12_H-768_A-12/4`):

>>> from tunekit.backbones.model_garden import convert_saved_model_encoder
>>> conversion = convert_saved_model_encoder(encoder_dir)
>>> conversion.encoder.num_layers, conversion.encoder.hidden_activation, conversion.max_difference < 1e-5
(2, 'gelu_approximate', True)
"""

import concurrent.futures
import dataclasses
import json
import os
import re

import numpy as np
import tensorflow as tf

from tunekit.backbones.bert import BertEncoder
from tunekit.preprocessing.packing import MODEL_INPUT_KEYS

# Largest |native - SavedModel| accepted on the probe batch, over every output. Float32 reordering of the same
# computation stays near 1e-6; a wrong activation, epsilon or missing weight is far above it.
TOLERANCE = 1e-4

_LAYER_PART = re.compile(r"^transformer/layer_(\d+)/(.+)$")
_EMBEDDING_NAMES = ("word_embeddings/embeddings", "position_embedding/embeddings", "type_embeddings/embeddings",
                    "embeddings/layer_norm/gamma", "embeddings/layer_norm/beta")
_POOLER_NAMES = ("pooler_transform/kernel", "pooler_transform/bias")
_LAYER_NAMES = tuple(
    f"{part}/{weight}"
    for part, weights in (
        ("self_attention/query", ("kernel", "bias")), ("self_attention/key", ("kernel", "bias")),
        ("self_attention/value", ("kernel", "bias")), ("self_attention/attention_output", ("kernel", "bias")),
        ("self_attention_layer_norm", ("gamma", "beta")), ("intermediate", ("kernel", "bias")),
        ("output", ("kernel", "bias")), ("output_layer_norm", ("gamma", "beta")),
    )
    for weight in weights
)
DEFAULT_DROPOUT = 0.1  # BERT's hidden and attention dropout, used when the SavedModel does not record its own


class NotConvertible(ValueError):
    """The SavedModel is not a Model Garden BERT encoder that tunekit can read into a `BertEncoder`."""


@dataclasses.dataclass
class Conversion:
    """A converted encoder and how it was checked.

    Attributes:
        encoder: the native `BertEncoder` holding the SavedModel's weights.
        max_difference: the largest |native - SavedModel| over all outputs on the probe batch.
        vocab_file: the word-piece vocabulary the SavedModel carries (`obj.vocab_file`), or None.
        lower_case: its `obj.do_lower_case`, or None.
        dropout_source: where the dropout rates came from ("keras_metadata.pb" or "BERT default").
    """

    encoder: BertEncoder
    max_difference: float
    vocab_file: str = None
    lower_case: bool = None
    dropout_source: str = ""


def convert_saved_model_encoder(path, *, module=None, dtype=None):
    """Reads the TF Hub encoder SavedModel in folder `path` into a native `BertEncoder`; returns a `Conversion`.

    Args:
        path: local folder of the SavedModel (resolve URLs first with `tunekit.hub_handles.resolve_handle`).
        module: the SavedModel already loaded with `tf.saved_model.load(path)`, to save loading it again.
        dtype: the native encoder's Keras dtype policy (e.g. "mixed_bfloat16"); the check runs in float32.

    Raises:
        NotConvertible: the variables are not those of a Model Garden BERT encoder (the message says which part
            differs), or the converted encoder's outputs differ from the SavedModel's by more than `TOLERANCE`.
    """
    module = tf.saved_model.load(path) if module is None else module
    weights = _named_weights(module)
    config = _config_from_weights(weights)
    config["hidden_activation"] = _activation(module)
    dropout, dropout_source = _dropout_rates(path)
    config.update(dropout)

    # The check runs in float32, then the weights go into an encoder of the requested dtype policy.
    encoder = BertEncoder(**config, dtype="float32")
    encoder.build()
    _assign(encoder, weights)
    max_difference = _max_difference(module, encoder)
    if not max_difference <= TOLERANCE:
        raise NotConvertible(
            f"its variables have Model Garden's BERT names, but a native encoder with them computes outputs up to "
            f"{max_difference:.3g} away from the SavedModel's own (tolerance {TOLERANCE:g}): its graph computes "
            "something else"
        )
    if dtype not in (None, "float32"):
        typed = BertEncoder(**config, dtype=dtype)
        typed.build()
        typed.set_weights(encoder.get_weights())
        encoder = typed

    vocab_file = lower_case = None
    if hasattr(module, "vocab_file") and hasattr(module, "do_lower_case"):
        vocab_file = module.vocab_file.asset_path.numpy().decode("utf-8")
        lower_case = bool(module.do_lower_case.numpy())
    return Conversion(encoder, max_difference, vocab_file, lower_case, dropout_source)


def _named_weights(module):
    """The SavedModel's trainable variables by name without `:0`; refuses names outside Model Garden's BERT."""
    if not callable(module) or not hasattr(module, "trainable_variables"):
        raise NotConvertible("it is not a callable SavedModel with trainable variables (not a TF Hub encoder)")
    weights = {re.sub(r":\d+$", "", variable.name): variable for variable in module.trainable_variables}
    expected = set(_EMBEDDING_NAMES) | set(_POOLER_NAMES)
    layers = sorted({int(match.group(1)) for match in map(_LAYER_PART.match, weights) if match})
    if not layers or layers != list(range(len(layers))):
        raise NotConvertible("it has no `transformer/layer_0/...` variables (not a Model Garden BERT encoder)")
    expected |= {f"transformer/layer_{index}/{name}" for index in layers for name in _LAYER_NAMES}
    unknown = sorted(set(weights) - expected)
    missing = sorted(expected - set(weights))
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"variables BERT does not have ({', '.join(unknown[:3])}{', ...' if len(unknown) > 3 else ''})")
        if missing:
            parts.append(f"no {', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}")
        raise NotConvertible(
            f"its variables are not BERT's: {' and '.join(parts)}; ALBERT (shared layers), factorised embeddings "
            "and Talking-Heads have other structures"
        )
    return {name: variable.numpy() for name, variable in weights.items()}


def _config_from_weights(weights):
    vocabulary_size, hidden_size = weights["word_embeddings/embeddings"].shape
    query = weights["transformer/layer_0/self_attention/query/kernel"]
    if query.ndim != 3 or query.shape[0] != hidden_size or query.shape[1] * query.shape[2] != hidden_size:
        raise NotConvertible(f"its query kernel has shape {query.shape}, not [hidden, heads, head_size] with "
                             f"heads * head_size = hidden ({hidden_size})")
    num_layers = sum(1 for name in weights if name.endswith("/output_layer_norm/gamma"))
    return dict(
        vocabulary_size=int(vocabulary_size),
        hidden_size=int(hidden_size),
        num_layers=num_layers,
        num_heads=int(query.shape[1]),
        intermediate_size=int(weights["transformer/layer_0/intermediate/kernel"].shape[1]),
        max_sequence_length=int(weights["position_embedding/embeddings"].shape[0]),
        type_vocabulary_size=int(weights["type_embeddings/embeddings"].shape[0]),
        layer_norm_epsilon=1e-12,  # Model Garden's BertEncoder; the output check below confirms it
    )


def _activation(module):
    """"gelu" (exact, erf) or "gelu_approximate" (tanh), read from the ops of the encoder's serving graph."""
    signature = module.signatures.get("serving_default") if hasattr(module, "signatures") else None
    if signature is None:
        raise NotConvertible("it has no serving_default signature to read its activation from")
    ops = {node.op for function in signature.graph.as_graph_def().library.function for node in function.node_def}
    if ops & {"Erf", "Erfc"}:
        return "gelu"
    if "Pow" in ops and "Tanh" in ops:
        return "gelu_approximate"
    raise NotConvertible("its graph computes neither exact GELU (Erf) nor its tanh approximation")


def _dropout_rates(path):
    """({"dropout": rate, "attention_dropout": rate}, source) from the Keras metadata of Model Garden's export."""
    metadata_file = os.path.join(path, "keras_metadata.pb")
    if os.path.isfile(metadata_file):
        with open(metadata_file, "rb") as file:
            text = file.read().decode("utf-8", errors="replace")
        # The metadata is a protobuf of JSON strings; the encoder's own config is one JSON object inside it.
        start = text.find('{"class_name": "BertEncoder"')
        if start >= 0:
            try:
                config = json.JSONDecoder().raw_decode(text, start)[0].get("config", {})
                return ({"dropout": float(config["output_dropout"]),
                         "attention_dropout": float(config["attention_dropout"])}, "keras_metadata.pb")
            except (ValueError, KeyError, TypeError):
                pass
    return {"dropout": DEFAULT_DROPOUT, "attention_dropout": DEFAULT_DROPOUT}, "BERT default"


def _assign(encoder, weights):
    hidden = encoder.hidden_size

    def dense(layer, prefix):
        layer.kernel.assign(weights[prefix + "/kernel"])
        layer.bias.assign(weights[prefix + "/bias"])

    def layer_norm(layer, prefix):
        layer.gamma.assign(weights[prefix + "/gamma"])
        layer.beta.assign(weights[prefix + "/beta"])

    encoder.word_embeddings.embeddings.assign(weights["word_embeddings/embeddings"])
    encoder.position_embeddings.embeddings.assign(weights["position_embedding/embeddings"])
    encoder.token_type_embeddings.embeddings.assign(weights["type_embeddings/embeddings"])
    layer_norm(encoder.embeddings_layer_norm, "embeddings/layer_norm")
    for index, block in enumerate(encoder.transformer_blocks):
        prefix = f"transformer/layer_{index}/"
        for name in ("query", "key", "value"):
            # EinsumDense [hidden, heads, head_size] -> Dense [hidden, heads * head_size]: the heads' order is kept.
            getattr(block, name).kernel.assign(weights[prefix + f"self_attention/{name}/kernel"].reshape(hidden, hidden))
            getattr(block, name).bias.assign(weights[prefix + f"self_attention/{name}/bias"].reshape(hidden))
        block.attention_output.kernel.assign(
            weights[prefix + "self_attention/attention_output/kernel"].reshape(hidden, hidden))
        block.attention_output.bias.assign(weights[prefix + "self_attention/attention_output/bias"])
        layer_norm(block.attention_layer_norm, prefix + "self_attention_layer_norm")
        dense(block.intermediate, prefix + "intermediate")
        dense(block.output_dense, prefix + "output")
        layer_norm(block.output_layer_norm, prefix + "output_layer_norm")
    dense(encoder.pooler, "pooler_transform")


def probe_inputs(vocabulary_size, length=12):
    """A padded batch of 3 rows (full, about half, and 2 valid tokens), with both segment ids, for checks."""
    rng = np.random.default_rng(0)
    word_ids = rng.integers(1, vocabulary_size, (3, length)).astype("int32")
    mask = np.zeros((3, length), "int32")
    type_ids = np.zeros((3, length), "int32")
    for row, valid in enumerate((length, length // 2, 2)):
        mask[row, :valid] = 1
        type_ids[row, valid // 2:valid] = 1
        word_ids[row, valid:] = 0
    return {"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": type_ids}


def _max_difference(module, encoder):
    """Largest |native - SavedModel| over `sequence_output`, `pooled_output` and every `encoder_outputs` entry."""
    inputs = probe_inputs(encoder.vocabulary_size, min(12, encoder.max_sequence_length))
    # A SavedModel's functions fail inside a distribution strategy's scope (python -m tunekit.distributed builds
    # the model in one); scopes are per thread, so the SavedModel runs in a thread of its own.
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        expected = thread.submit(module, {key: tf.constant(inputs[key]) for key in MODEL_INPUT_KEYS},
                                 training=False).result()
    actual = encoder(inputs, training=False)
    pairs = [(expected["sequence_output"], actual["sequence_output"]),
             (expected["pooled_output"], actual["pooled_output"])]
    pairs += list(zip(expected.get("encoder_outputs", []), actual["encoder_outputs"]))
    return max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in pairs)
