"""The state of a training run: what the `Trainer`'s loop advances and its callbacks see.

fastai's `Learner` and Keras' callbacks are the anchors. The loop keeps nothing that matters in local variables: a
`TrainingState` says where the run is (epochs done, steps into the current epoch, the data-order seed, the running
loss, the history, how far the learning-rate schedule reaches), and every callback that subclasses `StateCallback`
reads it as `self.state`. Backups (`tunekit.training.backup.BackupCallback`) save and restore it; the step log
reads its epoch; `trainer.state` shows it between `fit` calls.

Example:

>>> state = TrainingState(steps_per_epoch=10, seed=7)
>>> state.end_step(0.5, {"accuracy": 0.5}); state.end_step(0.3, {"accuracy": 1.0})
>>> state.step, round(state.mean_loss, 2), state.global_step, state.logs
(2, 0.4, 2, {'loss': 0.4, 'accuracy': 1.0})
>>> state.end_epoch()
>>> state.epoch, state.step, state.history
(1, 0, {'epoch': [1], 'loss': [0.4], 'accuracy': [1.0]})
>>> TrainingState.from_backup(state.to_backup()) == state
True
"""

import dataclasses
from typing import Optional

import keras


@dataclasses.dataclass
class TrainingState:
    """Where a training run is.

    Attributes:
        steps_per_epoch: batches in one epoch of the current `fit`'s data.
        epoch: epochs completed in this run.
        step: batches done in the current epoch.
        seed: the seed of the data order (each epoch's order is a function of it and the epoch).
        history: per-epoch values (`epoch`, `loss`, metrics, `val_...`), over every `fit` of the run.
        loss_sum, loss_steps: the running sum of this epoch's batch losses and their number.
        logs: this epoch's running logs (mean loss, metrics; validation metrics at its end); not kept in backups
            (the loop's metrics are restored with the model's variables).
        batches_done: batches trained in the whole run (over `fit` calls), against `planned_batches`, the
            batches the learning-rate schedule was planned for (None: a schedule without an end).
        diverged: what went wrong when the loss or weights became NaN or infinite, else None.
    """

    steps_per_epoch: int = 0
    epoch: int = 0
    step: int = 0
    seed: Optional[int] = None
    history: dict = dataclasses.field(default_factory=dict)
    loss_sum: float = 0.0
    loss_steps: int = 0
    logs: dict = dataclasses.field(default_factory=dict, compare=False)
    batches_done: int = 0
    planned_batches: Optional[int] = None
    diverged: Optional[str] = None

    @property
    def global_step(self):
        """Batches since the start of the run, counted as whole epochs of this `fit`'s size plus `step`."""
        return self.epoch * self.steps_per_epoch + self.step

    @property
    def mean_loss(self):
        return self.loss_sum / max(self.loss_steps, 1)

    def begin_epoch(self):
        """A new epoch: its running loss starts at zero."""
        self.step, self.loss_sum, self.loss_steps, self.logs = 0, 0.0, 0, {}

    def end_step(self, loss, metrics):
        """One batch trained: its `loss` joins the epoch's running mean; `metrics` are the running metrics."""
        self.loss_sum, self.loss_steps = self.loss_sum + float(loss), self.loss_steps + 1
        self.step, self.batches_done = self.step + 1, self.batches_done + 1
        self.logs = {"loss": self.mean_loss, **metrics}

    def end_epoch(self):
        """The epoch is complete: its logs join the history, and the next epoch starts at step 0."""
        for name, value in {"epoch": self.epoch + 1, **self.logs}.items():
            self.history.setdefault(name, []).append(value)
        self.epoch, self.step = self.epoch + 1, 0

    def to_backup(self):
        """The JSON-able part a backup keeps (`from_backup` reads it back)."""
        return {"epoch": self.epoch, "step": self.step, "global_step": self.global_step, "seed": self.seed,
                "history": self.history, "loss_sum": self.loss_sum, "loss_steps": self.loss_steps,
                "steps_per_epoch": self.steps_per_epoch, "batches_done": self.batches_done,
                "planned_batches": self.planned_batches}

    @classmethod
    def from_backup(cls, saved):
        """The state a backup's `to_backup()` dict describes (backups made before `batches_done` existed count
        their `global_step`)."""
        return cls(steps_per_epoch=saved.get("steps_per_epoch", 0), epoch=saved["epoch"], step=saved["step"],
                   seed=saved["seed"], history=saved["history"], loss_sum=saved["loss_sum"],
                   loss_steps=saved["loss_steps"], batches_done=saved.get("batches_done", saved["global_step"]),
                   planned_batches=saved.get("planned_batches"),
                   logs={"loss": saved["loss_sum"] / max(saved["loss_steps"], 1)} if saved["loss_steps"] else {})

    def restore(self, saved):
        """Puts this state back to what a backup's `to_backup()` dict describes."""
        restored = self.from_backup(saved)
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(restored, field.name))


class StateCallback(keras.callbacks.Callback):
    """A Keras callback that also sees the run's `TrainingState` as `self.state` (the `Trainer` sets it before
    `on_train_begin`). Subclass it for callbacks that need the epoch, step or history of the run, e.g. one that
    saves every 1,000 batches of the whole run:

    >>> class Every1000(StateCallback):
    ...     def on_train_batch_end(self, batch, logs=None):
    ...         if self.state.batches_done % 1000 == 0:
    ...             self.model.save_weights(f"run-{self.state.batches_done}.weights.h5")
    """

    state = None

    def set_state(self, state):
        self.state = state
