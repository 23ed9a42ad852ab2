"""LoRA adapters on tunekit's native `BertEncoder`: `enable_lora` to add them, `merge_lora` to fold them in.

A `LoraEncoder` wraps a (frozen, shared) `BertEncoder` and owns only the low-rank factors: for each targeted
projection `W` of each block it adds `(alpha / rank) * dropout(x) @ A @ B` to `x @ W`, with `A` `[in, rank]`
(small uniform) and `B` `[rank, out]` (zeros, so training starts from the base model). The update is computed
on the side rather than folded into `W` at every step (which Keras' own `Dense.enable_lora` does): the backward
pass then needs no gradient of the full `W`. Several `LoraEncoder`s can wrap one encoder, so several adapters
share a single copy of the base weights in memory.

Example, on the tiny test encoder `encoder_dir` (a real one: `tk.load_backbone("minilm-l6", seq_length=128)`):

>>> import tunekit as tk
>>> backbone = tk.load_backbone(encoder_dir, seq_length=16)
>>> lora = tk.peft.enable_lora(backbone, rank=8, alpha=16, targets=("query", "value"))
>>> sorted(lora.encoder.factors)                    # (block, projection) pairs that get adapters
[(0, 'query'), (0, 'value'), (1, 'query'), (1, 'value')]
>>> model = tk.attach_head(lora, "classification", labels=["neg", "pos"])
>>> history = tk.Trainer(model, learning_rate=1e-3, epochs=1, batch_size=4, verbose=0).fit(texts, labels)
>>> merged = tk.peft.merge_lora(model)             # a plain model: no adapter cost
>>> type(merged.encoder).__name__                   # export it as usual: tk.export_model(merged, "serving")
'BertEncoder'
"""

import dataclasses
import hashlib
import math
import numbers

import keras
import numpy as np
from keras import ops

from tunekit.backbones.backbone import Backbone
from tunekit.backbones.bert import PROJECTIONS, BertEncoder
from tunekit.model import TextModel, build_core

DEFAULT_TARGETS = ("query", "value")


def validate_lora_options(rank, alpha, targets, dropout):
    """Checks LoRA settings; returns `targets` as a tuple in block order. `targets="all"` means every projection."""
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or rank < 1:
        raise ValueError(f"LoRA rank must be an int >= 1 (8 is typical), got {rank!r}.")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha > 0:
        raise ValueError(f"LoRA alpha must be a number > 0 (updates are scaled by alpha / rank), got {alpha!r}.")
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"LoRA dropout must be in [0, 1), got {dropout!r}.")
    if targets == "all":
        return PROJECTIONS
    if isinstance(targets, str) or not hasattr(targets, "__iter__"):
        raise TypeError(f"targets must be a list of projection names or 'all', got {targets!r}; valid names: "
                        f"{list(PROJECTIONS)}.")
    targets = list(targets)
    unknown = [target for target in targets if target not in PROJECTIONS]
    if unknown or not targets:
        raise ValueError(f"Unknown LoRA target(s) {unknown or targets}; valid names: {list(PROJECTIONS)} "
                         "(or targets='all').")
    return tuple(name for name in PROJECTIONS if name in targets)


def weights_fingerprint(encoder):
    """SHA-256 over the shapes and values of `encoder.weights`: identifies the base an adapter belongs to."""
    digest = hashlib.sha256()
    for weight in encoder.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(f"{value.dtype.str}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _projection_shape(encoder, target):
    """(input width, output width) of a block's projection."""
    width, inner = encoder.hidden_size, encoder.intermediate_size
    return {"intermediate": (width, inner), "output_dense": (inner, width)}.get(target, (width, width))


@keras.saving.register_keras_serializable(package="tunekit")
class LoraEncoder(keras.layers.Layer):
    """A `BertEncoder` (frozen, possibly shared) plus trainable LoRA factors; called like the encoder itself.

    Build it with `enable_lora`. `factors` maps `(block index, projection name)` to the `(A, B)` variables.

    Args:
        encoder: the base `BertEncoder`; its weights are frozen (`encoder.trainable = False`).
        rank, alpha, targets, dropout: see `enable_lora`.
        base_name: the handle the base was loaded from (recorded in saved adapters).
        base_fingerprint: `weights_fingerprint(encoder)`; computed when not given.
        seed: seeds the initial `A` factors and the LoRA dropout.
    """

    def __init__(self, encoder, rank=8, alpha=16, targets=DEFAULT_TARGETS, dropout=0.0, base_name=None,
                 base_fingerprint=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
        if not isinstance(encoder, BertEncoder):
            raise TypeError(_not_native_message(encoder))
        self.targets = validate_lora_options(rank, alpha, targets, dropout)
        if encoder.num_frozen_layers is not None:
            raise ValueError(
                f"This encoder has its bottom {encoder.num_frozen_layers} layers frozen (tunekit.peft.freeze_layers), "
                "which stops gradients LoRA adapters below them would need. Use one or the other: load a fresh "
                "backbone for LoRA."
            )
        if not encoder.built:
            encoder.build()
        encoder.trainable = False
        self.encoder = encoder
        self.rank, self.alpha, self.dropout, self.seed = int(rank), float(alpha), float(dropout), seed
        self.scale = self.alpha / self.rank
        self.base_name = base_name
        self.base_fingerprint = base_fingerprint or weights_fingerprint(encoder)
        self.lora_dropout = keras.layers.Dropout(dropout, seed=seed, name="lora_dropout") if dropout else None
        self.factor_keys = []
        self._factor_variables = []
        for index in range(encoder.num_layers):
            for target in self.targets:
                fan_in, fan_out = _projection_shape(encoder, target)
                bound = 1.0 / math.sqrt(fan_in)  # A as Hugging Face PEFT initialises it; B = 0
                factor_seed = None if seed is None else seed + len(self.factor_keys)
                a = self.add_weight(shape=(fan_in, self.rank), name=f"lora_{index}_{target}_a", dtype="float32",
                                    initializer=keras.initializers.RandomUniform(-bound, bound, seed=factor_seed))
                b = self.add_weight(shape=(self.rank, fan_out), name=f"lora_{index}_{target}_b", dtype="float32",
                                    initializer="zeros")
                self.factor_keys.append((index, target))
                self._factor_variables.append((a, b))
        self.built = True

    @property
    def factors(self):
        """{(block index, projection name): (A, B)}."""
        return dict(zip(self.factor_keys, self._factor_variables))

    @property
    def num_layers(self):
        return self.encoder.num_layers

    def _update(self, index, name, hidden, training):
        """`BertEncoder.call`'s `lora` function: the low-rank update of one projection, or None if not targeted."""
        factors = self.factors.get((index, name))
        if factors is None:
            return None
        if self.lora_dropout is not None:
            hidden = self.lora_dropout(hidden, training=training)
        a, b = (ops.cast(factor, hidden.dtype) for factor in factors)
        return ops.matmul(ops.matmul(hidden, a), b) * ops.cast(self.scale, hidden.dtype)

    def call(self, inputs, training=None):
        return self.encoder(inputs, training=training, lora=self._update)

    def compute_output_spec(self, inputs, training=None):
        return self.encoder.compute_output_spec(inputs)

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            rank=self.rank,
            alpha=self.alpha,
            targets=list(self.targets),
            dropout=self.dropout,
            base_name=self.base_name,
            base_fingerprint=self.base_fingerprint,
            seed=self.seed,
        )
        return config


def _not_native_message(encoder):
    return (
        f"LoRA needs tunekit's native BertEncoder (Hugging Face BERT checkpoints, minilm-l6), got "
        f"{type(encoder).__name__}. A TF Hub SavedModel encoder is a fixed graph that adapters cannot be inserted "
        "into: fine-tune it fully, or freeze its bottom layers with tunekit.peft.freeze_layers."
    )


def enable_lora(backbone, *, rank=8, alpha=16, targets=DEFAULT_TARGETS, dropout=0.0, seed=None):
    """A `Backbone` whose encoder is `backbone`'s, frozen, plus new LoRA adapters (trainable).

    Put a head on it with `tunekit.attach_head`; then only the adapters and the head train. The base encoder is
    shared, not copied: call `enable_lora` again on the same backbone for another adapter set.

    Args:
        backbone: a `Backbone` with a native `BertEncoder` (`load_backbone` of a Hugging Face checkpoint or
            `minilm-l6`). Its encoder is frozen in place.
        rank: rank of each update (>= 1).
        alpha: updates are scaled by `alpha / rank` (> 0).
        targets: projections of every block to adapt, any of `tunekit.backbones.bert.PROJECTIONS` ("query",
            "key", "value", "attention_output", "intermediate", "output_dense"), or "all".
        dropout: dropout on the adapters' input during training.
        seed: seeds the adapters' initial values.

    Example:

    >>> backbone = tk.load_backbone(encoder_dir, seq_length=16)    # e.g. tk.load_backbone("minilm-l6")
    >>> lora = enable_lora(backbone, rank=8, targets="all")
    >>> model = tk.attach_head(lora, "classification", num_classes=2)
    >>> len(lora.encoder.factors), backbone.encoder.trainable   # 2 blocks x 6 projections; the base is frozen
    (12, False)
    """
    if not isinstance(backbone, Backbone):
        raise TypeError(f"enable_lora needs a Backbone from tunekit.load_backbone, got {type(backbone).__name__}.")
    if isinstance(backbone.encoder, LoraEncoder):
        raise TypeError("This backbone already carries LoRA adapters; call enable_lora on the base backbone.")
    if not isinstance(backbone.encoder, BertEncoder):
        raise TypeError(_not_native_message(backbone.encoder))
    validate_lora_options(rank, alpha, targets, dropout)
    encoder = LoraEncoder(backbone.encoder, rank=rank, alpha=alpha, targets=targets, dropout=dropout,
                          base_name=backbone.name, seed=seed, name="lora_encoder")
    return dataclasses.replace(backbone, encoder=encoder)


def lora_encoder_of(model):
    """The `LoraEncoder` of a `TextModel`; a TypeError if it has none."""
    if not isinstance(model, TextModel):
        raise TypeError(f"Expected a tunekit TextModel, got {type(model).__name__}.")
    encoder = model.encoder
    if not isinstance(encoder, LoraEncoder):
        raise TypeError(f"This model has no LoRA adapters (its encoder is a {type(encoder).__name__}); build it "
                        "from tunekit.peft.enable_lora(backbone, ...).")
    return encoder


def head_weights(core, encoder):
    """The weights of `core` outside `encoder` (pooling and head), in layer order."""
    return [weight for layer in core.layers if layer is not encoder for weight in layer.weights]


def head_options(core):
    """(pooling mode or None, head dropout rate) of a core built by `build_core`."""
    names = {layer.name: layer for layer in core.layers}
    pooling = names["pooling"].mode if "pooling" in names else None
    return pooling, float(names["head_dropout"].rate) if "head_dropout" in names else 0.0


def rebuild_model(model, encoder):
    """A `TextModel` like `model` (task, preprocessor, head weights) on another encoder layer."""
    pooling, dropout = head_options(model.core)
    core = build_core(encoder, model.task, pooling=pooling, dropout=dropout)
    for target, source in zip(head_weights(core, encoder), head_weights(model.core, model.encoder), strict=True):
        target.assign(source)
    return TextModel(model.preprocessor, core, model.task, num_segments=model.num_segments, name=model.name)


def merge_lora(model):
    """A plain `TextModel` (a new `BertEncoder`, no adapters) whose base weights include the LoRA updates.

    Predictions equal the LoRA model's up to float rounding; it runs, saves and exports at the cost of the
    plain model, so export with `tunekit.export_model(merge_lora(model), path)`. `model` is left unchanged.
    """
    lora = lora_encoder_of(model)
    base = lora.encoder
    merged = BertEncoder.from_config({**base.get_config(), "trainable": True})
    merged.build()
    for target, source in zip(merged.weights, base.weights, strict=True):
        target.assign(source)
    for (index, name), (a, b) in lora.factors.items():
        kernel = getattr(merged.transformer_blocks[index], name).kernel
        kernel.assign(kernel + lora.scale * ops.matmul(a, b))
    return rebuild_model(model, merged)
