"""Where encoders come from: short names, TF Hub handles, local SavedModels and Hugging Face checkpoints.

Names are imported on first use (see `tunekit._lazy`), so listing the registry does not load TensorFlow.

>>> from tunekit.backbones import get_spec, list_backbones
>>> "minilm-l6" in list_backbones(), get_spec("minilm-l6").pooling
(True, 'mean')
"""

from tunekit._lazy import lazy_attributes as _lazy_attributes

_EXPORTS = {
    "Backbone": "tunekit.backbones.backbone",
    "load_backbone": "tunekit.backbones.backbone",
    "BackboneSpec": "tunekit.backbones.registry",
    "REGISTRY": "tunekit.backbones.registry",
    "get_spec": "tunekit.backbones.registry",
    "list_backbones": "tunekit.backbones.registry",
    "BertEncoder": "tunekit.backbones.bert",
    "HubEncoder": "tunekit.backbones.hub_encoder",
    "save_backbone": "tunekit.backbones.hub_format",
    "save_hub_encoder": "tunekit.backbones.hub_format",
    "load_huggingface_checkpoint": "tunekit.backbones.huggingface",
    "drop_layers": "tunekit.backbones.layer_dropping",
    "resolve_handle": "tunekit.hub_handles",
}

__getattr__, __dir__ = _lazy_attributes(globals(), _EXPORTS)

__all__ = [
    "REGISTRY",
    "Backbone",
    "BackboneSpec",
    "BertEncoder",
    "HubEncoder",
    "drop_layers",
    "get_spec",
    "list_backbones",
    "load_backbone",
    "load_huggingface_checkpoint",
    "resolve_handle",
    "save_backbone",
    "save_hub_encoder",
]
