"""tunekit: fine-tune pretrained BERT-family text encoders with Keras 3 in a few lines.

>>> import tunekit as tk
>>> backbone = tk.load_backbone("minilm-l6", seq_length=128)                          # doctest: +SKIP
>>> model = tk.attach_head(backbone, "classification", labels=["negative", "positive"]) # doctest: +SKIP
>>> trainer = tk.Trainer(model, learning_rate=5e-5, epochs=2)                          # doctest: +SKIP
>>> trainer.fit(texts, labels)                                                        # doctest: +SKIP
"""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tunekit import datasets  # noqa: E402
from tunekit.backbones.backbone import Backbone, load_backbone  # noqa: E402
from tunekit.backbones.registry import list_backbones  # noqa: E402
from tunekit.model import TextModel, attach_head  # noqa: E402
from tunekit.saving import export_model, load_model, save_model  # noqa: E402
from tunekit.training.trainer import Trainer  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Backbone",
    "TextModel",
    "Trainer",
    "attach_head",
    "datasets",
    "export_model",
    "list_backbones",
    "load_backbone",
    "load_model",
    "save_model",
]
