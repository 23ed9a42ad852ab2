"""Crash-safe training backups: everything needed to continue a run exactly where it stopped.

`Trainer(..., backup_dir=DIR)` keeps the latest backups of the run in `DIR` (the idea of Keras'
`BackupAndRestore`, extended to the data order and the dropout random state). Each backup is a directory
`DIR/step-000000123` written through `tunekit.files.write_atomically`, so a directory under its final name is
always complete; a process killed while writing leaves the previous backup as the newest one. A backup holds:

- `variables.npz`: every variable of the model (weights and the dropout layers' random states), of the optimizer
  (moments, iteration count, hence the schedule position) and of the running training metrics;
- `tunekit.json`: `{"format_version", "kind": "backup", "run", "epoch", "step", "seed", "history", "checksums"}`:
  the epoch and the step within it to continue from, the seed of the shuffle order (a function of seed and epoch),
  the history so far, a SHA-256 per file, and `run`, what the backup was made for (model, task, variables, data
  size, batch size, epochs). A backup of another run is refused with a message saying what differs.

`DIR` itself holds a `tunekit.json` of kind "backups", so tunekit never writes into a folder of the user's files.

Example:

>>> store = BackupStore("run-backups", run={"model": "core", "examples": 512})      # doctest: +SKIP
>>> store.save(variables, {"epoch": 1, "step": 0, "seed": 7, "history": {}})           # doctest: +SKIP
>>> state = store.restore(variables)   # None when there is nothing to resume          # doctest: +SKIP
"""

import json
import os
import shutil

import numpy as np

from tunekit.files import MARKER_FILE, file_checksums, verify_checksums, write_atomically

FORMAT_VERSION = 1
KEEP = 2
_PREFIX = "step-"
_VARIABLES = "variables.npz"


def _read_marker(directory):
    try:
        with open(os.path.join(directory, MARKER_FILE), encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError):
        return None


def check_backup_dir(directory):
    """Returns the absolute path of `directory` if it may hold backups (absent, empty, or made by tunekit);
    raises `ValueError` for a file or a folder of other files."""
    if isinstance(directory, bool) or not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"backup_dir must be a folder path, got {type(directory).__name__}.")
    directory = os.path.abspath(os.fspath(directory))
    if os.path.lexists(directory):
        if not os.path.isdir(directory):
            raise ValueError(f"backup_dir {directory!r} is a file; give a folder for the training backups.")
        marker = _read_marker(directory)
        if os.listdir(directory) and (not isinstance(marker, dict) or marker.get("kind") != "backups"):
            raise ValueError(
                f"backup_dir {directory!r} holds files that are not tunekit training backups. Give a new or empty "
                "folder (each training run needs its own backup_dir)."
            )
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
        """Loads the newest backup into `variables` and returns its state dict (epoch, step, seed, history, ...),
        or None when there is no backup. Raises `ValueError` for a backup of a different run."""
        for path in self._backups():
            state = _read_marker(path)
            if not isinstance(state, dict) or state.get("kind") != "backup":
                continue
            if state.get("run") != self.run:
                raise ValueError(self._mismatch(path, state.get("run") or {}))
            verify_checksums(path, state["checksums"], what="training backup")
            with np.load(os.path.join(path, _VARIABLES)) as arrays:
                values = [arrays[f"v{i}"] for i in range(len(arrays.files))]
            if len(values) != len(variables) or any(
                    tuple(v.shape) != value.shape for v, value in zip(variables, values)):
                raise ValueError(self._mismatch(path, {**state["run"], "variables": "other shapes"}))
            for variable, value in zip(variables, values):
                variable.assign(value)
            return state
        return None

    def _mismatch(self, path, found):
        differences = [f"{key}: backup {found.get(key)!r}, now {self.run.get(key)!r}"
                       for key in sorted(set(found) | set(self.run)) if found.get(key) != self.run.get(key)]
        return (f"The training backup {path!r} was made for a different run ({'; '.join(differences)}). Resume with "
                "the same model, task, data and settings, or give this run a new backup_dir (or delete the old one).")

    def save(self, variables, state):
        """Writes a new backup of `variables` and `state` (JSON-able: epoch, step, seed, history, ...) atomically
        and drops all but the newest `KEEP` backups."""
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory, exist_ok=True)
        if _read_marker(self.directory) is None:
            write_marker = os.path.join(self.directory, f".{MARKER_FILE}.{os.getpid()}")
            with open(write_marker, "w", encoding="utf-8") as file:
                json.dump({"format_version": FORMAT_VERSION, "kind": "backups"}, file)
            os.replace(write_marker, os.path.join(self.directory, MARKER_FILE))
        values = {f"v{i}": np.asarray(variable.numpy()) for i, variable in enumerate(variables)}

        def write(path):
            os.makedirs(path)
            np.savez(os.path.join(path, _VARIABLES), **values)
            metadata = {"format_version": FORMAT_VERSION, "kind": "backup", "run": self.run, **state,
                        "checksums": file_checksums(path)}
            with open(os.path.join(path, MARKER_FILE), "w", encoding="utf-8") as file:
                json.dump(metadata, file, indent=1)

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
