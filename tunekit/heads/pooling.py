"""Sentence vectors from encoder outputs: the trained pooler, a masked mean, or the first token."""

import keras
from keras import ops

POOLING_MODES = ("pooled", "mean", "cls")


def validate_pooling(pooling):
    if pooling not in POOLING_MODES:
        raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}.")
    return pooling


@keras.saving.register_keras_serializable(package="tunekit")
class SentencePooling(keras.layers.Layer):
    """Encoder outputs + input mask -> one vector per text.

    Modes: `"pooled"` the encoder's `pooled_output` (tanh dense over `[CLS]`, trained by BERT's NSP task);
    `"mean"` the mean of `sequence_output` over real (unpadded) tokens; `"cls"` the raw `[CLS]` vector.

    Example:

    >>> import numpy as np
    >>> pool = SentencePooling("mean")
    >>> outputs = {"sequence_output": np.array([[[1.0], [3.0], [9.0]]]), "pooled_output": np.zeros((1, 1))}
    >>> float(pool(outputs, np.array([[1, 1, 0]]))[0, 0])
    2.0
    """

    def __init__(self, mode="pooled", **kwargs):
        super().__init__(**kwargs)
        self.mode = validate_pooling(mode)

    def call(self, encoder_outputs, input_mask):
        if self.mode == "pooled":
            return encoder_outputs["pooled_output"]
        sequence = encoder_outputs["sequence_output"]
        if self.mode == "cls":
            return sequence[:, 0, :]
        mask = ops.expand_dims(ops.cast(input_mask, sequence.dtype), -1)
        total = ops.sum(sequence * mask, axis=1)
        return total / ops.maximum(ops.sum(mask, axis=1), ops.cast(1.0, sequence.dtype))

    def compute_output_spec(self, encoder_outputs, input_mask):
        sequence = encoder_outputs["sequence_output"]
        return keras.KerasTensor((sequence.shape[0], sequence.shape[-1]), dtype=sequence.dtype)

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config
