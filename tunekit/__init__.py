"""tunekit: fine-tune pretrained BERT-family text encoders with Keras 3 in a few lines.

`import tunekit` is light: the names below are imported (with TensorFlow) on first use.

>>> import tunekit as tk
>>> backbone = tk.load_backbone("minilm-l6", seq_length=128)
>>> model = tk.attach_head(backbone, "classification", labels=["negative", "positive"])
>>> trainer = tk.Trainer(model, learning_rate=5e-5, epochs=2)
>>> "minilm-l6" in tk.list_backbones()
True

`trainer.fit(texts, labels)` then fine-tunes it on raw texts and their labels (see `tunekit.Trainer`).
"""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tunekit._lazy import lazy_attributes as _lazy_attributes

__version__ = "0.1.0"

_EXPORTS = {
    "Backbone": "tunekit.backbones.backbone",
    "load_backbone": "tunekit.backbones.backbone",
    "list_backbones": "tunekit.backbones.registry",
    "TextModel": "tunekit.model",
    "attach_head": "tunekit.model",
    "save_model": "tunekit.saving",
    "load_model": "tunekit.saving",
    "export_model": "tunekit.saving",
    "Trainer": "tunekit.training.trainer",
    "distill": "tunekit.training.distillation",
}
_SUBPACKAGES = ("augment", "backbones", "datasets", "deploy", "distributed", "heads", "inputs", "metrics", "peft",
                "preprocessing", "serving", "training")

__getattr__, __dir__ = _lazy_attributes(globals(), _EXPORTS, _SUBPACKAGES)

__all__ = [
    "Backbone", "TextModel", "Trainer", "attach_head", "augment", "datasets", "distill", "export_model",
    "list_backbones", "load_backbone", "load_model", "save_model",
]
