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
>>> backbone = tk.peft.freeze_layers(tk.load_backbone("minilm-l6"), 3)    # embeddings + layers 0-2
>>> model = tk.attach_head(backbone, "classification", num_classes=2)
>>> backbone.encoder.num_frozen_layers
3
"""

from tunekit.backbones.backbone import Backbone
from tunekit.backbones.bert import BertEncoder
from tunekit.backbones.depth import variable_depths
from tunekit.backbones.hub_encoder import HubEncoder
from tunekit.model import TextModel


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
    try:
        depths = variable_depths(encoder, encoder.variables)
    except ValueError as error:
        raise ValueError(f"Cannot freeze layers of the TF Hub encoder {encoder.handle!r}: {error} Or freeze it whole "
                         "with load_backbone(..., trainable=False).") from None
    for variable, variable_depth in zip(encoder.variables, depths):
        if variable_depth <= num_layers:  # the embeddings and blocks 1..num_layers; never the pooler
            variable.trainable = False
