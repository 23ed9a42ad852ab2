"""Smaller encoders by layer dropping: keep the bottom k transformer blocks of a pretrained encoder, then fine-tune.

Sajjad et al. (2020, "Poor Man's BERT: Smaller and Faster Transformer Models") found that dropping the *top*
layers of a pretrained 12-layer model before fine-tuning keeps up to 98 % of its task performance with up to
40 % fewer parameters, on par with DistilBERT, and needs no distillation. The kept blocks, the embeddings and
the pooler keep their pretrained weights; only the depth changes, so speed and encoder size scale with k.

Works for tunekit's native encoders (`BertEncoder`: Hugging Face BERT checkpoints, `minilm-l6`). A TF Hub
SavedModel encoder is one opaque graph whose depth cannot be changed: load the same model as a Hugging Face
checkpoint instead.

Example:

>>> import tunekit as tk
>>> from tunekit.backbones.layer_dropping import drop_layers
>>> backbone = tk.load_backbone("minilm-l6", seq_length=128)
>>> small = drop_layers(backbone, keep=3)        # the bottom 3 of 6 blocks
>>> backbone.encoder.num_layers, small.encoder.num_layers
(6, 3)
>>> model = tk.attach_head(small, "classification", num_classes=2)
"""

import dataclasses

from tunekit.backbones.backbone import Backbone
from tunekit.backbones.bert import BertEncoder

_SHARED_SUBLAYERS = ("word_embeddings", "position_embeddings", "token_type_embeddings", "embeddings_layer_norm",
                     "pooler")


def drop_layers(backbone, keep):
    """A new `Backbone` whose encoder is the bottom `keep` transformer blocks of `backbone`'s encoder.

    Args:
        backbone: a `tunekit.Backbone` with a native `BertEncoder` (from a Hugging Face checkpoint or `minilm-l6`).
        keep: the number of blocks to keep, 1..num_layers (counted from the embeddings up).

    Returns:
        A `Backbone` with a new encoder (the pretrained weights of the embeddings, the bottom `keep` blocks and
        the pooler are copied; the original backbone is unchanged), the same preprocessor and pooling, and the
        name `"<name>[:keep]"`.

    Raises:
        TypeError: `backbone` is not a Backbone, or its encoder is a TF Hub SavedModel.
        ValueError: `keep` is out of range.
    """
    if not isinstance(backbone, Backbone):
        raise TypeError(f"drop_layers needs a Backbone from tunekit.load_backbone, got {type(backbone).__name__}.")
    encoder = backbone.encoder
    if not isinstance(encoder, BertEncoder):
        raise TypeError(
            f"drop_layers needs a native BertEncoder; {backbone.name!r} has a {type(encoder).__name__} (a TF Hub "
            "SavedModel, one graph whose layers cannot be removed). Load the model as a Hugging Face checkpoint "
            "folder (config.json, vocab.txt, model.safetensors) or use 'minilm-l6'."
        )
    depth = encoder.num_layers
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= depth:
        raise ValueError(f"keep must be an int from 1 to the encoder's {depth} layers, got {keep!r}.")
    if not encoder.built:
        encoder.build()
    config = encoder.get_config()
    config["num_layers"] = keep
    frozen = config.get("num_frozen_layers")
    if frozen is not None:
        config["num_frozen_layers"] = min(frozen, keep)
    config["name"] = encoder.name
    smaller = BertEncoder.from_config(config)
    smaller.build()
    pairs = [(getattr(smaller, name), getattr(encoder, name)) for name in _SHARED_SUBLAYERS]
    pairs += list(zip(smaller.transformer_blocks, encoder.transformer_blocks[:keep]))
    for target, source in pairs:
        target.set_weights(source.get_weights())
    smaller.trainable = encoder.trainable
    if encoder.trainable and config.get("num_frozen_layers") is not None:
        smaller.freeze_bottom(config["num_frozen_layers"])  # `trainable = True` above unfroze the bottom layers
    return dataclasses.replace(backbone, encoder=smaller, name=f"{backbone.name}[:{keep}]")
