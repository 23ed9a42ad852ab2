"""Crash-safe training backups: everything needed to continue a run exactly where it stopped.

`Trainer(..., backup_dir=DIR)` keeps the latest backups of the run in `DIR` (the idea of Keras'
`BackupAndRestore`, extended to the data order and the dropout random state). Each backup is a directory
`DIR/step-000000123` written through `tunekit.files.write_atomically`, so a directory under its final name is
always complete; a process killed while writing leaves the previous backup as the newest one. A backup holds:

- `variables.npz`: every variable of the model (weights and the dropout layers' random states), of the optimizer
  (moments, iteration count, hence the schedule position) and of the running training metrics;
- `tunekit.json`, a manifest (`tunekit.formats.write_manifest`: a SHA-256 per file and of itself, so an edited
  step, seed or epoch is refused): `{"format_version", "kind": "backup", "run", "epoch", "step", "seed",
  "history", ...}`: the epoch and the step within it to continue from, the seed of the shuffle order (a function
  of seed and epoch), the history so far, and `run`, the run's fingerprint: model, task, variables, settings
  (learning rate, weight decay, schedule, ...), a SHA-256 of the training data, of the model's architecture
  (dropout rates included) and of its weights before training (the base model). A backup of another run is
  refused with a message naming what differs.

If the newest backup is damaged (a file changed or missing), the one before it is resumed, with a warning.
`DIR` itself holds a `tunekit.json` of kind "backups", so tunekit never writes into a folder of the user's files.

Example:

>>> import keras
>>> variables = [keras.Variable([1.0, 2.0])]   # a run's: model, optimizer and metric variables (`TrainingLoop`)
>>> store = BackupStore("run-backups", run={"model": "core", "examples": 512})
>>> store.restore(variables) is None           # nothing to resume yet
True
>>> store.save(variables, {"epoch": 1, "step": 0, "global_step": 4, "seed": 7, "history": {}})
>>> _ = variables[0].assign([0.0, 0.0])         # the process dies; a new one restores:
>>> state = store.restore(variables)
>>> state["epoch"], state["global_step"], variables[0].numpy().tolist()
(1, 4, [1.0, 2.0])
"""

import json
import math
import os
import shutil
import warnings

import numpy as np

from tunekit.files import check_writable, user_path, write_atomically
from tunekit.formats import BACKUP_VARIABLES_FILE as _VARIABLES
from tunekit.formats import FORMAT_VERSIONS, DamagedArtifactError, NewerFormatError, read_manifest, write_manifest
from tunekit.training.state import StateCallback

KEEP = 2
_PREFIX = "step-"


def _is_backups_folder(directory):
    try:
        read_manifest(directory, "backups")
    except NewerFormatError:
        raise
    except ValueError:
        return False
    return True


def check_backup_dir(directory):
    """Returns the absolute path of `directory` if it may hold backups (absent, empty, or made by tunekit);
    raises `ValueError` for a file or a folder of other files, `PermissionError` for a read-only one."""
    if isinstance(directory, bool) or not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"backup_dir must be a folder path, got {type(directory).__name__}.")
    directory = user_path(directory)
    if os.path.lexists(directory):
        if not os.path.isdir(directory):
            raise ValueError(f"backup_dir {directory!r} is a file; give a folder for the training backups.")
        if os.listdir(directory) and not _is_backups_folder(directory):
            raise ValueError(
                f"backup_dir {directory!r} holds files that are not tunekit training backups. Give a new or empty "
                "folder (each training run needs its own backup_dir)."
            )
    check_writable(os.path.join(directory, _PREFIX))  # the folder, or the nearest one above it that exists
    return directory


class BackupStore:
    """The backups of one training run in `directory` (see the module docstring).

    Args:
        directory: the backup folder: absent, empty, or one that a `BackupStore` made.
        run: JSON-able description of the run; a backup whose `run` differs is refused.

    Raises:
        ValueError: `directory` is a file, or a folder of other files (before any training work).
    """

    def __init__(self, directory, run):
        self.directory = check_backup_dir(directory)
        self.run = json.loads(json.dumps(run))

    def _backups(self):
        """Complete backups, newest first."""
        if not os.path.isdir(self.directory):
            return []
        names = [name for name in os.listdir(self.directory) if name.startswith(_PREFIX) and name[len(_PREFIX):].isdigit()]
        return [os.path.join(self.directory, name) for name in sorted(names, reverse=True)]

    def restore(self, variables):
        """Loads the newest intact backup into `variables` and returns its state dict (epoch, step, seed, history,
        ...), or None when there is no backup. A damaged newest backup is passed over with a warning for the one
        before it.

        Raises:
            ValueError: the backup was made for a different run (the message names what differs), or is of a
                format this tunekit does not read.
            DamagedArtifactError: every backup is damaged.
        """
        backups = self._backups()
        for index, path in enumerate(backups):
            try:
                state, values = self._read(path, variables)
            except DamagedArtifactError as error:
                if index + 1 == len(backups):
                    raise DamagedArtifactError(
                        f"{error} No intact training backup is left in {self.directory!r}: delete the folder to "
                        "train from the start.") from None
                warnings.warn(f"{error} Resuming from the backup before it, {backups[index + 1]!r} (the damaged "
                              "one is removed).", stacklevel=3)
                continue
            for damaged in backups[:index]:  # the run continues from here and writes those steps again
                self._remove(damaged)
            for variable, value in zip(variables, values):
                variable.assign(value)
            return state
        return None

    def _read(self, path, variables):
        """(state, arrays) of the backup `path`, checked: intact, of this run, of the variables' shapes."""
        state = read_manifest(path, "backup")
        if state.get("run") != self.run:
            raise ValueError(self._mismatch(path, state.get("run") or {}))
        try:
            with np.load(os.path.join(path, _VARIABLES)) as arrays:
                values = [arrays[f"v{i}"] for i in range(len(arrays.files))]
        except (OSError, ValueError, KeyError) as error:
            raise DamagedArtifactError(f"This training backup is damaged: {_VARIABLES} in {path!r} cannot be read "
                                       f"({error}).") from None
        if len(values) != len(variables) or any(tuple(v.shape) != value.shape for v, value in zip(variables, values)):
            raise ValueError(self._mismatch(path, {**state["run"], "variables": "other shapes"}))
        return state, values

    def _mismatch(self, path, found):
        def shown(value):
            return value[:12] + "..." if isinstance(value, str) and len(value) == 64 else repr(value)

        differences = [f"{key}: backup {shown(found.get(key))}, now {shown(self.run.get(key))}"
                       for key in sorted(set(found) | set(self.run)) if found.get(key) != self.run.get(key)]
        return (f"The training backup {path!r} was made for a different run ({'; '.join(differences)}). Resume with "
                "the same model, task, data and settings, or give this run a new backup_dir (or delete the old one).")

    def save(self, variables, state):
        """Writes a new backup of `variables` and `state` (JSON-able: epoch, step, seed, history, ...) atomically
        and drops all but the newest `KEEP` backups."""
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory, exist_ok=True)
        if not _is_backups_folder(self.directory):
            write_manifest(self.directory, {"format_version": FORMAT_VERSIONS["backups"], "kind": "backups"}, files={})
        values = {f"v{i}": np.asarray(variable.numpy()) for i, variable in enumerate(variables)}

        def write(path):
            os.makedirs(path)
            np.savez(os.path.join(path, _VARIABLES), **values)
            write_manifest(path, {"format_version": FORMAT_VERSIONS["backup"], "kind": "backup", "run": self.run,
                                  **state})

        write_atomically(os.path.join(self.directory, f"{_PREFIX}{state['global_step']:09d}"), write, kind="backup")
        for old in self._backups()[KEEP:]:
            self._remove(old)

    def _remove(self, path):
        # Renamed first, so that a removal cut short never leaves a half-deleted backup under a backup's name.
        hidden = os.path.join(self.directory, f".removing-{os.path.basename(path)}-{os.getpid()}")
        os.replace(path, hidden)
        shutil.rmtree(hidden, ignore_errors=True)

    def clear(self):
        """Removes every backup (the run finished); the folder and its marker stay."""
        for path in self._backups():
            self._remove(path)
        for name in os.listdir(self.directory) if os.path.isdir(self.directory) else []:
            if name.startswith(".removing-"):
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)


class BackupCallback(StateCallback):
    """The backups of `Trainer(backup_dir=...)` as a callback on the run's `TrainingState`.

    At the start of training it restores the newest backup of the same run (the model, optimizer and metric
    variables, and the state: epoch, step, data-order seed, history, running loss), so the loop continues where the
    backup was made. It saves one every `every` batches (not after a non-finite loss) and at every epoch end, and
    removes them when training completes without diverging. Under several workers every worker restores; only the
    chief (`write=True`) saves and removes.

    Args:
        store: the run's `BackupStore`.
        variables: the variables to save and restore (`TrainingLoop.variables`).
        every: batches between backups.
        write: whether this process writes backups (the chief).
        strategy: the `tf.distribute` strategy whose scope the variables are restored in (None: the default).
    """

    def __init__(self, store, variables, *, every, write=True, strategy=None):
        super().__init__()
        self.store, self.variables, self.every, self.write, self.strategy = store, variables, every, write, strategy

    def on_train_begin(self, logs=None):
        if self.strategy is None:
            saved = self.store.restore(self.variables)
        else:
            with self.strategy.scope():
                saved = self.store.restore(self.variables)
        if saved is not None:
            steps_per_epoch = self.state.steps_per_epoch
            self.state.restore(saved)
            self.state.steps_per_epoch = steps_per_epoch

    def _save(self):
        if self.write:
            self.store.save(self.variables, self.state.to_backup())

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):  # diverged: the divergence guard stops the run
            return
        if self.state.step % self.every == 0 and self.state.step < self.state.steps_per_epoch:
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        self._save()

    def on_train_end(self, logs=None):
        if self.write and self.state.diverged is None:
            self.store.clear()
