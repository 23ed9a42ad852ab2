"""Checks of plain arguments shared across layers: the `Trainer` and the training modes it runs (self-training),
and an exported artifact's `predict`.

>>> positive_int(3, "epochs")
3
>>> positive_int(0, "epochs", "passes over the training texts")
Traceback (most recent call last):
...
ValueError: epochs must be a positive int (passes over the training texts), got 0.
"""

import numpy as np


def positive_int(value, name, meaning=None):
    """`value` as an int ≥ 1; a `ValueError` naming `name` (and what it means, when given) otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        explained = f" ({meaning})" if meaning else ""
        raise ValueError(f"{name} must be a positive int{explained}, got {value!r}.")
    return int(value)
