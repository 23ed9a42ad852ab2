"""The BERT fine-tuning optimizer: AdamW, linear warmup, then linear (or cosine) decay, gradient clipping.

Built from Keras' own `AdamW`, `PolynomialDecay` and `CosineDecay`; the only addition is the warmup
wrapper, which Keras lacks for non-cosine schedules.

Example:

>>> optimizer = create_optimizer(model.core.trainable_variables, learning_rate=3e-5, total_steps=1000)  # doctest: +SKIP
"""

import numbers

import keras
from keras import ops

SCHEDULES = ("linear", "cosine", "constant")


@keras.saving.register_keras_serializable(package="tunekit")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Rises linearly from 0 to `after_warmup(0)` over `warmup_steps`, then follows `after_warmup`.

    Example:

    >>> decay = keras.optimizers.schedules.PolynomialDecay(1e-3, decay_steps=90, end_learning_rate=0.0)
    >>> schedule = LinearWarmup(decay, warmup_steps=10)
    >>> [round(float(schedule(step)), 6) for step in (0, 5, 10, 55, 100)]
    [0.0, 0.0005, 0.001, 0.0005, 0.0]
    """

    def __init__(self, after_warmup, warmup_steps, name="linear_warmup"):
        super().__init__()
        if isinstance(after_warmup, dict):
            after_warmup = keras.optimizers.schedules.deserialize(after_warmup)
        self.after_warmup = after_warmup
        self.warmup_steps = int(warmup_steps)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup_steps = float(max(self.warmup_steps, 1))
        peak = ops.cast(self.after_warmup(0), "float32")
        warming = peak * step / warmup_steps
        decaying = ops.cast(self.after_warmup(ops.maximum(step - self.warmup_steps, 0.0)), "float32")
        return ops.where(step < self.warmup_steps, warming, decaying)

    def get_config(self):
        return {
            "after_warmup": keras.optimizers.schedules.serialize(self.after_warmup),
            "warmup_steps": self.warmup_steps,
            "name": self.name,
        }


def learning_rate_schedule(learning_rate, total_steps, *, warmup_ratio=0.1, schedule="linear"):
    """Peak `learning_rate`, reached after `warmup_ratio` of `total_steps`, then decayed to 0 by the end."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
    if not 0.0 <= warmup_ratio < 1.0:
        raise ValueError(f"warmup_ratio must be in [0, 1), got {warmup_ratio!r}.")
    warmup_steps = int(round(total_steps * warmup_ratio))
    decay_steps = max(total_steps - warmup_steps, 1)
    if schedule == "linear":
        after = keras.optimizers.schedules.PolynomialDecay(learning_rate, decay_steps, end_learning_rate=0.0, power=1.0)
    elif schedule == "cosine":
        after = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
    else:
        after = keras.optimizers.schedules.PolynomialDecay(learning_rate, decay_steps, end_learning_rate=learning_rate)
    return LinearWarmup(after, warmup_steps) if warmup_steps > 0 else after


def create_optimizer(variables, *, learning_rate, total_steps, weight_decay=0.01, warmup_ratio=0.1,
                     schedule="linear", clipnorm=1.0, gradient_accumulation_steps=1):
    """Keras AdamW for BERT fine-tuning; no weight decay on biases and LayerNorm parameters.

    Args:
        variables: the variables that will be trained (those with rank ≤ 1, i.e. biases and LayerNorm
            scales/offsets, are excluded from weight decay whatever their names).
        learning_rate: peak learning rate.
        total_steps: optimizer steps of the whole run (epochs × batches per epoch).
        weight_decay: decoupled weight decay rate.
        warmup_ratio: fraction of `total_steps` of linear warmup.
        schedule: "linear" (to 0), "cosine" (to 0) or "constant" after warmup.
        clipnorm: global gradient-norm clipping (None to disable).
        gradient_accumulation_steps: batches whose gradients are averaged before each update (Keras' own
            accumulation). Keras evaluates the schedule at the batch count, so `total_steps` counts batches.
    """
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real):
        raise TypeError(f"learning_rate must be a number such as 3e-5, got {type(learning_rate).__name__} {learning_rate!r}.")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate!r}.")
    optimizer = keras.optimizers.AdamW(
        learning_rate=learning_rate_schedule(learning_rate, total_steps, warmup_ratio=warmup_ratio, schedule=schedule),
        weight_decay=weight_decay,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-6,
        global_clipnorm=clipnorm,
        gradient_accumulation_steps=gradient_accumulation_steps if gradient_accumulation_steps > 1 else None,
    )
    optimizer.exclude_from_weight_decay(var_list=[v for v in variables if len(v.shape) <= 1])
    return optimizer
