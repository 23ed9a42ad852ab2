"""What a training run leaves behind in `Trainer(..., log_dir=DIR)`, and a plot of its curves.

- `DIR/tensorboard/`: TensorBoard event files: Keras' `TensorBoard` callback writes the epoch metrics (train and
  validation), `StepLog` the step metrics (`tensorboard --logdir DIR/tensorboard`; needs the `logs` extra).
- `DIR/epochs.csv`: Keras' `CSVLogger`, one row per epoch (appended to when a run resumes).
- `DIR/steps.csv`: `StepLog`, one row every `every` optimizer steps (global step, epoch, loss, metrics, learning
  rate); rows past the point a resumed run continues from are dropped.
- `DIR/tunekit.json`: the manifest that makes `DIR` tunekit's log folder, with the fingerprint of the run that
  writes there (`claim_log_dir`). A folder of the user's files (their own `steps.csv`) is refused, and so is the
  log folder of another run (other data, settings or base weights), whose rows a new run would drop; the same run,
  resumed, continues its logs.
- `plot_history(history, path)`: training and validation curves as an image (needs the `plots` extra).

`DivergenceGuard` (Keras' `TerminateOnNaN`, plus the last good weights) stops a run whose loss or weights become
NaN or infinite, so that `Trainer.fit` can restore the weights and say so.

Example:

>>> import os
>>> trainer = tk.Trainer(model, log_dir="runs/imdb", log_every=1, epochs=1, batch_size=8, verbose=0)
>>> history = trainer.fit(texts, labels)         # and validation_data=(val_texts, val_labels) for val_ curves
>>> sorted(os.listdir("runs/imdb"))
['epochs.csv', 'steps.csv', 'tensorboard', 'tunekit.json']
>>> plot_history(trainer.history, "runs/imdb/curves.png")
'runs/imdb/curves.png'
"""

import csv
import math
import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from tunekit.files import check_writable, folder_argument, read_manifest, write_manifest
from tunekit.training.state import StateCallback
from tunekit.formats import FORMAT_VERSIONS, NewerFormatError

LOGS_KIND = "logs"
LOGS_FORMAT_VERSION = FORMAT_VERSIONS[LOGS_KIND]


def _require(module, extra):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"This needs {module}: pip install \"tunekit[{extra}]\"") from None


def check_log_dir(directory):
    """The absolute path of `directory` (`~` expanded) if tunekit may write logs there: absent, empty, or a log folder
    tunekit made. Raises `ValueError` for a file or a folder of other files, `PermissionError` for a read-only one
    (before any training work)."""
    directory = folder_argument(directory, "log_dir", "the training logs (e.g. runs/my_run)")
    if os.path.isdir(directory):
        entries = sorted(os.listdir(directory))
        if entries and _log_run(directory) is None:
            raise ValueError(
                f"log_dir {directory!r} holds files that tunekit did not write ({', '.join(entries[:5])}"
                f"{', ...' if len(entries) > 5 else ''}), which its logs (steps.csv, epochs.csv) could overwrite. "
                "Give a new or empty folder, e.g. runs/my_run.")
    check_writable(os.path.join(directory, "steps.csv"))
    return directory


def _log_run(directory):
    """The run recorded in the log folder's manifest; None when the folder has no valid tunekit log manifest."""
    try:
        manifest = read_manifest(directory, what="log folder", kinds=(LOGS_KIND,),
                                 format_version=LOGS_FORMAT_VERSION, verify_files=False)
    except NewerFormatError:
        raise
    except ValueError:
        return None
    return manifest.get("run", {})


def claim_log_dir(directory, run):
    """Marks `directory` as the logs of `run` (a JSON-able fingerprint), before training starts. Raises
    `ValueError` naming what differs when it holds the logs of another run (a new run would drop their rows)."""
    directory = check_log_dir(directory)
    recorded = _log_run(directory) if os.path.isdir(directory) else None
    if recorded and recorded != run:
        differences = [key for key in sorted(set(recorded) | set(run)) if recorded.get(key) != run.get(key)]
        raise ValueError(
            f"log_dir {directory!r} holds the logs of another training run (it differs in: {', '.join(differences)}); "
            "writing there would drop that run's rows. Give this run its own log_dir, e.g. runs/my_run_2.")
    os.makedirs(directory, exist_ok=True)
    write_manifest(directory, {"kind": LOGS_KIND, "format_version": LOGS_FORMAT_VERSION, "run": run}, files={})
    return directory


class DivergenceGuard(keras.callbacks.TerminateOnNaN):
    """Keras' `TerminateOnNaN` (stops training at the first NaN or infinite loss), which also keeps the model's
    last good weights: those at the start of training and after each epoch whose weights were all finite.

    The training loop calls `check_weights(epoch)` at every epoch end, before the other callbacks save anything (a
    last step can make the weights NaN while its loss was still finite). After training, `diverged` describes what
    went wrong (None if nothing did), `restore()` puts back the last good weights, and `good_epoch` is the number
    of epochs they had trained (counted from the start of this `fit`).
    """

    def __init__(self):
        super().__init__()
        self.diverged = None
        self.good_epoch = 0
        self._good = None
        self._epoch = 0

    def on_train_begin(self, logs=None):
        self.diverged, self.good_epoch, self._good = None, 0, self.model.get_weights()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        super().on_batch_end(batch, logs)
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss) and self.diverged is None:
            self.diverged = f"the training loss became {loss} at batch {batch + 1} of epoch {self._epoch + 1}"

    def check_weights(self, epoch):
        """True, keeping them as the last good weights, when every floating-point weight is finite after `epoch`;
        otherwise False, and training stops."""
        weights = self.model.get_weights()
        if all(np.all(np.isfinite(w)) for w in weights if np.issubdtype(w.dtype, np.floating)):
            self._good, self.good_epoch = weights, self.good_epoch + 1
            return True
        self.diverged = f"the model's weights became NaN or infinite during epoch {epoch + 1}"
        self.model.stop_training = True
        return False

    def restore(self):
        """Puts back the last good weights."""
        self.model.set_weights(self._good)


class MajorityClassWarning(StateCallback):
    """Warns when a classification run ends no better than always predicting its most common label (the accuracy
    of its last epoch, on the validation data when there is some, within `margin` of that label's share): what a
    learning rate too low for the backbone or too little training looks like, and easy to miss in a loss curve.

    Args:
        labels: the training labels (class ids; negative ids, e.g. examples that only have a teacher's soft labels
            in distillation, are not counted; labels that are not class ids turn the warning off).
        names: the label names.
        learning_rate: the run's peak learning rate (named in the warning).
        margin: how close to the majority share counts as "no better".
    """

    def __init__(self, labels, names, learning_rate, margin=0.02):
        super().__init__()
        labels = np.asarray(labels)
        ids = labels[labels >= 0] if labels.ndim == 1 and labels.dtype.kind in "iu" else np.zeros([0], np.int64)
        counts = np.bincount(ids.astype(np.int64), minlength=len(names))
        self.majority = names[int(np.argmax(counts))]
        self.share = counts.max() / counts.sum() if counts.sum() else None
        self.learning_rate, self.margin = learning_rate, margin

    def on_train_end(self, logs=None):
        history = self.state.history
        name = "val_accuracy" if history.get("val_accuracy") else "accuracy"
        if self.share is None or self.state.diverged is not None or not history.get(name):
            return
        accuracy = history[name][-1]
        if accuracy <= self.share + self.margin:
            warnings.warn(
                f"The run ended with {name} {accuracy:.3f}, no better than always predicting its most common "
                f"label {self.majority!r} ({self.share:.3f} of the training labels): the model has learned little "
                f"and may predict {self.majority!r} for nearly every text. A higher learning rate often helps small "
                f"backbones or small data (learning_rate="
                f"{self.learning_rate:g} here" + ("; 1e-4 suits MiniLM-size encoders" if self.learning_rate < 1e-4
                                                  else "") + "), as do more epochs or more data.",
                UserWarning, stacklevel=2)


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
    """The callbacks of `Trainer(log_dir=...)`: TensorBoard (epochs), `epochs.csv`, and `StepLog` (the folder is
    claimed with `claim_log_dir` first)."""
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
