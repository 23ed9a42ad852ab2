"""`freeze_layers`: train only the top of the encoder (and the head).

Freezing the embeddings and the bottom N transformer layers of a native `BertEncoder` also stops the backward
pass at the lowest trainable layer, so a training step gets faster, not just the optimizer lighter.

TF Hub SavedModel encoders (`HubEncoder`) are fixed graphs: tunekit can mark their variables frozen by name, but
cannot cut the graph's backward pass. Published TF Hub BERT encoders (TF Model Garden's `BertEncoder`) name
their blocks `transformer/layer_N/...`; encoders written by `tunekit.backbones.hub_format` name them
`.../transformer_block_N/...`. An encoder with neither (ALBERT shares one block's weights across all layers) can
only be frozen whole: `load_backbone(..., trainable=False)`.

Example:

>>> import tunekit as tk
>>> backbone = tk.peft.freeze_layers(tk.load_backbone("minilm-l6"), 3)    # embeddings + layers 0-2   # doctest: +SKIP
>>> model = tk.attach_head(backbone, "classification", num_classes=2)                                 # doctest: +SKIP
"""

import re

from tunekit.backbones.backbone import Backbone
from tunekit.backbones.bert import BertEncoder
from tunekit.backbones.hub_encoder import HubEncoder
from tunekit.model import TextModel

# Keras names of adopted TF Hub variables ('/' becomes '.'): Model Garden's `transformer/layer_3/...` and
# tunekit's own `bert_encoder/transformer_block_3/...`.
_HUB_LAYER_NAME = re.compile(r"(?:^|\.)(?:transformer\.layer_|transformer_block_)(\d+)\.")


def freeze_layers(target, num_layers):
    """Freezes the embeddings and the bottom `num_layers` transformer layers of a backbone's or model's encoder.

    Args:
        target: a `Backbone` (before `attach_head`) or a `TextModel` (before training).
        num_layers: 0 (embeddings only) up to the encoder's number of layers (every layer: only the pooler and
            the head train).

    Returns:
        `target`, changed in place.

    Raises:
        ValueError: `num_layers` out of range, or a TF Hub encoder whose variables are not named per layer.
        TypeError: another kind of encoder (LoRA models: their base is already frozen).
    """
    if isinstance(target, (Backbone, TextModel)):
        encoder = target.encoder
    else:
        raise TypeError(f"freeze_layers needs a Backbone or a TextModel, got {type(target).__name__}.")
    if isinstance(encoder, BertEncoder):
        encoder.freeze_bottom(num_layers)
    elif isinstance(encoder, HubEncoder):
        _freeze_hub_encoder(encoder, num_layers)
    else:
        raise TypeError(
            f"Cannot freeze layers of a {type(encoder).__name__}: freeze_layers works on BertEncoder (native) and "
            "HubEncoder (TF Hub) encoders; a LoRA encoder's base is frozen already."
        )
    return target


def _freeze_hub_encoder(encoder, num_layers):
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or not 0 <= num_layers <= encoder.num_layers:
        raise ValueError(
            f"Cannot freeze {num_layers!r} layers: this encoder has {encoder.num_layers} transformer layers, so "
            f"num_layers must be an int from 0 (embeddings only) to {encoder.num_layers} (every layer)."
        )
    layer_of = {}
    for variable in encoder._adopted_variables:
        match = _HUB_LAYER_NAME.search(variable.name)
        layer_of[id(variable)] = int(match.group(1)) if match else None
    found = {index for index in layer_of.values() if index is not None}
    if found != set(range(encoder.num_layers)):
        raise ValueError(
            f"Cannot freeze layers of the TF Hub encoder {encoder.handle!r}: its variables are not named per layer "
            "('transformer/layer_N/...' as in published BERT encoders, found layers "
            f"{sorted(found)} of {encoder.num_layers}). Freeze it whole with load_backbone(..., trainable=False), "
            "or load a Hugging Face checkpoint of the model."
        )
    for variable in encoder._adopted_variables:
        index = layer_of[id(variable)]
        below = index < num_layers if index is not None else "pooler" not in variable.name
        if below:
            variable.trainable = False
