"""What a training run leaves behind in `Trainer(..., log_dir=DIR)`, and a plot of its curves.

- `DIR/tensorboard/`: TensorBoard event files: Keras' `TensorBoard` callback writes the epoch metrics (train and
  validation), `StepLog` the step metrics (`tensorboard --logdir DIR/tensorboard`; needs the `logs` extra).
- `DIR/epochs.csv`: Keras' `CSVLogger`, one row per epoch (appended to when a run resumes).
- `DIR/steps.csv`: `StepLog`, one row every `every` optimizer steps (global step, epoch, loss, metrics, learning
  rate); rows past the point a resumed run continues from are dropped.
- `plot_history(history, path)`: training and validation curves as an image (needs the `plots` extra).

Example:

>>> trainer = tk.Trainer(model, log_dir="runs/imdb")                   # doctest: +SKIP
>>> trainer.fit(texts, labels, validation_data=(val_texts, val_labels)) # doctest: +SKIP
>>> plot_history(trainer.history, "runs/imdb/curves.png")              # doctest: +SKIP
"""

import csv
import os

import keras
import tensorflow as tf


def _require(module, extra):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"This needs {module}: pip install \"tunekit[{extra}]\"") from None


class StepLog(keras.callbacks.Callback):
    """Writes the step metrics every `every` optimizer steps to `steps.csv` and TensorBoard.

    The step written is the optimizer's iteration count, so the curve continues across `fit` calls and resumed
    runs.

    Args:
        log_dir: the run's log folder.
        every: steps between rows.
    """

    def __init__(self, log_dir, every=10):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        self.every = every
        self.path = os.path.join(self.log_dir, "steps.csv")
        self._writer = None
        self._epoch = 0
        self._last = None

    def on_train_begin(self, logs=None):
        os.makedirs(self.log_dir, exist_ok=True)
        self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "tensorboard", "steps"))
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if os.path.exists(self.path):  # a resumed run: keep the rows up to the step it continues from
            with open(self.path, newline="", encoding="utf-8") as file:
                rows = [row for row in csv.DictReader(file) if int(row["step"]) <= step]
            self._rewrite(rows)

    def _rewrite(self, rows):
        fields = list(rows[0]) if rows else []
        partial = f"{self.path}.partial-{os.getpid()}"
        with open(partial, "w", newline="", encoding="utf-8") as file:
            if fields:
                writer = csv.DictWriter(file, fieldnames=fields)
                writer.writeheader()
                writer.writerows(rows)
        os.replace(partial, self.path)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if step % self.every or not logs or step == self._last:  # (with accumulation, several batches per step)
            return
        self._last = step
        learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row = {"step": step, "epoch": self._epoch + 1, **{k: float(v) for k, v in logs.items()},
               "learning_rate": learning_rate}
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        with open(self.path, "a", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        with self._writer.as_default():
            for name, value in row.items():
                if name not in ("step", "epoch"):
                    tf.summary.scalar(f"step_{name}", value, step=step)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()


def log_callbacks(log_dir, every=10):
    """The callbacks of `Trainer(log_dir=...)`: TensorBoard (epochs), `epochs.csv`, and `StepLog`."""
    _require("tensorboard", "logs")
    os.makedirs(log_dir, exist_ok=True)
    return [
        keras.callbacks.TensorBoard(os.path.join(log_dir, "tensorboard"), update_freq="epoch", write_graph=False),
        keras.callbacks.CSVLogger(os.path.join(log_dir, "epochs.csv"), append=True),
        StepLog(log_dir, every=every),
    ]


def plot_history(history, path):
    """Saves the training and validation curves of `history` (a dict of per-epoch lists, e.g.
    `trainer.history`, or a Keras `History`) to an image at `path`, one panel per metric; returns `path`."""
    history = getattr(history, "history", history)
    names = [name for name in history if not name.startswith("val_") and name != "epoch"]
    if not names:
        raise ValueError("The history holds no metrics to plot: train first (trainer.fit).")
    matplotlib = _require("matplotlib", "plots")
    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    for axis, name in zip(axes[0], names):
        epochs = range(1, len(history[name]) + 1)
        axis.plot(epochs, history[name], marker="o", label="training")
        if f"val_{name}" in history:
            axis.plot(range(1, len(history[f"val_{name}"]) + 1), history[f"val_{name}"], marker="o", label="validation")
        axis.set_xlabel("epoch")
        axis.set_title(name)
        axis.legend()
    figure.tight_layout()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    partial = os.path.join(directory, f".{os.path.basename(path)}.partial-{os.getpid()}{os.path.splitext(path)[1]}")
    figure.savefig(partial)
    pyplot.close(figure)
    os.replace(partial, path)
    return path
