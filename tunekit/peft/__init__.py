"""Parameter-efficient fine-tuning: freeze the bottom of the encoder, or train LoRA adapters and save only them.

- `freeze_layers(backbone, n)`: the embeddings and the bottom `n` transformer layers stay fixed; no backward pass
  runs below layer `n` (native encoders), so steps get faster.
- `enable_lora(backbone, rank=8, alpha=16, targets=("query", "value"))`: a backbone whose base encoder is frozen
  and shared, with trainable low-rank adapters; `merge_lora(model)` folds them into a plain model for export.
- `save_adapter(model, dir)` / `load_adapter(dir, backbone)`: adapters + head only, tied to the base's weights
  hash; several adapters load onto one backbone without copying the encoder.

Measured on SST-2 and IMDB: benchmarks/peft.py, docs/peft.md.

Example, on the tiny test encoder `encoder_dir` (a real one: `tk.load_backbone("minilm-l6", seq_length=128)`):

>>> import tunekit as tk
>>> backbone = tk.load_backbone(encoder_dir, seq_length=16)
>>> model = tk.attach_head(tk.peft.enable_lora(backbone, targets="all"), "classification",
...                        labels=["negative", "positive"])
>>> # ... train it: tk.Trainer(model, learning_rate=1e-3, epochs=2).fit(texts, labels) (see tunekit.peft.lora)
>>> path = tk.peft.save_adapter(model, "sentiment_adapter")     # adapters + head only
"""

from tunekit.backbones.bert import PROJECTIONS
from tunekit.peft.adapters import load_adapter, read_adapter, save_adapter
from tunekit.peft.freezing import freeze_layers
from tunekit.peft.lora import (
    DEFAULT_TARGETS,
    LoraEncoder,
    enable_lora,
    merge_lora,
    weights_fingerprint,
)

__all__ = [
    "DEFAULT_TARGETS",
    "PROJECTIONS",
    "LoraEncoder",
    "enable_lora",
    "freeze_layers",
    "load_adapter",
    "merge_lora",
    "read_adapter",
    "save_adapter",
    "weights_fingerprint",
]
