"""Training: the `Trainer`, AdamW with warmup (metrics: `tunekit.metrics`; the `tf.data` input pipelines it
re-exports live in `tunekit.inputs`).

Names are imported on first use.

>>> from tunekit.training import learning_rate_schedule
>>> schedule = learning_rate_schedule(1e-4, total_steps=100, warmup_ratio=0.1)
>>> [round(float(schedule(step)), 6) for step in (0, 10, 100)]
[0.0, 0.0001, 0.0]
"""

from tunekit._lazy import lazy_attributes as _lazy_attributes

_EXPORTS = {
    "Trainer": "tunekit.training.trainer",
    "TrainingState": "tunekit.training.state",
    "StateCallback": "tunekit.training.state",
    "create_optimizer": "tunekit.training.optimization",
    "learning_rate_schedule": "tunekit.training.optimization",
    "text_dataset": "tunekit.inputs.text_batches",
    "tf_dataset": "tunekit.inputs.text_batches",
    "token_dataset": "tunekit.inputs.word_batches",
    "plot_history": "tunekit.training.callbacks",
}

__getattr__, __dir__ = _lazy_attributes(globals(), _EXPORTS)

__all__ = ["StateCallback", "Trainer", "TrainingState", "create_optimizer", "learning_rate_schedule", "plot_history",
           "text_dataset", "tf_dataset", "token_dataset"]
