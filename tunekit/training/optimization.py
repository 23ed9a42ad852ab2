"""The BERT fine-tuning optimizer: AdamW, linear warmup, then linear (or cosine) decay, gradient clipping, and
optionally layer-wise learning-rate decay.

Built from Keras' own `AdamW`, `PolynomialDecay` and `CosineDecay`. Two additions: the warmup wrapper, which Keras
lacks for non-cosine schedules, and `LayerwiseAdamW` for layer-wise learning-rate decay (Keras optimizers have
one learning rate for all variables): the encoder's top block trains at `decay` times the head's rate, the block
below at `decay**2`, ..., the embeddings at `decay**(L + 1)` (Clark et al. 2020, ELECTRA; Sun et al. 2019, "How
to Fine-Tune BERT for Text Classification?"), so the general features of the lower layers change least.

Example:

>>> optimizer = create_optimizer(model.core.trainable_variables, learning_rate=3e-5, total_steps=1000)
>>> type(optimizer).__name__, optimizer.weight_decay, optimizer.global_clipnorm
('AdamW', 0.01, 1.0)
>>> schedule = learning_rate_schedule(3e-5, 1000)   # its schedule: warmup over 100 steps, then linear decay
>>> [round(float(schedule(step)), 7) for step in (0, 50, 100, 550, 1000)]
[0.0, 1.5e-05, 3e-05, 1.5e-05, 0.0]
"""

import math
import numbers

import keras
from keras import ops

SCHEDULES = ("linear", "cosine", "constant")


def decays_weights(variable):
    """Whether AdamW's weight decay applies: not to biases and LayerNorm parameters (rank <= 1)."""
    return len(variable.shape) > 1


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


@keras.saving.register_keras_serializable(package="tunekit")
class LayerwiseAdamW(keras.optimizers.Adam):
    """AdamW whose learning rate is multiplied per variable: `learning_rate_multipliers[i]` for the i-th variable
    it is built with. Decoupled weight decay scales with the variable's own rate, as in AdamW with one parameter
    group per layer (PyTorch's way of doing this).

    With every multiplier 1.0 it computes what `keras.optimizers.AdamW` computes (same state, same updates).

    Example:

    >>> variables = [keras.Variable([1.0, 1.0]), keras.Variable([1.0, 1.0])]
    >>> optimizer = LayerwiseAdamW(learning_rate_multipliers=[0.5, 1.0], learning_rate=0.1, weight_decay=0.0)
    >>> optimizer.apply([keras.ops.ones(2), keras.ops.ones(2)], variables)
    >>> [round(float(v[0]), 4) for v in variables]   # Adam's first step moves each by its own learning rate
    [0.95, 0.9]
    """

    def __init__(self, learning_rate_multipliers, weight_decay=0.004, **kwargs):
        # Keras' decay uses one learning rate for all variables: it is applied in `update_step` instead.
        super().__init__(weight_decay=None, **kwargs)
        self.learning_rate_multipliers = [float(value) for value in learning_rate_multipliers]
        self.decoupled_weight_decay = weight_decay

    def build(self, variables):
        if len(variables) != len(self.learning_rate_multipliers):
            raise ValueError(f"LayerwiseAdamW has {len(self.learning_rate_multipliers)} learning-rate multipliers "
                             f"but is built for {len(variables)} variables; give one per variable.")
        super().build(variables)
        self._decays = [decays_weights(variable) for variable in variables]

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        learning_rate = ops.multiply(ops.cast(learning_rate, variable.dtype),
                                     ops.cast(self.learning_rate_multipliers[index], variable.dtype))
        if self.decoupled_weight_decay and self._decays[index]:  # before the Adam update, as Keras' AdamW does
            rate = ops.multiply(learning_rate, ops.cast(self.decoupled_weight_decay, variable.dtype))
            self.assign_sub(variable, ops.multiply(variable, rate))
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "learning_rate_multipliers": self.learning_rate_multipliers,
                "weight_decay": self.decoupled_weight_decay}


def layer_decay_multipliers(depths, num_layers, decay):
    """Learning-rate multipliers from encoder depths (see `tunekit.backbones.depth`; None for the head's
    variables): `decay ** (num_layers + 1 - depth)`, so the head and the pooler get 1.0.

    >>> layer_decay_multipliers([0, 1, 2, 3, None], num_layers=2, decay=0.5)
    [0.125, 0.25, 0.5, 1.0, 1.0]
    """
    top = num_layers + 1
    return [1.0 if depth is None else float(decay) ** (top - min(depth, top)) for depth in depths]


def check_layer_decay(layer_decay):
    """`layer_decay` must be None or a number in (0, 1]."""
    if layer_decay is None:
        return None
    if isinstance(layer_decay, bool) or not isinstance(layer_decay, numbers.Real) or not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay must be a number in (0, 1] (0.8-0.95 is usual; 1.0 turns it off), got "
                         f"{layer_decay!r}.")
    return float(layer_decay)


MAX_LEARNING_RATE = 1.0


def _number(value, name, example):
    """`value` as a float; `TypeError` for a str, bool or other non-number, `ValueError` for NaN or infinity."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number such as {example}, got {type(value).__name__} {value!r}"
                        + (" (a string: drop the quotes)." if isinstance(value, str) else "."))
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number such as {example}, got {value!r}: training would only "
                         "produce NaN weights.")
    return float(value)


def check_optimizer_settings(*, learning_rate, weight_decay, warmup_ratio, clipnorm, schedule="linear"):
    """Refuses settings that cannot train (before any work): non-numbers, NaN or infinite values, a learning rate
    outside (0, 1], a negative weight decay, a warmup ratio outside [0, 1), a clipnorm that is not positive, an
    unknown schedule."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
    learning_rate = _number(learning_rate, "learning_rate", "3e-5")
    if not 0.0 < learning_rate <= MAX_LEARNING_RATE:
        raise ValueError(f"learning_rate must be in (0, {MAX_LEARNING_RATE:g}], got {learning_rate!r}: fine-tuning "
                         "BERT uses 1e-5..1e-4 (up to about 1e-3 for tiny models); larger rates diverge to NaN.")
    if _number(weight_decay, "weight_decay", "0.01") < 0:
        raise ValueError(f"weight_decay must be >= 0 (0.01 is usual, 0 turns it off), got {weight_decay!r}.")
    if not 0.0 <= _number(warmup_ratio, "warmup_ratio", "0.1") < 1.0:
        raise ValueError(f"warmup_ratio must be in [0, 1), got {warmup_ratio!r}.")
    if clipnorm is not None and not _number(clipnorm, "clipnorm", "1.0") > 0:
        raise ValueError(f"clipnorm must be a positive number such as 1.0 (None turns clipping off), got {clipnorm!r}.")


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
                     schedule="linear", clipnorm=1.0, gradient_accumulation_steps=1, learning_rate_multipliers=None):
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
        learning_rate_multipliers: None, or one multiplier per variable of `variables` (a `LayerwiseAdamW`; see
            `layer_decay_multipliers`).
    """
    check_optimizer_settings(learning_rate=learning_rate, weight_decay=weight_decay, warmup_ratio=warmup_ratio,
                             clipnorm=clipnorm, schedule=schedule)
    settings = dict(
        learning_rate=learning_rate_schedule(learning_rate, total_steps, warmup_ratio=warmup_ratio, schedule=schedule),
        weight_decay=weight_decay,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-6,
        global_clipnorm=clipnorm,
        gradient_accumulation_steps=gradient_accumulation_steps if gradient_accumulation_steps > 1 else None,
    )
    if learning_rate_multipliers is not None:
        return LayerwiseAdamW(learning_rate_multipliers, **settings)
    optimizer = keras.optimizers.AdamW(**settings)
    optimizer.exclude_from_weight_decay(var_list=[v for v in variables if not decays_weights(v)])
    return optimizer
